//! Actor-level tests: a started `PlacesFetcher` against the fake Google (`fake.rs`).

use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use serde_json::Value;

use super::fake::{self, FakeGoogle, Mode};
use super::{ApiKey, CacheSettings, Nearby, NearbyQuery, PlacesFetcher, PlacesSettings, Provider};

pub(super) const KEY: &str = "test-key/with+odd&chars=";

/// The defaults of `herd.toml`: the cache on, eight calls at once.
pub(super) fn settings(provider: Provider, base_url: String, timeout: Duration) -> PlacesSettings {
    PlacesSettings {
        provider,
        base_url,
        api_key: Some(ApiKey::new(KEY)),
        timeout,
        cache: CacheSettings::default(),
        max_concurrent: 8,
    }
}

pub(super) fn fetcher(provider: Provider, base_url: String) -> Addr<PlacesFetcher> {
    PlacesFetcher::new(settings(provider, base_url, Duration::from_secs(5))).start()
}

/// `WHATSAT kiwi.cs.ucla.edu 10 <bound>` for a client at `+34.068930-118.445127`.
pub(super) fn ucla(bound: usize) -> Nearby {
    Nearby(NearbyQuery {
        lat: 34.06893,
        lng: -118.445127,
        location_param: "34.068930,-118.445127".into(),
        radius_m: 10_000.0,
        radius_param: "10000".into(),
        bound,
    })
}

/// A question `n` kilometres or so north of UCLA: no two share a cache key.
pub(super) fn north_of_ucla(n: usize, bound: usize) -> Nearby {
    let lat = 34.06893 + 0.01 * n as f64;
    Nearby(NearbyQuery {
        lat,
        location_param: format!("{lat:.6},-118.445127"),
        ..ucla(bound).0
    })
}

pub(super) async fn ask(fetcher: &Addr<PlacesFetcher>, bound: usize) -> (String, Value) {
    let text = fetcher.send(ucla(bound)).await.unwrap();
    let json = serde_json::from_str(&text).unwrap();
    (text.to_string(), json)
}

/// Asks with a timeout of `timeout`, checks the answer came well before the test's own
/// patience ran out, and returns the reply.
async fn ask_failing(provider: Provider, base_url: String, timeout: Duration) -> (String, Value) {
    let fetcher = PlacesFetcher::new(settings(provider, base_url, timeout)).start();
    let started = Instant::now();
    let answer = ask(&fetcher, 5).await;
    assert!(
        started.elapsed() < timeout + Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    answer
}

fn assert_failure(text: &str, json: &Value, status: &str, message_part: &str) {
    assert_eq!(json["status"], status, "{text}");
    assert_eq!(json["results"], Value::Array(vec![]), "{text}");
    assert_eq!(json["html_attributions"], Value::Array(vec![]), "{text}");
    let message = json["error_message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
    assert!(!text.contains("test-key"), "the key leaked: {text}");
}

#[actix::test]
async fn google_results_are_cut_to_the_bound_with_number_text_kept() {
    let google = FakeGoogle::start(Mode::Ok { results: 8 });
    let (text, json) = ask(&fetcher(Provider::Google, google.base_url()), 3).await;
    assert_eq!(json["status"], "OK");
    assert_eq!(json["results"].as_array().unwrap().len(), 3);
    assert!(text.contains("\"rating\" : 4.50,"), "{text}");
    assert!(text.contains("\"lng\" : -118.4451270000002"), "{text}");
}

#[actix::test]
async fn google_gets_metres_a_plain_location_and_the_encoded_key() {
    let google = FakeGoogle::start(Mode::Ok { results: 1 });
    let (text, _) = ask(&fetcher(Provider::Google, google.base_url()), 1).await;
    let requests = google.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/maps/api/place/nearbysearch/json")
    );
    assert_eq!(
        request.query,
        "location=34.068930,-118.445127&radius=10000&key=test-key%2Fwith%2Bodd%26chars%3D"
    );
    assert_eq!(request.param("key").as_deref(), Some(KEY));
    assert!(!text.contains("test-key"), "{text}");
}

#[actix::test]
async fn google_http_error_is_an_upstream_error_reply() {
    let google = FakeGoogle::start(Mode::Status(500));
    let (text, json) =
        ask_failing(Provider::Google, google.base_url(), Duration::from_secs(5)).await;
    assert_failure(&text, &json, "UPSTREAM_ERROR", "HTTP 500");
}

#[actix::test]
async fn google_body_that_is_not_json_is_a_bad_response_reply() {
    let google = FakeGoogle::start(Mode::BadJson);
    let (text, json) =
        ask_failing(Provider::Google, google.base_url(), Duration::from_secs(5)).await;
    assert_failure(&text, &json, "UPSTREAM_BAD_RESPONSE", "not JSON");
}

#[actix::test]
async fn google_body_without_results_is_a_bad_response_reply() {
    let google = FakeGoogle::start(Mode::NoResults);
    let (text, json) =
        ask_failing(Provider::Google, google.base_url(), Duration::from_secs(5)).await;
    assert_failure(&text, &json, "UPSTREAM_BAD_RESPONSE", "no results");
}

#[actix::test]
async fn a_hanging_google_is_a_timeout_reply_after_the_timeout() {
    let google = FakeGoogle::start(Mode::Hang);
    let (text, json) = ask_failing(
        Provider::Google,
        google.base_url(),
        Duration::from_millis(300),
    )
    .await;
    assert_failure(&text, &json, "UPSTREAM_TIMEOUT", "within 300ms");
    assert_eq!(google.count(), 1);
}

#[actix::test]
async fn nothing_listening_is_an_unavailable_reply() {
    let (text, json) = ask_failing(
        Provider::Google,
        fake::unreachable_base_url(),
        Duration::from_secs(5),
    )
    .await;
    assert_failure(&text, &json, "UPSTREAM_UNAVAILABLE", "could not connect");
}

#[actix::test]
async fn a_failed_tls_handshake_is_an_unavailable_reply() {
    // The fake speaks plain HTTP, so a TLS client gets no handshake: this runs the rustls
    // connector (no panic for want of a crypto provider) and its failure path.
    let google = FakeGoogle::start(Mode::Ok { results: 1 });
    let https = google.base_url().replace("http://", "https://");
    let (text, json) = ask_failing(Provider::Google, https, Duration::from_secs(5)).await;
    assert_failure(&text, &json, "UPSTREAM_UNAVAILABLE", "127.0.0.1");
}

#[actix::test]
async fn googles_refusal_passes_through() {
    let google = FakeGoogle::start(Mode::Denied);
    let (text, json) = ask(&fetcher(Provider::Google, google.base_url()), 5).await;
    assert_failure(&text, &json, "REQUEST_DENIED", fake::DENIED_MESSAGE);
}

#[actix::test]
async fn without_a_key_nothing_is_sent() {
    let google = FakeGoogle::start(Mode::Ok { results: 1 });
    let mut no_key = settings(Provider::Google, google.base_url(), Duration::from_secs(5));
    no_key.api_key = None;
    let (text, json) = ask(&PlacesFetcher::new(no_key).start(), 5).await;
    assert_failure(&text, &json, "REQUEST_DENIED", "no API key");
    assert_eq!(google.count(), 0);
}

#[actix::test]
async fn several_questions_are_in_flight_at_once() {
    let google = FakeGoogle::start(Mode::Hang);
    let fetcher = PlacesFetcher::new(settings(
        Provider::Google,
        google.base_url(),
        Duration::from_secs(3),
    ))
    .start();
    let pending: Vec<_> = (0..3).map(|n| fetcher.send(north_of_ucla(n, 1))).collect();
    // All three reach the fake although none has been answered.
    let deadline = Instant::now() + Duration::from_secs(2);
    while google.count() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(google.count(), 3);
    drop(pending);
}

#[actix::test]
async fn a_slow_google_within_the_timeout_still_answers() {
    let google = FakeGoogle::start(Mode::Delay(Duration::from_millis(400)));
    let fetcher = fetcher(Provider::Google, google.base_url());
    let answers =
        futures::future::join_all((0..3).map(|n| fetcher.send(north_of_ucla(n, 2)))).await;
    for answer in answers {
        let json: Value = serde_json::from_str(&answer.unwrap()).unwrap();
        assert_eq!(json["results"].as_array().unwrap().len(), 2);
    }
    assert_eq!(google.count(), 3);
}

#[actix::test]
async fn google_new_is_asked_by_post_and_translated() {
    let google = FakeGoogle::start(Mode::Ok { results: 6 });
    let (text, json) = ask(&fetcher(Provider::GoogleNew, google.base_url()), 4).await;
    assert_eq!(json["status"], "OK");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["name"], "Fake Place 0");
    assert_eq!(results[0]["place_id"], "fake-place-0");
    assert_eq!(results[0]["vicinity"], "0 Fake Street, Los Angeles");
    assert_eq!(results[0]["user_ratings_total"], 10);
    assert!(text.contains("\"rating\" : 4.50,"), "{text}");
    assert!(text.contains("\"lat\" : 34.0689300,"), "{text}");

    let request = &google.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/places:searchNearby")
    );
    assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    // Every field the translation reads is asked for (Google sends no others).
    let mask: Vec<&str> = request
        .header("X-Goog-FieldMask")
        .unwrap()
        .split(',')
        .collect();
    for field in [
        "places.id",
        "places.displayName",
        "places.location",
        "places.types",
        "places.rating",
        "places.userRatingCount",
        "places.businessStatus",
        "places.shortFormattedAddress",
        "places.formattedAddress",
    ] {
        assert!(mask.contains(&field), "{field} missing from {mask:?}");
    }
    assert!(request
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["maxResultCount"], 4);
    let circle = &body["locationRestriction"]["circle"];
    assert_eq!(circle["radius"], 10000);
    assert_eq!(circle["center"]["latitude"], 34.06893);
    assert_eq!(circle["center"]["longitude"], -118.445127);
    assert!(
        request
            .body
            .contains(r#""latitude":34.068930,"longitude":-118.445127"#),
        "{}",
        request.body
    );
    assert!(!text.contains("test-key"), "{text}");
}

#[actix::test]
async fn google_new_refusal_keeps_googles_message() {
    let google = FakeGoogle::start(Mode::Denied);
    let (text, json) = ask(&fetcher(Provider::GoogleNew, google.base_url()), 5).await;
    assert_failure(&text, &json, "REQUEST_DENIED", fake::DENIED_MESSAGE);
}

#[actix::test]
async fn google_new_failures_are_failure_replies() {
    let google = FakeGoogle::start(Mode::Status(503));
    let (text, json) = ask_failing(
        Provider::GoogleNew,
        google.base_url(),
        Duration::from_secs(5),
    )
    .await;
    assert_failure(&text, &json, "UPSTREAM_ERROR", "HTTP 503");
    let google = FakeGoogle::start(Mode::Hang);
    let (text, json) = ask_failing(
        Provider::GoogleNew,
        google.base_url(),
        Duration::from_millis(300),
    )
    .await;
    assert_failure(&text, &json, "UPSTREAM_TIMEOUT", "within");
}

#[actix::test]
async fn embedded_answers_in_googles_layout() {
    let fetcher = fetcher(Provider::Embedded, String::new());
    let (text, json) = ask(&fetcher, 2).await;
    assert_eq!(json["results"].as_array().unwrap().len(), 2);
    assert!(
        text.starts_with("{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\n   ],\n   \"status\" : \"OK\"\n}"),
        "{text}"
    );
    assert!(!text.contains("\n\n"));
}

#[actix::test]
async fn a_server_that_closes_each_connection_after_answering_answers_every_question() {
    for provider in [Provider::Google, Provider::GoogleNew] {
        let google = FakeGoogle::start(Mode::OneShot);
        let mut settings = settings(provider, google.base_url(), Duration::from_secs(5));
        settings.cache.ttl = Duration::ZERO;
        let fetcher = PlacesFetcher::new(settings).start();
        // Waves of questions for different places, so the client's pool has connections
        // the server has already closed when the next wave goes out.
        for wave in 0..5 {
            let questions = (0..20).map(|n| fetcher.send(north_of_ucla(wave * 20 + n, 1)));
            for reply in futures::future::join_all(questions).await {
                let json: Value = serde_json::from_str(&reply.unwrap()).unwrap();
                assert_eq!(json["status"], "OK", "{provider:?}, wave {wave}: {json}");
            }
        }
    }
}

#[actix::test]
async fn an_answer_is_never_rewritten_to_hide_a_key() {
    let google = FakeGoogle::start(Mode::Ok { results: 2 });
    let mut short_key = settings(Provider::Google, google.base_url(), Duration::from_secs(5));
    short_key.api_key = Some(ApiKey::new("K"));
    let (text, json) = ask(&PlacesFetcher::new(short_key).start(), 2).await;
    assert_eq!(json["status"], "OK", "{text}");
    assert!(!text.contains("redacted"), "{text}");
    let (plain, _) = ask(&fetcher(Provider::Google, google.base_url()), 2).await;
    assert_eq!(text, plain, "the same answer whatever the key");
}

#[actix::test]
async fn an_answer_that_quotes_the_key_is_refused_whole() {
    for provider in [Provider::Google, Provider::GoogleNew] {
        let google = FakeGoogle::start(Mode::QuotesKey);
        let (text, json) = ask(&fetcher(provider, google.base_url()), 2).await;
        assert_failure(&text, &json, "UPSTREAM_BAD_RESPONSE", "quotes the API key");
        assert!(!text.contains(KEY), "{text}");
    }
}
