//! The LocationStore actor: each client's latest record, and the one place records enter.
//!
//! Check-ins from this server's clients and records from neighbours both come here; a record
//! that is newer than what is held replaces it and goes on to the peers as a [`Flood`]. The
//! table itself is a plain type ([`table::Table`]); the actor only serialises access to it.

mod table;

use std::sync::Arc;

use actix::prelude::*;

use crate::peers::manager::Flood;
use crate::peers::records::{Fingerprints, Merge, Missing};
use crate::protocol::Record;
use table::Table;

/// The actor that owns the table. Records that are new here are handed on as floods.
pub(crate) struct LocationStore {
    table: Table,
    floods: Recipient<Flood>,
}

impl LocationStore {
    /// An empty store whose new records go to `floods`.
    pub(crate) fn new(floods: Recipient<Flood>) -> Self {
        LocationStore {
            table: Table::default(),
            floods,
        }
    }
}

impl Actor for LocationStore {
    type Context = Context<Self>;
}

/// Request: a check-in a client sent to this server. Response: whether it was newer; when it
/// was, only after its flood has been queued on every link.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub(crate) struct CheckIn(pub(crate) Record);

impl Handler<CheckIn> for LocationStore {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, CheckIn(record): CheckIn, _: &mut Context<Self>) -> ResponseFuture<bool> {
        if !self.table.offer(record.clone()) {
            return Box::pin(std::future::ready(false));
        }
        let flood = self.floods.send(Flood {
            record,
            from: None,
            seen: Vec::new(),
        });
        Box::pin(async move {
            let _ = flood.await;
            true
        })
    }
}

impl Handler<Merge> for LocationStore {
    type Result = ();

    fn handle(&mut self, Merge { record, from, seen }: Merge, _: &mut Context<Self>) {
        if self.table.offer(record.clone()) {
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

impl Handler<Fingerprints> for LocationStore {
    type Result = MessageResult<Fingerprints>;

    fn handle(&mut self, _: Fingerprints, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.fingerprints())
    }
}

impl Handler<Missing> for LocationStore {
    type Result = Vec<Arc<str>>;

    fn handle(&mut self, Missing(theirs): Missing, _: &mut Context<Self>) -> Vec<Arc<str>> {
        self.table.missing_from(&theirs)
    }
}

#[cfg(test)]
mod tests;
