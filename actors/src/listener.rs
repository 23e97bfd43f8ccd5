//! The accept loop: each connection the server takes goes through a door that tells a
//! neighbour's from a client's, and on to the peer side or to a client session.
//!
//! Neighbours dial the port clients use (`docs/peer-protocol.md`). On a herd without TLS
//! the plain door ([`door`]) reads each connection's first line: a peer hello goes to the
//! peer side, anything else starts a client session with that line.
//!
//! On a TLS herd the listener first waits for each new connection's first byte, without
//! taking it ([`TcpStream::peek`]). A TLS handshake record (`0x16`) is a neighbour dialling
//! in: it goes to the TLS peer side. Anything else goes through the plain door, which reads
//! the byte as the start of the first line, exactly as without TLS (where a plain hello is
//! then refused). One port serves both because
//! the herd promises its operators a server listens on one address (`addr`), which is also
//! what neighbours dial: one address to open in a firewall, and no second port to
//! configure per server. No client line can usefully start with `0x16`, a control
//! character.

mod door;
mod handoff;
mod workers;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::admission::{Admission, Ticket};
use crate::event_log::Door;
use crate::peers::door::take_peer;
use crate::peers::tls::{PeerTls, HANDSHAKE};
pub(crate) use handoff::ToPeers;
pub(crate) use workers::{home_serves, Workers};

/// Accepts connections for as long as the server runs. A connection past the caps is closed
/// at once (and logged); a failed accept (out of file descriptors, which the caps keep from
/// happening) makes the loop wait a little for some to close.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    workers: Workers,
    admission: Admission,
    tls: Option<Arc<PeerTls>>,
) {
    let workers = Rc::new(workers);
    let deps = workers.home();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match admission.admit(peer.ip()) {
                Ok(ticket) => {
                    let _ = stream.set_nodelay(true);
                    match &tls {
                        None => workers.enter(stream, peer, ticket),
                        Some(tls) => {
                            let (tls, workers) = (Arc::clone(tls), Rc::clone(&workers));
                            actix_rt::spawn(sort(tls, workers, stream, peer, ticket));
                        }
                    }
                }
                // Dropping the stream closes it.
                Err(why) => {
                    deps.metrics.refused();
                    deps.log.refused(peer, Door::Caps, why);
                }
            },
            Err(e) => {
                deps.log.note(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// On a TLS herd: waits for the connection's first byte, then gives the connection to the
/// TLS peer side (on this, the home thread) or to the plain door on its worker. The
/// connection keeps its place under the caps (`ticket`) until then; and a connection that
/// sends nothing is held no longer than a session holds an idle client, or, let in past the
/// caps, than a neighbour has to prove itself.
async fn sort(
    tls: Arc<PeerTls>,
    workers: Rc<Workers>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
) {
    let deps = workers.home();
    let limit = match ticket.on_probation() {
        true => Some(deps.limits.probation_timeout),
        false => deps.limits.idle_timeout,
    };
    let mut first = [0u8; 1];
    let peeked = match limit {
        Some(limit) => tokio::time::timeout(limit, stream.peek(&mut first))
            .await
            .ok(),
        None => Some(stream.peek(&mut first).await),
    };
    match peeked {
        None => {
            let waited = limit.unwrap_or_default().as_secs_f64();
            deps.log
                .dropped(peer, &format!("nothing sent in {waited}s"));
        }
        Some(Ok(1)) if first[0] == HANDSHAKE => {
            // A neighbour proves itself within the time any connection let in on
            // probation has.
            let limit = deps.limits.probation_timeout;
            let (peers, log) = (workers.to_peers().handoff(), deps.log.clone());
            take_peer(tls, stream, peer, limit, peers, log).await;
            drop(ticket);
        }
        // A client's first byte, or the end of its input, or an error: the plain door meets
        // them as it would have without TLS.
        Some(_) => workers.enter(stream, peer, ticket),
    }
}
