//! The store's actor behaviour: which records it keeps, and which it hands on as floods.

use super::*;
use crate::protocol::Timestamp;
use crate::store::table::Table;
use crate::test_support::{collector, record};

#[actix::test]
async fn only_records_newer_than_the_held_one_are_kept_and_flooded() {
    let (floods, mut flooded) = collector::<Spread>();
    let store = LocationStore::new(floods, Table::default(), None, Bounds::default()).start();

    let first = record("Hill", "IAMAT kiwi +1+1 20");
    assert_eq!(store.send(CheckIn(first.clone())).await.unwrap(), Ok(true));
    let flood = flooded.recv().await.expect("a flood");
    assert_eq!(
        (flood.record, flood.from, flood.seen),
        (first, None, vec![])
    );

    // Older than what is held, from a client or from a neighbour: kept nowhere, sent nowhere.
    let older = CheckIn(record("Hill", "IAMAT kiwi +5+5 19"));
    assert_eq!(store.send(older).await.unwrap(), Ok(false));
    store.do_send(Spread {
        record: record("Jaquez", "IAMAT kiwi +1+1 18"),
        from: Some("Jaquez".into()),
        seen: Vec::new(),
    });

    // Newer, from Smith, which sent it to Campbell too: flooded on with what it came with.
    let merged = record("Campbell", "IAMAT kiwi +7+7 30");
    let seen: Vec<Arc<str>> = vec!["Smith".into(), "Campbell".into()];
    store.do_send(Spread {
        record: merged.clone(),
        from: Some("Smith".into()),
        seen: seen.clone(),
    });
    assert_eq!(
        store.send(Lookup("kiwi".into())).await.unwrap(),
        Some(merged.clone())
    );
    let flood = flooded.recv().await.expect("a flood");
    assert_eq!(
        (flood.record, flood.from, flood.seen),
        (merged, Some("Smith".into()), seen)
    );
    assert!(
        flooded.try_recv().is_err(),
        "the older records were flooded"
    );
    assert_eq!(store.send(Lookup("pear".into())).await.unwrap(), None);
}

#[actix::test]
async fn a_neighbour_reconciling_with_the_store_is_sent_what_it_lacks() {
    let (floods, _flooded) = collector::<Spread>();
    let store = LocationStore::new(floods, Table::default(), None, Bounds::default()).start();
    let kiwi = record("Hill", "IAMAT kiwi +1+1 20");
    let pear = record("Hill", "IAMAT pear +1+1 20");
    for record in [&kiwi, &pear] {
        assert_eq!(store.send(CheckIn(record.clone())).await.unwrap(), Ok(true));
    }
    // The store dials a neighbour that holds pear only.
    let mut neighbour = Table::default();
    neighbour.offer(pear.clone());
    let mut queries = vec![store.send(FirstQuery).await.unwrap()];
    let mut sent = Vec::new();
    while let Some(query) = queries.pop() {
        let answer = neighbour.answer(&query).expect("an answer");
        let next = store.send(FollowUp(answer)).await.unwrap();
        queries.extend(next.queries);
        sent.extend(next.records);
    }
    assert_eq!(sent, vec![kiwi.at_line_shared()]);
    // And answers a neighbour dialling it: one that holds pear and fig sends fig, which
    // the store lacks, and not pear, which it holds.
    let fig = record("Smith", "IAMAT fig +1+1 20");
    neighbour.offer(fig.clone());
    let query = neighbour.first_query();
    let answer = store
        .send(Reconcile(query))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(
        neighbour.follow(&answer).records,
        vec![fig.at_line_shared()]
    );
}

#[actix::test]
async fn a_neighbours_record_from_the_future_is_refused_and_counted() {
    let (floods, mut flooded) = collector::<Spread>();
    let metrics = crate::metrics::StoreMetrics::default();
    let store = LocationStore::new(floods, Table::default(), None, Bounds::default())
        .with_metrics(metrics.clone())
        .start();
    let now = Timestamp::now().nanos() / 1_000_000_000;
    // Within the hour and the minute the servers' clocks may differ by: taken.
    let soon = record("Smith", &format!("IAMAT soon +1+1 {}", now + 3600 + 30));
    // Past them: refused, however it came.
    let forged = record("Smith", "IAMAT victim +1+1 9000000000.0");
    for r in [&soon, &forged] {
        store.do_send(Spread {
            record: r.clone(),
            from: Some("Smith".into()),
            seen: Vec::new(),
        });
    }
    assert_eq!(store.send(Lookup("victim".into())).await.unwrap(), None);
    assert_eq!(store.send(Lookup("soon".into())).await.unwrap(), Some(soon));
    assert_eq!(metrics.future.get(), 1);
    assert!(flooded.recv().await.is_some());
    assert!(flooded.try_recv().is_err(), "the forged record was flooded");
}

mod durable {
    //! The store with its durable copy: a real SQLite file in a temporary directory.

    use std::time::Duration;

    use futures::future::join_all;

    use super::*;
    use crate::metrics::StoreMetrics;
    use crate::store::batcher::MERGE_WAIT;
    use crate::store::committer::Committer;
    use crate::store::durable::{Database, StoreError};
    use crate::store::journal;

    fn open(dir: &tempfile::TempDir) -> Database {
        Database::open(dir.path(), "Hill", false).expect("a store")
    }

    /// What the store in `dir` holds on disk: its database, and what its journal took.
    fn on_disk(dir: &tempfile::TempDir) -> Table {
        journal::load(&open(dir)).expect("a store that loads")
    }

    /// Where commits go: into the journal on the event loop (`fsync = false`), or into the
    /// database on the writer's thread.
    #[derive(Debug, Clone, Copy)]
    enum Runs {
        Journal,
        OnThread,
    }

    const BOTH: [Runs; 2] = [Runs::Journal, Runs::OnThread];

    fn store_over(db: Database, runs: Runs) -> Addr<LocationStore> {
        store_with(db, runs, Bounds::default(), StoreMetrics::default())
    }

    fn store_with(
        db: Database,
        runs: Runs,
        bounds: Bounds,
        metrics: StoreMetrics,
    ) -> Addr<LocationStore> {
        let (floods, _) = collector::<Spread>();
        let mut db = db;
        let (table, next) = journal::recover(&mut db).expect("the store recovered");
        let committer = match runs {
            Runs::Journal => Committer::journal(db, next, metrics.clone()).expect("a journal"),
            Runs::OnThread => Committer::thread(db),
        };
        LocationStore::new(floods, table, Some(committer), bounds)
            .with_metrics(metrics)
            .start()
    }

    #[actix::test]
    async fn check_ins_arriving_together_are_written_in_few_commits() {
        for runs in BOTH {
            check_ins_arriving_together(runs).await;
        }
    }

    async fn check_ins_arriving_together(runs: Runs) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_over(open(&dir), runs);
        let check_ins = (0..2000).map(|i| {
            let record = record("Hill", &format!("IAMAT c{i} +1+1 {}", 1000 + i));
            store.send(CheckIn(record))
        });
        for kept in join_all(check_ins).await {
            assert_eq!(kept.unwrap(), Ok(true));
        }
        let stats = store.send(GetStoreStats).await.unwrap();
        assert_eq!((stats.records, stats.committed), (2000, 2000));
        assert!(
            stats.commits < 100,
            "{runs:?}: {} commits for 2000 check-ins",
            stats.commits
        );
        // What was acknowledged is in the file.
        let back = on_disk(&dir);
        assert_eq!(back.len(), 2000);
    }

    #[actix::test]
    async fn a_check_in_that_cannot_be_written_is_not_acknowledged() {
        for (full, runs) in [(true, Runs::Journal), (false, Runs::OnThread)] {
            let dir = tempfile::tempdir().unwrap();
            let store = store_over(open(&dir), runs);
            store.send(FailWrites(Some(full))).await.unwrap();
            // Too big for the free room of the file's pages.
            let kiwi = record("Hill", &format!("IAMAT {} +1+1 5", "k".repeat(8000)));
            let kept = store.send(CheckIn(kiwi)).await.unwrap();
            let fault = kept.expect_err("no acknowledgement without a commit");
            assert!(fault.contains("cannot write"), "{fault}");
            let stats = store.send(GetStoreStats).await.unwrap();
            assert_eq!((stats.commits, stats.committed, stats.failed), (0, 0, 1));
            assert_eq!(on_disk(&dir).len(), 0);
        }
    }

    #[actix::test]
    async fn a_disk_that_refuses_writes_is_told_and_every_record_held_is_written_once_it_takes_them(
    ) {
        for runs in BOTH {
            a_disk_that_refuses_writes(runs).await;
        }
    }

    async fn a_disk_that_refuses_writes(runs: Runs) {
        let dir = tempfile::tempdir().unwrap();
        let metrics = StoreMetrics::default();
        let store = store_with(open(&dir), runs, Bounds::default(), metrics.clone());
        store.send(FailWrites(Some(true))).await.unwrap();
        let kiwi = record("Hill", &format!("IAMAT {} +1+1 5", "k".repeat(8000)));
        let kept = store.send(CheckIn(kiwi.clone())).await.unwrap();
        assert!(kept.is_err(), "acknowledged without a commit");
        assert!(metrics
            .failing()
            .is_some_and(|why| why.contains("cannot write")));
        // Neighbours' records keep coming while the disk is full: held, not lost.
        for i in 0..10 {
            store.do_send(Spread {
                record: record("Jaquez", &format!("IAMAT m{i} +1+1 {}", 1000 + i)),
                from: Some("Jaquez".into()),
                seen: Vec::new(),
            });
        }
        let _ = store.send(GetStoreStats).await;
        assert_eq!(metrics.unwritten.get(), 11);
        assert_eq!(on_disk(&dir).len(), 0);
        // The disk takes writes again: the retries write everything held.
        store.send(FailWrites(None)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while metrics.unwritten.get() > 0 || metrics.failing().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "never written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let back = on_disk(&dir);
        assert_eq!(back.len(), 11);
        assert_eq!(back.get(kiwi.client()), Some(&kiwi));
    }

    #[actix::test]
    async fn past_the_cap_the_oldest_records_go_from_memory_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = StoreMetrics::default();
        let bounds = Bounds {
            max_records: Some(100),
            ..Bounds::default()
        };
        let store = store_with(open(&dir), Runs::Journal, bounds, metrics.clone());
        for i in 0..250 {
            let r = record("Hill", &format!("IAMAT c{i} +1+1 {}", 1000 + i));
            assert_eq!(store.send(CheckIn(r)).await.unwrap(), Ok(true));
        }
        let held = store.send(GetStoreStats).await.unwrap().records;
        assert!((90..=100).contains(&held), "{held} held");
        assert_eq!(metrics.evicted.get(), 250 - held as u64);
        assert_eq!(store.send(Lookup("c0".into())).await.unwrap(), None);
        assert!(store.send(Lookup("c249".into())).await.unwrap().is_some());
        // A new client older than everything held would go at once: it is not taken.
        let old = record("Hill", "IAMAT newcomer +1+1 1000");
        assert_eq!(store.send(CheckIn(old)).await.unwrap(), Ok(false));
        store.send(Flush).await.unwrap();
        let back = on_disk(&dir);
        assert_eq!(back.len(), held);
        assert!(back.get("c0").is_none());
    }

    #[actix::test]
    async fn records_from_neighbours_wait_a_little_to_share_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_over(open(&dir), Runs::Journal);
        // The floods trickle in, each handled before the next comes, all within the wait of
        // the first (on a clock that moves only when the test moves it, so this is exact).
        tokio::time::pause();
        for i in 0..10 {
            store.do_send(Spread {
                record: record("Jaquez", &format!("IAMAT m{i} +1+1 {}", 1000 + i)),
                from: Some("Jaquez".into()),
                seen: Vec::new(),
            });
            tokio::time::advance(MERGE_WAIT / 20).await;
            let _ = store.send(GetStoreStats).await;
        }
        tokio::time::resume();
        // No check-in comes: the timer writes them, in one commit.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let stats = store.send(GetStoreStats).await.unwrap();
            if stats.committed == 10 {
                break stats;
            }
            assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(stats.commits, 1);
        // A check-in does not wait for the timer, and takes what waits along.
        store.do_send(Spread {
            record: record("Jaquez", "IAMAT rider +1+1 2000"),
            from: Some("Jaquez".into()),
            seen: Vec::new(),
        });
        let kiwi = record("Hill", "IAMAT kiwi +1+1 2001");
        assert_eq!(store.send(CheckIn(kiwi)).await.unwrap(), Ok(true));
        let stats = store.send(GetStoreStats).await.unwrap();
        assert_eq!((stats.commits, stats.committed), (2, 12));
    }

    #[actix::test]
    async fn flush_waits_for_everything_taken() {
        for runs in BOTH {
            flush_waits(runs).await;
        }
    }

    async fn flush_waits(runs: Runs) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_over(open(&dir), runs);
        for i in 0..500 {
            let record = record("Jaquez", &format!("IAMAT m{i} +1+1 {}", 1000 + i));
            store.do_send(Spread {
                record,
                from: Some("Jaquez".into()),
                seen: Vec::new(),
            });
        }
        store.send(Flush).await.unwrap();
        assert_eq!(on_disk(&dir).len(), 500);
    }

    #[actix::test]
    async fn records_past_the_age_bound_are_dropped_here_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(&dir);
        let now = Timestamp::now().nanos() / 1_000_000_000;
        let old = record("Hill", &format!("IAMAT old +1+1 {}", now - 3600));
        let new = record("Hill", &format!("IAMAT new +1+1 {now}"));
        db.commit(&[old.clone(), new.clone()]).unwrap();
        let bounds = Bounds {
            max_age: Some(Duration::from_secs(60)),
            ..Bounds::default()
        };
        let store = store_with(db, Runs::Journal, bounds, StoreMetrics::default());
        assert_eq!(store.send(Lookup("old".into())).await.unwrap(), None);
        assert_eq!(store.send(Lookup("new".into())).await.unwrap(), Some(new));
        // Offered again, by a neighbour whose bound is longer: still too old.
        assert_eq!(store.send(CheckIn(old)).await.unwrap(), Ok(false));
        // The sweep takes it off the disk too.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while on_disk(&dir).len() != 1 {
            assert!(tokio::time::Instant::now() < deadline, "never swept");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn a_store_from_a_newer_herd_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Hill.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 2")
            .unwrap();
        let e = Database::open(dir.path(), "Hill", false)
            .err()
            .expect("refused");
        assert!(
            matches!(e, StoreError::NewerSchema { found: 2, .. }),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("schema 2; this one knows 1"), "{message}");
    }

    #[test]
    fn a_file_that_is_no_store_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Hill.db"), vec![b'x'; 4096]).unwrap();
        let e = Database::open(dir.path(), "Hill", false)
            .err()
            .expect("refused");
        assert!(matches!(e, StoreError::Damaged { .. }), "{e:?}");
        assert!(e.to_string().contains("move it away"), "{e}");
    }

    #[test]
    fn a_store_directory_that_cannot_be_made_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let e = Database::open(&file.join("data"), "Hill", false)
            .err()
            .expect("refused");
        assert!(matches!(e, StoreError::CreateDir { .. }), "{e:?}");
        assert!(e.to_string().contains("not-a-dir"), "{e}");
    }
}
