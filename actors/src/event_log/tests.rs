use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format::{push_escaped, push_timestamp};
use super::sink::Sink;
use super::EventLog;

/// `2026-11-26T05:52:55.123456Z` and the space after it.
pub(super) const STAMP: usize = 28;

pub(super) fn peer() -> SocketAddr {
    "127.0.0.1:5555".parse().expect("an address")
}

fn stamp(at: SystemTime) -> String {
    let mut out = Vec::new();
    push_timestamp(&mut out, at);
    String::from_utf8(out).expect("ASCII")
}

fn escaped(text: &[u8]) -> String {
    let mut out = Vec::new();
    push_escaped(&mut out, text);
    String::from_utf8(out).expect("escaping leaves valid UTF-8")
}

fn contents(log: &EventLog) -> String {
    std::fs::read_to_string(log.path()).expect("the log file")
}

/// Each line without its timestamp.
pub(super) fn events(text: &str) -> Vec<&str> {
    text.lines().map(|line| &line[STAMP..]).collect()
}

#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    let cases = [
        (0, 0, "1970-01-01T00:00:00.000000Z"),
        (86_399, 999_999_999, "1970-01-01T23:59:59.999999Z"),
        (951_782_400, 0, "2000-02-29T00:00:00.000000Z"),
        (1_621_464_827, 959_498_503, "2021-05-19T22:53:47.959498Z"),
        (1_798_000_000, 123_456_789, "2026-12-23T04:26:40.123456Z"),
        (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
        (13_574_563_200, 1_000, "2400-02-29T00:00:00.000001Z"),
    ];
    for (secs, nanos, expected) in cases {
        let at = UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(stamp(at), expected, "{secs}.{nanos:09}");
    }
}

#[test]
fn every_event_is_one_line_after_a_current_timestamp() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let before = stamp(SystemTime::now());
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    assert_eq!(log.path(), dir.path().join("Hill.log"));
    log.opened(peer());
    log.received(peer(), b"IAMAT kiwi +34.068930-118.445127 1621464827.9");
    log.sent(
        peer(),
        b"AT Hill +0.263873386 kiwi +34.068930-118.445127 1621464827.9\n",
    );
    log.closed(peer(), "end of input");
    log.dropped(peer(), "too slow");
    log.peer_up("Jaquez");
    log.peer_down("Jaquez", "connection refused");
    log.note("started");
    log.flush_and_close().expect("closed");
    let after = stamp(SystemTime::now());

    let text = contents(&log);
    assert_eq!(
        events(&text),
        [
            "open 127.0.0.1:5555",
            "in 127.0.0.1:5555 IAMAT kiwi +34.068930-118.445127 1621464827.9",
            "out 127.0.0.1:5555 AT Hill +0.263873386 kiwi +34.068930-118.445127 1621464827.9",
            "closed 127.0.0.1:5555: end of input",
            "dropped 127.0.0.1:5555: too slow",
            "peer Jaquez up",
            "peer Jaquez down: connection refused",
            "note started",
        ]
    );
    for line in text.lines() {
        // Same-width RFC 3339 UTC stamps sort as the instants they name.
        let at = &line[..STAMP - 1];
        assert!(before.as_str() <= at && at <= after.as_str(), "{line}");
        assert_eq!(&line[STAMP - 1..STAMP], " ");
    }
}

#[test]
fn a_multi_line_reply_is_logged_as_one_escaped_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    log.sent(
        peer(),
        b"AT Hill +0.1 kiwi +1+2 3\n{\n   \"results\" : []\n}\n\n",
    );
    log.flush_and_close().expect("closed");
    assert_eq!(
        events(&contents(&log)),
        [r#"out 127.0.0.1:5555 AT Hill +0.1 kiwi +1+2 3\n{\n   "results" : []\n}\n"#]
    );
}

#[test]
fn control_bytes_backslashes_and_invalid_utf8_are_escaped() {
    assert_eq!(escaped(b"plain text"), "plain text");
    assert_eq!(escaped("caf\u{e9} \u{a0}x".as_bytes()), "caf\u{e9} \u{a0}x");
    assert_eq!(escaped(b"a\\b\tc\rd\ne"), r"a\\b\tc\rd\ne");
    assert_eq!(escaped(b"\x00\x1b[31m\x7f"), r"\x00\x1b[31m\x7f");
    assert_eq!(escaped(b"bad \xff\xfe end"), r"bad \xff\xfe end");
    assert_eq!(escaped(b"cut \xe2\x82"), r"cut \xe2\x82");
    assert_eq!(escaped(b"\xc3\xa9\xc3"), "\u{e9}\\xc3");
}

#[test]
fn c1_controls_separators_and_bidirectional_controls_are_escaped() {
    // U+009B is a CSI to some terminals, U+0085 a new line to some editors, U+2028 and
    // U+2029 break lines, U+202E and U+2066 reorder what follows.
    assert_eq!(
        escaped("a\u{85}b\u{9b}31m\u{2028}c\u{2029}d\u{202e}e\u{2066}f\u{2069}".as_bytes()),
        r"a\u{85}b\u{9b}31m\u{2028}c\u{2029}d\u{202e}e\u{2066}f\u{2069}"
    );
    // Their neighbours stay as they are.
    let plain = "\u{a0}\u{a1}\u{7ff}\u{2027}\u{202f}\u{2065}\u{206a}\u{1F600} \u{e9}";
    assert_eq!(escaped(plain.as_bytes()), plain);
    // And every byte can still be recovered: a literal `\u{85}` has its backslash escaped.
    assert_eq!(escaped(br"\u{85}"), r"\\u{85}");
}

/// The bytes an escaped text stands for.
fn unescaped(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let escape = &rest[i + 1..];
        let (bytes, len): (Vec<u8>, usize) = match escape.as_bytes()[0] {
            b'\\' => (vec![b'\\'], 1),
            b'n' => (vec![b'\n'], 1),
            b'r' => (vec![b'\r'], 1),
            b't' => (vec![b'\t'], 1),
            b'x' => (vec![u8::from_str_radix(&escape[1..3], 16).unwrap()], 3),
            b'u' => {
                let end = escape.find('}').unwrap();
                let c = char::from_u32(u32::from_str_radix(&escape[2..end], 16).unwrap()).unwrap();
                (c.to_string().into_bytes(), end + 1)
            }
            other => panic!("unknown escape {other}"),
        };
        out.extend_from_slice(&bytes);
        rest = &escape[len..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

use proptest::prelude::*;

proptest! {
    #[test]
    fn escaped_text_is_one_line_of_nothing_hidden_that_gives_back_every_byte(
        text in proptest::collection::vec(
            prop_oneof![
                any::<u8>().prop_map(|b| vec![b]),
                any::<char>().prop_map(|c| c.to_string().into_bytes()),
            ],
            0..40,
        )
    ) {
        let text: Vec<u8> = text.concat();
        let line = escaped(&text);
        prop_assert!(!line.chars().any(crate::protocol::is_hidden_or_control), "{line:?}");
        prop_assert_eq!(unescaped(&line), text);
    }
}

#[test]
fn received_lines_that_are_not_utf8_are_logged_escaped() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    log.received(peer(), b"IAMAT \xff\r\n");
    log.flush_and_close().expect("closed");
    assert_eq!(
        events(&contents(&log)),
        [r"in 127.0.0.1:5555 IAMAT \xff\r\n"]
    );
}

#[test]
fn a_missing_log_directory_is_created() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let nested = dir.path().join("var").join("log").join("herd");
    let log = EventLog::open(&nested, "Smith").expect("opened");
    log.note("hello");
    log.flush_and_close().expect("closed");
    assert_eq!(events(&contents(&log)), ["note hello"]);
    assert_eq!(log.path(), nested.join("Smith.log"));
}

#[test]
fn reopening_appends_to_earlier_lines() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for run in ["first run", "second run"] {
        let log = EventLog::open(dir.path(), "Hill").expect("opened");
        log.note(run);
        log.flush_and_close().expect("closed");
    }
    let text = std::fs::read_to_string(dir.path().join("Hill.log")).expect("the log file");
    assert_eq!(events(&text), ["note first run", "note second run"]);
}

#[test]
fn close_returns_once_every_event_is_in_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    // Fewer than the channel holds, so none can be lost however slow the disk.
    for i in 0..5000 {
        log.received(peer(), format!("line {i}").as_bytes());
    }
    log.flush_and_close().expect("closed");
    let text = contents(&log);
    let lines = events(&text);
    assert_eq!(lines.len(), 5000);
    assert_eq!(lines[4999], "in 127.0.0.1:5555 line 4999");
}

#[test]
fn an_idle_log_reaches_the_file_without_closing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    log.note("soon on disk");
    let mut waited = Duration::ZERO;
    while !contents(&log).contains("note soon on disk") {
        assert!(waited < Duration::from_secs(5), "never flushed");
        thread::sleep(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
}

#[test]
fn dropping_the_last_handle_flushes_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    let path = log.path().to_path_buf();
    let other = log.clone();
    log.note("one");
    drop(log);
    other.note("two");
    drop(other);
    let text = std::fs::read_to_string(path).expect("the log file");
    assert_eq!(events(&text), ["note one", "note two"]);
}

#[test]
fn events_after_close_are_ignored() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), "Hill").expect("opened");
    log.note("before");
    log.flush_and_close().expect("closed");
    log.note("after");
    log.flush_and_close().expect("closing twice is harmless");
    assert_eq!(events(&contents(&log)), ["note before"]);
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<EventLog>();
}

/// A sink whose first write waits for the test to open a gate: a disk that stalls.
pub(super) struct Stalled {
    pub(super) entered: mpsc::Sender<()>,
    pub(super) gate: mpsc::Receiver<()>,
    pub(super) stalled: bool,
    pub(super) out: Arc<Mutex<Vec<u8>>>,
}

impl Write for Stalled {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.stalled {
            self.stalled = true;
            let _ = self.entered.send(());
            let _ = self.gate.recv();
        }
        self.out
            .lock()
            .expect("unpoisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Stalled {
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_buffer_drops_events_instead_of_blocking_and_counts_them() {
    let (entered_tx, entered) = mpsc::channel();
    let (open_gate, gate) = mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Stalled {
        entered: entered_tx,
        gate,
        stalled: false,
        out: Arc::clone(&out),
    };
    // Lines are a 28-byte stamp, the event and a newline: "note event 0" takes 41 bytes, so
    // two fit in 122 and a third does not; later "note 98 events not logged..." (82) and a
    // "note after" (39) fit together.
    let log = EventLog::start(PathBuf::from("stalled.log"), sink, 122).expect("started");
    log.note("first");
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the writer reached the sink");

    // The writer is stuck in the sink with the buffer empty: two events fit, 98 are lost.
    let (done_tx, done) = mpsc::channel();
    let producer = log.clone();
    thread::spawn(move || {
        for i in 0..100 {
            producer.note(&format!("event {i}"));
        }
        let _ = done_tx.send(());
    });
    done.recv_timeout(Duration::from_secs(5))
        .expect("logging blocked on a full buffer");
    assert_eq!(lost(&log), 98);

    // Once there is room, the next event carries the count in first. The writer needs a
    // moment to make room (and an "after" may be lost meanwhile), so keep logging until
    // nothing is left to report: then the count and the last "after" both went out.
    open_gate.send(()).expect("the writer is waiting");
    let mut afters = 0;
    while lost(&log) > 0 {
        assert!(afters < 500, "the lost count never went out");
        thread::sleep(Duration::from_millis(10));
        log.note("after");
        afters += 1;
    }
    log.flush_and_close().expect("closed");

    let text = String::from_utf8(out.lock().expect("unpoisoned").clone()).expect("UTF-8");
    let lines = events(&text);
    assert_eq!(lines[..3], ["note first", "note event 0", "note event 1"]);
    let counts: Vec<(usize, u64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let count = line.strip_suffix(" events not logged: the log writer fell behind")?;
            Some((i, count["note ".len()..].parse().expect("a count")))
        })
        .collect();
    let reported: u64 = counts.iter().map(|(_, count)| count).sum();
    let afters_written = lines.iter().filter(|line| **line == "note after").count() as u64;
    assert_eq!(reported + afters_written, 98 + afters, "{text}");
    // `/metrics` counts every event dropped, the ones the notices reported.
    assert_eq!(log.dropped_counter().get(), reported);
    assert_eq!(lines.last(), Some(&"note after"));
    // Each count goes out with the event it came before, never alone.
    assert!(counts.iter().all(|(i, _)| *i < lines.len() - 1), "{text}");
    assert!(
        counts
            .iter()
            .all(|(i, _)| !lines[i + 1].contains("events not logged")),
        "{text}"
    );
}

pub(super) fn lost(log: &EventLog) -> u64 {
    super::lock(&log.lane.pending).lost
}

/// A sink that always fails: a full or vanished disk.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Broken {
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_write_error_is_reported_at_close() {
    let log = EventLog::start(PathBuf::from("broken.log"), Broken, 1024).expect("started");
    log.note("lost");
    let error = log.flush_and_close().expect_err("the sink fails");
    assert!(error.to_string().contains("disk on fire"), "{error}");
}

/// A sink that fails while its switch is on.
struct Flaky(Arc<std::sync::atomic::AtomicBool>);

impl Write for Flaky {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("disk on fire"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Flaky {
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Polls `check` until it holds, for at most five seconds.
pub(super) fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_log_says_it_cannot_be_written_while_writes_fail_and_recovers() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sink = Flaky(Arc::clone(&failing));
    let log = EventLog::start(PathBuf::from("flaky.log"), sink, 1024).expect("started");
    assert_eq!(log.write_error(), None, "nothing written, nothing failed");
    log.note("lost");
    eventually("the failure is seen", || log.write_error().is_some());
    let why = log.write_error().unwrap_or_default();
    assert!(why.contains("disk on fire"), "{why}");

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    log.note("kept");
    eventually("the recovery is seen", || log.write_error().is_none());
}

#[test]
fn opening_in_an_unusable_directory_names_the_path() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").expect("a plain file");
    let error = EventLog::open(&file, "Hill").expect_err("a file is not a directory");
    assert!(
        error.to_string().contains(&*file.to_string_lossy()),
        "{error}"
    );
}
