//! Group commit, as a plain state machine: which records go into the next commit, when it
//! starts, and what happens when it fails. The store actor does what [`Step`] says (yield a
//! turn of the event loop, sleep, write) and reports back; the batcher decides, on the
//! clock the actor hands it, so its timing is tested on a paused clock without a disk.
//!
//! - A check-in's commit starts as soon as the lines already read have joined it: the
//!   batch settles over turns of the event loop while it keeps growing (at most
//!   [`SETTLE_YIELDS`] turns), then goes.
//! - Records from neighbours, which nobody here waits on, ride along in the next check-in's
//!   commit, or go on their own once [`MERGE_BATCH`] of them wait or the oldest has waited
//!   [`MERGE_WAIT`].
//! - One commit at a time. A failed commit's records go back in front of the next batch
//!   (a client's newer record is then written after its older one), every waiter of that
//!   commit learns the error, and the next try waits [`RETRY_MIN`], doubling up to
//!   [`RETRY_MAX`] while commits keep failing.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use tokio::time::Instant;

use crate::protocol::Record;

/// Records from neighbours that start a commit of their own, if no check-in does first.
pub(crate) const MERGE_BATCH: usize = 256;

/// The longest a record from a neighbour waits for its commit.
pub(crate) const MERGE_WAIT: Duration = Duration::from_millis(10);

/// How many turns of the event loop in a row a commit waits while its batch keeps growing;
/// it bounds the wait under a steady stream of records.
pub(crate) const SETTLE_YIELDS: u32 = 2;

/// The first wait after a failed commit, doubling up to [`RETRY_MAX`].
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(100);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(2);

/// How a commit went, as every check-in in it learns.
pub(crate) type Outcome = Result<(), Arc<str>>;

/// What a check-in waits on: its commit's outcome.
pub(crate) type Committed = Shared<oneshot::Receiver<Outcome>>;

/// What the actor does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Let the event loop take one turn (the lines already read), then call
    /// [`CommitBatcher::yielded`].
    Yield,
    /// Call [`CommitBatcher::woke`] at this instant.
    WakeAt(Instant),
    /// Write these records in one transaction, then call [`CommitBatcher::written`].
    Write(Vec<Record>),
    /// Nothing, until more records come.
    Rest,
}

/// Where the batcher is. Each state but `Idle` has a wake-up pending with the actor (a
/// yield, a timer, a write), so more records never schedule a second one.
#[derive(Debug)]
enum Phase {
    /// Nothing scheduled.
    Idle,
    /// A yield is pending; the batch held `seen` records when it was asked for.
    Settling { seen: usize, yields: u32 },
    /// Only neighbours' records wait: the timer fires at `until`.
    Holding { until: Instant },
    /// A commit of `records` records is being written; `done` tells its waiters, who wait
    /// on `outcome`.
    Writing {
        records: usize,
        done: oneshot::Sender<Outcome>,
        outcome: Committed,
    },
    /// The last commit failed; the next try is at `until`.
    Backoff { until: Instant },
}

/// Records for one commit, and the outcome its waiters share.
struct Batch {
    records: Vec<Record>,
    /// A check-in waits on it: it goes as soon as it has settled.
    awaited: bool,
    /// When its first record came, for [`MERGE_WAIT`].
    since: Option<Instant>,
    done: oneshot::Sender<Outcome>,
    outcome: Committed,
}

impl Batch {
    fn new() -> Batch {
        let (done, outcome) = oneshot::channel();
        Batch {
            records: Vec::new(),
            awaited: false,
            since: None,
            done,
            outcome: outcome.shared(),
        }
    }
}

/// Keeps, of each client's records, the last: the table takes a client's records only in
/// the herd's order, so the last is the newest, and the disk needs no other (a busy client,
/// or a record that came from several neighbours, is one row of the commit).
fn newest_only(records: &mut Vec<Record>) {
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    let mut kept: Vec<Record> = Vec::with_capacity(records.len());
    for record in records.drain(..).rev() {
        if seen.insert(record.client().clone()) {
            kept.push(record);
        }
    }
    kept.reverse();
    *records = kept;
}

/// The next commit's records, and when it goes.
pub(crate) struct CommitBatcher {
    next: Batch,
    phase: Phase,
    /// While commits fail: the last wait before a retry, and why they fail.
    failing: Option<(Duration, Arc<str>)>,
}

impl Default for CommitBatcher {
    fn default() -> Self {
        CommitBatcher {
            next: Batch::new(),
            phase: Phase::Idle,
            failing: None,
        }
    }
}

impl CommitBatcher {
    /// Adds `record` to the next commit (`awaited`: a check-in waits on it); what to wait
    /// on, and what the actor does now.
    pub(crate) fn add(&mut self, record: Record, awaited: bool, now: Instant) -> (Committed, Step) {
        self.next.since.get_or_insert(now);
        self.next.records.push(record);
        self.next.awaited |= awaited;
        (self.next.outcome.clone(), self.poll())
    }

    /// Drops the waiting records that `gone` picks (evicted before they were written).
    pub(crate) fn forget(&mut self, gone: impl Fn(&Record) -> bool) {
        self.next.records.retain(|r| !gone(r));
    }

    /// Starts settling if nothing is scheduled; a check-in cuts a neighbours' wait short.
    fn poll(&mut self) -> Step {
        match self.phase {
            Phase::Idle if !self.next.records.is_empty() => self.settle(),
            Phase::Holding { .. } if self.next.awaited => self.settle(),
            _ => Step::Rest,
        }
    }

    fn settle(&mut self) -> Step {
        self.phase = Phase::Settling {
            seen: self.next.records.len(),
            yields: 0,
        };
        Step::Yield
    }

    /// The event loop took a turn.
    pub(crate) fn yielded(&mut self, now: Instant) -> Step {
        let Phase::Settling { seen, yields } = self.phase else {
            return Step::Rest;
        };
        let grew = self.next.records.len() > seen;
        if grew && yields < SETTLE_YIELDS {
            self.phase = Phase::Settling {
                seen: self.next.records.len(),
                yields: yields + 1,
            };
            return Step::Yield;
        }
        self.ready(now)
    }

    /// A timer the batcher asked for fired (a stale one is ignored).
    pub(crate) fn woke(&mut self, now: Instant) -> Step {
        match self.phase {
            Phase::Holding { until } | Phase::Backoff { until } if now >= until => {
                self.next.awaited = true;
                self.ready(now)
            }
            _ => Step::Rest,
        }
    }

    /// The batch has settled: it goes now, or waits for more neighbours' records.
    fn ready(&mut self, now: Instant) -> Step {
        if self.next.records.is_empty() {
            self.phase = Phase::Idle;
            return Step::Rest;
        }
        if !self.next.awaited && self.next.records.len() < MERGE_BATCH {
            let until = self.next.since.unwrap_or(now) + MERGE_WAIT;
            self.phase = Phase::Holding { until };
            return Step::WakeAt(until);
        }
        let mut batch = std::mem::replace(&mut self.next, Batch::new());
        newest_only(&mut batch.records);
        self.phase = Phase::Writing {
            records: batch.records.len(),
            done: batch.done,
            outcome: batch.outcome,
        };
        Step::Write(batch.records)
    }

    /// The commit being written went as `outcome`; its waiters learn it. `records` are the
    /// commit's records when it failed (to be written again), else nothing.
    pub(crate) fn written(&mut self, records: Vec<Record>, outcome: Outcome, now: Instant) -> Step {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        if let Phase::Writing { done, .. } = phase {
            let _ = done.send(outcome.clone());
        }
        match outcome {
            Ok(()) => {
                self.failing = None;
                self.poll()
            }
            Err(why) => {
                let delay = self
                    .failing
                    .as_ref()
                    .map_or(RETRY_MIN, |(last, _)| (*last * 2).min(RETRY_MAX));
                self.failing = Some((delay, why));
                let mut again = records;
                again.append(&mut self.next.records);
                self.next.records = again;
                self.next.since.get_or_insert(now);
                let until = now + delay;
                self.phase = Phase::Backoff { until };
                Step::WakeAt(until)
            }
        }
    }

    /// Everything waiting goes as soon as it can (a server about to stop): what to wait on
    /// (the commit being written, then the next), and what the actor does now.
    pub(crate) fn flush(&mut self) -> (Vec<Committed>, Step) {
        let mut waits = Vec::new();
        if let Phase::Writing { outcome, .. } = &self.phase {
            waits.push(outcome.clone());
        }
        if !self.next.records.is_empty() {
            self.next.awaited = true;
            waits.push(self.next.outcome.clone());
        }
        let step = match self.phase {
            Phase::Holding { .. } => self.settle(),
            _ => self.poll(),
        };
        (waits, step)
    }

    /// Records held and not yet on disk: waiting, and being written.
    pub(crate) fn unwritten(&self) -> usize {
        let writing = match &self.phase {
            Phase::Writing { records, .. } => *records,
            _ => 0,
        };
        self.next.records.len() + writing
    }

    /// Why commits fail, while they do.
    pub(crate) fn failing(&self) -> Option<&Arc<str>> {
        self.failing.as_ref().map(|(_, why)| why)
    }
}

#[cfg(test)]
mod tests;
