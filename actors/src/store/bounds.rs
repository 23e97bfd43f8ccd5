//! What the store keeps, and for how long: the age bound, the bound on a record's time
//! ahead of this server's clock, and the cap on records; and the store's side of each
//! (what it refuses, what it evicts, what it deletes on disk).

use std::time::Duration;

use actix::prelude::*;

use super::committer::Committer;
use super::durable::ForgetBefore;
use super::LocationStore;
use crate::protocol::{Record, Timestamp};

/// What a neighbour's clock may add to the bound on a check-in's time: the server that
/// took it checked it against its own clock, which may be this much ahead of ours.
pub(crate) const PEER_CLOCK_SLACK: Duration = Duration::from_secs(60);

/// What the store keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Records whose client time is older than this are dropped, here and on disk.
    pub(crate) max_age: Option<Duration>,
    /// Records dated further ahead of this server's clock than this (and
    /// [`PEER_CLOCK_SLACK`]) are refused: they would win over every later check-in.
    pub(crate) max_ahead: Duration,
    /// The most clients held; past it, those with the oldest client times go, here and on
    /// disk.
    pub(crate) max_records: Option<usize>,
}

impl Default for Bounds {
    /// No age bound and no cap; an hour ahead at most.
    fn default() -> Self {
        Bounds {
            max_age: None,
            max_ahead: Duration::from_secs(3600),
            max_records: None,
        }
    }
}

impl Bounds {
    /// The client time past which a neighbour's record is refused, now.
    pub(crate) fn future_cutoff(&self) -> i64 {
        Timestamp::now().later_by(self.max_ahead + PEER_CLOCK_SLACK)
    }
}

impl LocationStore {
    /// The client time before which records are too old to keep, if there is an age bound.
    pub(super) fn cutoff(&self) -> Option<i64> {
        let age = i64::try_from(self.bounds.max_age?.as_nanos()).unwrap_or(i64::MAX);
        Some(Timestamp::now().nanos().saturating_sub(age))
    }

    pub(super) fn too_old(&self, record: &Record) -> bool {
        self.cutoff()
            .is_some_and(|cutoff| record.time().nanos() < cutoff)
    }

    /// Past `max_records`, drops the records with the oldest client times, here, from the
    /// next commit and on disk, down to 1% under the cap, so that the O(n) pass that picks
    /// them runs once per 1% of the cap's new clients.
    pub(super) fn evict_past_the_cap(&mut self, ctx: &mut Context<Self>) {
        let Some(cap) = self.bounds.max_records else {
            return;
        };
        if self.table.len() <= cap {
            return;
        }
        let keep = cap - cap / 100;
        let Some(newest_gone) = self.table.nth_oldest_time(self.table.len() - keep - 1) else {
            return;
        };
        let before = newest_gone.saturating_add(1);
        let evicted = self.forget_everywhere(before, "evict records past the cap", ctx);
        self.evicted_before = self.evicted_before.max(before);
        self.metrics.evicted(evicted);
        log::info!("store: evicted {evicted} records past the cap of {cap}");
    }

    /// Drops the records older than `before` here, from the next commit and on disk; how
    /// many the table held. When it held none, neither the commit nor the disk is touched:
    /// they hold nothing the table does not.
    fn forget_everywhere(
        &mut self,
        before: i64,
        what: &'static str,
        ctx: &mut Context<Self>,
    ) -> usize {
        let dropped = self.table.forget_before(before);
        if dropped > 0 {
            if let Some((_, batcher)) = &mut self.durable {
                batcher.forget(|r| r.time().nanos() < before);
            }
            self.forget_on_disk(before, what, ctx);
        }
        dropped
    }

    /// Deletes the records older than `before` from the disk (in order with the commits).
    pub(super) fn forget_on_disk(
        &mut self,
        before: i64,
        what: &'static str,
        ctx: &mut Context<Self>,
    ) {
        match &mut self.durable {
            None => {}
            Some((Committer::Journal(journal), _)) => journal.forget_before(before),
            Some((Committer::Thread(writer), _)) => {
                writer
                    .send(ForgetBefore(before))
                    .into_actor(self)
                    .map(move |result, _, _| match result {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => log::error!("store: cannot {what} on disk: {e}"),
                        Err(_) => log::error!("store: the writer stopped"),
                    })
                    .spawn(ctx);
            }
        }
    }

    /// Drops the records older than the age bound, here and on disk. The disk holds what
    /// the table holds, so when the table had none to drop, the disk is not scanned.
    pub(super) fn forget_old(&mut self, ctx: &mut Context<Self>) {
        let Some(cutoff) = self.cutoff() else { return };
        let dropped = self.forget_everywhere(cutoff, "forget old records", ctx);
        if dropped > 0 {
            let age = self.bounds.max_age.map_or(0, |age| age.as_nanos());
            log::info!("store: forgot {dropped} records older than {age} ns");
        }
    }
}
