//! The per-server event log, `<log.dir>/<NAME>.log`: the product's own record of what a
//! server received, sent, and which connections and peer links came and went.
//!
//! One line per event: an RFC 3339 UTC timestamp with microseconds, a kind, and the text.
//!
//! ```text
//! 2026-11-26T05:52:55.123456Z open 127.0.0.1:50312
//! 2026-11-26T05:52:55.123502Z in 127.0.0.1:50312 IAMAT kiwi +34.068930-118.445127 1621464827.9
//! 2026-11-26T05:52:55.123590Z out 127.0.0.1:50312 AT Hill +0.263873386 kiwi +34.068930-118.445127 1621464827.9
//! 2026-11-26T05:52:55.124001Z closed 127.0.0.1:50312: replies sent
//! 2026-11-26T05:52:55.200000Z note 127.0.0.1:50313: input ended: line longer than 8192 bytes
//! 2026-11-26T05:52:55.300000Z dropped 127.0.0.1:50314: too many commands awaiting replies
//! 2026-11-26T05:52:56.000000Z peer Jaquez up
//! 2026-11-26T05:52:57.000000Z peer Jaquez down: closed by the neighbour
//! 2026-11-26T05:52:57.500000Z peer Jaquez inbound up from 127.0.0.1:50400
//! 2026-11-26T05:52:58.000000Z note 12 events not logged: the log writer fell behind
//! ```
//!
//! Text is escaped so an event is always one line that shows what it holds: `\n`, `\r`,
//! `\t`, `\\`, `\xNN` for other control bytes and for bytes that are not UTF-8 (client
//! lines may be any bytes), and `\u{NN}` for the characters that a terminal or an editor
//! would act on or hide (C1 controls, U+2028, U+2029, the bidirectional controls): every
//! text that came from outside, a client's line or a neighbour's words, is escaped the same
//! way. A reply's final newline is left out; the ones inside it show as `\n`.
//!
//! Serving never waits for the disk, nor for another serving thread: [`EventLog`] formats
//! the line and appends it to a bounded in-memory buffer of its thread's own, its lane
//! ([`EventLog::lane`]), under a mutex that only the writer thread shares. The writer wakes
//! every 50 ms (never per event: a wake-up per line cost more CPU than serving the line),
//! or as soon as a lane is half full, takes every lane's buffer, merges their lines by their
//! timestamps (each lane's in its own order, and on equal timestamps the lanes in the order
//! they were made) and writes them with one `write`. When a lane is full (the disk has
//! stalled, or a burst outruns it) the event is dropped and counted, and the count is
//! logged with that lane's next event there is room for. Within a lane the order is exact;
//! across lanes it is that of the timestamps within what one wake takes (an event stamped
//! just before a wake and appended just after it goes out with the next).
//!
//! What is left out, so that the log says what happened rather than that nothing did:
//! - a peer link's heartbeats (`PING` and `PONG`, a line each per link and second), unless
//!   `[log] heartbeats = true`;
//! - refusals from an address already refused within the minute (see `refusals`): the first
//!   is written whole, the rest summed up in one line when the minute is over; and while an
//!   address is being refused so, its peer handshake lines (`HERD-PEER`, `HERD-CHALLENGE`,
//!   `HERD-REFUSED`, ...): the refusal's line says what they would. Refusals are followed in
//!   one place for every lane, so a handshake line is quieted whichever thread logs it:
//!   serving threads share that lock only there, on a refusal and a handshake line.
//!
//! [`EventLog::reopen`] (the server calls it on SIGHUP) starts a new file at the log's path
//! once what was logged before it is written to the old one: logrotate renames the file,
//! signals, and nothing is lost or written twice.
//!
//! What the admin listener reads of it: the lines dropped since the start (a Prometheus
//! counter the log owns), and whether the writer's last write failed (a flag the writer
//! thread sets and clears; `/health` answers 503 while it is set).

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

use crate::peers::wire;

mod format;
mod lane;
#[cfg(test)]
mod lane_tests;
#[cfg(test)]
mod quiet_tests;
mod refusals;
mod sink;
#[cfg(test)]
mod tests;
mod writer;

pub use format::escaped;
pub(crate) use format::push_timestamp;
use format::{event, with_reason};
use lane::{append, Lane, Lanes};
pub(crate) use refusals::Door;
use refusals::{refusal_line, summary_line, LoggedRefusal, Refusals, Verdict};
use sink::{FileSink, Sink};
use writer::write_events;

/// Bytes of events that may wait for the writer in each lane, so per serving thread: bounded
/// so a stalled disk costs lost log lines, not memory. The writer wakes early when a lane is
/// half full, so a burst of big replies is written out as it comes rather than held.
const CAPACITY: usize = 4 * 1024 * 1024;

/// A handle on one server's event log: cheap to clone, for every session and peer link.
/// Clones share their lane; a serving thread makes its own with [`lane`](EventLog::lane).
///
/// The last handle to go flushes and closes the file; the server calls
/// [`flush_and_close`](EventLog::flush_and_close) on shutdown so that happens before it exits.
#[derive(Clone)]
pub(crate) struct EventLog {
    file: Arc<LogFile>,
    /// Where this handle's events wait for the writer.
    lane: Arc<Lane>,
    /// Whether a peer link's `PING` and `PONG` lines are written (`[log] heartbeats`).
    heartbeats: bool,
}

/// What the handles share; its drop (the last handle's) closes the log.
struct LogFile {
    path: PathBuf,
    buffer: Arc<Buffer>,
    /// `None` once closed.
    writer: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

/// What the handles and the writer thread share.
struct Buffer {
    /// Every lane, in the order they were made, and what the writer is to do next. Locked
    /// when a lane is made, to close and to reopen, and by the writer; never to append.
    lanes: Mutex<Lanes>,
    /// Refusals by address, for their summaries and to quiet handshake lines: one place for
    /// every lane, locked only on a refusal, a handshake line, and by the writer's sweep.
    /// Taken before a lane's lock, never after.
    refusals: Mutex<Refusals>,
    /// Wakes the writer early: to close, to reopen, or to take a lane half full.
    wake: Condvar,
    /// The most bytes of events a lane holds.
    capacity: usize,
    /// Events dropped since the start, for `/metrics`.
    dropped: Counter,
    /// Set by the writer while its last write failed; cleared by the next that succeeds.
    failing: AtomicBool,
    /// Why the last write failed; the writer sets it before `failing`.
    write_error: Mutex<Option<String>>,
}

impl EventLog {
    /// Opens `<dir>/<server>.log` for appending, creating `dir` if it is missing. Heartbeats
    /// are left out unless [`with_heartbeats`](EventLog::with_heartbeats) says otherwise.
    pub(crate) fn open(dir: &Path, server: &str) -> io::Result<EventLog> {
        let path = dir.join(format!("{server}.log"));
        let file = FileSink::open(&path)?;
        Self::start(path, file, CAPACITY)
    }

    /// This handle, and those cloned from it, write heartbeats if `on`.
    pub(crate) fn with_heartbeats(self, on: bool) -> EventLog {
        EventLog {
            heartbeats: on,
            ..self
        }
    }

    /// An event log writing to `sink`, holding at most `capacity` bytes of events per lane.
    fn start<W: Sink>(path: PathBuf, sink: W, capacity: usize) -> io::Result<EventLog> {
        let home = Arc::new(Lane::new(false));
        let buffer = Arc::new(Buffer {
            lanes: Mutex::new(Lanes {
                all: vec![Arc::clone(&home)],
                reopen: false,
                closed: false,
            }),
            refusals: Mutex::new(Refusals::default()),
            wake: Condvar::new(),
            capacity,
            dropped: Counter::default(),
            failing: AtomicBool::new(false),
            write_error: Mutex::new(None),
        });
        let for_writer = Arc::clone(&buffer);
        let writer = std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || write_events(&for_writer, sink))?;
        Ok(EventLog {
            file: Arc::new(LogFile {
                path,
                buffer,
                writer: Mutex::new(Some(writer)),
            }),
            lane: home,
            heartbeats: false,
        })
    }

    /// A handle on the same log with a lane of its own, for a serving thread: its events
    /// wait in a buffer that no other serving thread locks, and the writer merges the lanes
    /// by time. Its clones share its lane; it writes heartbeats if this handle does.
    pub(crate) fn lane(&self) -> EventLog {
        let mut lanes = lock(&self.file.buffer.lanes);
        let lane = Arc::new(Lane::new(lanes.closed));
        lanes.all.push(Arc::clone(&lane));
        EventLog {
            file: Arc::clone(&self.file),
            lane,
            heartbeats: self.heartbeats,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file.path
    }

    /// The count of events dropped since the start: a handle on the log's own counter.
    pub(crate) fn dropped_counter(&self) -> Counter {
        self.file.buffer.dropped.clone()
    }

    /// Why the event log cannot be written, while its last write failed.
    pub(crate) fn write_error(&self) -> Option<String> {
        if !self.file.buffer.failing.load(Ordering::Acquire) {
            return None;
        }
        let why = lock(&self.file.buffer.write_error).clone();
        Some(why.unwrap_or_else(|| "the last write failed".into()))
    }

    /// A line received from a client, without its line terminator.
    pub(crate) fn received(&self, peer: SocketAddr, line: &[u8]) {
        self.push_unless_refusing(None, |out| event(out, "in", Some(peer), line));
    }

    /// A reply sent to a client, whole (a multi-line reply is still one event).
    pub(crate) fn sent(&self, peer: SocketAddr, reply: &[u8]) {
        let reply = reply.strip_suffix(b"\n").unwrap_or(reply);
        self.push_unless_refusing(None, |out| event(out, "out", Some(peer), reply));
    }

    /// A line from a neighbour (or from what says it is one: a hello): as
    /// [`received`](EventLog::received), but a heartbeat is written only with `[log]
    /// heartbeats`, and a handshake line not while its address is being refused.
    pub(crate) fn peer_received(&self, peer: SocketAddr, line: &[u8]) {
        if self.heartbeats || line != wire::PING.as_bytes() {
            let quiet = is_handshake(line).then_some(peer.ip());
            self.push_unless_refusing(quiet, |out| event(out, "in", Some(peer), line));
        }
    }

    /// A line sent to a neighbour: as [`sent`](EventLog::sent), with the same exceptions
    /// as [`peer_received`](EventLog::peer_received).
    pub(crate) fn peer_sent(&self, peer: SocketAddr, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if self.heartbeats || line != wire::PONG.as_bytes() {
            let quiet = is_handshake(line).then_some(peer.ip());
            self.push_unless_refusing(quiet, |out| event(out, "out", Some(peer), line));
        }
    }

    /// A connection from `peer` turned away at `door`, and why. The first from an address
    /// in a minute is written whole; the others are counted, and the last of them written
    /// with their count when the minute is over (or the log closes).
    pub(crate) fn refused(&self, peer: SocketAddr, door: Door, why: &str) {
        let refusal = LoggedRefusal {
            door,
            peer,
            why: why.to_owned(),
        };
        let mut refusals = lock(&self.file.buffer.refusals);
        let mut p = lock(&self.lane.pending);
        if p.closed {
            return;
        }
        match refusals.admit(&refusal, Instant::now()) {
            Verdict::Counted => {}
            Verdict::Write(before) => {
                if let Some(summary) = before {
                    append(&mut p, &self.file.buffer, |out| summary_line(out, &summary));
                }
                append(&mut p, &self.file.buffer, |out| refusal_line(out, &refusal));
            }
        }
    }

    /// Starts a new file at the log's path once everything logged so far is in the old one
    /// (the server does it on SIGHUP, after logrotate has renamed the file).
    pub(crate) fn reopen(&self) {
        let mut lanes = lock(&self.file.buffer.lanes);
        if lanes.closed {
            return;
        }
        lanes.reopen = true;
        drop(lanes);
        self.file.buffer.wake.notify_one();
    }

    /// A connection accepted from `peer`.
    pub(crate) fn opened(&self, peer: SocketAddr) {
        self.push(|out| event(out, "open", Some(peer), b""));
    }

    /// A connection that ended the ordinary way (the other side closed, or we answered and
    /// closed), and why.
    pub(crate) fn closed(&self, peer: SocketAddr, reason: &str) {
        self.push(|out| {
            event(out, "closed", Some(peer), b"");
            with_reason(out, reason);
        });
    }

    /// A connection the server cut (an error, or a limit exceeded), and why.
    pub(crate) fn dropped(&self, peer: SocketAddr, reason: &str) {
        self.push(|out| {
            event(out, "dropped", Some(peer), b"");
            with_reason(out, reason);
        });
    }

    /// The link with `neighbour` came up (handshake done).
    pub(crate) fn peer_up(&self, neighbour: &str) {
        self.push(|out| {
            event(out, "peer", None, neighbour.as_bytes());
            out.extend_from_slice(b" up");
        });
    }

    /// The link with `neighbour` went down, and why.
    pub(crate) fn peer_down(&self, neighbour: &str, reason: &str) {
        self.push(|out| {
            event(out, "peer", None, neighbour.as_bytes());
            out.extend_from_slice(b" down");
            with_reason(out, reason);
        });
    }

    /// `neighbour` dialled in from `addr` and passed the handshake: its link to us is up.
    pub(crate) fn peer_in_up(&self, neighbour: &str, addr: SocketAddr) {
        self.push(|out| {
            event(out, "peer", None, neighbour.as_bytes());
            let _ = write!(out, " inbound up from {addr}");
        });
    }

    /// The link `neighbour` dialled in from `addr` went down.
    pub(crate) fn peer_in_down(&self, neighbour: &str, addr: SocketAddr) {
        self.push(|out| {
            event(out, "peer", None, neighbour.as_bytes());
            let _ = write!(out, " inbound down from {addr}");
        });
    }

    /// Anything else worth a line: start-up, shutdown.
    pub(crate) fn note(&self, text: &str) {
        self.push(|out| event(out, "note", None, text.as_bytes()));
    }

    /// Writes out everything logged so far and stops the writer; returns once it is all in
    /// the file (or the error that kept it out). Events logged afterwards are ignored.
    pub(crate) fn flush_and_close(&self) -> io::Result<()> {
        self.file.close()
    }

    /// Appends one event, formatted by `write` straight into this handle's lane, or counts it
    /// lost if the lane is full.
    fn push(&self, write: impl FnOnce(&mut Vec<u8>)) {
        self.push_unless_refusing(None, write);
    }

    /// [`push`](EventLog::push), unless `quiet` is an address whose peer handshakes are
    /// being refused and summed up. Only then are the refusals looked up (and held while the
    /// line is stamped, so it cannot come after a refusal it was let through before); every
    /// other event locks its lane alone.
    fn push_unless_refusing(&self, quiet: Option<IpAddr>, write: impl FnOnce(&mut Vec<u8>)) {
        let _refusals = match quiet {
            Some(ip) => {
                let refusals = lock(&self.file.buffer.refusals);
                if refusals.is_refusing(ip) {
                    return;
                }
                Some(refusals)
            }
            None => None,
        };
        let mut p = lock(&self.lane.pending);
        if p.closed {
            return;
        }
        append(&mut p, &self.file.buffer, write);
    }
}

/// Whether `line` is one of the peer handshake's (`HERD-PEER`, `HERD-CHALLENGE`, ...).
fn is_handshake(line: &[u8]) -> bool {
    if !line.starts_with(b"HERD-") {
        return false;
    }
    let word = line.split(|&b| b == b' ').next().unwrap_or(line);
    [
        wire::HELLO,
        wire::CHALLENGE,
        wire::PROOF,
        wire::WELCOME,
        wire::REFUSED,
    ]
    .iter()
    .any(|w| w.as_bytes() == word)
}

/// The log must outlive a panic elsewhere: a poisoned lock still guards valid bytes.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.file.path)
            .finish_non_exhaustive()
    }
}

impl LogFile {
    fn close(&self) -> io::Result<()> {
        // Held until the writer is done, so every caller returns only once the file is complete.
        let mut writer = lock(&self.writer);
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        let mut lanes = lock(&self.buffer.lanes);
        for lane in &lanes.all {
            lock(&lane.pending).closed = true;
        }
        lanes.closed = true;
        drop(lanes);
        self.buffer.wake.notify_one();
        handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the event log writer panicked")))
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("event log {}: {e}", self.path.display());
        }
    }
}
