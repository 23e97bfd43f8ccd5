//! The accept loop: each connection the server takes becomes a [`Session`].

use std::rc::Rc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admission::{Admission, Admit};
use crate::session::{Session, SessionDeps};

/// Accepts connections for as long as the server runs. A connection past the caps is closed
/// at once (and logged); a failed accept (out of file descriptors, which the caps keep from
/// happening) makes the loop wait a little for some to close.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    deps: Rc<SessionDeps>,
    admission: Admission,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match admission.admit(peer.ip()) {
                Admit::Client(ticket) | Admit::Probation(ticket) => {
                    let _ = stream.set_nodelay(true);
                    Session::start(Rc::clone(&deps), stream, peer, ticket);
                }
                // Dropping the stream closes it.
                Admit::Refused(why) => {
                    deps.metrics.refused();
                    deps.log.dropped(peer, why);
                }
            },
            Err(e) => {
                deps.log.note(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
