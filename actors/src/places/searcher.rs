//! The embedded provider's searches, on a thread of their own.
//!
//! An embedded answer is work for a CPU, not a wait on the network: a search of the data
//! set, then the JSON of up to 20 places in Google's layout. Made in the fetcher's handler,
//! on the serving thread, it held that thread for every question queued in the fetcher's
//! mailbox at once (actix handles a mailbox to its end): with 100 clients pipelining
//! WHATSATs, 16 in flight each, whole seconds at a time, while any other client's check-in
//! waited (`tests/flow_control.rs` asserts 500 ms; it failed before this, at `b645084`). The [`Searcher`], a
//! `SyncActor` on a thread of its own, makes them instead; the serving thread only passes
//! questions on and answers back, and a check-in never queues behind a search.

use std::sync::Arc;

use actix::prelude::*;

use super::{embedded, layout, NearbyQuery};

/// Makes embedded answers, one at a time, on its own thread.
pub(crate) struct Searcher;

impl Searcher {
    /// Starts the searcher's thread, which parses the data set (some 20 ms) before its
    /// first question, so that neither a client nor the serving thread waits for it.
    pub(crate) fn start() -> Addr<Searcher> {
        SyncArbiter::start(1, || {
            embedded::preload();
            Searcher
        })
    }
}

impl Actor for Searcher {
    type Context = SyncContext<Self>;
}

/// Request: the places of the embedded data set in a circle, as the JSON text of a Nearby
/// Search response in Google's layout (`OK` or `ZERO_RESULTS`).
#[derive(Debug, Message)]
#[rtype(result = "Arc<str>")]
pub(crate) struct Search(pub(crate) NearbyQuery);

/// The answer leaves as the shared text the session reads, made here: the serving thread
/// neither renders nor copies it.
impl Handler<Search> for Searcher {
    type Result = MessageResult<Search>;

    fn handle(&mut self, Search(q): Search, _: &mut SyncContext<Self>) -> Self::Result {
        MessageResult(layout::to_google_json(&embedded::nearby(&q)).into())
    }
}
