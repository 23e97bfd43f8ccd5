//! Lanes: each serving thread's own buffer, merged by time on the writer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::tests::{events, eventually, lost, Stalled, STAMP};
use super::{lock, Door, EventLog, CAPACITY};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

/// A log whose writer is stuck in its first write (of `note first`) until `gate` is sent
/// to, so that what is logged meanwhile waits in the lanes; `out` is what it wrote.
struct Stall {
    log: EventLog,
    gate: mpsc::Sender<()>,
    out: Arc<Mutex<Vec<u8>>>,
}

fn stalled(capacity: usize) -> Stall {
    let (entered_tx, entered) = mpsc::channel();
    let (gate, gate_rx) = mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Stalled {
        entered: entered_tx,
        gate: gate_rx,
        stalled: false,
        out: Arc::clone(&out),
    };
    let log = EventLog::start(PathBuf::from("lanes.log"), sink, capacity).expect("started");
    log.note("first");
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the writer reached the sink");
    Stall { log, gate, out }
}

impl Stall {
    /// Lets the writer go on, closes the log, and returns all it wrote.
    fn close(self) -> String {
        self.gate.send(()).expect("the writer is waiting");
        self.log.flush_and_close().expect("closed");
        let out = self.out.lock().expect("unpoisoned").clone();
        String::from_utf8(out).expect("UTF-8")
    }
}

/// The numbers of the events `<prefix><n>`, in the order they are in `events`.
fn numbered(events: &[&str], prefix: &str) -> Vec<u32> {
    let numbers = events.iter().filter_map(|e| e.strip_prefix(prefix));
    numbers.map(|n| n.parse().expect("a number")).collect()
}

#[test]
fn events_logged_on_two_lanes_from_two_threads_come_out_in_timestamp_order_each_lane_in_its_own() {
    const ROUNDS: u32 = 200;
    let stall = stalled(CAPACITY);
    // The two threads take turns, so that their events alternate in time; the writer takes
    // them all at one wake, once the gate opens.
    let (home, other) = (stall.log.clone(), stall.log.lane());
    let (to_b, b_turn) = mpsc::channel();
    let (to_a, a_turn) = mpsc::channel();
    let a = thread::spawn(move || {
        for i in 0..ROUNDS {
            home.note(&format!("a {i}"));
            to_b.send(()).expect("b is there");
            a_turn.recv().expect("b took its turn");
        }
    });
    let b = thread::spawn(move || {
        for i in 0..ROUNDS {
            b_turn.recv().expect("a took its turn");
            other.note(&format!("b {i}"));
            to_a.send(()).expect("a is there");
        }
    });
    a.join().expect("thread a");
    b.join().expect("thread b");

    let text = stall.close();
    let stamps: Vec<&str> = text.lines().map(|line| &line[..STAMP - 1]).collect();
    assert!(stamps.is_sorted(), "{text}");
    let events = events(&text);
    assert_eq!(events.len(), 1 + 2 * ROUNDS as usize, "{text}");
    assert_eq!(
        numbered(&events, "note a "),
        (0..ROUNDS).collect::<Vec<_>>()
    );
    assert_eq!(
        numbered(&events, "note b "),
        (0..ROUNDS).collect::<Vec<_>>()
    );
}

#[test]
fn everything_logged_on_every_lane_is_in_the_file_after_flush_and_close() {
    const EVENTS: u32 = 2000;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let lane = log.lane();
            thread::spawn(move || {
                for i in 0..EVENTS {
                    lane.note(&format!("lane {t} event {i}"));
                }
            })
        })
        .collect();
    for i in 0..EVENTS {
        log.note(&format!("home event {i}"));
    }
    for thread in threads {
        thread.join().expect("a logging thread");
    }
    // The threads' handles are gone: the writer may forget their lanes, not what they held.
    let kept = log.lane();
    kept.note("kept");
    log.flush_and_close().expect("closed");
    kept.note("after closing");
    log.lane().note("on a lane made after closing");

    let text = std::fs::read_to_string(log.path()).expect("the log file");
    let events = events(&text);
    let all: Vec<u32> = (0..EVENTS).collect();
    assert_eq!(numbered(&events, "note home event "), all);
    for t in 0..3 {
        assert_eq!(numbered(&events, &format!("note lane {t} event ")), all);
    }
    assert_eq!(events.last(), Some(&"note kept"));
    assert_eq!(events.len(), 4 * EVENTS as usize + 1);
}

#[test]
fn a_handshake_line_from_an_address_being_refused_is_quieted_on_another_lane_than_the_refusal() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    let knocker = |port: u16| addr(&format!("10.0.0.9:{port}"));
    log.refused(
        knocker(1000),
        Door::PeerHandshake,
        "wrong secret from Smith",
    );
    let other = log.lane();
    thread::spawn(move || {
        other.peer_received(knocker(1001), b"HERD-PEER 1 Smith Hill");
        other.peer_sent(knocker(1001), b"HERD-CHALLENGE 00ff\n");
        other.refused(
            knocker(1001),
            Door::PeerHandshake,
            "wrong secret from Smith",
        );
        other.peer_sent(knocker(1001), b"HERD-REFUSED wrong secret from Smith\n");
        // A client on the address, and a handshake from another, are heard in full.
        other.received(knocker(1002), b"IAMAT kiwi +1+1 1");
        other.peer_received(addr("10.0.0.7:1"), b"HERD-PEER 1 Jaquez Hill");
    })
    .join()
    .expect("the other thread");
    log.flush_and_close().expect("closed");

    let text = std::fs::read_to_string(log.path()).expect("the log file");
    assert_eq!(
        events(&text),
        [
            "note refused peer handshake from 10.0.0.9:1000: wrong secret from Smith",
            "in 10.0.0.9:1002 IAMAT kiwi +1+1 1",
            "in 10.0.0.7:1 HERD-PEER 1 Jaquez Hill",
            // The summary of the minute, once, for the refusal the other lane counted.
            "note refused peer handshake from 10.0.0.9:1001: wrong secret from Smith",
        ]
    );
}

#[test]
fn the_lost_event_notice_of_a_full_lane_is_written_in_that_lanes_order() {
    // As in `a_full_buffer_drops_events_instead_of_blocking_and_counts_them`: "note event 0"
    // takes 41 bytes, so a lane of 122 holds two and loses the third; then the notice of one
    // lost (81) and "note b after" (41) fit together.
    let stall = stalled(122);
    let home = stall.log.clone();
    let full = stall.log.lane();
    for i in 0..3 {
        full.note(&format!("event {i}"));
    }
    assert_eq!((lost(&home), lost(&full)), (0, 1));

    stall.gate.send(()).expect("the writer is waiting");
    eventually("the writer took the full lane", || {
        lock(&full.lane.pending).buf.is_empty()
    });
    // The home lane's next event goes out without the notice; the full lane's carries it in.
    home.note("home after");
    full.note("b after");
    assert_eq!(lost(&full), 0);
    home.flush_and_close().expect("closed");

    let text = String::from_utf8(stall.out.lock().expect("unpoisoned").clone()).expect("UTF-8");
    assert_eq!(
        events(&text),
        [
            "note first",
            "note event 0",
            "note event 1",
            "note home after",
            "note 1 events not logged: the log writer fell behind",
            "note b after",
        ]
    );
}
