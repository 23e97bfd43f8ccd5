//! `herd bench` against a five-server herd started here: each scenario runs briefly, prints
//! one JSON line that parses, and reports work done with nothing lost. No timing is asserted:
//! the figures depend on the machine.

mod common;

use common::*;
use serde_json::Value;

/// The five servers, started, with every link up (so a flood reaches everyone at once).
struct Herd {
    files: HerdFiles,
    servers: Vec<Server>,
}

impl Herd {
    fn start() -> Herd {
        let files = HerdFiles::new(GRAPH, "");
        let servers = start_herd(&files);
        Herd { files, servers }
    }

    /// `--servers` in herd order.
    fn servers_arg(&self) -> String {
        let addrs: Vec<String> = GRAPH
            .iter()
            .map(|(name, _)| self.files.addr(name).to_string())
            .collect();
        addrs.join(",")
    }

    /// Runs `herd bench SCENARIO --servers <this herd> ARGS --json`.
    fn bench(&self, scenario: &str, args: &[&str]) -> Value {
        let servers = self.servers_arg();
        let mut all = vec![scenario, "--servers", &servers];
        all.extend_from_slice(args);
        bench(&all)
    }

    fn pids(&self) -> String {
        let pids: Vec<String> = self
            .servers
            .iter()
            .map(|s| s.child.id().to_string())
            .collect();
        pids.join(",")
    }
}

/// Runs `herd bench ARGS --json`; its stdout must be exactly one JSON object.
fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = herd(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "herd {all:?} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout:?}");
    let v: Value = serde_json::from_str(&stdout).expect("the summary is JSON");
    assert!(v.is_object(), "{v}");
    v
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn iamat_floods_every_check_in_and_leaves_no_stale_record() {
    let herd = Herd::start();
    let v = herd.bench(
        "iamat",
        &[
            "--connections",
            "2",
            "--duration",
            "1",
            "--pids",
            &herd.pids(),
        ],
    );
    assert_eq!(v["scenario"], "iamat");
    assert!(num(&v, "check_ins") > 0.0, "{v}");
    assert!(num(&v, "check_ins_per_s") > 0.0, "{v}");
    assert_eq!(num(&v, "errors"), 0.0, "{v}");
    assert_eq!(
        num(&v, "records_checked"),
        10.0,
        "2 clients x 5 servers: {v}"
    );
    assert_eq!(num(&v, "stale"), 0.0, "{v}");
    assert!(num(&v, "herd_cpu_us_per_op") >= 0.0, "{v}");
    assert!(num(&v, "p50_ms") <= num(&v, "max_ms"), "{v}");
}

#[test]
fn whatsat_answers_every_request_with_places() {
    let herd = Herd::start();
    let v = herd.bench("whatsat", &["--connections", "2", "--duration", "1"]);
    assert!(num(&v, "replies") > 0.0, "{v}");
    assert!(num(&v, "replies_per_s") > 0.0, "{v}");
    assert_eq!(num(&v, "errors"), 0.0, "{v}");
}

#[test]
fn flood_times_every_round_at_every_other_server() {
    let herd = Herd::start();
    let v = herd.bench("flood", &["--at", "Smith", "--rounds", "3"]);
    assert_eq!(v["origin"], "Smith");
    assert_eq!(v["reached"], "Hill,Jaquez,Campbell,Singleton");
    assert_eq!(num(&v, "rounds"), 3.0);
    assert_eq!(num(&v, "incomplete"), 0.0, "{v}");
    assert!(num(&v, "p99_ms") > 0.0, "{v}");
}

#[test]
fn conns_holds_idle_connections_that_all_answer() {
    let herd = Herd::start();
    let hill = herd.servers[0].child.id().to_string();
    let v = herd.bench(
        "conns",
        &[
            "--at",
            "Hill",
            "--connections",
            "50",
            "--duration",
            "0.5",
            "--pid",
            &hill,
        ],
    );
    assert_eq!(num(&v, "opened"), 50.0, "{v}");
    assert!(num(&v, "accepted") >= 50.0, "{v}");
    assert_eq!(num(&v, "answered"), 50.0, "{v}");
    assert!(num(&v, "rss_idle_kib") > 0.0, "{v}");
    assert!(num(&v, "probe_check_ins_per_s") > 0.0, "{v}");
}

#[test]
fn startup_over_a_filled_store_reports_the_memory_and_the_file_it_takes() {
    let files = HerdFiles::single("");
    let addr = files.addr("Hill").to_string();
    let store = files.dir.0.join("data").join("Hill.db");
    let (bin, config) = (herd_bin(), files.config.to_str().unwrap().to_owned());
    let out = herd(&[
        "bench",
        "startup",
        "--servers",
        &addr,
        "--runs",
        "2",
        "--fill",
        "500",
        "--store-file",
        store.to_str().unwrap(),
        "--json",
        "--",
        &bin,
        "serve",
        "Hill",
        "--config",
        &config,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("the summary is JSON");
    assert_eq!(num(&v, "records"), 500.0, "{v}");
    assert_eq!(
        v["rss_kib_each"].as_str().map(|e| e.split(',').count()),
        Some(2),
        "{v}"
    );
    assert!(num(&v, "rss_kib_max") > 1000.0, "{v}");
    assert!(num(&v, "rss_peak_kib_max") >= num(&v, "rss_kib_max"), "{v}");
    // 500 rows of a client, a server, a place and two times: more than 20 bytes each, in
    // the file or still in its write-ahead log.
    let on_disk = num(&v, "store_bytes") + num(&v, "store_wal_bytes");
    assert!(on_disk > 500.0 * 20.0, "{v}");
}

#[test]
fn a_target_off_loopback_is_refused() {
    let out = herd(&["bench", "iamat", "--servers", "192.0.2.1:12000"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("192.0.2.1:12000") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

#[test]
fn resync_reconciles_two_differing_stores_and_a_restart_that_differs_in_nothing() {
    let report = bench(&["resync", "--records", "20000", "--differences", "400"]);
    assert_eq!(num(&report, "differences"), 400.0);
    assert!(num(&report, "converged_s") > 0.0);
    // Each side sent at least the records the other lacked: a hundred of its own and a
    // hundred newer ones, some 70 bytes each.
    for way in ["bytes_hill_to_smith", "bytes_smith_to_hill"] {
        assert!(num(&report, way) > 200.0 * 60.0, "{way}: {report}");
    }
    // The restart found nothing to send: a line each way, and the handshake.
    for way in ["restart_bytes_hill_to_smith", "restart_bytes_smith_to_hill"] {
        assert!(num(&report, way) < 1000.0, "{way}: {report}");
    }
    assert_eq!(num(&report, "restart_link_downs"), 1.0, "{report}");
    let said = report["hill_reconciled"].as_str().unwrap_or_default();
    assert!(said.contains(" records sent, in "), "{report}");
}
