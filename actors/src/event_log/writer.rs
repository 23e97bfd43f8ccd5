//! The writer thread: the one that waits for the disk, so that serving never does.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::format::{event, lost_notice, STAMP_LEN};
use super::refusals::summary_line;
use super::sink::Sink;
use super::{lock, Buffer, Lane};

/// Bytes of each buffer the writer keeps between writes.
const SPARE_KEPT: usize = 1024 * 1024;

/// How often the writer takes what has been logged; the file trails the server by this.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How often the writer looks for refusal windows that are over, to write their summaries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The writer thread: every [`FLUSH_EVERY`], or at once on close or reopen, takes what was
/// logged on every lane and writes it in timestamp order with one `write`; then opens the
/// file again if asked to. Every [`SWEEP_EVERY`] it adds the summaries of the refusal
/// windows that are over.
pub(super) fn write_events<W: Sink>(buffer: &Buffer, mut out: W) -> io::Result<()> {
    let mut batch = Buffers::default();
    let mut first_error: Option<io::Error> = None;
    let mut swept = Instant::now();
    loop {
        let mut lanes = lock(&buffer.lanes);
        if !lanes.closed && !lanes.reopen {
            lanes = buffer
                .wake
                .wait_timeout(lanes, FLUSH_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let closing = lanes.closed;
        let reopen = std::mem::take(&mut lanes.reopen);
        let now = Instant::now();
        if closing || now.saturating_duration_since(swept) >= SWEEP_EVERY {
            swept = now;
            let due = lock(&buffer.refusals).due(now, closing);
            for summary in due {
                batch.own_line(|out| summary_line(out, &summary));
            }
        }
        let taken = batch.take(&mut lanes.all, closing);
        let kept = lanes.all.len();
        drop(lanes);
        let bytes = batch.in_order(taken);
        if !bytes.is_empty() {
            match out.write_all(bytes).and_then(|()| out.flush()) {
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
        batch.clear(kept);
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
            batch.own_line(|out| event(out, "note", None, note.as_bytes()));
        }
    }
}

/// The writer's buffers, kept from one wake to the next so that a wake allocates nothing
/// once they have grown to what a steady stream needs.
#[derive(Default)]
struct Buffers {
    /// `lanes[i]`: what lane `i` held when last taken. Each is swapped for the lane's
    /// buffer, so the lane gets the one written before, emptied.
    lanes: Vec<Vec<u8>>,
    /// The writer's own lines: refusal summaries, the note that the file was reopened.
    own: Vec<u8>,
    /// All of them in timestamp order, when more than one has lines.
    merged: Vec<u8>,
    /// How far the merge is in each.
    at: Vec<usize>,
}

impl Buffers {
    /// Adds a line of the writer's own, formatted by `write`.
    fn own_line(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.own);
        self.own.push(b'\n');
    }

    /// Takes every lane's buffer, each with the count of its lost events if nothing is to
    /// come after it; forgets the lanes no handle holds any more. Returns how many it took:
    /// `self.lanes[..taken]` holds them, in the lanes' order.
    fn take(&mut self, all: &mut Vec<Arc<Lane>>, closing: bool) -> usize {
        let taken = all.len();
        if self.lanes.len() < taken {
            self.lanes.resize_with(taken, Vec::new);
        }
        let mut i = 0;
        all.retain(|lane| {
            // Seen before the take: with no handle left, nothing can be appended after it.
            let gone = Arc::strong_count(lane) == 1;
            let mut p = lock(&lane.pending);
            if (closing || gone) && p.lost > 0 {
                let lost = std::mem::take(&mut p.lost);
                lost_notice(&mut p.buf, lost);
            }
            std::mem::swap(&mut p.buf, &mut self.lanes[i]);
            p.nudged = false;
            i += 1;
            !gone
        });
        taken
    }

    /// The lines of the first `taken` lanes and the writer's own, in timestamp order: as
    /// they are when only one of them has any, else merged.
    fn in_order(&mut self, taken: usize) -> &[u8] {
        let lanes = &self.lanes[..taken];
        let mut filled = lanes.iter().filter(|lane| !lane.is_empty());
        match (filled.next(), filled.next()) {
            (None, _) => return &self.own,
            (Some(only), None) if self.own.is_empty() => return only,
            _ => {}
        }
        merge(lanes, &self.own, &mut self.at, &mut self.merged);
        &self.merged
    }

    /// Empties the buffers written, keeping at most [`SPARE_KEPT`] bytes of each (a burst
    /// may have grown them to megabytes; the memory goes back once it has passed), and a
    /// spare for each of the `lanes` lanes left.
    fn clear(&mut self, lanes: usize) {
        self.lanes.truncate(lanes);
        let own = [&mut self.own, &mut self.merged];
        for buf in self.lanes.iter_mut().chain(own) {
            buf.clear();
            buf.shrink_to(SPARE_KEPT);
        }
    }
}

/// Appends to `out` the lines of `lanes` and then `own`, merged by the timestamp each line
/// begins with: each source's lines stay in their order, and on equal timestamps the
/// earlier source's go first (the writer's own last: they tell of what came before).
/// `at` is scratch, kept for its allocation.
fn merge(lanes: &[Vec<u8>], own: &[u8], at: &mut Vec<usize>, out: &mut Vec<u8>) {
    let source = |i: usize| lanes.get(i).map_or(own, Vec::as_slice);
    at.clear();
    at.resize(lanes.len() + 1, 0);
    loop {
        let mut earliest: Option<(usize, &[u8])> = None;
        let mut left = 0;
        for (i, &from) in at.iter().enumerate() {
            let rest = &source(i)[from..];
            if rest.is_empty() {
                continue;
            }
            left += 1;
            let stamp = &rest[..STAMP_LEN.min(rest.len())];
            if earliest.is_none_or(|(_, first)| stamp < first) {
                earliest = Some((i, stamp));
            }
        }
        let Some((i, _)) = earliest else {
            return;
        };
        let rest = &source(i)[at[i]..];
        if left == 1 {
            out.extend_from_slice(rest);
            return;
        }
        let line = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |end| end + 1);
        out.extend_from_slice(&rest[..line]);
        at[i] += line;
    }
}
