//! The LocationStore actor: each client's latest record, and the one place records enter.
//!
//! Check-ins from this server's clients and records from neighbours both come here; a record
//! that is newer than what is held replaces it, goes on to the peers as a [`Spread`], and, when
//! the server keeps a store, into the next commit of its [`durable`] copy.
//!
//! Commits are grouped ([`batcher::CommitBatcher`]): one is written at a time, and records
//! that arrive meanwhile wait for the next, so a busy server commits a batch per turn of
//! its event loop, not a row per check-in. A check-in is acknowledged (its AT reply sent)
//! only once its commit is done; its flood leaves at once, before, as the herd promises.
//!
//! Where a commit runs is a matter of cost ([`committer::Committer`]): without `fsync`, a
//! commit is one append to the [`journal`] with no sync, and runs right here on the event
//! loop (a hop to another thread and back per batch cost more than the write, and a SQLite
//! transaction several times as much); an applier thread writes the journal into SQLite,
//! and syncs its checkpoints, beside the loop. With `fsync = true` every commit syncs, so it
//! runs on the writer's thread, into SQLite.
//!
//! The table itself is a plain type ([`table::Table`]); the actor only serialises access to
//! it and to the durable copy.

mod batcher;
mod bounds;
mod check_in;
pub(crate) mod committer;
pub(crate) mod durable;
pub(crate) mod journal;
mod recon;
pub(crate) mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::metrics::StoreMetrics;
use crate::peers::recon::Answer;
use crate::peers::records::{FirstQuery, FollowUp, Reconcile};
use crate::peers::spread::Spread;
use crate::protocol::Record;
use batcher::{CommitBatcher, Committed, Outcome, Step};
pub(crate) use bounds::{Bounds, PEER_CLOCK_SLACK};
pub(crate) use check_in::{CheckIn, CheckIns};
use committer::Committer;
use durable::Commit;
#[cfg(test)]
use durable::FailWrites;
use table::Table;

/// What became of a record offered to the store.
enum Kept {
    /// Not newer than what is held (or out of the store's bounds): dropped.
    No,
    /// Held, in memory only: the server keeps no store.
    InMemory,
    /// Held, and in the next commit, whose outcome this resolves to.
    Committing(Committed),
}

/// The actor that owns the table. Records that are new here are handed on as floods.
pub(crate) struct LocationStore {
    table: Table,
    floods: Recipient<Spread>,
    /// The durable copy, if the server keeps one: how commits are written, and what goes
    /// into the next.
    durable: Option<(Committer, CommitBatcher)>,
    bounds: Bounds,
    /// Once the cap has evicted records, a new client's record older than this would be
    /// evicted at once: it is not taken.
    evicted_before: i64,
    metrics: StoreMetrics,
}

impl LocationStore {
    /// A store holding `table` (loaded from the durable copy `committer` writes, if there
    /// is one), whose new records go to `floods`, within `bounds` (applied to the table
    /// once it starts).
    pub(crate) fn new(
        floods: Recipient<Spread>,
        table: Table,
        committer: Option<Committer>,
        bounds: Bounds,
    ) -> Self {
        LocationStore {
            table,
            floods,
            durable: committer.map(|c| (c, CommitBatcher::default())),
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

    /// Keeps `record` if it is newer than what is held, for the next commit too.
    fn keep(&mut self, record: &Record, awaited: bool, ctx: &mut Context<Self>) -> Kept {
        let evicted_at_once = record.time().nanos() < self.evicted_before
            && self.table.get(record.client()).is_none();
        if self.too_old(record) || evicted_at_once || !self.table.offer(record.clone()) {
            return Kept::No;
        }
        let kept = match &mut self.durable {
            Some((_, batcher)) => {
                let (committed, step) = batcher.add(record.clone(), awaited, now());
                self.drive(step, ctx);
                Kept::Committing(committed)
            }
            None => Kept::InMemory,
        };
        self.evict_past_the_cap(ctx);
        self.count_unwritten();
        kept
    }

    /// Brings the gauge of records not yet on disk up to date.
    fn count_unwritten(&self) {
        if let Some((_, batcher)) = &self.durable {
            self.metrics.set_unwritten(batcher.unwritten());
        }
    }

    /// Does what the batcher says: yields a turn, sleeps, or writes a commit, and reports
    /// back to it until it rests.
    fn drive(&mut self, mut step: Step, ctx: &mut Context<Self>) {
        loop {
            let Some((committer, _)) = &mut self.durable else {
                return;
            };
            match step {
                Step::Rest => return,
                Step::Yield => {
                    // A yield runs the tasks already woken and polls the sockets once
                    // without waiting, so sessions whose lines are already here join this
                    // commit; a timer, even of zero, would wait for the next millisecond.
                    tokio::task::yield_now()
                        .into_actor(self)
                        .map(|(), act, ctx| {
                            if let Some((_, batcher)) = &mut act.durable {
                                let step = batcher.yielded(now());
                                act.drive(step, ctx);
                            }
                        })
                        .spawn(ctx);
                    return;
                }
                Step::WakeAt(until) => {
                    ctx.run_later(until.saturating_duration_since(now()), |act, ctx| {
                        if let Some((_, batcher)) = &mut act.durable {
                            let step = batcher.woke(now());
                            act.drive(step, ctx);
                        }
                    });
                    return;
                }
                Step::Write(records) => match committer {
                    Committer::Journal(journal) => {
                        let started = Instant::now();
                        let count = records.len();
                        let outcome = journal
                            .append(records)
                            .map_err(|(e, records)| (e.to_string().into(), records));
                        let took = started.elapsed();
                        self.metrics.blocked(took);
                        step = self.committed(count, outcome, took);
                    }
                    Committer::Thread(writer) => {
                        let started = Instant::now();
                        // The writer gets a copy: on failure the records are written again.
                        writer
                            .send(Commit(records.clone()))
                            .into_actor(self)
                            .map(move |result, act, ctx| {
                                let count = records.len();
                                let outcome = match result {
                                    Ok(Ok(())) => Ok(()),
                                    Ok(Err(e)) => Err((e.to_string().into(), records)),
                                    Err(_) => Err(("the store's writer stopped".into(), records)),
                                };
                                let step = act.committed(count, outcome, started.elapsed());
                                act.drive(step, ctx);
                            })
                            .spawn(ctx);
                        return;
                    }
                },
            }
        }
    }

    /// A commit of `count` records went as `outcome` (a failed one hands its records back,
    /// to be written again): counted, logged when commits start or stop failing, and told
    /// to the batcher; what to do next.
    fn committed(
        &mut self,
        count: usize,
        outcome: Result<(), (Arc<str>, Vec<Record>)>,
        took: Duration,
    ) -> Step {
        let Some((_, batcher)) = &mut self.durable else {
            return Step::Rest;
        };
        let was_failing = batcher.failing().is_some();
        let (outcome, again): (Outcome, Vec<Record>) = match outcome {
            Ok(()) => {
                self.metrics.committed(count, took);
                (Ok(()), Vec::new())
            }
            Err((e, records)) => {
                self.metrics.failed();
                log::error!("store: commit failed: {e}");
                (Err(e), records)
            }
        };
        let step = batcher.written(again, outcome, now());
        match batcher.failing() {
            Some(why) => self.metrics.set_failing(Some(why.to_string())),
            None if was_failing => {
                self.metrics.set_failing(None);
                log::warn!("store: commits work again");
            }
            None => {}
        }
        self.count_unwritten();
        step
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

/// A record a neighbour sent: kept, and spread on, if it is newer here.
impl Handler<Spread> for LocationStore {
    type Result = ();

    fn handle(&mut self, Spread { record, from, seen }: Spread, ctx: &mut Context<Self>) {
        if record.time().nanos() > self.bounds.future_cutoff() {
            self.metrics.refused_future();
            log::warn!(
                "store: refused a record from {} dated past this server's clock and the \
                 limit: {}",
                from.as_deref().unwrap_or("a client"),
                record.at_line()
            );
            return;
        }
        // Its AT reply was sent by the server that took it; nobody here waits on it.
        if !matches!(self.keep(&record, false, ctx), Kept::No) {
            self.floods.do_send(Spread { record, from, seen });
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
pub(crate) struct GetStoreStats;

/// What [`GetStoreStats`] answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreStats {
    /// Clients held.
    pub(crate) records: usize,
    /// Commits written, the records in them, and commits that failed.
    pub(crate) commits: u64,
    pub(crate) committed: u64,
    pub(crate) failed: u64,
}

impl Handler<GetStoreStats> for LocationStore {
    type Result = MessageResult<GetStoreStats>;

    fn handle(&mut self, _: GetStoreStats, _: &mut Context<Self>) -> Self::Result {
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
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let Some((_, batcher)) = &mut self.durable else {
            return Box::pin(fut::ready(()));
        };
        // The commit being written, then the records that wait for the next one, at once;
        // then, with a journal, until the database holds them too.
        let (waits, step) = batcher.flush();
        self.drive(step, ctx);
        let written = async move {
            for outcome in waits {
                let _ = outcome.await;
            }
        };
        Box::pin(written.into_actor(self).then(|(), act, _| {
            let applied = match &mut act.durable {
                Some((Committer::Journal(journal), _)) => Some(journal.flush()),
                _ => None,
            };
            fut::wrap_future(async move {
                if let Some(applied) = applied {
                    let _ = applied.await;
                }
            })
        }))
    }
}

/// Tests: from now on every write fails, as on a full disk (`Some(true)`) or a file that
/// cannot be written (`Some(false)`); or writes work again (`None`). The store passes it on
/// to its writer, which handles the same request.
#[cfg(test)]
impl Handler<FailWrites> for LocationStore {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, FailWrites(how): FailWrites, _: &mut Context<Self>) -> Self::Result {
        match &mut self.durable {
            Some((committer, _)) => Box::pin(committer.fail_writes(how)),
            None => Box::pin(std::future::ready(())),
        }
    }
}

/// The store's clock: tokio's, so that tests can pause it.
fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

#[cfg(test)]
mod tests;
