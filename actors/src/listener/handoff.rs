//! A neighbour's connection, found by a door, handed to the peer side on the home thread.
//!
//! The peer manager and its links live on the server's home thread (the thread the store
//! runs on). A door on a worker thread that meets a peer hello moves the connection there
//! whole: its socket leaves the worker's event loop and joins the home thread's, so the
//! link's reads and writes are woken where the link runs, not relayed from another thread.
//! What the door had read past the hello goes with it, and is read first.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix::Recipient;
use actix_rt::ArbiterHandle;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::codec::{LineCodec, PeerLines};
use crate::event_log::EventLog;
use crate::peers::manager::Handoff;
use crate::peers::wire;
use crate::session::{Input, READ_BUFFER};

/// Where a door sends a neighbour's connection.
#[derive(Clone)]
pub(crate) struct ToPeers {
    handoff: Recipient<Handoff>,
    /// The home thread, for a door on a worker thread; `None` for a door on the home thread.
    home: Option<ArbiterHandle>,
}

impl ToPeers {
    /// For doors on the home thread.
    pub(crate) fn here(handoff: Recipient<Handoff>) -> ToPeers {
        ToPeers {
            handoff,
            home: None,
        }
    }

    /// For doors on a worker thread, whose connections move to `home`.
    pub(crate) fn for_worker(&self, home: ArbiterHandle) -> ToPeers {
        ToPeers {
            handoff: self.handoff.clone(),
            home: Some(home),
        }
    }

    /// The peer manager's recipient of connections, for the TLS side on the home thread.
    pub(crate) fn handoff(&self) -> Recipient<Handoff> {
        self.handoff.clone()
    }

    /// Hands a connection that opened with `hello` to the peer side, with the rest of its
    /// input; a failure to move it (the socket is gone) is logged, and the connection closed.
    pub(crate) fn hand_over(
        &self,
        addr: SocketAddr,
        hello: BytesMut,
        input: Input,
        write: OwnedWriteHalf,
        log: &EventLog,
    ) {
        let Some(home) = &self.home else {
            self.handoff
                .do_send(handoff(addr, hello, input.into_lines(), write));
            return;
        };
        let (read, codec, read_ahead) = {
            let parts = input.into_lines().into_parts();
            (parts.io, parts.codec, parts.read_buf)
        };
        let moved = read
            .reunite(write)
            .map_err(|_| io::Error::other("the halves of a connection came apart"))
            .and_then(TcpStream::into_std);
        let stream = match moved {
            Ok(stream) => stream,
            Err(e) => {
                log.note(&format!(
                    "{addr}: cannot hand the connection to the peer side: {e}"
                ));
                return;
            }
        };
        let (to, home_log) = (self.handoff.clone(), log.clone());
        let sent = home.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => {
                    let (read, write) = stream.into_split();
                    let read = ReadAhead { read_ahead, read };
                    let lines = FramedRead::with_capacity(read, codec, READ_BUFFER);
                    to.do_send(handoff(addr, hello, lines, write));
                }
                Err(e) => home_log.note(&format!("{addr}: cannot take the connection home: {e}")),
            }
        });
        if !sent {
            log.dropped(addr, "the server is stopping");
        }
    }
}

/// The handoff of a connection whose hello is `hello`, its lines framed by `lines`.
fn handoff<R>(
    addr: SocketAddr,
    hello: BytesMut,
    lines: FramedRead<R, LineCodec>,
    write: OwnedWriteHalf,
) -> Handoff
where
    R: AsyncRead + Unpin + Send + 'static,
{
    Handoff {
        addr,
        hello,
        lines: Box::new(PeerLines::new(lines, wire::MAX_LINE)),
        write: Box::new(write),
        cert: None,
    }
}

/// A connection's reading side, with what was read from it before it moved: those bytes
/// first.
struct ReadAhead<R> {
    read_ahead: BytesMut,
    read: R,
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadAhead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_ahead.has_remaining() {
            let n = this.read_ahead.len().min(buf.remaining());
            buf.put_slice(&this.read_ahead[..n]);
            this.read_ahead.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.read).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn what_was_read_ahead_comes_first_then_the_rest() {
        let rest: &[u8] = b" and the rest";
        let mut read = ReadAhead {
            read_ahead: BytesMut::from(&b"read ahead"[..]),
            read: rest,
        };
        let mut small = [0u8; 4];
        read.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"read");
        let mut all = Vec::new();
        read.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b" ahead and the rest");
    }
}
