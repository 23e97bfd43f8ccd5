//! The admin listener of real `herd serve` processes: exact counts read with a Prometheus
//! parser, link gauges through a neighbour's death and return, health while the store
//! loads and while the log cannot be written, `herd status`, and the live page's data.

mod common;

use common::metrics::{scrape, value};
use common::*;
use herd_actors::places::fake::{FakeGoogle, Mode};
use prometheus_parse::Scrape;

/// A series and the value it must have.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Asserts the value of each `(name, labels, expected)` series of `scrape`.
fn assert_series(server: &str, scrape: &Scrape, expected: &[Expected]) {
    for (name, labels, want) in expected {
        let got = value(scrape, name, labels);
        assert_eq!(got, *want, "{server}: {name}{labels:?}");
    }
}

#[test]
fn metrics_count_exactly_the_traffic_that_was_sent() {
    let google = FakeGoogle::start(Mode::Ok { results: 3 });
    let files = HerdFiles::with_admin(
        PAIR,
        &format!(
            "[places]\nprovider = \"google\"\nbase_url = \"{}\"\napi_key = \"k\"\n",
            google.base_url()
        ),
    );
    let _servers = start_herd_of(&files, PAIR);
    let mut c = Conn::open(files.addr("Hill"));
    let t = now_text();
    let kiwi = "kiwi +34.068930-118.445127";
    for (line, reply_starts) in [
        (format!("IAMAT {kiwi} {t}"), "AT Hill "),
        (format!("IAMAT pear +1+1 {t}"), "AT Hill "),
        (format!("IAMAT {kiwi} 1000"), "AT Hill "), // stale: older than the one held
        (format!("IAMAT {kiwi} 1001"), "AT Hill "), // stale again
        (format!("IAMAT {kiwi}"), "? "),            // no time
        ("HELLO there".to_owned(), "? "),
    ] {
        let reply = c.line(&line);
        assert!(reply.starts_with(reply_starts), "{line}: {reply}");
    }
    // A miss (one call to the fake), then a hit for the same place.
    for request in ["WHATSAT kiwi 10 5", "WHATSAT kiwi 10 3"] {
        let (_, json) = split_whatsat(&c.whatsat(request));
        assert_eq!(json["status"], "OK");
    }
    for request in ["WHATSAT nobody 10 5", "WHATSAT kiwi 99 5"] {
        assert!(c.whatsat_or_invalid(request).starts_with("? "));
    }
    assert_eq!(google.count(), 1);

    // Jaquez counts the floods once they have arrived; Hill counted everything before it
    // answered.
    let jaquez = files.admin("Jaquez");
    let received = &[("neighbour", "Hill")];
    wait_for("Jaquez to get both floods", || {
        let n = value(&scrape(jaquez), "herd_floods_received_total", received);
        (n >= 2.0).then_some(())
    });
    let hill = scrape(files.admin("Hill"));
    let outcome = |o| [("outcome", o)];
    let status = |s| [("status", s)];
    assert_series(
        "Hill",
        &hill,
        &[
            ("herd_check_ins_total", &outcome("new"), 2.0),
            ("herd_check_ins_total", &outcome("not_newer"), 2.0),
            ("herd_check_ins_total", &outcome("invalid"), 1.0),
            ("herd_check_ins_total", &outcome("not_stored"), 0.0),
            ("herd_whatsats_total", &status("OK"), 2.0),
            ("herd_whatsats_total", &status("ZERO_RESULTS"), 0.0),
            ("herd_whatsats_total", &status("unknown_client"), 1.0),
            ("herd_whatsats_total", &status("invalid"), 1.0),
            ("herd_invalid_lines_total", &[], 4.0),
            ("herd_places_answers_total", &outcome("upstream_call"), 1.0),
            ("herd_places_answers_total", &outcome("cache_hit"), 1.0),
            ("herd_places_answers_total", &outcome("shared_call"), 0.0),
            ("herd_places_answers_total", &outcome("embedded"), 0.0),
            ("herd_places_upstream_duration_seconds", &status("OK"), 1.0),
            (
                "herd_places_upstream_duration_seconds",
                &status("UPSTREAM_TIMEOUT"),
                0.0,
            ),
            ("herd_records", &[], 2.0),
            // Each new check-in was acknowledged after its own commit: one record each.
            ("herd_store_commit_duration_seconds", &[], 2.0),
            ("herd_store_committed_records_total", &[], 2.0),
            ("herd_store_commit_failures_total", &[], 0.0),
            ("herd_floods_sent_total", &[("neighbour", "Jaquez")], 2.0),
            ("herd_link_up", &[("neighbour", "Jaquez")], 1.0),
            ("herd_link_queued_bytes", &[("neighbour", "Jaquez")], 0.0),
            ("herd_client_connections_refused_total", &[], 0.0),
            ("herd_event_log_dropped_lines_total", &[], 0.0),
            ("herd_event_log_failing", &[], 0.0),
            ("herd_serving", &[], 1.0),
        ],
    );
    assert!(value(&hill, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&hill, "process_open_fds", &[]) > 3.0);
    // Present (value() fails otherwise); its value is whole clock ticks, and a server this
    // young has often used less than one (0 in three of four runs tried), so no bound.
    value(&hill, "process_cpu_seconds_total", &[]);
    // Jaquez writes the floods too, within the wait of records nobody waits on.
    wait_for("Jaquez to commit both floods", || {
        let n = value(&scrape(jaquez), "herd_store_committed_records_total", &[]);
        (n == 2.0).then_some(())
    });
    assert_series(
        "Jaquez",
        &scrape(jaquez),
        &[
            ("herd_floods_received_total", received, 2.0),
            ("herd_floods_sent_total", received, 0.0),
            ("herd_check_ins_total", &outcome("new"), 0.0),
            ("herd_records", &[], 2.0),
        ],
    );
    // Hill's connections: this one is open; the harness's probe and Jaquez's link (handed
    // over to the peer side) have closed as client connections.
    wait_for("one open connection", || {
        let open = value(
            &scrape(files.admin("Hill")),
            "herd_client_connections_open",
            &[],
        );
        (open == 1.0).then_some(())
    });
    drop(c);
    wait_for("no open connection", || {
        let open = value(
            &scrape(files.admin("Hill")),
            "herd_client_connections_open",
            &[],
        );
        (open == 0.0).then_some(())
    });
}

#[test]
fn link_gauges_fall_when_a_neighbour_dies_and_rise_when_it_returns() {
    let files = HerdFiles::with_admin(PAIR, "");
    let mut servers = start_herd_of(&files, PAIR);
    let hill = files.admin("Hill");
    let jaquez = &[("neighbour", "Jaquez")];
    let link = |want: f64| {
        wait_for(&format!("Hill's link to Jaquez at {want}"), || {
            let s = scrape(hill);
            (value(&s, "herd_link_up", jaquez) == want).then_some(s)
        })
    };
    let s = link(1.0);
    assert_eq!(value(&s, "herd_link_ups_total", jaquez), 1.0);
    assert_eq!(value(&s, "herd_link_downs_total", jaquez), 0.0);

    servers[1].kill();
    let s = link(0.0);
    assert_eq!(value(&s, "herd_link_downs_total", jaquez), 1.0);

    servers[1] = files.serve("Jaquez");
    let s = link(1.0);
    assert_eq!(value(&s, "herd_link_ups_total", jaquez), 2.0);
    assert_eq!(value(&s, "herd_link_downs_total", jaquez), 1.0);
}

/// `/health` of `admin`: the status code and the JSON body, once it answers.
fn health(admin: std::net::SocketAddr) -> Option<(u16, serde_json::Value)> {
    let (code, body) = http_get(admin, "/health")?;
    Some((code, serde_json::from_str(&body).expect("JSON")))
}

#[test]
fn health_is_503_while_the_store_loads_and_200_once_the_server_serves() {
    let files = HerdFiles::with_admin(&[("Hill", &[])], "");
    // Hold the store's database locked: the server's load waits on it (SQLite's busy
    // time-out is five seconds), which is the sentinel this test needs.
    let data = files.dir.0.join("data");
    std::fs::create_dir_all(&data).expect("the store directory");
    let db = rusqlite::Connection::open(data.join("Hill.db")).expect("a database");
    db.execute_batch("CREATE TABLE held (x); BEGIN EXCLUSIVE; INSERT INTO held VALUES (1);")
        .expect("locked");
    let _server = files.serve("Hill");
    let admin = files.admin("Hill");
    let (code, body) = wait_for("503 loading store", || {
        health(admin).filter(|(_, b)| b["reason"] == "loading store")
    });
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let (_, status) = http_get(admin, "/status").expect("a status");
    assert!(status.contains(r#""state":"loading store""#), "{status}");

    db.execute_batch("ROLLBACK").expect("unlocked");
    drop(db);
    let (code, body) = wait_for("200", || health(admin).filter(|(c, _)| *c == 200));
    assert_eq!(code, 200);
    assert_eq!(
        body,
        serde_json::json!({"server": "Hill", "status": "serving"})
    );
}

#[test]
fn health_is_503_while_the_event_log_cannot_be_written() {
    let files = HerdFiles::with_admin(&[("Hill", &[])], "");
    // A log file on a full disk: every write fails with ENOSPC.
    let logs = files.dir.0.join("logs");
    std::fs::create_dir_all(&logs).expect("the log directory");
    std::os::unix::fs::symlink("/dev/full", files.log_path("Hill")).expect("a symlink");
    let _server = files.serve("Hill");
    let admin = files.admin("Hill");
    // The server starts; its log's first write (within 50 ms) fails.
    let (code, body) = wait_for("503 for the log", || {
        health(admin).filter(|(_, b)| {
            let reason = b["reason"].as_str().unwrap_or("");
            reason.starts_with("the event log cannot be written: ")
        })
    });
    assert_eq!(code, 503, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("No space left on device"),
        "{body}"
    );
    assert_eq!(value(&scrape(admin), "herd_event_log_failing", &[]), 1.0);
    // The server still answers its clients.
    let reply = Conn::open(files.addr("Hill")).line("IAMAT kiwi +1+1 1");
    assert!(reply.starts_with("AT Hill "), "{reply}");
}

const CHAIN: &[(&str, &[&str])] = &[
    ("Hill", &["Jaquez"]),
    ("Jaquez", &["Hill", "Smith"]),
    ("Smith", &["Jaquez"]),
];

#[test]
fn herd_status_prints_every_server_and_fails_while_one_is_down() {
    let files = HerdFiles::with_admin(CHAIN, "");
    let mut servers = start_herd_of(&files, CHAIN);
    let config = files.config.to_str().expect("a UTF-8 path");
    let out = herd(&["status", "--config", config]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SERVER"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    for (line, (name, links)) in lines[1..]
        .iter()
        .zip(["Hill 1/1", "Jaquez 2/2", "Smith 1/1"].map(|l| l.split_once(' ').unwrap()))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (fields[0], fields[2], fields[3]),
            (name, "0", links),
            "{table}"
        );
    }

    servers[2].kill(); // Smith
    let out = herd(&["status", "--config", config]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{table}");
    let smith = table
        .lines()
        .find(|l| l.starts_with("Smith"))
        .expect("a row for Smith");
    let admin = files.admin("Smith").to_string();
    assert!(
        smith.contains(&format!("no answer from {admin}")),
        "{table}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 did not answer"), "{stderr}");

    // The live page's data, gathered by Hill: Smith has no status, and Jaquez says its
    // link to Smith is down once it has seen it go.
    let (code, page) = http_get(files.admin("Hill"), "/").expect("the page");
    assert_eq!(code, 200);
    assert!(page.contains("<svg"), "{page}");
    let view = wait_for("Jaquez to see Smith go", || {
        let (_, body) = http_get(files.admin("Hill"), "/herd")?;
        let view: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let jaquez = view["servers"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "Jaquez")?;
        let link = jaquez["status"]["links"]
            .as_array()?
            .iter()
            .find(|l| l["neighbour"] == "Smith")?;
        (link["up"] == false).then_some(view)
    });
    let servers = view["servers"].as_array().expect("servers");
    let names: Vec<&str> = servers.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["Hill", "Jaquez", "Smith"]);
    let smith = &servers[2];
    assert!(smith["status"].is_null(), "{smith}");
    assert!(
        smith["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{smith}"
    );
    assert_eq!(smith["neighbours"], serde_json::json!(["Jaquez"]));
}

#[test]
fn a_server_with_an_admin_listener_stops_cleanly_and_restarts_on_both_ports_at_once() {
    let files = HerdFiles::with_admin(&[("Hill", &[])], "");
    let admin = files.admin("Hill");
    let mut server = files.serve("Hill");
    wait_for("serving", || health(admin).filter(|(c, _)| *c == 200));
    assert!(server.terminate().success());
    let log = files.log("Hill");
    assert!(
        log.contains(&format!("admin listener on http://{admin}/")),
        "{log}"
    );
    assert!(log.contains("Hill stopping on SIGTERM"), "{log}");

    let _again = files.serve("Hill");
    wait_for("serving again", || health(admin).filter(|(c, _)| *c == 200));
}

#[test]
fn a_link_error_is_the_last_error_only_while_the_link_is_down() {
    let files = HerdFiles::with_admin(PAIR, "");
    // Hill starts alone: its link to Jaquez fails to come up.
    let _hill = files.serve("Hill");
    let last_error = || {
        let (_, body) = http_get(files.admin("Hill"), "/status")?;
        let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        Some(status["last_error"]["what"].as_str().map(str::to_owned))
    };
    let down = wait_for("Hill to see Jaquez down", || last_error().flatten());
    assert!(down.starts_with("link to Jaquez: connect to"), "{down}");

    let _jaquez = files.serve("Jaquez");
    links_up(&files, "Hill", &["Jaquez"]);
    links_up(&files, "Jaquez", &["Hill"]);
    let config = files.config.to_str().expect("a UTF-8 path");
    let out = wait_for("herd status to see the herd whole", || {
        let out = herd(&["status", "--config", config]);
        out.status.success().then_some(out)
    });
    let table = String::from_utf8_lossy(&out.stdout);
    let hill = table
        .lines()
        .find(|l| l.starts_with("Hill"))
        .expect("Hill's row");
    assert!(
        hill.ends_with("  -"),
        "an error that no longer holds:\n{table}"
    );
    assert_eq!(last_error(), Some(None));
    // The link's own report still says why it was down before.
    let (_, body) = http_get(files.admin("Hill"), "/status").expect("a status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let link = &status["links"][0];
    assert_eq!(link["up"], true, "{status}");
    assert!(link["last_error"].is_string(), "{status}");
}

#[test]
fn herd_status_watch_into_a_pipe_writes_no_escapes_and_ends_when_the_reader_goes() {
    use std::io::{BufRead, BufReader};
    let files = HerdFiles::with_admin(&[("Hill", &[])], "");
    let _server = files.serve("Hill");
    wait_for("Hill to serve", || {
        health(files.admin("Hill")).filter(|(c, _)| *c == 200)
    });
    let mut watch = std::process::Command::new(herd_bin())
        .args(["status", "--watch", "--config"])
        .arg(&files.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("herd status --watch");
    let stderr = Lines::of(watch.stderr.take());
    let mut stdout = BufReader::new(watch.stdout.take().expect("piped"));
    // Two frames, as `head -7` would read them, then the reader goes.
    let mut frames = String::new();
    while frames.matches("the herd is healthy").count() < 2 {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read");
        assert!(n > 0, "herd status ended: {frames}");
        frames.push_str(&line);
    }
    drop(stdout);
    let status = wait_for("herd status to end", || watch.try_wait().ok()?);
    let stderr = stderr.all();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
    assert!(!frames.contains('\x1b'), "escapes into a pipe: {frames:?}");
    assert!(frames.starts_with("SERVER"), "{frames}");
    assert!(frames.contains("\n\nSERVER"), "{frames}");
}
