//! What a session uses: the server's parts, and its worker thread's own (see
//! `listener::workers`).

use std::sync::Arc;

use actix::prelude::*;

use super::{ClientLimits, Courier, Desk};
use crate::event_log::EventLog;
use crate::metrics::ClientMetrics;
use crate::outbox::ReplyBudget;
use crate::places::PlacesFetcher;
use crate::store::{CheckIn, LocationStore};

/// What every session on one worker thread of a server uses.
pub(crate) struct SessionDeps {
    /// This server's name, for AT lines.
    pub(crate) name: Arc<str>,
    pub(crate) store: Addr<LocationStore>,
    pub(crate) places: Addr<PlacesFetcher>,
    /// Where a check-in goes: the store, on the home thread; on another worker thread, its
    /// [`Courier`], which carries a turn's check-ins to the store together.
    pub(crate) check_ins: Recipient<CheckIn>,
    /// Where a WHATSAT goes from a worker thread that is not the home thread, to cross
    /// between threads once (see [`Desk`]); `None` on the home thread.
    pub(crate) desk: Option<Addr<Desk>>,
    pub(crate) log: EventLog,
    pub(crate) limits: ClientLimits,
    /// The unsent replies of every client on this worker together: past it, none of them is
    /// read. The server's budget is split evenly over its workers, so that no count is
    /// shared between threads and the sum stays the server's.
    pub(crate) budget: ReplyBudget,
    /// What `/metrics` counts of clients: connections, check-ins, WHATSATs, `?` replies.
    pub(crate) metrics: ClientMetrics,
}

/// What every session of one server uses, but what is its worker's own (the reply budget,
/// and the way to the home thread): all of it may cross threads, for each worker to make
/// its own [`SessionDeps`] from.
#[derive(Clone)]
pub(crate) struct SessionShared {
    pub(crate) name: Arc<str>,
    pub(crate) store: Addr<LocationStore>,
    pub(crate) places: Addr<PlacesFetcher>,
    pub(crate) log: EventLog,
    pub(crate) limits: ClientLimits,
    pub(crate) metrics: ClientMetrics,
}

/// How the sessions of a worker thread other than the home thread reach it.
pub(crate) struct Crossing {
    /// The worker's courier, for check-ins.
    pub(crate) courier: Addr<Courier>,
    /// The home thread's desk, for WHATSATs.
    pub(crate) desk: Addr<Desk>,
}

impl SessionShared {
    /// The sessions' dependencies on one worker, whose clients share `budget`, and who
    /// reach the home thread through `crossing` (`None`: they are on it).
    pub(crate) fn on_worker(self, budget: ReplyBudget, crossing: Option<Crossing>) -> SessionDeps {
        let SessionShared {
            name,
            store,
            places,
            log,
            limits,
            metrics,
        } = self;
        let (check_ins, desk) = match crossing {
            None => (store.clone().recipient(), None),
            Some(Crossing { courier, desk }) => (courier.recipient(), Some(desk)),
        };
        SessionDeps {
            name,
            store,
            places,
            check_ins,
            desk,
            log,
            limits,
            budget,
            metrics,
        }
    }
}
