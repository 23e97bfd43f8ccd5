//! The per-server event log, `<log.dir>/<NAME>.log`: the product's own record of what a
//! server received, sent, and which connections and peer links came and went.
//!
//! One line per event: an RFC 3339 UTC timestamp with microseconds, a kind, and the text.
//!
//! ```text
//! 2026-11-26T05:52:55.123456Z open 127.0.0.1:50312
//! 2026-11-26T05:52:55.123502Z in 127.0.0.1:50312 IAMAT kiwi +34.068930-118.445127 1621464827.9
//! 2026-11-26T05:52:55.123590Z out 127.0.0.1:50312 AT Hill +0.263873386 kiwi +34.068930-118.445127 1621464827.9
//! 2026-11-26T05:52:55.124001Z closed 127.0.0.1:50312: end of input
//! 2026-11-26T05:52:55.200000Z dropped 127.0.0.1:50313: line longer than 64 KiB
//! 2026-11-26T05:52:56.000000Z peer Jaquez up
//! 2026-11-26T05:52:57.000000Z peer Jaquez down: connection reset by peer
//! 2026-11-26T05:52:57.500000Z peer Jaquez inbound up from 127.0.0.1:50400
//! 2026-11-26T05:52:58.000000Z note 12 events not logged: the log writer fell behind
//! ```
//!
//! Text is escaped so an event is always one line: `\n`, `\r`, `\t`, `\\`, and `\xNN` for
//! other control bytes and for bytes that are not UTF-8 (client lines may be any bytes).
//! A reply's final newline is left out; the ones inside it show as `\n`.
//!
//! Serving never waits for the disk: [`EventLog`] formats the line and hands it to a bounded
//! channel; a writer thread drains it through a `BufWriter`, flushing whenever the channel
//! goes idle and at least every 100 ms under load. When the channel is full the
//! event is dropped and counted, and the count is logged as soon as there is room again.

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(test)]
mod tests;

/// Events that may wait for the writer: enough for a burst of a few thousand lines while the
/// disk stalls, bounded so a stalled disk costs lost log lines, not memory.
const CAPACITY: usize = 8192;

/// Under a steady load the channel never goes idle; flush at least this often anyway, so the
/// file trails the server by no more than this.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

const BUFFER_BYTES: usize = 64 * 1024;

/// A handle on one server's event log: cheap to clone, for every session and peer link.
///
/// The last handle to go flushes and closes the file; the server calls
/// [`flush_and_close`](EventLog::flush_and_close) on shutdown so that happens before it exits.
#[derive(Clone)]
pub struct EventLog {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    tx: SyncSender<Msg>,
    /// Events dropped on a full channel and not yet reported in the log.
    lost: AtomicU64,
    /// `None` once closed.
    writer: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

enum Msg {
    Line(Vec<u8>),
    /// Flush and stop: everything sent before it is written first.
    Close,
}

impl EventLog {
    /// Opens `<dir>/<server>.log` for appending, creating `dir` if it is missing.
    pub fn open(dir: &Path, server: &str) -> io::Result<EventLog> {
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

    /// An event log writing to `sink` through a channel of `capacity` events.
    fn start<W: Write + Send + 'static>(
        path: PathBuf,
        sink: W,
        capacity: usize,
    ) -> io::Result<EventLog> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let thread_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || {
                write_events(
                    rx,
                    BufWriter::with_capacity(BUFFER_BYTES, sink),
                    &thread_path,
                )
            })?;
        Ok(EventLog {
            shared: Arc::new(Shared {
                path,
                tx,
                lost: AtomicU64::new(0),
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// The file this log appends to.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A line received from `peer`, without its line terminator.
    pub fn received(&self, peer: SocketAddr, line: &[u8]) {
        self.push(event("in", Some(peer), line));
    }

    /// A reply sent to `peer`, whole (a multi-line reply is still one event).
    pub fn sent(&self, peer: SocketAddr, reply: &[u8]) {
        let reply = reply.strip_suffix(b"\n").unwrap_or(reply);
        self.push(event("out", Some(peer), reply));
    }

    /// A connection accepted from `peer`.
    pub fn opened(&self, peer: SocketAddr) {
        self.push(event("open", Some(peer), b""));
    }

    /// A connection that ended the ordinary way (the other side closed, or we answered and
    /// closed), and why.
    pub fn closed(&self, peer: SocketAddr, reason: &str) {
        self.push(with_reason(event("closed", Some(peer), b""), reason));
    }

    /// A connection the server cut (an error, or a limit exceeded), and why.
    pub fn dropped(&self, peer: SocketAddr, reason: &str) {
        self.push(with_reason(event("dropped", Some(peer), b""), reason));
    }

    /// The link with `neighbour` came up (handshake done).
    pub fn peer_up(&self, neighbour: &str) {
        let mut line = event("peer", None, neighbour.as_bytes());
        line.extend_from_slice(b" up");
        self.push(line);
    }

    /// The link with `neighbour` went down, and why.
    pub fn peer_down(&self, neighbour: &str, reason: &str) {
        let mut line = event("peer", None, neighbour.as_bytes());
        line.extend_from_slice(b" down");
        self.push(with_reason(line, reason));
    }

    /// `neighbour` dialled in from `addr` and passed the handshake: its link to us is up.
    pub fn peer_in_up(&self, neighbour: &str, addr: SocketAddr) {
        let mut line = event("peer", None, neighbour.as_bytes());
        line.extend_from_slice(format!(" inbound up from {addr}").as_bytes());
        self.push(line);
    }

    /// The link `neighbour` dialled in from `addr` went down.
    pub fn peer_in_down(&self, neighbour: &str, addr: SocketAddr) {
        let mut line = event("peer", None, neighbour.as_bytes());
        line.extend_from_slice(format!(" inbound down from {addr}").as_bytes());
        self.push(line);
    }

    /// Anything else worth a line: start-up, shutdown.
    pub fn note(&self, text: &str) {
        self.push(event("note", None, text.as_bytes()));
    }

    /// Writes out everything logged so far and stops the writer; returns once it is all in
    /// the file (or the error that kept it out). Events logged afterwards are ignored.
    pub fn flush_and_close(&self) -> io::Result<()> {
        self.shared.close()
    }

    /// Queues `line` (an [`event`] without its newline), or counts it lost if the queue is full.
    fn push(&self, mut line: Vec<u8>) {
        line.push(b'\n');
        let shared = &*self.shared;
        if shared.lost.load(Ordering::Relaxed) > 0 {
            let lost = shared.lost.swap(0, Ordering::Relaxed);
            if lost > 0 && shared.tx.try_send(Msg::Line(lost_notice(lost))).is_err() {
                shared.lost.fetch_add(lost, Ordering::Relaxed);
            }
        }
        match shared.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                shared.lost.fetch_add(1, Ordering::Relaxed);
            }
            // Closed: the server is shutting down and its log is complete.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn close(&self) -> io::Result<()> {
        // Held until the writer is done, so every caller returns only once the file is complete.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        let lost = self.lost.swap(0, Ordering::Relaxed);
        // Blocking sends: the writer is draining, and shutdown may wait for the disk.
        if lost > 0 {
            let _ = self.tx.send(Msg::Line(lost_notice(lost)));
        }
        let _ = self.tx.send(Msg::Close);
        handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the event log writer panicked")))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            ::log::error!("event log {}: {e}", self.path.display());
        }
    }
}

/// The writer thread: drains the channel into `out`, flushing when it goes idle.
fn write_events<W: Write>(rx: Receiver<Msg>, mut out: BufWriter<W>, path: &Path) -> io::Result<()> {
    let mut failing = false;
    let mut report = |result: io::Result<()>| match result {
        Ok(()) => failing = false,
        Err(e) if !failing => {
            failing = true;
            ::log::error!("event log {}: {e}; events are being lost", path.display());
        }
        Err(_) => {}
    };
    // `recv` fails only if the sender went without a `Close` (the last handle sends one):
    // flush what there is all the same.
    while let Ok(first) = rx.recv() {
        let mut last_flush = Instant::now();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => report(out.write_all(&line)),
                Msg::Close => return out.flush(),
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                report(out.flush());
                last_flush = Instant::now();
            }
            next = rx.try_recv().ok();
        }
        report(out.flush());
    }
    out.flush()
}

/// A new event line: timestamp, kind, then `peer` and the escaped `text` if present (no
/// newline yet: [`EventLog::push`] adds it).
fn event(kind: &str, peer: Option<SocketAddr>, text: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(64 + text.len() + text.len() / 8);
    push_timestamp(&mut line, SystemTime::now());
    line.push(b' ');
    line.extend_from_slice(kind.as_bytes());
    if let Some(peer) = peer {
        // Writing into a `Vec` cannot fail.
        let _ = write!(line, " {peer}");
    }
    if !text.is_empty() {
        line.push(b' ');
        push_escaped(&mut line, text);
    }
    line
}

fn with_reason(mut line: Vec<u8>, reason: &str) -> Vec<u8> {
    line.extend_from_slice(b": ");
    push_escaped(&mut line, reason.as_bytes());
    line
}

fn lost_notice(lost: u64) -> Vec<u8> {
    let text = format!("{lost} events not logged: the log writer fell behind");
    let mut line = event("note", None, text.as_bytes());
    line.push(b'\n');
    line
}

/// Appends `at` as `2026-11-26T05:52:55.123456Z`. By hand, because it runs for every line a
/// server receives and sends, and the civil date is a few integer operations.
fn push_timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    push_padded(out, year, 4);
    out.push(b'-');
    push_padded(out, month, 2);
    out.push(b'-');
    push_padded(out, day, 2);
    out.push(b'T');
    push_padded(out, in_day / 3600, 2);
    out.push(b':');
    push_padded(out, in_day / 60 % 60, 2);
    out.push(b':');
    push_padded(out, in_day % 60, 2);
    out.push(b'.');
    push_padded(out, u64::from(since_epoch.subsec_micros()), 6);
    out.push(b'Z');
}

/// Year, month (1..=12) and day (1..=31) of the `days`th day after 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let len = digits.len() - start;
    out.resize(out.len() + width.saturating_sub(len), b'0');
    out.extend_from_slice(&digits[start..]);
}

/// Appends `text` so that it stays on one line and every byte of it can be recovered.
fn push_escaped(out: &mut Vec<u8>, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut plain_from = 0;
        for (i, &byte) in valid.iter().enumerate() {
            if byte == b'\\' || byte < 0x20 || byte == 0x7f {
                out.extend_from_slice(&valid[plain_from..i]);
                push_escape(out, byte);
                plain_from = i + 1;
            }
        }
        out.extend_from_slice(&valid[plain_from..]);
        for &byte in chunk.invalid() {
            push_escape(out, byte);
        }
    }
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}
