//! What the peer side asks of the server's records.
//!
//! Records flow one way through the modules: a check-in goes from a session to the store,
//! and from the store to the peers, which send it on. So the store may know the peers, but
//! the peers must not know the store: they are handed these recipients at start-up, and the
//! store handles the messages, which are defined here, where they are sent.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::protocol::{Fingerprint, Record};

/// Where the peer side sends what it learns and asks what it needs to send.
#[derive(Clone)]
pub(crate) struct Records {
    pub(crate) merge: Recipient<Merge>,
    pub(crate) fingerprints: Recipient<Fingerprints>,
    pub(crate) missing: Recipient<Missing>,
}

/// Request: a record a neighbour sent us, to keep and flood on if it is newer here.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Merge {
    pub(crate) record: Record,
    /// The neighbour it came from.
    pub(crate) from: Arc<str>,
    /// Servers that have it or are being sent it already (empty for a sync).
    pub(crate) seen: Vec<Arc<str>>,
}

/// Request: the fingerprint of every record held, for a neighbour's digest.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(Arc<str>, Fingerprint)>")]
pub(crate) struct Fingerprints;

/// Request: the AT lines of the records a neighbour holding `0` (client -> fingerprint)
/// lacks or holds older.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Arc<str>>")]
pub(crate) struct Missing(pub(crate) HashMap<Box<str>, Fingerprint>);
