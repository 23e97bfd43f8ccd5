//! The admin listener of a server started in this process, over real HTTP.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Status;
use crate::metrics::{CheckInOutcome, Metrics, PlacesAnswer, PLACES_STATUSES};
use crate::server::{preflight, StartError, Tuning};
use crate::settings::Settings;
use crate::test_support::{hill_config, start_hill};

/// A one-server config with the admin listener on `admin`, and `extra` TOML on top.
fn config(dir: &tempfile::TempDir, admin: &str, extra: &str) -> Settings {
    hill_config(dir.path(), extra, &format!("admin = \"{admin}\"\n"))
}

/// A loopback port nothing listened on a moment ago.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("an address").port()
}

/// `GET path` with `authorization` if given: the status code and the body.
async fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("the admin answers");
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let answer = String::from_utf8(answer).expect("UTF-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    (code.expect("a status code"), body.to_owned())
}

#[test]
fn every_series_is_there_from_the_start_in_prometheus_text() {
    let metrics = Metrics::new(
        &["Jaquez".into(), "Smith".into()],
        Counter::default(),
        SystemTime::now(),
    );
    metrics.clients.check_in(CheckInOutcome::New);
    metrics.places.answered(PlacesAnswer::CacheHit, "OK");
    metrics
        .places
        .answered(PlacesAnswer::UpstreamCall, "something new");
    metrics
        .places
        .upstream_call("OK", Duration::from_millis(30));
    let text = metrics.encode().expect("encoded");
    for line in [
        "# TYPE herd_check_ins_total counter",
        r#"herd_check_ins_total{outcome="new"} 1"#,
        r#"herd_check_ins_total{outcome="not_newer"} 0"#,
        r#"herd_whatsats_total{status="OK"} 1"#,
        r#"herd_whatsats_total{status="OTHER"} 1"#,
        r#"herd_whatsats_total{status="unknown_client"} 0"#,
        r#"herd_places_answers_total{outcome="cache_hit"} 1"#,
        r#"herd_link_up{neighbour="Jaquez"} 0"#,
        r#"herd_link_downs_total{neighbour="Smith"} 0"#,
        r#"herd_link_queued_bytes{neighbour="Smith"} 0"#,
        "# TYPE herd_places_upstream_duration_seconds histogram",
        r#"herd_places_upstream_duration_seconds_bucket{status="OK",le="0.025"} 0"#,
        r#"herd_places_upstream_duration_seconds_bucket{status="OK",le="0.05"} 1"#,
        r#"herd_places_upstream_duration_seconds_bucket{status="OK",le="+Inf"} 1"#,
        r#"herd_places_upstream_duration_seconds_count{status="OK"} 1"#,
        r#"herd_places_upstream_duration_seconds_sum{status="OK"} 0.03"#,
        "herd_client_connections_open 0",
        "herd_event_log_dropped_lines_total 0",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_cpu_seconds_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // 11 places statuses and 2 of ours; each link family has one series per neighbour.
    let series = |name: &str| text.lines().filter(|l| l.starts_with(name)).count();
    assert_eq!(series("herd_whatsats_total{"), PLACES_STATUSES.len() + 2);
    assert_eq!(series("herd_link_up{"), 2);
}

#[test]
fn an_admin_listener_off_loopback_without_a_secret_is_refused_naming_the_fix() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cfg = config(&dir, "10.1.2.3:12100", "");
    let error = preflight(&cfg, "Hill").expect_err("refused");
    assert!(
        matches!(error, StartError::AdminNoSecret { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for part in [
        "'Hill'",
        "10.1.2.3:12100",
        "off loopback",
        "secret",
        "127.0.0.1",
    ] {
        assert!(message.contains(part), "{message}");
    }
    let cfg = config(&dir, "10.1.2.3:12100", "secret = \"s3cret\"");
    assert!(preflight(&cfg, "Hill").is_ok());
}

#[actix::test]
async fn the_admin_listener_serves_health_metrics_status_and_the_page() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let cfg = config(&dir, &admin.to_string(), "");
    let server = start_hill(&cfg, Tuning::default()).await;
    assert_eq!(server.admin_addr(), Some(admin));

    let (code, body) = get(admin, "/health", None).await;
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"server":"Hill","status":"serving"}"#)
    );

    let (code, body) = get(admin, "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(body.contains("\nherd_records 0\n"), "{body}");
    assert!(body.contains("\nherd_serving 1\n"), "{body}");

    let (code, body) = get(admin, "/status", None).await;
    assert_eq!(code, 200);
    let status: Status = serde_json::from_str(&body).expect("a status");
    assert_eq!(status.server, "Hill");
    assert_eq!(status.state, "serving");
    assert_eq!(status.records, Some(0));
    assert!(status.is_healthy(), "{status:?}");

    let (code, body) = get(admin, "/", None).await;
    assert_eq!(code, 200);
    assert!(
        body.contains("<svg") && !body.contains("src=\"http"),
        "{body}"
    );

    let (code, body) = get(admin, "/herd", None).await;
    assert_eq!(code, 200);
    let view: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(view["servers"][0]["status"]["server"], "Hill");

    let (code, _) = get(admin, "/nothing-here", None).await;
    assert_eq!(code, 404);
}

#[actix::test]
async fn off_loopback_every_request_but_health_needs_the_secret() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // All interfaces is off loopback; the test still only talks to 127.0.0.1.
    let port = free_port();
    let cfg = config(&dir, &format!("0.0.0.0:{port}"), "secret = \"s3cret\"");
    let _server = start_hill(&cfg, Tuning::default()).await;
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");

    assert_eq!(get(admin, "/health", None).await.0, 200);
    for path in ["/", "/metrics", "/status", "/herd"] {
        assert_eq!(get(admin, path, None).await.0, 401, "{path}");
        assert_eq!(
            get(admin, path, Some("Bearer wrong")).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            get(admin, path, Some("Bearer s3cret")).await.0,
            200,
            "{path}"
        );
    }
    // A browser's prompt: any user, the secret as the password ("herd:s3cret").
    let basic = Some("Basic aGVyZDpzM2NyZXQ=");
    assert_eq!(get(admin, "/status", basic).await.0, 200);
    // The scheme's name is case-insensitive (RFC 7235).
    for authorization in ["bearer s3cret", "BEARER s3cret", "basic aGVyZDpzM2NyZXQ="] {
        assert_eq!(
            get(admin, "/status", Some(authorization)).await.0,
            200,
            "{authorization}"
        );
    }
}
