//! Group commit on a paused clock: settling, the neighbours' wait, one commit at a time, retries.

use super::*;
use crate::test_support::record;

fn at(i: usize) -> Record {
    record("Hill", &format!("IAMAT c{i} +1+1 {}", 1000 + i))
}

fn written(step: Step) -> Vec<Record> {
    match step {
        Step::Write(records) => records,
        other => panic!("expected a write, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_check_in_goes_once_its_batch_stops_growing_over_turns_of_the_loop() {
    let mut b = CommitBatcher::default();
    let now = Instant::now();
    assert!(matches!(b.add(at(0), true, now).1, Step::Yield));
    // Lines read in the same turn join without asking for another yield.
    assert!(matches!(b.add(at(1), true, now).1, Step::Rest));
    assert!(
        matches!(b.yielded(now), Step::Yield),
        "it grew: one more turn"
    );
    assert!(matches!(b.add(at(2), false, now).1, Step::Rest));
    assert!(matches!(b.yielded(now), Step::Yield));
    assert_eq!(written(b.yielded(now)).len(), 3);
    assert_eq!(b.unwritten(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_commit_writes_each_clients_newest_record_once() {
    let mut b = CommitBatcher::default();
    let now = Instant::now();
    for line in [
        "IAMAT kiwi +1+1 1",
        "IAMAT pear +1+1 1",
        "IAMAT kiwi +2+2 2",
    ] {
        let _ = b.add(record("Hill", line), true, now);
    }
    assert!(matches!(b.yielded(now), Step::Yield));
    let batch = written(b.yielded(now));
    let lines: Vec<&str> = batch.iter().map(|r| r.at_line()).collect();
    assert_eq!(
        lines,
        [
            "AT Hill -1.000000000 pear +1+1 1",
            "AT Hill -2.000000000 kiwi +2+2 2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_never_stops_growing_goes_after_the_settle_limit() {
    let mut b = CommitBatcher::default();
    let now = Instant::now();
    let _ = b.add(at(0), true, now);
    for i in 1..=SETTLE_YIELDS as usize {
        let _ = b.add(at(i), true, now);
        assert!(matches!(b.yielded(now), Step::Yield), "turn {i}");
    }
    let _ = b.add(at(99), true, now);
    assert_eq!(written(b.yielded(now)).len(), SETTLE_YIELDS as usize + 2);
}

#[tokio::test(start_paused = true)]
async fn neighbours_records_wait_for_the_merge_wait_unless_a_check_in_comes() {
    let mut b = CommitBatcher::default();
    let start = Instant::now();
    let _ = b.add(at(0), false, start);
    let Step::WakeAt(until) = b.yielded(start) else {
        panic!("a neighbour's record waits");
    };
    assert_eq!(until, start + MERGE_WAIT);
    tokio::time::advance(MERGE_WAIT / 2).await;
    let _ = b.add(at(1), false, Instant::now());
    assert!(matches!(b.woke(Instant::now()), Step::Rest), "too early");
    tokio::time::advance(MERGE_WAIT / 2).await;
    assert_eq!(written(b.woke(Instant::now())).len(), 2);
    let _ = b.written(vec![], Ok(()), Instant::now());

    // A check-in cuts the wait short, and takes the neighbours' records along.
    let now = Instant::now();
    let _ = b.add(at(2), false, now);
    assert!(matches!(b.yielded(now), Step::WakeAt(_)));
    assert!(matches!(b.add(at(3), true, now).1, Step::Yield));
    assert_eq!(written(b.yielded(now)).len(), 2);
    // The old timer finds nothing to do.
    tokio::time::advance(MERGE_WAIT).await;
    assert!(matches!(b.woke(Instant::now()), Step::Rest));
}

#[tokio::test(start_paused = true)]
async fn enough_neighbours_records_go_without_waiting() {
    let mut b = CommitBatcher::default();
    let now = Instant::now();
    for i in 0..MERGE_BATCH {
        let _ = b.add(at(i), false, now);
    }
    assert!(matches!(b.yielded(now), Step::Yield));
    assert_eq!(written(b.yielded(now)).len(), MERGE_BATCH);
}

#[tokio::test(start_paused = true)]
async fn one_commit_at_a_time_and_the_next_starts_when_it_is_done() {
    let mut b = CommitBatcher::default();
    let now = Instant::now();
    let (first, _) = b.add(at(0), true, now);
    let batch = written(b.yielded(now));
    let (second, step) = b.add(at(1), true, now);
    assert!(matches!(step, Step::Rest), "a commit is being written");
    assert_eq!(b.unwritten(), 2);
    assert!(matches!(b.written(batch, Ok(()), now), Step::Yield));
    assert_eq!(first.await, Ok(Ok(())));
    assert_eq!(written(b.yielded(now)).len(), 1);
    let _ = b.written(vec![at(1)], Ok(()), now);
    assert_eq!(second.await, Ok(Ok(())));
    assert_eq!(b.unwritten(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_is_tried_again_later_and_later_with_its_records_first() {
    let mut b = CommitBatcher::default();
    let start = Instant::now();
    let (first, _) = b.add(at(0), true, start);
    let batch = written(b.yielded(start));
    let _ = b.add(at(1), false, start);
    let Step::WakeAt(retry) = b.written(batch, Err("disk full".into()), start) else {
        panic!("a retry");
    };
    assert_eq!(retry, start + RETRY_MIN);
    assert_eq!(first.await, Ok(Err("disk full".into())));
    assert_eq!(b.failing().map(|w| &**w), Some("disk full"));
    // New records wait for the retry, behind the failed ones.
    assert!(matches!(b.add(at(2), true, start).1, Step::Rest));
    assert!(matches!(b.woke(start), Step::Rest), "before its time");
    let mut delays = Vec::new();
    let mut now = retry;
    for _ in 0..6 {
        tokio::time::advance(now - Instant::now()).await;
        let batch = written(b.woke(Instant::now()));
        assert_eq!(
            batch
                .iter()
                .map(|r| r.client().to_string())
                .collect::<Vec<_>>(),
            ["c0", "c1", "c2"]
        );
        let Step::WakeAt(next) = b.written(batch, Err("disk full".into()), now) else {
            panic!("another retry");
        };
        delays.push(next - now);
        now = next;
    }
    let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [200, 400, 800, 1600, 2000, 2000]);
    tokio::time::advance(now - Instant::now()).await;
    let batch = written(b.woke(Instant::now()));
    assert!(matches!(b.written(batch, Ok(()), now), Step::Rest));
    assert_eq!((b.failing(), b.unwritten()), (None, 0));
}

#[tokio::test(start_paused = true)]
async fn a_flush_sends_waiting_neighbours_records_at_once() {
    let mut b = CommitBatcher::default();
    let now = Instant::now();
    let _ = b.add(at(0), false, now);
    assert!(matches!(b.yielded(now), Step::WakeAt(_)));
    let (waits, step) = b.flush();
    assert_eq!(waits.len(), 1);
    assert!(matches!(step, Step::Yield));
    let batch = written(b.yielded(now));
    let _ = b.written(batch, Ok(()), now);
    for wait in waits {
        assert_eq!(wait.await, Ok(Ok(())));
    }
}
