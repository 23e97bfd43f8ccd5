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
        let reply = c.whatsat(&format!("WHATSAT kiwi.cs.ucla.edu {radius} {bound}"));
        let (line, json) = split_whatsat(&reply);
        assert_eq!(format!("{line}\n"), at);
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
        let reply = c.whatsat("WHATSAT kiwi.cs.ucla.edu 10 5");
        let (line, json) = split_whatsat(&reply);
        assert_eq!(format!("{line}\n"), at);
        assert_eq!(json["status"], status, "{reply}");
        assert_eq!(json["results"].as_array().map(Vec::len), Some(0));
        assert!(json["error_message"].is_string());
        assert!(!reply.contains(KEY));
        // The connection is still usable afterwards.
        assert!(c.line("IAMAT after +1+1 1").starts_with("AT Hill"));
    }
}
