//! Actor-level tests of what keeps Google's bill down: the cache, shared calls and the cap
//! on calls in flight, against the fake Google (`fake.rs`). No assertion is about time:
//! only counts, and replies that arrive.

use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::join_all;
use serde_json::Value;

use super::fake::{FakeGoogle, Mode};
use super::fetcher::CacheClock;
use super::fetcher::{GetPlacesStats, PlacesStats};
use super::tests::{ask, fetcher, north_of_ucla, settings, ucla};
use super::{LastFailure, Nearby, NearbyQuery, PlacesFetcher, PlacesSettings, Provider};
use crate::metrics::PlacesMetrics;

const SLOW: Mode = Mode::Delay(Duration::from_millis(300));

fn start(settings: PlacesSettings) -> Addr<PlacesFetcher> {
    PlacesFetcher::new(settings).start()
}

fn google_new(google: &FakeGoogle) -> PlacesSettings {
    settings(
        Provider::GoogleNew,
        google.base_url(),
        Duration::from_secs(30),
    )
}

async fn stats(fetcher: &Addr<PlacesFetcher>) -> PlacesStats {
    fetcher.send(GetPlacesStats).await.unwrap()
}

/// Sends every question at once and returns the replies, parsed, in order.
async fn ask_all(fetcher: &Addr<PlacesFetcher>, questions: Vec<Nearby>) -> Vec<Value> {
    let replies = join_all(questions.into_iter().map(|q| fetcher.send(q))).await;
    replies
        .into_iter()
        .map(|reply| serde_json::from_str(&reply.unwrap()).unwrap())
        .collect()
}

fn result_count(reply: &Value) -> usize {
    reply["results"].as_array().map_or(0, Vec::len)
}

fn request_bound(google: &FakeGoogle, n: usize) -> Value {
    let body: Value = serde_json::from_str(&google.requests()[n].body).unwrap();
    body["maxResultCount"].clone()
}

#[actix::test]
async fn a_hundred_concurrent_questions_make_one_upstream_call() {
    let google = FakeGoogle::start(SLOW);
    let fetcher = start(google_new(&google));
    let replies = ask_all(&fetcher, (0..100).map(|_| ucla(5)).collect()).await;
    for reply in &replies {
        assert_eq!(reply["status"], "OK");
        assert_eq!(result_count(reply), 3, "the slow fake has three places");
    }
    assert_eq!(google.count(), 1);
    let expected = PlacesStats {
        hits: 0,
        coalesced: 99,
        misses: 1,
        upstream_calls: 1,
        cached: 1,
    };
    assert_eq!(stats(&fetcher).await, expected);

    // Later questions are hits, from the same client and from one a few metres away
    // (the same cell at 4 decimal places); the call went out with the first one's place.
    let (_, json) = ask(&fetcher, 2).await;
    assert_eq!(result_count(&json), 2);
    let neighbour = Nearby(NearbyQuery {
        lat: 34.06894,
        lng: -118.44509,
        location_param: "34.06894,-118.44509".into(),
        ..ucla(5).0
    });
    let reply: Value = serde_json::from_str(&fetcher.send(neighbour).await.unwrap()).unwrap();
    assert_eq!(result_count(&reply), 3);
    assert_eq!(google.count(), 1);
    assert_eq!(stats(&fetcher).await.hits, 2);
    assert!(google.requests()[0]
        .body
        .contains(r#""latitude":34.068930,"longitude":-118.445127"#));
}

#[actix::test]
async fn a_second_wave_after_the_ttl_makes_one_more_call() {
    let google = FakeGoogle::start(SLOW);
    let settings = google_new(&google);
    let ttl = settings.cache.ttl;
    let clock = CacheClock::default();
    let fetcher = PlacesFetcher::with_clock(settings, clock.clone()).start();
    ask_all(&fetcher, (0..100).map(|_| ucla(5)).collect()).await;
    assert_eq!(google.count(), 1);
    // Half the TTL on, by the fetcher's clock: still fresh. Half again: stale.
    clock.advance(ttl / 2);
    ask_all(&fetcher, (0..100).map(|_| ucla(5)).collect()).await;
    assert_eq!(google.count(), 1, "answered from the cache within its TTL");
    clock.advance(ttl / 2);
    let replies = ask_all(&fetcher, (0..100).map(|_| ucla(5)).collect()).await;
    assert!(replies.iter().all(|r| r["status"] == "OK"));
    assert_eq!(google.count(), 2);
    assert_eq!(stats(&fetcher).await.misses, 2);
}

#[actix::test]
async fn a_larger_bound_fetches_again_and_then_serves_the_smaller_ones() {
    let google = FakeGoogle::start(Mode::Ok { results: 20 });
    let fetcher = start(google_new(&google));
    let mut texts = Vec::new();
    // (bound asked, upstream calls after it)
    for (bound, calls) in [(2, 1), (1, 1), (5, 2), (3, 2), (5, 2), (6, 3)] {
        let (text, json) = ask(&fetcher, bound).await;
        assert_eq!(result_count(&json), bound);
        assert_eq!(google.count(), calls, "after bound {bound}");
        texts.push(text);
    }
    assert_eq!(
        texts[2], texts[4],
        "a hit reads exactly as the miss it came from"
    );
    assert_eq!(request_bound(&google, 0), 2);
    assert_eq!(request_bound(&google, 1), 5);
    assert_eq!(request_bound(&google, 2), 6);
    let stats = stats(&fetcher).await;
    assert_eq!((stats.hits, stats.misses, stats.cached), (3, 3, 1));
}

#[actix::test]
async fn a_question_joins_a_call_in_flight_only_if_its_bound_is_covered() {
    let google = FakeGoogle::start(SLOW);
    let fetcher = start(google_new(&google));
    // The bound 5 cannot wait on the call for 2: two calls.
    let replies = ask_all(&fetcher, vec![ucla(2), ucla(5)]).await;
    assert_eq!(replies.iter().map(result_count).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(google.count(), 2);

    let fetcher = start(google_new(&google));
    // The bound 2 waits on the call for 5: one more call.
    let replies = ask_all(&fetcher, vec![ucla(5), ucla(2)]).await;
    assert_eq!(replies.iter().map(result_count).collect::<Vec<_>>(), [3, 2]);
    assert_eq!(google.count(), 3);
}

#[actix::test]
async fn the_legacy_api_is_called_once_for_every_bound() {
    // Its one page holds up to 20 places whatever the bound, so all of it is kept.
    let google = FakeGoogle::start(Mode::Ok { results: 20 });
    let fetcher = fetcher(Provider::Google, google.base_url());
    for bound in [1, 20, 7] {
        let (_, json) = ask(&fetcher, bound).await;
        assert_eq!(result_count(&json), bound);
    }
    assert_eq!(google.count(), 1);
}

#[actix::test]
async fn zero_results_are_kept_and_failures_are_not() {
    let google = FakeGoogle::start(Mode::Ok { results: 0 });
    let fetcher = start(google_new(&google));
    for _ in 0..2 {
        let (_, json) = ask(&fetcher, 5).await;
        assert_eq!(json["status"], "ZERO_RESULTS");
    }
    assert_eq!(google.count(), 1);

    for mode in [Mode::Status(500), Mode::Denied, Mode::BadJson] {
        let google = FakeGoogle::start(mode);
        let fetcher = start(google_new(&google));
        for _ in 0..2 {
            let (_, json) = ask(&fetcher, 5).await;
            assert_ne!(json["status"], "OK");
        }
        assert_eq!(google.count(), 2, "a failure is asked again");
        assert_eq!(stats(&fetcher).await.cached, 0);
    }
}

#[actix::test]
async fn a_zero_ttl_keeps_nothing_but_concurrent_questions_still_share_a_call() {
    let google = FakeGoogle::start(SLOW);
    let mut uncached = google_new(&google);
    uncached.cache.ttl = Duration::ZERO;
    let fetcher = start(uncached);
    ask_all(&fetcher, (0..10).map(|_| ucla(5)).collect()).await;
    assert_eq!(google.count(), 1);
    ask(&fetcher, 5).await;
    assert_eq!(google.count(), 2);
    assert_eq!(stats(&fetcher).await.cached, 0);
}

#[actix::test]
async fn a_slow_upstream_never_has_more_calls_open_than_the_cap() {
    let google = FakeGoogle::start(SLOW);
    let mut capped = google_new(&google);
    capped.max_concurrent = 2;
    let fetcher = start(capped);
    // Ten places far apart: ten calls, none shared.
    let replies = ask_all(&fetcher, (0..10).map(|n| north_of_ucla(n, 5)).collect()).await;
    for reply in &replies {
        assert_eq!(
            reply["status"], "OK",
            "a queued question still gets its answer"
        );
        assert_eq!(result_count(reply), 3);
    }
    assert_eq!(google.count(), 10);
    assert_eq!(google.max_in_flight(), 2);
    assert_eq!(stats(&fetcher).await.upstream_calls, 10);
}

#[actix::test]
async fn a_hanging_upstream_holds_one_call_per_slot_and_every_question_still_gets_a_reply() {
    let google = FakeGoogle::start(Mode::Hang);
    let mut capped = settings(
        Provider::GoogleNew,
        google.base_url(),
        Duration::from_millis(300),
    );
    capped.max_concurrent = 1;
    let fetcher = start(capped);
    let replies = ask_all(&fetcher, (0..3).map(|n| north_of_ucla(n, 5)).collect()).await;
    for reply in &replies {
        assert_eq!(reply["status"], "UPSTREAM_TIMEOUT", "{reply}");
    }
    assert_eq!(google.max_in_flight(), 1);
    assert_eq!(stats(&fetcher).await.misses, 3);
}

#[actix::test]
async fn the_embedded_provider_is_not_cached_or_counted() {
    let fetcher = fetcher(Provider::Embedded, String::new());
    ask(&fetcher, 3).await;
    ask(&fetcher, 3).await;
    assert_eq!(stats(&fetcher).await, PlacesStats::default());
}

/// `pairs` as a map, for the counts of one family of metrics.
fn counts<'a>(
    pairs: impl Iterator<Item = (&'a str, u64)>,
) -> std::collections::HashMap<&'a str, u64> {
    pairs.collect()
}

#[actix::test]
async fn answers_are_counted_by_where_they_came_from_and_each_call_is_timed() {
    let google = FakeGoogle::start(SLOW);
    let metrics = PlacesMetrics::default();
    let fetcher = PlacesFetcher::new(google_new(&google))
        .with_metrics(metrics.clone())
        .start();
    ask_all(&fetcher, (0..10).map(|_| ucla(5)).collect()).await;
    let _ = ask(&fetcher, 5).await;
    let answers = counts(metrics.answers());
    assert_eq!(answers["upstream_call"], 1);
    assert_eq!(answers["shared_call"], 9);
    assert_eq!(answers["cache_hit"], 1);
    assert_eq!(answers["embedded"], 0);
    let calls = counts(metrics.upstream_calls());
    assert_eq!(calls["OK"], 1, "one call, timed under its answer's status");
    assert_eq!(calls.values().sum::<u64>(), 1);
    assert_eq!(counts(metrics.whatsats().by_status())["OK"], 11);
}

#[actix::test]
async fn a_cached_zero_results_answer_is_counted_as_zero_results() {
    let google = FakeGoogle::start(Mode::Ok { results: 0 });
    let metrics = PlacesMetrics::default();
    let fetcher = PlacesFetcher::new(google_new(&google))
        .with_metrics(metrics.clone())
        .start();
    for _ in 0..2 {
        let (_, json) = ask(&fetcher, 5).await;
        assert_eq!(json["status"], "ZERO_RESULTS");
    }
    assert_eq!(google.count(), 1, "the second was a hit");
    let whatsats = counts(metrics.whatsats().by_status());
    assert_eq!((whatsats["ZERO_RESULTS"], whatsats["OK"]), (2, 0));
}

#[actix::test]
async fn a_failed_call_is_the_fetchers_last_failure() {
    let google = FakeGoogle::start(Mode::Status(500));
    let metrics = PlacesMetrics::default();
    let fetcher = PlacesFetcher::new(google_new(&google))
        .with_metrics(metrics.clone())
        .start();
    assert_eq!(fetcher.send(LastFailure).await.unwrap(), None);
    let (_, json) = ask(&fetcher, 5).await;
    assert_eq!(json["status"], "UPSTREAM_ERROR");
    let (_, what) = fetcher.send(LastFailure).await.unwrap().expect("a failure");
    assert_eq!(what, "places: UPSTREAM_ERROR: upstream returned HTTP 500");
    assert_eq!(counts(metrics.upstream_calls())["UPSTREAM_ERROR"], 1);
}
