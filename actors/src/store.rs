//! The LocationStore actor: each client's latest record under the herd's "newer" order.
//!
//! The table itself is a plain type ([`Table`]) so the order is unit-tested without actors;
//! the actor only serialises access to it.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::peers::manager::Flood;
use crate::peers::wire::{self, Version};
use crate::protocol::Record;

/// Latest record per client. An older or equal record never replaces what is held.
#[derive(Debug, Default)]
pub struct Table {
    records: HashMap<Arc<str>, Record>,
}

impl Table {
    /// Stores `record` if it is newer than what is held for its client; says whether it did.
    pub fn offer(&mut self, record: Record) -> bool {
        match self.records.get_mut(record.client().as_ref()) {
            Some(held) if !record.newer_than(held) => false,
            Some(held) => {
                *held = record;
                true
            }
            None => {
                self.records.insert(record.client().clone(), record);
                true
            }
        }
    }

    /// Every record's version, as `DIGEST` lines ending with `DIGEST-END`.
    pub fn digest(&self) -> String {
        let mut out = String::with_capacity(self.records.len() * 48 + 16);
        for (client, record) in &self.records {
            wire::digest_line(client, Version::of(record), &mut out);
        }
        out.push_str(wire::DIGEST_END);
        out.push('\n');
        out
    }

    /// The AT lines of the records a server with `theirs` lacks or holds older.
    pub fn missing_from(&self, theirs: &HashMap<Box<str>, Version>) -> Vec<Arc<str>> {
        self.records
            .iter()
            .filter(|(client, r)| Version::of(r).should_send_over(theirs.get(&***client).copied()))
            .map(|(_, r)| r.at_line_shared())
            .collect()
    }

    pub fn get(&self, client: &str) -> Option<&Record> {
        self.records.get(client)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

/// The actor that owns the table. Records that are new here go to the peer manager.
pub struct LocationStore {
    table: Table,
    peers: Recipient<Flood>,
}

impl LocationStore {
    pub fn new(peers: Recipient<Flood>) -> Self {
        LocationStore {
            table: Table::default(),
            peers,
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
pub struct CheckIn(pub Record);

impl Handler<CheckIn> for LocationStore {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, CheckIn(record): CheckIn, _: &mut Context<Self>) -> ResponseFuture<bool> {
        if !self.table.offer(record.clone()) {
            return Box::pin(std::future::ready(false));
        }
        let flood = self.peers.send(Flood {
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

/// Request: a record a neighbour flooded to us; forwarded to the others if newer here.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Merge {
    pub record: Record,
    pub from: Arc<str>,
    /// Servers that have it or are being sent it already (empty for a sync).
    pub seen: Vec<Arc<str>>,
}

impl Handler<Merge> for LocationStore {
    type Result = ();

    fn handle(&mut self, Merge { record, from, seen }: Merge, _: &mut Context<Self>) {
        if self.table.offer(record.clone()) {
            self.peers.do_send(Flood {
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
pub struct Lookup(pub Box<str>);

impl Handler<Lookup> for LocationStore {
    type Result = Option<Record>;

    fn handle(&mut self, Lookup(client): Lookup, _: &mut Context<Self>) -> Option<Record> {
        self.table.get(&client).cloned()
    }
}

/// Request: the digest of this server's table, for a neighbour that asked with `SYNC`.
#[derive(Message, Debug)]
#[rtype(result = "String")]
pub struct Digest;

impl Handler<Digest> for LocationStore {
    type Result = String;

    fn handle(&mut self, _: Digest, _: &mut Context<Self>) -> String {
        self.table.digest()
    }
}

/// Request: the AT lines a neighbour with this digest lacks or holds older.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Arc<str>>")]
pub struct Missing(pub HashMap<Box<str>, Version>);

impl Handler<Missing> for LocationStore {
    type Result = Vec<Arc<str>>;

    fn handle(&mut self, Missing(theirs): Missing, _: &mut Context<Self>) -> Vec<Arc<str>> {
        self.table.missing_from(&theirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outbox;
    use crate::peers::link::Nudge;
    use crate::peers::manager::{LinkHandle, PeerManager};
    use crate::protocol::{parse_line, Command, Timestamp};
    use std::cell::RefCell;
    use std::rc::Rc;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    fn record(server: &str, line: &str) -> Record {
        match parse_line(line.as_bytes()) {
            Ok(Some(Command::IAmAt(c))) => Record::check_in(server, Timestamp::from_nanos(0), &c),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn table_keeps_the_newest_record_whatever_the_arrival_order() {
        let old = record("Hill", "IAMAT kiwi +1+1 10");
        let new = record("Smith", "IAMAT kiwi +2+2 20");
        let mut a = Table::default();
        assert!(a.offer(old.clone()));
        assert!(a.offer(new.clone()));
        let mut b = Table::default();
        assert!(b.offer(new.clone()));
        assert!(!b.offer(old));
        assert!(!b.offer(new.clone()));
        assert_eq!(a.get("kiwi"), Some(&new));
        assert_eq!(b.get("kiwi"), Some(&new));
        assert_eq!(a.len(), 1);
    }

    fn parse_digest(text: &str) -> HashMap<Box<str>, Version> {
        let mut lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.pop(), Some(wire::DIGEST_END));
        lines
            .into_iter()
            .map(|l| {
                let (c, v) = wire::parse_digest_line(l).expect("digest line");
                (c.into(), v)
            })
            .collect()
    }

    #[test]
    fn digest_exchange_sends_exactly_the_missing_and_older_records_both_ways() {
        let mut a = Table::default();
        let mut b = Table::default();
        let same = record("Hill", "IAMAT same +1+1 1");
        let a_only = record("Hill", "IAMAT a_only +1+1 1");
        let b_only = record("Smith", "IAMAT b_only +1+1 1");
        let a_newer = record("Hill", "IAMAT split +1+1 9");
        let b_older = record("Smith", "IAMAT split +1+1 3");
        let b_newer = record("Smith", "IAMAT other +1+1 9");
        let a_older = record("Hill", "IAMAT other +1+1 3");
        for r in [&same, &a_only, &a_newer, &a_older] {
            a.offer(r.clone());
        }
        for r in [&same, &b_only, &b_older, &b_newer] {
            b.offer(r.clone());
        }
        let mut a_sends = a.missing_from(&parse_digest(&b.digest()));
        let mut b_sends = b.missing_from(&parse_digest(&a.digest()));
        a_sends.sort();
        b_sends.sort();
        let mut want_a: Vec<Arc<str>> = vec![a_only.at_line_shared(), a_newer.at_line_shared()];
        let mut want_b: Vec<Arc<str>> = vec![b_only.at_line_shared(), b_newer.at_line_shared()];
        want_a.sort();
        want_b.sort();
        assert_eq!(a_sends, want_a);
        assert_eq!(b_sends, want_b);
        for line in a_sends {
            b.offer(Record::parse_at_line(&line).unwrap());
        }
        for line in b_sends {
            a.offer(Record::parse_at_line(&line).unwrap());
        }
        assert_eq!(a.len(), 5);
        assert!(a.missing_from(&parse_digest(&b.digest())).is_empty());
        assert!(b.missing_from(&parse_digest(&a.digest())).is_empty());
    }

    /// Takes the nudges a manager sends; these tests' links are always up.
    struct Nudges;

    impl Actor for Nudges {
        type Context = Context<Self>;
    }

    impl Handler<Nudge> for Nudges {
        type Result = ();
        fn handle(&mut self, _: Nudge, _: &mut Context<Self>) {}
    }

    /// A link that is up, whose outbox drains into a pipe the test reads lines from.
    fn link(name: &str, nudges: &Addr<Nudges>) -> (LinkHandle, BufReader<DuplexStream>) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let out = Outbox::new(1 << 20);
        actix_rt::spawn(out.clone().drain_into(ours));
        let handle = LinkHandle {
            neighbour: Arc::from(name),
            nudge: nudges.clone().recipient(),
            slot: Rc::new(RefCell::new(Some(out))),
        };
        (handle, BufReader::new(theirs))
    }

    async fn next_line(pipe: &mut BufReader<DuplexStream>) -> String {
        let mut line = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            pipe.read_line(&mut line),
        )
        .await
        .expect("a line in time")
        .expect("read");
        line.trim_end().to_owned()
    }

    #[actix::test]
    async fn store_floods_only_newer_records_and_only_to_neighbours_that_lack_them() {
        let nudges = Nudges.start();
        let (handles, mut pipes): (Vec<_>, Vec<_>) = ["Jaquez", "Smith", "Campbell"]
            .iter()
            .map(|name| link(name, &nudges))
            .unzip();
        let peers = PeerManager::with_links("Hill".into(), handles).start();
        let store = LocationStore::new(peers.clone().recipient()).start();

        let first = record("Hill", "IAMAT kiwi +1+1 20");
        assert!(store.send(CheckIn(first.clone())).await.unwrap());
        // A check-in's flood goes to every link, saying who is being sent it.
        let flood = format!("FLOOD Hill,Jaquez,Smith,Campbell {}", first.at_line());
        for pipe in &mut pipes {
            assert_eq!(next_line(pipe).await, flood);
        }

        assert!(!store
            .send(CheckIn(record("Hill", "IAMAT kiwi +5+5 19")))
            .await
            .unwrap());
        // Older than what is held: stored nowhere, sent nowhere.
        store.do_send(Merge {
            record: record("Hill", "IAMAT kiwi +1+1 18"),
            from: "Jaquez".into(),
            seen: Vec::new(),
        });
        // Newer, from Smith, which sent it to Campbell too: only Jaquez still needs it.
        let merged = record("Campbell", "IAMAT kiwi +7+7 30");
        store.do_send(Merge {
            record: merged.clone(),
            from: "Smith".into(),
            seen: vec!["Smith".into(), "Campbell".into()],
        });
        let forwarded = format!("FLOOD Smith,Campbell,Hill,Jaquez {}", merged.at_line());
        assert_eq!(next_line(&mut pipes[0]).await, forwarded);
        assert_eq!(
            store.send(Lookup("kiwi".into())).await.unwrap(),
            Some(merged.clone())
        );
        // A last check-in shows nothing else was queued for Smith or Campbell meanwhile.
        let last = record("Hill", "IAMAT kiwi +1+1 40");
        assert!(store.send(CheckIn(last.clone())).await.unwrap());
        let flood = format!("FLOOD Hill,Jaquez,Smith,Campbell {}", last.at_line());
        for pipe in &mut pipes {
            assert_eq!(next_line(pipe).await, flood);
        }
        assert_eq!(store.send(Lookup("pear".into())).await.unwrap(), None);
    }
}
