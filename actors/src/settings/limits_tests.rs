//! `[limits]`: what one client or neighbour may cost a server.

use std::time::Duration;

use super::error::Fault;
use super::tests::{loaded, refused, with_table, TWO};
use super::Limits;

#[test]
fn the_limits_have_defaults() {
    let config = loaded(TWO, &[]);
    assert_eq!(
        config.limits,
        Limits {
            max_line: 8192,
            max_connections: None,
            max_connections_per_ip: None,
            idle_timeout: Some(Duration::from_secs(300)),
            line_timeout: Some(Duration::from_secs(30)),
            reply_window: 64 << 10,
            max_pending: 16,
            reply_budget: 64 << 20,
            peer_heartbeat: Duration::from_millis(1000),
            peer_handshake_timeout: Duration::from_millis(2000),
            peer_queue: 16 << 20,
            max_clock_ahead: Duration::from_secs(3600),
        }
    );
}

#[test]
fn the_limits_are_read_from_the_file_in_the_units_they_name() {
    let config = loaded(
        &with_table(
            "limits",
            "max_line_bytes = 256\nmax_connections = 1000\nmax_connections_per_ip = 10\n\
             idle_timeout_s = 60\nline_timeout_s = 5\nreply_window_kb = 8\nmax_pending = 4\n\
             reply_budget_mb = 2\npeer_heartbeat_ms = 50\npeer_handshake_timeout_ms = 60000\n\
             peer_queue_mb = 3\nmax_clock_ahead_s = 300",
        ),
        &[],
    );
    assert_eq!(
        config.limits,
        Limits {
            max_line: 256,
            max_connections: Some(1000),
            max_connections_per_ip: Some(10),
            idle_timeout: Some(Duration::from_secs(60)),
            line_timeout: Some(Duration::from_secs(5)),
            reply_window: 8 << 10,
            max_pending: 4,
            reply_budget: 2 << 20,
            peer_heartbeat: Duration::from_millis(50),
            peer_handshake_timeout: Duration::from_secs(60),
            peer_queue: 3 << 20,
            max_clock_ahead: Duration::from_secs(300),
        }
    );
}

#[test]
fn zero_turns_the_timeouts_and_connection_caps_off() {
    let config = loaded(
        &with_table(
            "limits",
            "max_connections = 0\nmax_connections_per_ip = 0\nidle_timeout_s = 0\n\
             line_timeout_s = 0",
        ),
        &[],
    );
    assert_eq!(config.limits.max_connections, None);
    assert_eq!(config.limits.max_connections_per_ip, None);
    assert_eq!(config.limits.idle_timeout, None);
    assert_eq!(config.limits.line_timeout, None);
}

#[test]
fn the_environment_overrides_the_limits() {
    let config = loaded(
        &with_table("limits", "idle_timeout_s = 10\nmax_pending = 3"),
        &[
            ("HERD_LIMITS__IDLE_TIMEOUT_S", "0"),
            ("HERD_LIMITS__MAX_PENDING", "100"),
            ("HERD_LIMITS__MAX_CONNECTIONS_PER_IP", "20"),
            ("herd_limits__peer_queue_mb", "1"),
        ],
    );
    assert_eq!(config.limits.idle_timeout, None);
    assert_eq!(config.limits.max_pending, 100);
    assert_eq!(config.limits.max_connections_per_ip, Some(20));
    assert_eq!(config.limits.peer_queue, 1 << 20);
}

#[test]
fn limits_out_of_range_are_refused_naming_key_and_range() {
    let cases = [
        ("max_line_bytes", "255", "of bytes from 256 to 32768"),
        ("max_line_bytes", "32769", "of bytes from 256 to 32768"),
        ("max_connections", "1000001", "from 0 to 1000000"),
        ("max_connections_per_ip", "-1", "from 0 to 1000000"),
        ("idle_timeout_s", "99999", "of seconds from 0 to 86400"),
        ("line_timeout_s", "3601", "of seconds from 0 to 3600"),
        ("reply_window_kb", "0", "of KiB from 1 to 65536"),
        ("max_pending", "65537", "from 1 to 65536"),
        ("reply_budget_mb", "1.5", "of MiB from 1 to 65536"),
        (
            "peer_heartbeat_ms",
            "49",
            "of milliseconds from 50 to 60000",
        ),
        (
            "peer_handshake_timeout_ms",
            "60001",
            "of milliseconds from 50 to 60000",
        ),
        ("peer_queue_mb", "4097", "of MiB from 1 to 4096"),
        ("peer_queue_mb", "\"lots\"", "of MiB from 1 to 4096"),
    ];
    for (key, bad, range) in cases {
        let (e, message) = refused(&with_table("limits", &format!("{key} = {bad}")), &[]);
        assert!(matches!(e.fault(), Fault::BadValue(..)), "{key}: {e:?}");
        assert_eq!(
            message,
            format!("bad limits.{key} {bad} in herd.toml: expected a whole number {range}")
        );
    }
}

#[test]
fn a_bad_limit_from_the_environment_names_the_variable() {
    let (e, message) = refused(TWO, &[("HERD_LIMITS__LINE_TIMEOUT_S", "30s")]);
    assert!(matches!(e.fault(), Fault::BadEnv(..)), "{e:?}");
    assert_eq!(
        message,
        "bad HERD_LIMITS__LINE_TIMEOUT_S=\"30s\" in the environment (loading herd.toml): \
         expected a whole number of seconds from 0 to 3600"
    );
}

#[test]
fn an_unknown_limit_is_refused_naming_it() {
    let (_, message) = refused(&with_table("limits", "max_lines = 1"), &[]);
    assert_eq!(message, "unknown key 'limits.max_lines' in herd.toml");
}
