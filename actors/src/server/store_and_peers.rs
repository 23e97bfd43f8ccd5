//! The store and the peer manager, started wired to each other.
//!
//! Records flow one way through the imports: `store` imports `peers`, never the reverse.
//! At run time the two actors talk both ways, though, and this is the one place that makes
//! the second arrow: the store hands the manager every record that is new here
//! ([`Spread`]), to send on to the neighbours; and the manager's links hand the store what
//! the neighbours send, and ask it what they lack, through [`Records`]: recipients of the
//! store, handed to the peer side here, so that it names nothing of the store.
//!
//! Each of the two is built with the other's address, so one address must exist before its
//! actor does. The store's comes first: its mailbox is opened on its own (actix's
//! [`Context::new`], made for actors that hold each other's addresses), the manager starts
//! with recipients of it, and then the store starts in that mailbox with the manager's
//! recipient. Whatever reaches the store in between waits in its mailbox.

use actix::prelude::*;

use crate::peers::manager::PeerManager;
use crate::peers::records::Records;
use crate::peers::spread::Spread;
use crate::store::LocationStore;

/// Starts the peer manager that `peers` makes around the store's recipients, then the store
/// that `store` makes around the manager's; their addresses.
pub(super) fn start_store_and_peers(
    store: impl FnOnce(Recipient<Spread>) -> LocationStore,
    peers: impl FnOnce(Records) -> PeerManager,
) -> (Addr<LocationStore>, Addr<PeerManager>) {
    let mailbox = Context::<LocationStore>::new();
    let address = mailbox.address();
    let asks = Records {
        merge: address.clone().recipient(),
        first_query: address.clone().recipient(),
        reconcile: address.clone().recipient(),
        follow_up: address.recipient(),
    };
    let peers = peers(asks).start();
    let store = mailbox.run(store(peers.clone().recipient()));
    (store, peers)
}
