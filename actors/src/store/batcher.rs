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

    /// The commit of `records` went as `outcome`; its waiters learn it.
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
mod tests {
    use super::*;
    use crate::test_support::record;

    fn at(i: usize) -> Record {
        record("Hill", &format!("IAMAT c{i} +1+1 {}", 1000 + i))
    }

    fn written(step: Step) -> Vec<Record> {
        match step {
            Step::Write(records) => records,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_in_goes_once_its_batch_stops_growing_over_turns_of_the_loop() {
        let mut b = CommitBatcher::default();
        let now = Instant::now();
        assert!(matches!(b.add(at(0), true, now).1, Step::Yield));
        // Lines read in the same turn join without asking for another yield.
        assert!(matches!(b.add(at(1), true, now).1, Step::Rest));
        assert!(
            matches!(b.yielded(now), Step::Yield),
            "it grew: one more turn"
        );
        assert!(matches!(b.add(at(2), false, now).1, Step::Rest));
        assert!(matches!(b.yielded(now), Step::Yield));
        assert_eq!(written(b.yielded(now)).len(), 3);
        assert_eq!(b.unwritten(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_writes_each_clients_newest_record_once() {
        let mut b = CommitBatcher::default();
        let now = Instant::now();
        for line in [
            "IAMAT kiwi +1+1 1",
            "IAMAT pear +1+1 1",
            "IAMAT kiwi +2+2 2",
        ] {
            let _ = b.add(record("Hill", line), true, now);
        }
        assert!(matches!(b.yielded(now), Step::Yield));
        let batch = written(b.yielded(now));
        let lines: Vec<&str> = batch.iter().map(|r| r.at_line()).collect();
        assert_eq!(
            lines,
            [
                "AT Hill -1.000000000 pear +1+1 1",
                "AT Hill -2.000000000 kiwi +2+2 2"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_never_stops_growing_goes_after_the_settle_limit() {
        let mut b = CommitBatcher::default();
        let now = Instant::now();
        let _ = b.add(at(0), true, now);
        for i in 1..=SETTLE_YIELDS as usize {
            let _ = b.add(at(i), true, now);
            assert!(matches!(b.yielded(now), Step::Yield), "turn {i}");
        }
        let _ = b.add(at(99), true, now);
        assert_eq!(written(b.yielded(now)).len(), SETTLE_YIELDS as usize + 2);
    }

    #[tokio::test(start_paused = true)]
    async fn neighbours_records_wait_for_the_merge_wait_unless_a_check_in_comes() {
        let mut b = CommitBatcher::default();
        let start = Instant::now();
        let _ = b.add(at(0), false, start);
        let Step::WakeAt(until) = b.yielded(start) else {
            panic!("a neighbour's record waits");
        };
        assert_eq!(until, start + MERGE_WAIT);
        tokio::time::advance(MERGE_WAIT / 2).await;
        let _ = b.add(at(1), false, Instant::now());
        assert!(matches!(b.woke(Instant::now()), Step::Rest), "too early");
        tokio::time::advance(MERGE_WAIT / 2).await;
        assert_eq!(written(b.woke(Instant::now())).len(), 2);
        let _ = b.written(vec![], Ok(()), Instant::now());

        // A check-in cuts the wait short, and takes the neighbours' records along.
        let now = Instant::now();
        let _ = b.add(at(2), false, now);
        assert!(matches!(b.yielded(now), Step::WakeAt(_)));
        assert!(matches!(b.add(at(3), true, now).1, Step::Yield));
        assert_eq!(written(b.yielded(now)).len(), 2);
        // The old timer finds nothing to do.
        tokio::time::advance(MERGE_WAIT).await;
        assert!(matches!(b.woke(Instant::now()), Step::Rest));
    }

    #[tokio::test(start_paused = true)]
    async fn enough_neighbours_records_go_without_waiting() {
        let mut b = CommitBatcher::default();
        let now = Instant::now();
        for i in 0..MERGE_BATCH {
            let _ = b.add(at(i), false, now);
        }
        assert!(matches!(b.yielded(now), Step::Yield));
        assert_eq!(written(b.yielded(now)).len(), MERGE_BATCH);
    }

    #[tokio::test(start_paused = true)]
    async fn one_commit_at_a_time_and_the_next_starts_when_it_is_done() {
        let mut b = CommitBatcher::default();
        let now = Instant::now();
        let (first, _) = b.add(at(0), true, now);
        let batch = written(b.yielded(now));
        let (second, step) = b.add(at(1), true, now);
        assert!(matches!(step, Step::Rest), "a commit is being written");
        assert_eq!(b.unwritten(), 2);
        assert!(matches!(b.written(batch, Ok(()), now), Step::Yield));
        assert_eq!(first.await, Ok(Ok(())));
        assert_eq!(written(b.yielded(now)).len(), 1);
        let _ = b.written(vec![at(1)], Ok(()), now);
        assert_eq!(second.await, Ok(Ok(())));
        assert_eq!(b.unwritten(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_commit_is_tried_again_later_and_later_with_its_records_first() {
        let mut b = CommitBatcher::default();
        let start = Instant::now();
        let (first, _) = b.add(at(0), true, start);
        let batch = written(b.yielded(start));
        let _ = b.add(at(1), false, start);
        let Step::WakeAt(retry) = b.written(batch, Err("disk full".into()), start) else {
            panic!("a retry");
        };
        assert_eq!(retry, start + RETRY_MIN);
        assert_eq!(first.await, Ok(Err("disk full".into())));
        assert_eq!(b.failing().map(|w| &**w), Some("disk full"));
        // New records wait for the retry, behind the failed ones.
        assert!(matches!(b.add(at(2), true, start).1, Step::Rest));
        assert!(matches!(b.woke(start), Step::Rest), "before its time");
        let mut delays = Vec::new();
        let mut now = retry;
        for _ in 0..6 {
            tokio::time::advance(now - Instant::now()).await;
            let batch = written(b.woke(Instant::now()));
            assert_eq!(
                batch
                    .iter()
                    .map(|r| r.client().to_string())
                    .collect::<Vec<_>>(),
                ["c0", "c1", "c2"]
            );
            let Step::WakeAt(next) = b.written(batch, Err("disk full".into()), now) else {
                panic!("another retry");
            };
            delays.push(next - now);
            now = next;
        }
        let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 2000, 2000]);
        tokio::time::advance(now - Instant::now()).await;
        let batch = written(b.woke(Instant::now()));
        assert!(matches!(b.written(batch, Ok(()), now), Step::Rest));
        assert_eq!((b.failing(), b.unwritten()), (None, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_sends_waiting_neighbours_records_at_once() {
        let mut b = CommitBatcher::default();
        let now = Instant::now();
        let _ = b.add(at(0), false, now);
        assert!(matches!(b.yielded(now), Step::WakeAt(_)));
        let (waits, step) = b.flush();
        assert_eq!(waits.len(), 1);
        assert!(matches!(step, Step::Yield));
        let batch = written(b.yielded(now));
        let _ = b.written(batch, Ok(()), now);
        for wait in waits {
            assert_eq!(wait.await, Ok(Ok(())));
        }
    }
}
