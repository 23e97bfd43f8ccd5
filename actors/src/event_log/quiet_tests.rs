//! What the log leaves out (heartbeats, repeated refusals) and how it starts a new file.

use std::net::SocketAddr;
use std::thread;

use super::tests::{events, eventually};
use super::{Door, EventLog};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

/// Whether the file at `path` has anything in it yet (read while the log writes, so its
/// last line may be cut: nothing here parses it).
fn has_events(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// The events of a log that is closed (each line whole), without their time stamps.
fn events_in(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    events(&text).into_iter().map(str::to_owned).collect()
}

#[test]
fn heartbeats_are_left_out_unless_the_log_is_asked_for_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let quiet = EventLog::open(dir.path(), "Hill").expect("opened");
    let smith = addr("127.0.0.1:40000");
    quiet.peer_received(smith, b"PING");
    quiet.peer_sent(smith, b"PONG");
    quiet.peer_received(smith, b"FLOOD Smith AT Smith +0.1 kiwi +1+1 7");
    // A client's PING is a client's line like any other.
    quiet.received(addr("127.0.0.1:40001"), b"PING");
    let chatty = quiet.clone().with_heartbeats(true);
    chatty.peer_received(smith, b"PING");
    chatty.peer_sent(smith, b"PONG");
    quiet.flush_and_close().expect("closed");
    assert_eq!(
        events_in(quiet.path()),
        [
            "in 127.0.0.1:40000 FLOOD Smith AT Smith +0.1 kiwi +1+1 7",
            "in 127.0.0.1:40001 PING",
            "in 127.0.0.1:40000 PING",
            "out 127.0.0.1:40000 PONG",
        ]
    );
}

#[test]
fn refusals_from_one_address_are_written_once_and_summed_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    for port in 1000..1100 {
        let knocker = addr(&format!("10.0.0.9:{port}"));
        log.opened(knocker);
        log.peer_received(knocker, b"HERD-PEER 1 Smith Hill");
        log.peer_sent(knocker, b"HERD-CHALLENGE 00ff\n");
        log.peer_received(knocker, b"HERD-PROOF 1234");
        log.refused(knocker, Door::PeerHandshake, "wrong secret from Smith");
        log.peer_sent(knocker, b"HERD-REFUSED wrong secret from Smith\n");
    }
    for port in 2000..2003 {
        log.refused(
            addr(&format!("10.0.0.8:{port}")),
            Door::Caps,
            "too many connections",
        );
    }
    // A client on the knocking address is still heard in full.
    log.received(addr("10.0.0.9:3000"), b"IAMAT kiwi +1+1 1");
    log.flush_and_close().expect("closed");

    let events = events_in(log.path());
    // The refusal's line stands for the `HERD-REFUSED` reply that follows it.
    let first: Vec<&str> = events.iter().take(6).map(String::as_str).collect();
    assert_eq!(
        first,
        [
            "open 10.0.0.9:1000",
            "in 10.0.0.9:1000 HERD-PEER 1 Smith Hill",
            "out 10.0.0.9:1000 HERD-CHALLENGE 00ff",
            "in 10.0.0.9:1000 HERD-PROOF 1234",
            "note refused peer handshake from 10.0.0.9:1000: wrong secret from Smith",
            "open 10.0.0.9:1001",
        ]
    );
    // Of the 99 later attempts, only the connections opened are written, then the summary
    // when the log closes (or, running, when the minute is over).
    assert_eq!(
        events.iter().filter(|e| e.starts_with("open ")).count(),
        100
    );
    let rest: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("open "))
        .collect();
    assert_eq!(
        rest[4..],
        [
            "dropped 10.0.0.8:2000: too many connections",
            "in 10.0.0.9:3000 IAMAT kiwi +1+1 1",
            "note refused peer handshake from 10.0.0.9:1099: wrong secret from Smith, \
             and 98 more from 10.0.0.9 in the last minute",
            "dropped 10.0.0.8:2002: too many connections, and 1 more from 10.0.0.8 in the \
             last minute",
        ],
        "{events:#?}"
    );
}

#[test]
fn reopening_starts_a_new_file_and_loses_nothing_across_the_rename() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    let rotated = dir.path().join("Hill.log.1");
    let writer = log.clone();
    let writing = thread::spawn(move || {
        for i in 0..20_000 {
            writer.note(&format!("event {i}"));
        }
    });
    // Rename while events are being logged, as logrotate does, then ask for a new file.
    eventually("the first events written", || has_events(log.path()));
    std::fs::rename(log.path(), &rotated).expect("renamed");
    log.reopen();
    eventually("events written to the new file", || has_events(log.path()));
    writing.join().expect("the writing thread");
    log.note("event 20000");
    log.flush_and_close().expect("closed");

    let old = events_in(&rotated);
    let mut new = events_in(log.path());
    assert!(!old.is_empty(), "nothing before the rename");
    let note = new.iter().position(|e| e == "note reopened the event log");
    new.remove(note.expect("the new file says why it began"));
    let numbers: Vec<u32> = old
        .iter()
        .chain(&new)
        .map(|e| {
            let n = e.strip_prefix("note event ").expect("an event line");
            n.parse().expect("a number")
        })
        .collect();
    assert_eq!(numbers, (0..=20_000).collect::<Vec<u32>>());
}
