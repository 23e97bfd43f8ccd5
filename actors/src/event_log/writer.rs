//! The writer thread: the one that waits for the disk, so that serving never does.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::format::{event, lost_notice};
use super::refusals::summary_line;
use super::sink::Sink;
use super::{append, lock, Buffer};

/// Bytes of buffer the writer keeps between writes.
const SPARE_KEPT: usize = 1024 * 1024;

/// How often the writer takes what has been logged; the file trails the server by this.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How often the writer looks for refusal windows that are over, to write their summaries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The writer thread: every [`FLUSH_EVERY`], or at once on close or reopen, takes what was
/// logged and writes it with one `write`; then opens the file again if asked to. Every
/// [`SWEEP_EVERY`] it adds the summaries of the refusal windows that are over.
pub(super) fn write_events<W: Sink>(buffer: &Buffer, mut out: W) -> io::Result<()> {
    let mut spare = Vec::new();
    let mut first_error: Option<io::Error> = None;
    let mut swept = Instant::now();
    loop {
        let mut p = lock(&buffer.pending);
        if !p.closed && !p.reopen {
            p = buffer
                .wake
                .wait_timeout(p, FLUSH_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let closing = p.closed;
        let now = Instant::now();
        if closing || now.saturating_duration_since(swept) >= SWEEP_EVERY {
            swept = now;
            for summary in p.refusals.due(now, closing) {
                append(&mut p, buffer, |out| summary_line(out, &summary));
            }
        }
        if closing && p.lost > 0 {
            let lost = std::mem::take(&mut p.lost);
            lost_notice(&mut p.buf, lost);
        }
        std::mem::swap(&mut p.buf, &mut spare);
        p.nudged = false;
        let reopen = std::mem::take(&mut p.reopen);
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
        if reopen {
            // The note goes to the new file if there is one, else on in the old.
            let note = match out.reopen() {
                Ok(()) => "reopened the event log".to_owned(),
                Err(e) => {
                    log::error!("event log: {e}; still writing to the file open before");
                    format!("{e}; still writing to the file open before")
                }
            };
            append(&mut lock(&buffer.pending), buffer, |out| {
                event(out, "note", None, note.as_bytes());
            });
        }
    }
}
