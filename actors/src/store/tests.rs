//! The store's actor behaviour: which records it keeps, and which it hands on as floods.

use super::*;
use crate::test_support::{collector, record};

#[actix::test]
async fn only_records_newer_than_the_held_one_are_kept_and_flooded() {
    let (floods, mut flooded) = collector::<Flood>();
    let store = LocationStore::new(floods).start();

    let first = record("Hill", "IAMAT kiwi +1+1 20");
    assert!(store.send(CheckIn(first.clone())).await.unwrap());
    let flood = flooded.recv().await.expect("a flood");
    assert_eq!(
        (flood.record, flood.from, flood.seen),
        (first, None, vec![])
    );

    // Older than what is held, from a client or from a neighbour: kept nowhere, sent nowhere.
    assert!(!store
        .send(CheckIn(record("Hill", "IAMAT kiwi +5+5 19")))
        .await
        .unwrap());
    store.do_send(Merge {
        record: record("Jaquez", "IAMAT kiwi +1+1 18"),
        from: "Jaquez".into(),
        seen: Vec::new(),
    });

    // Newer, from Smith, which sent it to Campbell too: flooded on with what it came with.
    let merged = record("Campbell", "IAMAT kiwi +7+7 30");
    let seen: Vec<Arc<str>> = vec!["Smith".into(), "Campbell".into()];
    store.do_send(Merge {
        record: merged.clone(),
        from: "Smith".into(),
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
async fn a_neighbours_digest_gets_back_what_it_lacks() {
    let (floods, _flooded) = collector::<Flood>();
    let store = LocationStore::new(floods).start();
    let kiwi = record("Hill", "IAMAT kiwi +1+1 20");
    let pear = record("Hill", "IAMAT pear +1+1 20");
    store.send(CheckIn(kiwi.clone())).await.unwrap();
    store.send(CheckIn(pear.clone())).await.unwrap();

    let held = store.send(Fingerprints).await.unwrap();
    assert_eq!(held.len(), 2);
    let pear_only = held
        .into_iter()
        .filter(|(client, _)| &**client == "pear")
        .map(|(client, fingerprint)| (Box::from(&*client), fingerprint))
        .collect();
    let missing = store.send(Missing(pear_only)).await.unwrap();
    assert_eq!(missing, vec![kiwi.at_line_shared()]);
}
