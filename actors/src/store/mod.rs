//! The LocationStore actor: each client's latest record, and the one place records enter.
//!
//! Check-ins from this server's clients and records from neighbours both come here; a record
//! that is newer than what is held replaces it, goes on to the peers as a [`Flood`], and, when
//! the server keeps a store, into the next commit of its [`durable`] copy.
//!
//! Commits are grouped: one is written at a time, and records that arrive meanwhile wait for
//! the next, so a busy server commits a batch per round trip to the disk, not a row per
//! check-in. A check-in is acknowledged (its AT reply sent) only once its commit is done;
//! its flood leaves at once, before, as the herd promises.
//!
//! A check-in's commit starts as soon as the writer is free and the lines already read by
//! the event loop have joined it (a few turns of the loop, no timer). Records from
//! neighbours, which nobody here waits on (their AT reply was sent by the server that took
//! them, from its own store), ride along in the next check-in's commit, or go on their own
//! once [`MERGE_BATCH`] of them wait or the oldest has waited [`MERGE_WAIT`]: on a busy
//! herd, where every server writes every record, that is most of the rows for a fraction of
//! the commits. A crash can lose at most that wait's worth of them here, and the sync with
//! their origin brings them back.
//!
//! The table itself is a plain type ([`table::Table`]); the actor only serialises access to
//! it and to the writer.

pub(crate) mod durable;
mod recon;
pub(crate) mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

use crate::metrics::StoreMetrics;
use crate::peers::manager::Flood;
use crate::peers::recon::Answer;
use crate::peers::records::{FirstQuery, FollowUp, Merge, Reconcile};
use crate::protocol::{Record, Timestamp};
use durable::{Commit, ForgetBefore, Writer};
use table::Table;

/// Records from neighbours that start a commit of their own, if no check-in does first.
pub(crate) const MERGE_BATCH: usize = 256;

/// The longest a record from a neighbour waits for its commit.
pub(crate) const MERGE_WAIT: Duration = Duration::from_millis(10);

/// How many times in a row a commit waits for one more turn of the event loop while its
/// batch keeps growing; it bounds the wait under a steady stream of records.
const SETTLE_YIELDS: u32 = 16;

/// After a commit fails, the first wait before the next try; it doubles up to
/// [`RETRY_MAX`] while commits keep failing.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

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
        let ahead = (self.max_ahead + PEER_CLOCK_SLACK).as_nanos();
        Timestamp::now()
            .nanos()
            .saturating_add(i64::try_from(ahead).unwrap_or(i64::MAX))
    }
}

/// The actor that owns the table. Records that are new here are handed on as floods.
pub(crate) struct LocationStore {
    table: Table,
    floods: Recipient<Flood>,
    durable: Option<Durable>,
    bounds: Bounds,
    /// Once the cap has evicted records, a new client's record older than this would be
    /// evicted at once: it is not taken.
    evicted_before: i64,
    metrics: StoreMetrics,
}

/// The way to the durable copy, and the commits in progress.
struct Durable {
    writer: Addr<Writer>,
    /// Records for the next commit, and who waits for it.
    next: Batch,
    /// The outcome of the commit being written, if one is, and its records: new records
    /// wait for the next.
    writing: Option<(Shared<oneshot::Receiver<Outcome>>, usize)>,
    /// Commits fail (a full disk, a file no longer writable): the records stay in `next`,
    /// and the next try waits for this timer.
    failing: Option<Failing>,
    /// A timer will start the next commit, for records that wait for no check-in.
    timer: Option<SpawnHandle>,
    /// The next commit starts once the messages already here are handled.
    soon: bool,
}

/// Commits that keep failing: the timer of the next try, until it fires, and how long it
/// waited.
struct Failing {
    retry: Option<SpawnHandle>,
    delay: Duration,
}

/// How a commit went, as every check-in in it learns.
type Outcome = Result<(), Arc<str>>;

/// Records that go into one commit.
struct Batch {
    records: Vec<Record>,
    /// A check-in waits on this commit: it starts as soon as the writer is free.
    awaited: bool,
    done: oneshot::Sender<Outcome>,
    outcome: Shared<oneshot::Receiver<Outcome>>,
}

impl Default for Batch {
    fn default() -> Self {
        let (done, outcome) = oneshot::channel();
        Batch {
            records: Vec::new(),
            awaited: false,
            done,
            outcome: outcome.shared(),
        }
    }
}

impl LocationStore {
    /// A store holding `table` (loaded from `writer`'s database, if there is one), whose
    /// new records go to `floods`, within `bounds` (applied to the table once it starts).
    pub(crate) fn new(
        floods: Recipient<Flood>,
        table: Table,
        writer: Option<Addr<Writer>>,
        bounds: Bounds,
    ) -> Self {
        LocationStore {
            table,
            floods,
            durable: writer.map(|writer| Durable {
                writer,
                next: Batch::default(),
                writing: None,
                failing: None,
                timer: None,
                soon: false,
            }),
            bounds,
            evicted_before: i64::MIN,
            metrics: StoreMetrics::default(),
        }
    }

    /// Counts its commits into `metrics` (else into handles of its own).
    pub(crate) fn with_metrics(mut self, metrics: StoreMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The client time before which records are too old to keep, if there is an age bound.
    fn cutoff(&self) -> Option<i64> {
        let age = i64::try_from(self.bounds.max_age?.as_nanos()).unwrap_or(i64::MAX);
        Some(Timestamp::now().nanos().saturating_sub(age))
    }

    fn too_old(&self, record: &Record) -> bool {
        self.cutoff()
            .is_some_and(|cutoff| record.time().nanos() < cutoff)
    }

    /// Keeps `record` if it is newer than what is held, for the next commit too. `None`
    /// if it was not kept; else the outcome of its commit to wait on, if there is a store.
    fn keep(
        &mut self,
        record: &Record,
        awaited: bool,
        ctx: &mut Context<Self>,
    ) -> Option<Option<Shared<oneshot::Receiver<Outcome>>>> {
        let evicted_at_once = record.time().nanos() < self.evicted_before
            && self.table.get(record.client()).is_none();
        if self.too_old(record) || evicted_at_once || !self.table.offer(record.clone()) {
            return None;
        }
        let committed = self.durable.as_mut().map(|durable| {
            durable.next.records.push(record.clone());
            durable.next.awaited |= awaited;
            durable.next.outcome.clone()
        });
        self.evict_past_the_cap(ctx);
        self.count_unwritten();
        self.write_soon(ctx);
        Some(committed)
    }

    /// Past `max_records`, drops the records with the oldest client times, here, from the
    /// next commit and on disk, down to 1% under the cap, so that the O(n) pass that picks
    /// them runs once per 1% of the cap's new clients.
    fn evict_past_the_cap(&mut self, ctx: &mut Context<Self>) {
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
        let evicted = self.table.forget_before(before);
        self.evicted_before = self.evicted_before.max(before);
        self.metrics.evicted(evicted);
        log::info!("store: evicted {evicted} records past the cap of {cap}");
        if let Some(durable) = &mut self.durable {
            durable.next.records.retain(|r| r.time().nanos() >= before);
            durable
                .writer
                .send(ForgetBefore(before))
                .into_actor(self)
                .map(|result, _, _| match result {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::error!("store: cannot evict records on disk: {e}"),
                    Err(_) => log::error!("store: the writer stopped"),
                })
                .spawn(ctx);
        }
    }

    /// Brings the gauge of records not yet on disk up to date.
    fn count_unwritten(&self) {
        if let Some(durable) = &self.durable {
            let writing = durable.writing.as_ref().map_or(0, |(_, n)| *n);
            self.metrics
                .set_unwritten(durable.next.records.len() + writing);
        }
    }

    /// Starts the next commit once the check-ins already on their way are in it: the
    /// check-ins that arrived together go into one commit, for the cost of none of their time.
    fn write_soon(&mut self, ctx: &mut Context<Self>) {
        let Some(durable) = &mut self.durable else {
            return;
        };
        // After a commit, nothing may wait for the next one: then there is nothing to start.
        if !durable.soon && !durable.next.records.is_empty() {
            durable.soon = true;
            let seen = durable.next.records.len();
            self.settle(seen, 0, ctx);
        }
    }

    /// Yields to the event loop, then starts the next commit unless the batch grew meanwhile
    /// (then yields again, at most [`SETTLE_YIELDS`] times). A yield runs the tasks already
    /// woken and polls the sockets once without waiting, so sessions whose lines are already
    /// here join this commit instead of costing one of their own; when nothing more comes,
    /// the commit starts at once. A timer, even of zero, would wait for the next
    /// millisecond tick.
    fn settle(&mut self, seen: usize, yields: u32, ctx: &mut Context<Self>) {
        tokio::task::yield_now()
            .into_actor(self)
            .map(move |(), act, ctx| {
                let Some(durable) = &mut act.durable else {
                    return;
                };
                let now = durable.next.records.len();
                if now > seen && yields < SETTLE_YIELDS {
                    act.settle(now, yields + 1, ctx);
                    return;
                }
                durable.soon = false;
                act.write_next(ctx);
            })
            .spawn(ctx);
    }

    /// Starts the next commit, unless one is being written (it starts the next when done)
    /// or commits fail (the retry timer starts it).
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        let Some(durable) = &mut self.durable else {
            return;
        };
        let waiting_to_retry = durable.failing.as_ref().is_some_and(|f| f.retry.is_some());
        if durable.writing.is_some() || waiting_to_retry || durable.next.records.is_empty() {
            return;
        }
        let next = &durable.next;
        if !next.awaited && next.records.len() < MERGE_BATCH {
            if durable.timer.is_none() {
                durable.timer = Some(ctx.run_later(MERGE_WAIT, |act, ctx| {
                    if let Some(durable) = &mut act.durable {
                        durable.timer = None;
                        durable.next.awaited = true;
                    }
                    act.write_next(ctx);
                }));
            }
            return;
        }
        if let Some(timer) = durable.timer.take() {
            ctx.cancel_future(timer);
        }
        let batch = std::mem::take(&mut durable.next);
        let records = batch.records.len();
        durable.writing = Some((batch.outcome.clone(), records));
        let started = Instant::now();
        // The writer gets a copy: on failure the records are written again.
        let commit = durable.writer.send(Commit(batch.records.clone()));
        commit
            .into_actor(self)
            .map(move |result, act, ctx| {
                let outcome: Outcome = match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string().into()),
                    Err(_) => Err("the store's writer stopped".into()),
                };
                let failed = outcome.is_err();
                match &outcome {
                    Ok(()) => act.metrics.committed(records, started.elapsed()),
                    Err(e) => {
                        act.metrics.failed();
                        log::error!("store: commit failed: {e}");
                    }
                }
                let _ = batch.done.send(outcome.clone());
                let Some(durable) = &mut act.durable else {
                    return;
                };
                durable.writing = None;
                if failed {
                    // Held in memory until the disk takes them, ahead of what came since
                    // (a client's newer record must be written after its older one).
                    let mut again = batch.records;
                    again.append(&mut durable.next.records);
                    durable.next.records = again;
                    act.retry_later(outcome.err(), ctx);
                } else if durable.failing.take().is_some() {
                    act.metrics.set_failing(None);
                    log::warn!("store: commits work again");
                }
                act.count_unwritten();
                act.write_soon(ctx);
            })
            .spawn(ctx);
    }

    /// A commit failed with `why`: the next try waits, longer each time it fails again.
    fn retry_later(&mut self, why: Option<Arc<str>>, ctx: &mut Context<Self>) {
        let Some(durable) = &mut self.durable else {
            return;
        };
        let delay = durable
            .failing
            .as_ref()
            .map_or(RETRY_MIN, |f| (f.delay * 2).min(RETRY_MAX));
        let retry = ctx.run_later(delay, |act, ctx| {
            if let Some(durable) = &mut act.durable {
                // Failing still, as far as anyone knows, until this try says otherwise.
                if let Some(failing) = &mut durable.failing {
                    failing.retry = None;
                }
                durable.next.awaited = true;
            }
            act.write_next(ctx);
        });
        durable.failing = Some(Failing {
            retry: Some(retry),
            delay,
        });
        if let Some(why) = why {
            self.metrics.set_failing(Some(why.to_string()));
        }
    }

    /// Drops the records older than the age bound, here and on disk. The disk holds what
    /// the table holds, so when the table had none to drop, the disk is not scanned.
    fn forget_old(&mut self, ctx: &mut Context<Self>) {
        let Some(cutoff) = self.cutoff() else { return };
        let dropped = self.table.forget_before(cutoff);
        if dropped == 0 {
            return;
        }
        let age = self.bounds.max_age.map_or(0, |age| age.as_nanos());
        log::info!("store: forgot {dropped} records older than {age} ns");
        if let Some(durable) = &self.durable {
            durable
                .writer
                .send(ForgetBefore(cutoff))
                .into_actor(self)
                .map(|result, _, _| match result {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::error!("store: cannot forget old records: {e}"),
                    Err(_) => log::error!("store: the writer stopped"),
                })
                .spawn(ctx);
        }
    }
}

impl Actor for LocationStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A store loaded past a cap set since (or lowered) keeps within it from the start.
        self.evict_past_the_cap(ctx);
        if let Some(age) = self.bounds.max_age {
            // What the disk still holds from before the bound was set (or from a long
            // stop) goes at once; the rest as it ages.
            self.forget_old(ctx);
            let every = (age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            ctx.run_interval(every, |act, ctx| act.forget_old(ctx));
        }
    }
}

/// Request: a check-in a client sent to this server. Response: whether it was newer, once
/// its flood has been queued on every link and, with a store, its commit is written; or why
/// it could not be committed.
#[derive(Message, Debug)]
#[rtype(result = "Result<bool, Arc<str>>")]
pub(crate) struct CheckIn(pub(crate) Record);

impl Handler<CheckIn> for LocationStore {
    type Result = ResponseFuture<Result<bool, Arc<str>>>;

    fn handle(&mut self, CheckIn(record): CheckIn, ctx: &mut Context<Self>) -> Self::Result {
        let Some(committed) = self.keep(&record, true, ctx) else {
            return Box::pin(std::future::ready(Ok(false)));
        };
        let flood = self.floods.send(Flood {
            record,
            from: None,
            seen: Vec::new(),
        });
        Box::pin(async move {
            let _ = flood.await;
            match committed {
                Some(outcome) => outcome
                    .await
                    .unwrap_or_else(|_| Err("the store stopped".into()))
                    .map(|()| true),
                None => Ok(true),
            }
        })
    }
}

impl Handler<Merge> for LocationStore {
    type Result = ();

    fn handle(&mut self, Merge { record, from, seen }: Merge, ctx: &mut Context<Self>) {
        if record.time().nanos() > self.bounds.future_cutoff() {
            self.metrics.refused_future();
            log::warn!(
                "store: refused a record from {from} dated past this server's clock and \
                 the limit: {}",
                record.at_line()
            );
            return;
        }
        // Its AT reply was sent by the server that took it; nobody here waits on it.
        if self.keep(&record, false, ctx).is_some() {
            self.floods.do_send(Flood {
                record,
                from: Some(from),
                seen,
            });
        }
    }
}

/// Request: the latest record of a client, if the herd has seen it.
#[derive(Message, Debug)]
#[rtype(result = "Option<Record>")]
pub(crate) struct Lookup(pub(crate) Box<str>);

impl Handler<Lookup> for LocationStore {
    type Result = Option<Record>;

    fn handle(&mut self, Lookup(client): Lookup, _: &mut Context<Self>) -> Option<Record> {
        self.table.get(&client).cloned()
    }
}

impl Handler<FirstQuery> for LocationStore {
    type Result = MessageResult<FirstQuery>;

    fn handle(&mut self, _: FirstQuery, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.first_query())
    }
}

impl Handler<Reconcile> for LocationStore {
    type Result = Option<Answer>;

    fn handle(&mut self, Reconcile(query): Reconcile, _: &mut Context<Self>) -> Option<Answer> {
        self.table.answer(&query)
    }
}

impl Handler<FollowUp> for LocationStore {
    type Result = MessageResult<FollowUp>;

    fn handle(&mut self, FollowUp(answer): FollowUp, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.follow(&answer))
    }
}

/// Request: what the store holds and has written.
#[derive(Message, Debug)]
#[rtype(result = "StoreStats")]
pub(crate) struct Stats;

/// What [`Stats`] answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreStats {
    /// Clients held.
    pub(crate) records: usize,
    /// Commits written, the records in them, and commits that failed.
    pub(crate) commits: u64,
    pub(crate) committed: u64,
    pub(crate) failed: u64,
}

impl Handler<Stats> for LocationStore {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        let (commits, committed, failed) = self.metrics.counts();
        MessageResult(StoreStats {
            records: self.table.len(),
            commits,
            committed,
            failed,
        })
    }
}

/// Request: write out every record taken so far. Response: once it is on disk (or the
/// writer failed), for a server that is about to stop.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Flush;

impl Handler<Flush> for LocationStore {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let Some(durable) = &mut self.durable else {
            return Box::pin(std::future::ready(()));
        };
        // The commit being written, then the records that wait for the next one, at once.
        durable.next.awaited = true;
        let writing = durable.writing.as_ref().map(|(outcome, _)| outcome.clone());
        let next = (!durable.next.records.is_empty()).then(|| durable.next.outcome.clone());
        self.write_next(ctx);
        Box::pin(async move {
            for outcome in writing.into_iter().chain(next) {
                let _ = outcome.await;
            }
        })
    }
}

#[cfg(test)]
mod tests;
