//! What the peer side asks of the server's records.
//!
//! Records flow one way through the modules: a check-in goes from a session to the store,
//! and from the store to the peers, which send it on. So the store may know the peers, but
//! the peers must not know the store: they are handed these recipients at start-up, and the
//! store handles the messages, which are defined here, where they are sent.

use actix::prelude::*;

use super::recon::{Answer, Next, Query};
use super::spread::Spread;

/// Where the peer side sends what it learns and asks what it needs to send.
#[derive(Clone)]
pub(crate) struct Records {
    /// Takes the records neighbours send.
    pub(crate) merge: Recipient<Spread>,
    pub(crate) first_query: Recipient<FirstQuery>,
    pub(crate) reconcile: Recipient<Reconcile>,
    pub(crate) follow_up: Recipient<FollowUp>,
}

/// Request: a dialler's first reconciliation query, from the records held now.
#[derive(Message, Debug)]
#[rtype(result = "Query")]
pub(crate) struct FirstQuery;

/// Request: the listener's answer to a neighbour's reconciliation query (`None` for one
/// that no dialler should ask).
#[derive(Message, Debug)]
#[rtype(result = "Option<Answer>")]
pub(crate) struct Reconcile(pub(crate) Query);

/// Request: what the dialler asks and sends next, after a listener's answer.
#[derive(Message, Debug)]
#[rtype(result = "Next")]
pub(crate) struct FollowUp(pub(crate) Answer);
