//! Each client's latest record, under the herd's "newer" order; a plain type, so the order
//! and the anti-entropy arithmetic are tested without actors.

use std::collections::HashMap;
use std::sync::Arc;

use crate::protocol::{Fingerprint, Record};

/// Latest record per client. An older or equal record never replaces what is held.
#[derive(Debug, Default)]
pub(crate) struct Table {
    records: HashMap<Arc<str>, Record>,
}

impl Table {
    /// An empty table with room for `n` clients.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Table {
            records: HashMap::with_capacity(n),
        }
    }

    /// Stores `record` if it is newer than what is held for its client; says whether it did.
    pub(crate) fn offer(&mut self, record: Record) -> bool {
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

    /// Every client held, with its record's fingerprint.
    pub(crate) fn fingerprints(&self) -> Vec<(Arc<str>, Fingerprint)> {
        self.records
            .iter()
            .map(|(client, record)| (client.clone(), Fingerprint::of(record)))
            .collect()
    }

    /// The AT lines of the records a server holding `theirs` lacks or holds older.
    pub(crate) fn missing_from(&self, theirs: &HashMap<Box<str>, Fingerprint>) -> Vec<Arc<str>> {
        self.records
            .iter()
            .filter(|(client, r)| {
                Fingerprint::of(r).should_send_over(theirs.get(&***client).copied())
            })
            .map(|(_, r)| r.at_line_shared())
            .collect()
    }

    /// Drops the records whose client time is before `nanos`; how many.
    pub(crate) fn forget_before(&mut self, nanos: i64) -> usize {
        let before = self.records.len();
        self.records
            .retain(|_, record| record.time().nanos() >= nanos);
        before - self.records.len()
    }

    pub(crate) fn get(&self, client: &str) -> Option<&Record> {
        self.records.get(client)
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::record;

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

    fn digest(table: &Table) -> HashMap<Box<str>, Fingerprint> {
        table
            .fingerprints()
            .into_iter()
            .map(|(client, fingerprint)| (Box::from(&*client), fingerprint))
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
        let mut a_sends = a.missing_from(&digest(&b));
        let mut b_sends = b.missing_from(&digest(&a));
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
        assert!(a.missing_from(&digest(&b)).is_empty());
        assert!(b.missing_from(&digest(&a)).is_empty());
    }
}
