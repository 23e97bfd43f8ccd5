//! Range reconciliation's lines: ranges, summaries, queries and answers round trip, and what is not one.

use super::*;

fn summaries(seed: u64) -> Vec<Summary> {
    (0..16)
        .map(|i| Summary {
            count: seed * 1000 + i * 37,
            sum: wire_hash(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i),
        })
        .collect()
}

#[test]
fn ranges_nest_by_nibbles_and_round_trip_as_text() {
    let a = Range::ROOT.child(0xa).unwrap();
    let a3 = a.child(3).unwrap();
    assert!(a3.contains(0xa3ff_0000_0000_0000));
    assert!(!a3.contains(0xa4ff_0000_0000_0000));
    assert!(Range::ROOT.contains(0));
    assert_eq!(a3.top(1), Some(0xa));
    assert_eq!(a3.top(3), None);
    assert_eq!(a.buckets(2), Some(0xa0..0xb0));
    let mut deepest = Range::ROOT;
    for _ in 0..16 {
        deepest = deepest.child(0xf).unwrap();
    }
    assert_eq!(deepest.child(0), None);
    assert!(deepest.contains(u64::MAX));
    for r in [Range::ROOT, a, a3, deepest] {
        let mut text = String::new();
        r.write(&mut text);
        assert_eq!(Range::parse(&text), Some(r), "{text}");
    }
    assert_eq!(Range::parse(""), None);
    assert_eq!(Range::parse("g"), None);
    assert_eq!(Range::parse("00000000000000000"), None);
}

#[test]
fn queries_and_answers_round_trip_with_hashes_cut_to_the_wire() {
    let wide = u64::MAX;
    let queries = [
        Query::Children {
            range: Range::ROOT,
            mine: summaries(1),
        },
        Query::Items {
            range: Range::ROOT.child(2).unwrap(),
            mine: vec![1, 2, wire_hash(wide)],
        },
        Query::Items {
            range: Range::ROOT.child(2).unwrap(),
            mine: vec![],
        },
    ];
    for q in queries {
        assert_eq!(Query::parse(&q.line()), Some(q.clone()), "{}", q.line());
    }
    let answers = [
        Answer::Children {
            range: Range::ROOT.child(7).unwrap(),
            children: (0..16)
                .map(|i| match i % 4 {
                    0 => Child::Same,
                    1 => Child::Items(vec![]),
                    2 => Child::Items(vec![5, 6]),
                    _ => Child::Split(summaries(i)),
                })
                .collect(),
        },
        Answer::Need {
            range: Range::ROOT,
            hashes: vec![9],
        },
    ];
    for a in answers {
        let line = a.line();
        assert_eq!(Answer::parse(&line), Some(a), "{line}");
    }
    let cut = Query::Items {
        range: Range::ROOT,
        mine: vec![wide],
    };
    assert_eq!(
        Query::parse(&cut.line()),
        Some(Query::Items {
            range: Range::ROOT,
            mine: vec![wire_hash(wide)]
        })
    );
}

#[test]
fn malformed_lines_are_not_queries_or_answers() {
    for line in [
        "FPS - AAAA",
        "FPS",
        "FPS x -",
        "ITEMS - AAAAAAA",
        "ITEMS - - extra",
        "FPR - = =",
        "NEED -",
        "AT Hill +0.000000001 a +1+1 1",
    ] {
        assert_eq!(Query::parse(line), None, "{line}");
        assert_eq!(Answer::parse(line), None, "{line}");
    }
    let too_long_count = format!("FPS - {}", URL_SAFE_NO_PAD.encode([0xffu8; 12]));
    assert_eq!(Query::parse(&too_long_count), None);
}

#[test]
fn summaries_add_and_remove_in_any_order() {
    let mut a = Summary::default();
    let mut b = Summary::default();
    for h in [1u64, u64::MAX, 77] {
        a.add(h);
    }
    for h in [77u64, 1, u64::MAX, 5] {
        b.add(h);
    }
    assert!(!a.matches(b));
    b.remove(5);
    assert!(a.matches(b));
}

#[test]
fn a_clients_key_is_xxh3_of_its_id_on_every_server() {
    // Pinned: the key space must be the same for every server of every build.
    assert_eq!(key_of("kiwi"), 16_135_674_514_933_945_134);
}
