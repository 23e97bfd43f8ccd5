//! The door a TLS herd's neighbours come in by: a connection whose first byte opened a TLS
//! handshake finishes it here, sends its hello inside TLS, and goes to the
//! [`PeerManager`](super::manager::PeerManager) with the certificate it showed, which the
//! hello's name is then checked against (`docs/peer-protocol.md`, "TLS").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::manager::Handoff;
use super::tls::{tls_reason, PeerTls};
use super::wire;
use crate::codec::{LineCodec, PeerLines};
use crate::event_log::{Door, EventLog};

/// The longest first line read inside TLS: a hello is a few dozen bytes.
const MAX_HELLO: usize = 1024;

/// Takes a connection whose first byte opened a TLS handshake: finishes the handshake and
/// reads the first line inside it, within `limit`, then hands both to the peer side, which
/// checks the hello against the certificate. A handshake that fails (no certificate, one
/// of another CA, an expired one, or no hello in time) is logged and the connection closed.
pub(crate) async fn take_peer(
    tls: Arc<PeerTls>,
    stream: TcpStream,
    addr: SocketAddr,
    limit: Duration,
    peers: Recipient<Handoff>,
    log: EventLog,
) {
    let handshake = async {
        let (stream, cert) = tls
            .accept(stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {}", tls_reason(&e)))?;
        let (read, write) = tokio::io::split(stream);
        let mut read = FramedRead::new(read, LineCodec::new(MAX_HELLO));
        let hello: BytesMut = match read.next().await {
            Some(Ok(line)) => line,
            Some(Err(e)) => return Err(format!("no hello inside TLS: {e}")),
            None => return Err("closed inside TLS before its hello".into()),
        };
        Ok((hello, read, write, cert))
    };
    match tokio::time::timeout(limit, handshake).await {
        Ok(Ok((hello, read, write, cert))) => {
            log.peer_received(addr, &hello);
            peers.do_send(Handoff {
                addr,
                hello,
                lines: Box::new(PeerLines::new(read, wire::MAX_LINE)),
                write: Box::new(write),
                cert: Some(cert),
            });
        }
        Ok(Err(why)) => log.refused(addr, Door::PeerHandshake, &why),
        Err(_) => log.refused(
            addr,
            Door::PeerHandshake,
            &format!("TLS handshake and hello not done in {limit:?}"),
        ),
    }
}
