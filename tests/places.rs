//! WHATSAT through `herd serve` against a fake Google started by the test.

mod common;

use common::*;
use herd_actors::places::fake::{unreachable_base_url, FakeGoogle, Mode};

const KEY: &str = "test-key-0123456789";

fn google_herd(base_url: &str, extra: &str) -> HerdFiles {
    HerdFiles::single(&format!(
        "[places]\nprovider = \"google\"\nbase_url = \"{base_url}\"\n{extra}"
    ))
}

/// Sends a WHATSAT for kiwi and checks that the reply opens with kiwi's AT line `at`;
/// returns the whole reply and its JSON.
fn whatsat_kiwi(c: &mut Conn, at: &str, request: &str) -> (String, serde_json::Value) {
    let reply = c.whatsat(request);
    let (line, json) = split_whatsat(&reply);
    assert_eq!(format!("{line}\n"), at);
    (reply, json)
}

fn check_in_kiwi(c: &mut Conn) -> String {
    c.line("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503")
}

#[test]
fn whatsat_asks_google_in_metres_and_cuts_results_to_the_bound() {
    let fake = FakeGoogle::start(Mode::Ok { results: 20 });
    let files = google_herd(&fake.base_url(), &format!("api_key = \"{KEY}\"\n"));
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let at = check_in_kiwi(&mut c);
    for (radius, bound, metres) in [
        ("10", 5, "10000"),
        ("2.5", 20, "2500"),
        ("0.0005", 1, "0.5"),
    ] {
        let (reply, json) = whatsat_kiwi(
            &mut c,
            &at,
            &format!("WHATSAT kiwi.cs.ucla.edu {radius} {bound}"),
        );
        assert_eq!(json["status"], "OK");
        assert_eq!(json["results"].as_array().unwrap().len(), bound);
        // Google's layout: three-space indent and " : ".
        assert!(reply.contains("\n   \"results\" : ["), "{reply}");
        assert!(!reply.contains(KEY));
        let req = fake.requests().pop().expect("a request upstream");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/maps/api/place/nearbysearch/json");
        assert_eq!(req.param("radius").as_deref(), Some(metres));
        assert_eq!(
            req.param("location").as_deref(),
            Some("34.068930,-118.445127")
        );
        assert_eq!(req.param("key").as_deref(), Some(KEY));
    }
    let log = std::fs::read_to_string(files.log_path("Hill")).unwrap_or_default();
    assert!(!log.contains(KEY), "the key leaked into the log");
}

#[test]
fn the_key_comes_from_the_environment_when_the_file_has_none() {
    let fake = FakeGoogle::start(Mode::Ok { results: 1 });
    let files = google_herd(&fake.base_url(), "");
    let _server = Server::start(
        &files.config,
        "Hill",
        files.addr("Hill"),
        &[("GOOGLE_PLACES_API_KEY", "from-env")],
    );
    let mut c = Conn::open(files.addr("Hill"));
    check_in_kiwi(&mut c);
    c.whatsat("WHATSAT kiwi.cs.ucla.edu 1 1");
    assert_eq!(fake.requests()[0].param("key").as_deref(), Some("from-env"));
}

#[test]
fn every_upstream_failure_still_gets_a_reply_in_the_same_shape() {
    let hang = FakeGoogle::start(Mode::Hang);
    let error = FakeGoogle::start(Mode::Status(500));
    let bad = FakeGoogle::start(Mode::BadJson);
    let cases = [
        (error.base_url(), "UPSTREAM_ERROR"),
        (bad.base_url(), "UPSTREAM_BAD_RESPONSE"),
        (hang.base_url(), "UPSTREAM_TIMEOUT"),
        (unreachable_base_url(), "UPSTREAM_UNAVAILABLE"),
    ];
    for (base_url, status) in cases {
        let files = google_herd(
            &base_url,
            &format!("api_key = \"{KEY}\"\ntimeout_ms = 300\n"),
        );
        let _server = files.serve("Hill");
        let mut c = Conn::open(files.addr("Hill"));
        let at = check_in_kiwi(&mut c);
        let (reply, json) = whatsat_kiwi(&mut c, &at, "WHATSAT kiwi.cs.ucla.edu 10 5");
        assert_eq!(json["status"], status, "{reply}");
        assert_eq!(json["results"].as_array().map(Vec::len), Some(0));
        assert!(json["error_message"].is_string());
        assert!(!reply.contains(KEY));
        // The connection is still usable afterwards.
        assert!(c.line("IAMAT after +1+1 1").starts_with("AT Hill"));
    }
}

fn google_new_herd(base_url: &str, extra: &str) -> HerdFiles {
    HerdFiles::single(&format!(
        "[places]\nprovider = \"google-new\"\nbase_url = \"{base_url}\"\napi_key = \"{KEY}\"\n{extra}"
    ))
}

/// Opens one connection per line, sends every line before reading any reply, and returns
/// the replies, parsed, in order: the server has them all in hand at once.
fn whatsat_at_once(addr: std::net::SocketAddr, lines: &[String]) -> Vec<serde_json::Value> {
    let mut conns: Vec<Conn> = lines.iter().map(|_| Conn::open(addr)).collect();
    for (c, line) in conns.iter_mut().zip(lines) {
        c.send(format!("{line}\n").as_bytes());
    }
    conns
        .iter_mut()
        .map(|c| {
            let reply = String::from_utf8(c.read_until(b"\n\n")).expect("utf8");
            split_whatsat(&reply).1
        })
        .collect()
}

fn results(json: &serde_json::Value) -> usize {
    json["results"].as_array().map_or(0, Vec::len)
}

#[test]
fn google_new_is_asked_by_post_and_answers_in_the_nearby_search_shape() {
    let fake = FakeGoogle::start(Mode::Ok { results: 20 });
    let files = google_new_herd(&fake.base_url(), "");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let at = check_in_kiwi(&mut c);
    let (reply, json) = whatsat_kiwi(&mut c, &at, "WHATSAT kiwi.cs.ucla.edu 10 5");
    assert_eq!(json["status"], "OK");
    assert_eq!(results(&json), 5);
    let first = &json["results"][0];
    for field in ["name", "place_id", "vicinity", "types", "rating"] {
        assert!(!first[field].is_null(), "{field} missing: {reply}");
    }
    assert!(first["geometry"]["location"]["lat"].is_number(), "{reply}");
    assert!(reply.contains("\n   \"results\" : ["), "{reply}");
    assert!(!reply.contains(KEY));

    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/places:searchNearby")
    );
    assert_eq!(req.header("X-Goog-Api-Key"), Some(KEY));
    assert!(req
        .header("X-Goog-FieldMask")
        .is_some_and(|mask| mask.contains("places.displayName")));
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("a JSON body");
    assert_eq!(body["maxResultCount"], 5);
    let circle = &body["locationRestriction"]["circle"];
    assert_eq!(circle["radius"], 10000);
    assert!(
        req.body
            .contains(r#""latitude":34.068930,"longitude":-118.445127"#),
        "{}",
        req.body
    );

    // A smaller bound is served from the cache; a larger one asks again.
    assert_eq!(
        results(&split_whatsat(&c.whatsat("WHATSAT kiwi.cs.ucla.edu 10 3")).1),
        3
    );
    assert_eq!(fake.count(), 1);
    assert_eq!(
        results(&split_whatsat(&c.whatsat("WHATSAT kiwi.cs.ucla.edu 10 8")).1),
        8
    );
    assert_eq!(fake.count(), 2);
    let body: serde_json::Value = serde_json::from_str(&fake.requests()[1].body).unwrap();
    assert_eq!(body["maxResultCount"], 8);
}

#[test]
fn a_hundred_clients_asking_at_once_cost_one_call_and_the_ttl_one_more() {
    let fake = FakeGoogle::start(Mode::Delay(std::time::Duration::from_secs(1)));
    let files = google_new_herd(&fake.base_url(), "cache_ttl_s = 1\n");
    let _server = files.serve("Hill");
    check_in_kiwi(&mut Conn::open(files.addr("Hill")));
    let lines = vec!["WHATSAT kiwi.cs.ucla.edu 10 5".to_string(); 100];
    let replies = whatsat_at_once(files.addr("Hill"), &lines);
    // The answer was stored before its replies were sent: its TTL runs out no sooner than
    // one TTL from here, less the time it took to send them.
    let stored_by = std::time::Instant::now();
    assert_eq!(replies.len(), 100);
    for json in &replies {
        assert_eq!(json["status"], "OK", "{json}");
        assert_eq!(results(json), 3, "the slow fake has three places");
    }
    assert_eq!(
        fake.count(),
        1,
        "a hundred questions at once share one call"
    );
    // Asked again and again, the answer is fetched anew once the TTL has passed, and only
    // then: the cache served every question in between.
    let mut c = Conn::open(files.addr("Hill"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut from_cache, mut refetch_asked) = (0, std::time::Duration::ZERO);
    while fake.count() == 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the answer never went stale"
        );
        let asked = stored_by.elapsed();
        let (_, json) = split_whatsat(&c.whatsat("WHATSAT kiwi.cs.ucla.edu 10 5"));
        assert_eq!(results(&json), 3, "{json}");
        if fake.count() == 1 {
            from_cache += 1;
        } else {
            refetch_asked = asked;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(fake.count(), 2);
    // A cache that kept nothing (or too briefly) also ends the loop, at once: the answer
    // must have been kept for its TTL (1 s; 250 ms allowed for sending the 100 replies).
    assert!(
        refetch_asked >= std::time::Duration::from_millis(750),
        "fetched anew {refetch_asked:?} after it was stored, after {from_cache} asks from \
         the cache"
    );
}

#[test]
fn a_slow_google_never_has_more_calls_open_than_max_concurrent() {
    let fake = FakeGoogle::start(Mode::Delay(std::time::Duration::from_millis(300)));
    let files = google_new_herd(&fake.base_url(), "max_concurrent = 2\n");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    // Ten clients a kilometre or so apart: ten calls, none shared.
    let lines: Vec<String> = (0..10)
        .map(|i| {
            c.line(&format!(
                "IAMAT client{i} +{:.6}-118.445127 1621464827.5",
                34.0 + 0.01 * f64::from(i)
            ));
            format!("WHATSAT client{i} 10 5")
        })
        .collect();
    let replies = whatsat_at_once(files.addr("Hill"), &lines);
    for json in &replies {
        assert_eq!(
            json["status"], "OK",
            "a queued question still gets its answer: {json}"
        );
    }
    assert_eq!(fake.count(), 10);
    assert_eq!(fake.max_in_flight(), 2);
}
