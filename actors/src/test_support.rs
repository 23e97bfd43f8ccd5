//! What the crate's tests share: records made from IAMAT lines, an actor that hands the
//! messages it gets to the test, and an event log in a temporary directory.

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::event_log::EventLog;
use crate::protocol::{parse_line, Command, Record, Timestamp};

/// The record of the IAMAT `line` as `server` would take it at time 0.
pub(crate) fn record(server: &str, line: &str) -> Record {
    match parse_line(line.as_bytes()) {
        Ok(Some(Command::IAmAt(c))) => Record::check_in(server, Timestamp::from_nanos(0), &c),
        other => panic!("not an IAMAT line: {line}: {other:?}"),
    }
}

/// Stands in for an actor: every `M` it gets goes to the test's receiver.
struct Collect<M>(mpsc::UnboundedSender<M>);

impl<M: Message<Result = ()> + Send + 'static> Actor for Collect<M> {
    type Context = Context<Self>;
}

impl<M: Message<Result = ()> + Send + 'static> Handler<M> for Collect<M> {
    type Result = ();

    fn handle(&mut self, message: M, _: &mut Context<Self>) {
        let _ = self.0.send(message);
    }
}

/// A recipient whose messages the test reads from the receiver.
pub(crate) fn collector<M>() -> (Recipient<M>, mpsc::UnboundedReceiver<M>)
where
    M: Message<Result = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    (Collect(tx).start().recipient(), rx)
}

/// An event log for `server` in a fresh temporary directory, removed when it is dropped.
pub(crate) fn temp_log(server: &str) -> (EventLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), server).expect("an event log");
    (log, dir)
}
