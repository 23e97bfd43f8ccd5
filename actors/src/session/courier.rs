//! The courier: the check-ins of a worker thread's sessions, carried to the store together.
//!
//! The store lives on the server's home thread. A session there sends it each [`CheckIn`];
//! a session on another worker thread sends it to its worker's courier instead, an actor on
//! that worker, which gathers what its sessions send in one turn of the event loop and
//! carries them to the store as one [`CheckIns`], then hands each session its answer. A
//! message between two threads costs a wake-up of the other thread each way whenever it
//! sleeps; gathered, a turn's check-ins pay for one.
//!
//! Nothing is reordered: the store takes the records in the order the courier got them,
//! floods each before its answer as it does a single check-in, and every session's replies
//! still leave in the order of its lines.

use std::sync::Arc;

use actix::prelude::*;
use futures::channel::oneshot;

use crate::protocol::Record;
use crate::store::{CheckIn, CheckIns, LocationStore};

/// Gathers one worker's check-ins for the store.
pub(crate) struct Courier {
    store: Addr<LocationStore>,
    /// The check-ins of this turn.
    gathered: Vec<Parcel>,
}

/// A check-in on its way, and where its answer goes: whether it was new, or why it could not
/// be kept.
struct Parcel {
    record: Record,
    answer: oneshot::Sender<Result<bool, Arc<str>>>,
}

impl Courier {
    pub(crate) fn new(store: Addr<LocationStore>) -> Self {
        Courier {
            store,
            gathered: Vec::new(),
        }
    }

    /// Carries what was gathered to the store, and each answer back to its session.
    fn carry(&mut self, ctx: &mut Context<Self>) {
        let (records, answers): (Vec<Record>, Vec<_>) = self
            .gathered
            .drain(..)
            .map(|p| (p.record, p.answer))
            .unzip();
        let sent = self.store.send(CheckIns(records));
        ctx.spawn(
            async move {
                match sent.await {
                    Ok(results) => {
                        for (answer, result) in answers.into_iter().zip(results) {
                            let _ = answer.send(result);
                        }
                    }
                    Err(_) => {
                        for answer in answers {
                            let _ = answer.send(Err("the store stopped".into()));
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Courier {
    type Context = Context<Self>;
}

impl Handler<CheckIn> for Courier {
    type Result = ResponseFuture<Result<bool, Arc<str>>>;

    fn handle(&mut self, CheckIn(record): CheckIn, ctx: &mut Context<Self>) -> Self::Result {
        if self.gathered.is_empty() {
            // Carried once the sessions ready in this turn have had theirs gathered too.
            ctx.spawn(
                fut::wrap_future::<_, Self>(tokio::task::yield_now())
                    .map(|(), act, ctx| act.carry(ctx)),
            );
        }
        let (answer, answered) = oneshot::channel();
        self.gathered.push(Parcel { record, answer });
        Box::pin(async move {
            answered
                .await
                .unwrap_or_else(|_| Err("the store stopped".into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::table::Table;
    use crate::store::Bounds;
    use crate::test_support::{collector, record};

    #[actix::test]
    async fn check_ins_sent_together_reach_the_store_in_order_and_each_gets_its_answer() {
        let (floods, mut flooded) = collector();
        let store = LocationStore::new(floods, Table::default(), None, Bounds::default()).start();
        let courier = Courier::new(store.clone()).start();
        let lines = [
            "IAMAT kiwi +1+1 20",
            "IAMAT kiwi +2+2 10",
            "IAMAT pear +3+3 5",
            "IAMAT kiwi +4+4 30",
        ];
        let answers = futures::future::join_all(
            lines.map(|line| courier.send(CheckIn(record("Hill", line)))),
        )
        .await;
        let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
        // The second is older than the first: not new. The rest are.
        assert_eq!(answers, [Ok(true), Ok(false), Ok(true), Ok(true)]);
        // Flooded in the order sent, the older one not at all.
        for line in [lines[0], lines[2], lines[3]] {
            let flood = flooded.recv().await.expect("a flood");
            assert_eq!(flood.record, record("Hill", line));
        }
        assert!(flooded.try_recv().is_err());
    }
}
