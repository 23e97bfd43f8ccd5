//! A client's check-in, alone or gathered with others: kept if it is newer, flooded, and
//! answered once its commit is written.

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;

use super::{Kept, LocationStore};
use crate::peers::spread::Spread;
use crate::protocol::Record;

/// Request: a check-in a client sent to this server. Response: whether it was newer, once
/// its flood has been queued on every link and, with a store, its commit is written; or why
/// it could not be committed.
#[derive(Message, Debug)]
#[rtype(result = "Result<bool, Arc<str>>")]
pub(crate) struct CheckIn(pub(crate) Record);

impl Handler<CheckIn> for LocationStore {
    type Result = ResponseFuture<Result<bool, Arc<str>>>;

    fn handle(&mut self, CheckIn(record): CheckIn, ctx: &mut Context<Self>) -> Self::Result {
        Box::pin(self.check_in(record, ctx))
    }
}

/// Request: [`CheckIn`]s of several sessions, taken in order, answered together: what a
/// worker thread's sessions sent in one turn of its event loop, so that they cross between
/// threads once (see `session::courier`).
#[derive(Message, Debug)]
#[rtype(result = "Vec<Result<bool, Arc<str>>>")]
pub(crate) struct CheckIns(pub(crate) Vec<Record>);

impl Handler<CheckIns> for LocationStore {
    type Result = ResponseFuture<Vec<Result<bool, Arc<str>>>>;

    fn handle(&mut self, CheckIns(records): CheckIns, ctx: &mut Context<Self>) -> Self::Result {
        let each: Vec<_> = records.into_iter().map(|r| self.check_in(r, ctx)).collect();
        Box::pin(futures::future::join_all(each))
    }
}

impl LocationStore {
    /// Keeps `record` if it is newer, and floods it; resolves once its flood is queued and,
    /// with a store, its commit written: whether it was new, or why it could not be kept.
    fn check_in(
        &mut self,
        record: Record,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<bool, Arc<str>>> + 'static {
        let kept = self.keep(&record, true, ctx);
        let flood = (!matches!(kept, Kept::No)).then(|| {
            self.floods.send(Spread {
                record,
                from: None,
                seen: Vec::new(),
            })
        });
        async move {
            let Some(flood) = flood else {
                return Ok(false);
            };
            let _ = flood.await;
            match kept {
                Kept::Committing(outcome) => outcome
                    .await
                    .unwrap_or_else(|_| Err("the store stopped".into()))
                    .map(|()| true),
                _ => Ok(true),
            }
        }
    }
}
