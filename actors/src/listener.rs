//! The accept loop: each connection the server takes becomes a [`Session`].

use std::rc::Rc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admission::Admission;
use crate::session::{Session, SessionDeps};

/// Accepts connections for as long as the server runs. A connection past the cap is closed
/// at once (and logged); one that cannot be accepted (out of file descriptors, most likely)
/// makes the loop wait a little for some to close.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    deps: Rc<SessionDeps>,
    admission: Admission,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(ticket) = admission.admit() else {
                    deps.log.dropped(peer, "too many connections");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                Session::start(Rc::clone(&deps), stream, peer, ticket);
            }
            Err(e) => {
                deps.log.note(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
