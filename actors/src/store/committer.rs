//! Who writes the store's commits: the journal on the event loop, or the writer's thread.

use actix::prelude::*;

use super::durable::{Database, StoreError, Writer};
use super::journal::Journal;
use crate::metrics::StoreMetrics;

/// Who writes the store's commits.
pub(crate) enum Committer {
    /// The store, on the event loop, into the journal (`fsync = false`); the applier
    /// thread brings the database up to date beside it.
    Journal(Journal),
    /// The writer's thread, into the database (`fsync = true`).
    Thread(Addr<Writer>),
}

impl Committer {
    /// Commits are appends to the journal, on the event loop; `next` is the journal's
    /// first segment (after those folded at start-up).
    pub(crate) fn journal(
        db: Database,
        next: u64,
        metrics: StoreMetrics,
    ) -> Result<Committer, StoreError> {
        Ok(Committer::Journal(Journal::start(db, next, metrics)?))
    }

    /// Commits on the writer's thread, each synced.
    pub(crate) fn thread(db: Database) -> Committer {
        Committer::Thread(Writer::start(db))
    }
}
