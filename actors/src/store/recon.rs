//! The store's side of set reconciliation ([`crate::peers::recon`] has the protocol): what a
//! listener answers to a dialler's query, and what a dialler does with the answer, both
//! worked out from the table's range summaries.

use std::collections::HashSet;

use super::table::Table;
use crate::peers::recon::{wire_hash, Answer, Child, Next, Query, Range, Summary, FEW, MAX_DEPTH};

impl Table {
    /// The dialler's first query: its summaries of the root's children.
    pub(crate) fn first_query(&self) -> Query {
        Query::Children {
            range: Range::ROOT,
            mine: self.child_summaries(Range::ROOT),
        }
    }

    /// The listener's answer to `query`; `None` for a query no dialler of ours would ask
    /// (children of the deepest range).
    pub(crate) fn answer(&self, query: &Query) -> Option<Answer> {
        match query {
            Query::Children { range, mine } => {
                let mut children = Vec::with_capacity(mine.len());
                for (child, theirs) in range.children().zip(mine) {
                    let held = self.summary(child);
                    children.push(if held.matches(*theirs) {
                        Child::Same
                    } else if held.count <= FEW || child.depth() == MAX_DEPTH {
                        Child::Items(self.hashes_in(child))
                    } else {
                        Child::Split(self.child_summaries(child))
                    });
                }
                (children.len() == mine.len()).then_some(Answer::Children {
                    range: *range,
                    children,
                })
            }
            Query::Items { range, mine } => {
                let held: HashSet<u64> = self.hashes_in(*range).into_iter().collect();
                Some(Answer::Need {
                    range: *range,
                    hashes: mine.iter().copied().filter(|h| !held.contains(h)).collect(),
                })
            }
        }
    }

    /// What the dialler asks and sends after `answer`.
    pub(crate) fn follow(&self, answer: &Answer) -> Next {
        let mut next = Next::default();
        match answer {
            Answer::Children { range, children } => {
                for (child, theirs) in range.children().zip(children) {
                    match theirs {
                        Child::Same => {}
                        Child::Items(hashes) => self.send_unless_in(child, hashes, &mut next),
                        Child::Split(summaries) => {
                            for (grandchild, theirs) in child.children().zip(summaries) {
                                self.compare(grandchild, *theirs, &mut next);
                            }
                        }
                    }
                }
            }
            Answer::Need { range, hashes } => {
                let need: HashSet<u64> = hashes.iter().copied().collect();
                next.records.extend(
                    self.records_in(*range)
                        .filter(|r| need.contains(&wire_hash(r.hash())))
                        .map(|r| r.at_line_shared()),
                );
            }
        }
        next
    }

    /// The dialler's step for one range whose summary on the listener is `theirs`.
    fn compare(&self, range: Range, theirs: Summary, next: &mut Next) {
        let mine = self.summary(range);
        if mine.count == 0 || mine.matches(theirs) {
            // Nothing here the listener lacks (what it holds and we lack, its own link
            // sends us).
        } else if theirs.count == 0 {
            next.records
                .extend(self.records_in(range).map(|r| r.at_line_shared()));
        } else if mine.count <= FEW || range.depth() == MAX_DEPTH {
            next.queries.push(Query::Items {
                range,
                mine: self.hashes_in(range),
            });
        } else {
            next.queries.push(Query::Children {
                range,
                mine: self.child_summaries(range),
            });
        }
    }

    /// Sends the records in `range` whose hashes are not among `theirs`.
    fn send_unless_in(&self, range: Range, theirs: &[u64], next: &mut Next) {
        let theirs: HashSet<u64> = theirs.iter().copied().collect();
        next.records.extend(
            self.records_in(range)
                .filter(|r| !theirs.contains(&wire_hash(r.hash())))
                .map(|r| r.at_line_shared()),
        );
    }

    fn hashes_in(&self, range: Range) -> Vec<u64> {
        self.records_in(range)
            .map(|r| wire_hash(r.hash()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::Record;
    use crate::test_support::record;

    /// Runs a whole reconciliation of `dialler` against `listener` over the wire's lines;
    /// the AT lines the dialler sends, and the query and answer lines each way.
    fn reconcile(dialler: &Table, listener: &Table) -> (Vec<Arc<str>>, [usize; 2]) {
        let mut queries = vec![dialler.first_query()];
        let mut sent = Vec::new();
        let mut lines = [0; 2];
        while let Some(query) = queries.pop() {
            lines[0] += 1;
            let query = Query::parse(&query.line()).expect("a query line parses");
            let answer = listener.answer(&query).expect("an answer");
            lines[1] += 1;
            let answer = Answer::parse(&answer.line()).expect("an answer line parses");
            let next = dialler.follow(&answer);
            queries.extend(next.queries);
            sent.extend(next.records);
        }
        (sent, lines)
    }

    fn table(records: impl IntoIterator<Item = Record>) -> Table {
        let mut t = Table::default();
        for r in records {
            t.offer(r);
        }
        t
    }

    #[test]
    fn equal_tables_agree_in_one_line_each_way() {
        let records: Vec<Record> = (0..5000)
            .map(|i| record("Hill", &format!("IAMAT c{i} +1+1 1")))
            .collect();
        let (a, b) = (table(records.clone()), table(records));
        let (sent, lines) = reconcile(&a, &b);
        assert!(sent.is_empty());
        assert_eq!(lines, [1, 1]);
        let (sent, lines) = reconcile(&Table::default(), &Table::default());
        assert!(sent.is_empty());
        assert_eq!(lines, [1, 1]);
    }

    #[test]
    fn the_dialler_sends_exactly_what_the_listener_lacks_or_holds_otherwise() {
        let common = (0..20_000).map(|i| record("Hill", &format!("IAMAT c{i} +1+1 1")));
        let mut a = table(common.clone());
        let mut b = table(common);
        let mut want: Vec<Arc<str>> = Vec::new();
        for i in 0..60 {
            // Only at the dialler; only at the listener; newer at each.
            let only_a = record("Hill", &format!("IAMAT a{i} +1+1 1"));
            want.push(only_a.at_line_shared());
            a.offer(only_a);
            b.offer(record("Smith", &format!("IAMAT b{i} +1+1 1")));
            let newer_a = record("Hill", &format!("IAMAT c{i} +1+1 5"));
            want.push(newer_a.at_line_shared());
            a.offer(newer_a);
            b.offer(record("Smith", &format!("IAMAT c{} +1+1 5", 100 + i)));
        }
        // The dialler's older record of a client the listener holds newer goes too: the
        // listener's own rule keeps its newer one.
        want.extend((100..160).map(|i| a.get(&format!("c{i}")).unwrap().at_line_shared()));
        let (mut sent, _) = reconcile(&a, &b);
        sent.sort();
        want.sort();
        assert_eq!(sent, want);
        // Both ways, then the two agree.
        for line in sent {
            b.offer(Record::parse_at_line(&line).unwrap());
        }
        for line in reconcile(&b, &a).0 {
            a.offer(Record::parse_at_line(&line).unwrap());
        }
        let (sent, lines) = reconcile(&a, &b);
        assert!(sent.is_empty());
        assert_eq!(lines, [1, 1]);
    }

    #[test]
    fn an_empty_listener_gets_everything_in_a_few_lines() {
        let a = table((0..10_000).map(|i| record("Hill", &format!("IAMAT c{i} +1+1 1"))));
        let (sent, lines) = reconcile(&a, &Table::default());
        assert_eq!(sent.len(), 10_000);
        assert_eq!(lines, [1, 1]);
    }

    #[test]
    fn a_query_for_children_of_the_deepest_range_gets_no_answer() {
        let mut deepest = Range::ROOT;
        for _ in 0..MAX_DEPTH {
            deepest = deepest.child(0).unwrap();
        }
        let query = Query::Children {
            range: deepest,
            mine: vec![Summary::default(); 16],
        };
        assert_eq!(Table::default().answer(&query), None);
    }
}
