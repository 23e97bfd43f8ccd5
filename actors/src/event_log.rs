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
//! Serving never waits for the disk, nor for another thread: [`EventLog`] formats the line
//! and appends it to a bounded in-memory buffer under a mutex that only the writer thread
//! shares; the writer wakes every 50 ms (never per event: a wake-up per line cost more CPU
//! than serving the line), or as soon as the buffer is half full, takes the whole buffer and
//! writes it with one `write`. When the buffer is full (the disk has stalled, or a burst
//! outruns it) the event is dropped and counted, and the count is logged with the next
//! event there is room for.
//!
//! What the admin listener reads of it: the lines dropped since the start (a Prometheus
//! counter the log owns), and whether the writer's last write failed (a flag the writer
//! thread sets and clears; `/health` answers 503 while it is set).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

mod format;
#[cfg(test)]
mod tests;

pub(crate) use format::push_timestamp;
use format::{event, lost_notice, with_reason};

/// Bytes of events that may wait for the writer: bounded so a stalled disk costs lost log
/// lines, not memory. The writer wakes early at half of it, so a burst of big replies is
/// written out as it comes rather than held.
const CAPACITY: usize = 4 * 1024 * 1024;

/// Bytes of buffer the writer keeps between writes.
const SPARE_KEPT: usize = 1024 * 1024;

/// How often the writer takes what has been logged; the file trails the server by this.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// A handle on one server's event log: cheap to clone, for every session and peer link.
///
/// The last handle to go flushes and closes the file; the server calls
/// [`flush_and_close`](EventLog::flush_and_close) on shutdown so that happens before it exits.
#[derive(Clone)]
pub(crate) struct EventLog {
    file: Arc<LogFile>,
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
    pending: Mutex<Pending>,
    /// Wakes the writer early: to close, or to take a buffer half full.
    wake: Condvar,
    /// Events dropped since the start, for `/metrics`.
    dropped: Counter,
    /// Set by the writer while its last write failed; cleared by the next that succeeds.
    failing: AtomicBool,
    /// Why the last write failed; the writer sets it before `failing`.
    write_error: Mutex<Option<String>>,
}

/// What the writer has not taken yet.
struct Pending {
    buf: Vec<u8>,
    capacity: usize,
    /// Events dropped on a full buffer and not yet reported in the log.
    lost: u64,
    /// The writer has been woken for a buffer half full, and has not taken it yet.
    nudged: bool,
    closed: bool,
}

impl EventLog {
    /// Opens `<dir>/<server>.log` for appending, creating `dir` if it is missing.
    pub(crate) fn open(dir: &Path, server: &str) -> io::Result<EventLog> {
        let with_path = |path: &Path, what: &str| {
            let path = path.display().to_string();
            let what = what.to_string();
            move |e: io::Error| io::Error::new(e.kind(), format!("cannot {what} {path}: {e}"))
        };
        fs::create_dir_all(dir).map_err(with_path(dir, "create log directory"))?;
        let path = dir.join(format!("{server}.log"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(with_path(&path, "open event log"))?;
        Self::start(path, file, CAPACITY)
    }

    /// An event log writing to `sink`, holding at most `capacity` bytes of events.
    fn start<W: Write + Send + 'static>(
        path: PathBuf,
        sink: W,
        capacity: usize,
    ) -> io::Result<EventLog> {
        let buffer = Arc::new(Buffer {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                capacity,
                lost: 0,
                nudged: false,
                closed: false,
            }),
            wake: Condvar::new(),
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
        })
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

    /// A line received from `peer`, without its line terminator.
    pub(crate) fn received(&self, peer: SocketAddr, line: &[u8]) {
        self.push(|out| event(out, "in", Some(peer), line));
    }

    /// A reply sent to `peer`, whole (a multi-line reply is still one event).
    pub(crate) fn sent(&self, peer: SocketAddr, reply: &[u8]) {
        let reply = reply.strip_suffix(b"\n").unwrap_or(reply);
        self.push(|out| event(out, "out", Some(peer), reply));
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

    /// Appends one event, formatted by `write` straight into the buffer, or counts it lost
    /// if the buffer is full.
    fn push(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut p = lock(&self.file.buffer.pending);
        if p.closed {
            return;
        }
        // The count of lost events goes in just before the next event there is room for.
        let start = p.buf.len();
        if p.lost > 0 {
            let lost = p.lost;
            lost_notice(&mut p.buf, lost);
        }
        write(&mut p.buf);
        p.buf.push(b'\n');
        if p.buf.len() > p.capacity {
            p.buf.truncate(start);
            p.lost += 1;
            self.file.buffer.dropped.inc();
            return;
        }
        p.lost = 0;
        if p.buf.len() > p.capacity / 2 && !p.nudged {
            p.nudged = true;
            self.file.buffer.wake.notify_one();
        }
    }
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
        lock(&self.buffer.pending).closed = true;
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

/// The writer thread: every [`FLUSH_EVERY`], or at once on close, takes what was logged and
/// writes it with one `write`.
fn write_events<W: Write>(buffer: &Buffer, mut out: W) -> io::Result<()> {
    let mut spare = Vec::new();
    let mut first_error: Option<io::Error> = None;
    loop {
        let mut p = lock(&buffer.pending);
        if !p.closed {
            p = buffer
                .wake
                .wait_timeout(p, FLUSH_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let closing = p.closed;
        if closing && p.lost > 0 {
            let lost = std::mem::take(&mut p.lost);
            lost_notice(&mut p.buf, lost);
        }
        std::mem::swap(&mut p.buf, &mut spare);
        p.nudged = false;
        drop(p);
        if !spare.is_empty() {
            let result = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
            // A burst may have grown the buffer to megabytes; keep only what a steady
            // stream needs, so the memory goes back once the burst has passed.
            spare.shrink_to(SPARE_KEPT);
            match result {
                Ok(()) => buffer.failing.store(false, Ordering::Release),
                Err(e) => {
                    if !buffer.failing.load(Ordering::Acquire) {
                        log::error!("event log: {e}; events are being lost");
                        *lock(&buffer.write_error) = Some(e.to_string());
                    }
                    buffer.failing.store(true, Ordering::Release);
                    first_error.get_or_insert(e);
                }
            }
        }
        if closing {
            return first_error.map_or(Ok(()), Err);
        }
    }
}
