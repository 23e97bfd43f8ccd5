//! Who writes the store's commits: the journal on the event loop, or the writer's thread.

use actix::prelude::*;

#[cfg(test)]
use super::durable::FailWrites;
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

    /// Tests: from now on every commit fails, as on a full disk (`Some(true)`) or a file
    /// that cannot be written (`Some(false)`), or commits work again (`None`); done once
    /// the returned future is.
    #[cfg(test)]
    pub(crate) fn fail_writes(
        &mut self,
        how: Option<bool>,
    ) -> impl std::future::Future<Output = ()> {
        let sent = match self {
            Committer::Journal(journal) => {
                journal.fail_writes(how);
                None
            }
            Committer::Thread(writer) => Some(writer.send(FailWrites(how))),
        };
        async move {
            if let Some(sent) = sent {
                let _ = sent.await;
            }
        }
    }
}
