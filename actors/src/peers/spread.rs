//! A record on its way through the herd: the one message the store and the peer side send
//! each other.
//!
//! The store hands the [`PeerManager`](super::manager::PeerManager) every record that is new
//! here, to send on to the neighbours that lack it; an inbound link hands the store every
//! record a neighbour sent, to keep and send on if it is new here. Both carry the same
//! three things, so they are one type: the record, the neighbour it came from, and the
//! servers known to have it already. It is defined here, on the peer side, because the
//! store imports the peers and never the reverse (the peers reach the store through
//! [`Records`](super::records::Records)).

use std::sync::Arc;

use actix::prelude::*;

use crate::protocol::Record;

/// Request: a record spreading through the herd. To the peer manager: send it to every
/// neighbour that does not have it yet (see its handler for when that is done). To the
/// store: a record a neighbour sent, to keep, and spread on if it is newer here.
///
/// `seen` names the servers that have the record or are being sent it: a server sends it
/// only to neighbours outside that set whose links are up, and adds itself and them to it.
/// On the default herd that is 5 or 6 peer messages per check-in instead of 8. A neighbour
/// left out because a link dropped just then is not lost: the link syncs everything the
/// neighbour lacks when it comes back.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Spread {
    pub(crate) record: Record,
    /// The neighbour it came from; `None` for a check-in of this server's own client.
    pub(crate) from: Option<Arc<str>>,
    /// Servers that have it or are being sent it already (empty for a check-in or a sync).
    pub(crate) seen: Vec<Arc<str>>,
}
