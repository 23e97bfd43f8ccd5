//! Each client's latest record, under the herd's "newer" order, and the range summaries that
//! set reconciliation compares; a plain type, so the order and the reconciliation are tested
//! without actors.

use std::collections::HashMap;
use std::sync::Arc;

use crate::peers::recon::{key_of, Range, Summary};
use crate::protocol::Record;

/// Nibbles of a client's key that pick its bucket: 16^4 = 65,536 buckets, about 15 clients
/// each at a million.
const BUCKET_NIBBLES: u8 = 4;
const BUCKETS: usize = 1 << (4 * BUCKET_NIBBLES as usize);

/// Latest record per client. An older or equal record never replaces what is held.
///
/// Beside the records, the clients are kept in buckets by their key's first nibbles, each
/// bucket with the [`Summary`] of its records. A new record changes one bucket's summary
/// (O(1)); a range of the key space as deep as a bucket or shallower sums whole buckets,
/// and a deeper one sums the records of its one bucket. So no link-up walks the whole table.
#[derive(Debug)]
pub(crate) struct Table {
    records: HashMap<Arc<str>, Record>,
    buckets: Vec<Bucket>,
}

#[derive(Debug, Default, Clone)]
struct Bucket {
    summary: Summary,
    /// Each client in the bucket, with its key.
    clients: Vec<(u64, Arc<str>)>,
}

impl Default for Table {
    fn default() -> Self {
        Table::with_capacity(0)
    }
}

fn bucket_of(key: u64) -> usize {
    (key >> (64 - 4 * u32::from(BUCKET_NIBBLES))) as usize
}

impl Table {
    /// An empty table with room for `n` clients.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Table {
            records: HashMap::with_capacity(n),
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }

    /// Stores `record` if it is newer than what is held for its client; says whether it did.
    pub(crate) fn offer(&mut self, record: Record) -> bool {
        match self.records.get_mut(record.client().as_ref()) {
            Some(held) if !record.newer_than(held) => false,
            Some(held) => {
                let summary = &mut self.buckets[bucket_of(key_of(record.client()))].summary;
                summary.remove(held.hash());
                summary.add(record.hash());
                *held = record;
                true
            }
            None => {
                let key = key_of(record.client());
                let bucket = &mut self.buckets[bucket_of(key)];
                bucket.summary.add(record.hash());
                bucket.clients.push((key, record.client().clone()));
                self.records.insert(record.client().clone(), record);
                true
            }
        }
    }

    /// Drops the records whose client time is before `nanos`; how many.
    pub(crate) fn forget_before(&mut self, nanos: i64) -> usize {
        self.forget(|record| record.time().nanos() < nanos)
    }

    /// Drops the records whose client time is after `nanos`; how many.
    pub(crate) fn forget_after(&mut self, nanos: i64) -> usize {
        self.forget(|record| record.time().nanos() > nanos)
    }

    /// Drops the records `gone` picks, from their buckets too; how many.
    fn forget(&mut self, gone: impl Fn(&Record) -> bool) -> usize {
        let before = self.records.len();
        let buckets = &mut self.buckets;
        self.records.retain(|client, record| {
            if !gone(record) {
                return true;
            }
            let bucket = &mut buckets[bucket_of(key_of(client))];
            bucket.summary.remove(record.hash());
            bucket.clients.retain(|(_, c)| c != client);
            false
        });
        before - self.records.len()
    }

    /// The client time of the `n`th oldest record (from 0), if there are more than `n`.
    pub(crate) fn nth_oldest_time(&self, n: usize) -> Option<i64> {
        let mut times: Vec<i64> = self.records.values().map(|r| r.time().nanos()).collect();
        if n >= times.len() {
            return None;
        }
        let (_, nth, _) = times.select_nth_unstable(n);
        Some(*nth)
    }

    pub(crate) fn get(&self, client: &str) -> Option<&Record> {
        self.records.get(client)
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// What the table holds in `range`.
    pub(crate) fn summary(&self, range: Range) -> Summary {
        match range.buckets(BUCKET_NIBBLES) {
            Some(buckets) => {
                let mut summary = Summary::default();
                for b in &self.buckets[buckets.start as usize..buckets.end as usize] {
                    summary.merge(b.summary);
                }
                summary
            }
            None => {
                let mut summary = Summary::default();
                for record in self.records_in(range) {
                    summary.add(record.hash());
                }
                summary
            }
        }
    }

    /// The summaries of the children of `range`.
    pub(crate) fn child_summaries(&self, range: Range) -> Vec<Summary> {
        range.children().map(|c| self.summary(c)).collect()
    }

    /// The records in `range`.
    pub(crate) fn records_in(&self, range: Range) -> impl Iterator<Item = &Record> {
        // No deeper than a bucket, a range covers whole buckets; deeper, it lies in one
        // (`top` is then always there).
        let buckets = range.buckets(BUCKET_NIBBLES).unwrap_or_else(|| {
            let top = range.top(BUCKET_NIBBLES).unwrap_or_default();
            top..top + 1
        });
        self.buckets[buckets.start as usize..buckets.end as usize]
            .iter()
            .flat_map(|b| &b.clients)
            .filter(move |(key, _)| range.contains(*key))
            .filter_map(|(_, client)| self.records.get(client))
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

    /// The summary of `range` worked out from scratch, record by record.
    fn summed(table: &Table, range: Range) -> Summary {
        let mut s = Summary::default();
        for r in table.records.values() {
            if range.contains(key_of(r.client())) {
                s.add(r.hash());
            }
        }
        s
    }

    #[test]
    fn summaries_follow_every_change_at_every_depth() {
        let mut t = Table::default();
        for i in 0..3000 {
            t.offer(record("Hill", &format!("IAMAT c{i} +1+1 {}", i % 7)));
        }
        for i in (0..3000).step_by(3) {
            t.offer(record("Smith", &format!("IAMAT c{i} +2+2 100")));
        }
        t.forget_before(3_000_000_000);
        let mut range = Range::ROOT;
        for depth in 0..=8usize {
            assert_eq!(t.summary(range), summed(&t, range), "depth {depth}");
            let counted = t.records_in(range).count() as u64;
            assert_eq!(counted, t.summary(range).count, "depth {depth}");
            let children: Summary =
                t.child_summaries(range)
                    .into_iter()
                    .fold(Summary::default(), |mut all, s| {
                        all.merge(s);
                        all
                    });
            assert_eq!(children, t.summary(range), "depth {depth}");
            // Down the child that holds the first record still in this range.
            let Some(first) = t.records_in(range).next() else {
                break;
            };
            let key = key_of(first.client());
            range = range
                .children()
                .find(|c| c.contains(key))
                .expect("a child holds it");
        }
        assert_eq!(t.summary(Range::ROOT).count as usize, t.len());
    }
}
