//! The peer handshake, both ends: who may become a peer link, and how a dialler proves it.
//!
//! A connection whose first line is a `HERD-PEER` hello asks to become a peer link. It
//! becomes one only if it names a configured neighbour and this server, and proves the name
//! it claims: on a TLS herd with a certificate of the herd's CA for that name (and a plain
//! hello is refused there); otherwise, when the herd has a secret, by answering a fresh
//! challenge with the right HMAC. Until then (and on every other connection) `AT` lines are
//! just invalid client input: a client can never inject a record. The exchange is in
//! `docs/peer-protocol.md`; the lines are in [`super::wire`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::error::{LinkError, Refusal};
use super::tls::{tls_reason, PeerCertificate, PeerTls};
use super::wire;
use crate::codec::{LineCodec, LineError, PeerInput};

/// Who may dial this server.
#[derive(Debug, Clone)]
pub(crate) struct PeerPolicy {
    pub(crate) me: Arc<str>,
    pub(crate) neighbours: Vec<Arc<str>>,
    pub(crate) secret: Option<Arc<[u8]>>,
    /// The herd's links use TLS: a neighbour proves its name with its certificate, and a
    /// hello that came in plain text is refused.
    pub(crate) tls: bool,
}

/// The listener's answer to a hello it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// Accepted (by its certificate, or with no secret to ask for): the connection is now a
    /// link from this neighbour.
    Welcome(Arc<str>),
    /// The dialler must prove it holds the secret for this nonce.
    Challenge { from: Arc<str>, nonce: String },
}

impl PeerPolicy {
    /// What to answer to the hello `line`, which came over TLS with `cert` or, if `None`, in
    /// plain text.
    pub(crate) fn answer_hello(
        &self,
        line: &str,
        cert: Option<&PeerCertificate>,
    ) -> Result<Greeting, Refusal> {
        let hello = wire::parse_hello(line).ok_or(Refusal::MalformedHello)?;
        let (from, to) = (hello.from, hello.to);
        if hello.version != wire::VERSION {
            return Err(Refusal::Version {
                from: from.into(),
                theirs: hello.version,
            });
        }
        if to != &*self.me {
            return Err(Refusal::WrongServer {
                me: self.me.to_string(),
                to: to.into(),
            });
        }
        let Some(from) = self.neighbours.iter().find(|n| ***n == *from) else {
            return Err(Refusal::NotNeighbour {
                from: from.into(),
                me: self.me.to_string(),
            });
        };
        if self.tls {
            // Mutual TLS proved the certificate is the herd's; it must also be this name's.
            let cert = cert.ok_or(Refusal::PlainOnTls)?;
            return match cert.is_for(from) {
                Ok(()) => Ok(Greeting::Welcome(from.clone())),
                Err(why) => Err(Refusal::NotTheirCertificate {
                    from: from.to_string(),
                    why,
                }),
            };
        }
        if self.secret.is_none() {
            return Ok(Greeting::Welcome(from.clone()));
        }
        let nonce = wire::nonce().map_err(|e| Refusal::NoRandomness(e.to_string()))?;
        Ok(Greeting::Challenge {
            from: from.clone(),
            nonce,
        })
    }

    /// Checks the dialler's `HERD-PROOF` line for the challenge it was sent.
    pub(crate) fn check_proof(&self, from: &str, nonce: &str, line: &str) -> Result<(), Refusal> {
        let wrong = || Refusal::WrongSecret(from.into());
        let secret = self.secret.as_deref().ok_or_else(wrong)?;
        let proof = wire::argument(line, wire::PROOF).ok_or(Refusal::ExpectedProof)?;
        if wire::verify(secret, from, &self.me, nonce, proof) {
            Ok(())
        } else {
            Err(wrong())
        }
    }
}

/// Who an outbound link connects, and with what.
#[derive(Debug, Clone)]
pub(crate) struct LinkTarget {
    pub(crate) me: Arc<str>,
    pub(crate) neighbour: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) secret: Option<Arc<[u8]>>,
    /// Set on a TLS herd: the link runs inside TLS, and the listener must prove its name.
    pub(crate) tls: Option<Arc<PeerTls>>,
}

/// Either side of a link's connection: plain TCP or TLS over it.
pub(crate) type LinkRead = Box<dyn AsyncRead + Unpin>;
/// See [`LinkRead`].
pub(crate) type LinkWrite = Box<dyn AsyncWrite + Unpin>;

/// The lines of a connection a neighbour dialled, plain or TLS, as the listening side
/// takes them over: the inbound counterpart of [`LinkRead`].
pub(crate) type InboundLines = Box<dyn Stream<Item = Result<PeerInput, LineError>> + Unpin + Send>;
/// The sending side of a connection a neighbour dialled, plain or TLS.
pub(crate) type InboundWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// A link whose handshake is done: lines from the neighbour, and the sending side.
pub(crate) struct Connected {
    pub(crate) read: FramedRead<LinkRead, LineCodec>,
    pub(crate) write: LinkWrite,
}

/// Connects to `t` and completes the handshake as the dialling side, within `limit`.
pub(crate) async fn dial(t: &LinkTarget, limit: Duration) -> Result<Connected, LinkError> {
    let handshake = async {
        let stream = connect(t.addr).await?;
        let (read, mut write): (LinkRead, LinkWrite) = match &t.tls {
            None => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
            Some(tls) => {
                let stream =
                    tls.connect(stream, &t.neighbour)
                        .await
                        .map_err(|e| LinkError::Tls {
                            addr: t.addr,
                            reason: tls_reason(&e),
                        })?;
                let (read, write) = tokio::io::split(stream);
                (Box::new(read), Box::new(write))
            }
        };
        let mut read = FramedRead::new(read, LineCodec::peer(wire::MAX_LINE));
        write
            .write_all(wire::hello(&t.me, &t.neighbour).as_bytes())
            .await
            .map_err(LinkError::Write)?;
        let mut line = next_line(&mut read).await?;
        if let Some(nonce) = wire::argument(&line, wire::CHALLENGE) {
            let secret = t.secret.as_ref().ok_or(LinkError::NoSecret)?;
            let proof = wire::proof(secret, &t.me, &t.neighbour, nonce);
            write
                .write_all(format!("{} {proof}\n", wire::PROOF).as_bytes())
                .await
                .map_err(LinkError::Write)?;
            line = next_line(&mut read).await?;
        }
        match wire::argument(&line, wire::WELCOME) {
            Some(name) if name == &*t.neighbour => Ok(Connected { read, write }),
            _ => match wire::refusal_version(&line) {
                Some(theirs) if theirs != wire::VERSION => Err(LinkError::Version { theirs }),
                _ => Err(LinkError::Refused(line.chars().take(200).collect())),
            },
        }
    };
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| LinkError::HandshakeTimeout(limit))?
}

/// The send buffer of a link's socket (the kernel doubles it for its own bookkeeping): a
/// heartbeat, which leaves ahead of everything the link still holds, waits behind at most
/// this much in the kernel, so a sync of any size cannot delay it for long. Enough for
/// 100 MB/s at a 10 ms round trip.
const LINK_SEND_BUFFER: usize = 512 * 1024;

/// Opens a link's TCP connection to `addr`: small writes go at once, keep-alive probes find
/// a neighbour whose host died, and the kernel holds at most [`LINK_SEND_BUFFER`] unsent.
async fn connect(addr: SocketAddr) -> Result<TcpStream, LinkError> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|source| LinkError::Connect { addr, source })?;
    // The size must be set before the connection, so the window it scales to fits it.
    let _ = socket.set_send_buffer_size(LINK_SEND_BUFFER as u32);
    let stream = socket
        .connect(addr)
        .await
        .map_err(|source| LinkError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let _ = keep_alive(&stream);
    Ok(stream)
}

/// The next whole line from a neighbour, as text.
async fn next_line(read: &mut FramedRead<LinkRead, LineCodec>) -> Result<String, LinkError> {
    match read.next().await {
        None => Err(LinkError::Closed),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(line)) => String::from_utf8(line.to_vec()).map_err(|_| LinkError::BadLine),
    }
}

/// Turns on TCP keep-alive probes, so a link to a neighbour whose host died without closing
/// the connection fails within about 20 s of silence, even with nothing to write.
fn keep_alive(stream: &TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(3))
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secret: Option<&[u8]>) -> PeerPolicy {
        PeerPolicy {
            me: "Smith".into(),
            neighbours: vec!["Hill".into(), "Campbell".into()],
            secret: secret.map(Arc::from),
            tls: false,
        }
    }

    #[test]
    fn without_a_secret_only_neighbours_naming_this_server_get_in() {
        let p = policy(None);
        assert_eq!(
            p.answer_hello("HERD-PEER 2 Hill Smith", None),
            Ok(Greeting::Welcome("Hill".into()))
        );
        assert_eq!(
            p.answer_hello("HERD-PEER 1 Hill Smith", None),
            Err(Refusal::Version {
                from: "Hill".into(),
                theirs: 1
            })
        );
        assert_eq!(
            p.answer_hello("HERD-PEER 2 Jaquez Smith", None),
            Err(Refusal::NotNeighbour {
                from: "Jaquez".into(),
                me: "Smith".into()
            })
        );
        assert_eq!(
            p.answer_hello("HERD-PEER 2 Hill Campbell", None),
            Err(Refusal::WrongServer {
                me: "Smith".into(),
                to: "Campbell".into()
            })
        );
        assert!(p.answer_hello("HERD-PEER 2 hill Smith", None).is_err());
        assert_eq!(
            p.answer_hello("HERD-PEER Hill Smith", None),
            Err(Refusal::MalformedHello)
        );
    }

    #[test]
    fn with_a_secret_the_dialler_must_answer_the_challenge() {
        let p = policy(Some(b"k"));
        let Ok(Greeting::Challenge { from, nonce }) =
            p.answer_hello("HERD-PEER 2 Hill Smith", None)
        else {
            panic!("expected a challenge");
        };
        let good = format!("HERD-PROOF {}", wire::proof(b"k", "Hill", "Smith", &nonce));
        let bad = format!("HERD-PROOF {}", wire::proof(b"x", "Hill", "Smith", &nonce));
        assert_eq!(p.check_proof(&from, &nonce, &good), Ok(()));
        assert_eq!(
            p.check_proof(&from, &nonce, &bad),
            Err(Refusal::WrongSecret("Hill".into()))
        );
        assert!(p.check_proof("Campbell", &nonce, &good).is_err());
        assert_eq!(
            p.check_proof(&from, &nonce, "IAMAT a +1+1 1"),
            Err(Refusal::ExpectedProof)
        );
    }

    #[actix::test]
    async fn links_probe_a_silent_neighbour_with_keep_alives() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = connect(listener.local_addr().unwrap()).await.unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
    }
}
