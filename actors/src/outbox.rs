//! A bounded queue of bytes for one socket, drained by a writer future.
//!
//! actix's `FramedWrite` has no backpressure and does not say how much it holds, so a peer
//! that never reads would grow our memory without bound. Here a push past the cap fails and
//! the owner drops the connection. Pushing never blocks and never writes: the writer future
//! takes everything queued since its last write in one `write`, so replies and floods that
//! pile up under load leave in batches.
//!
//! A peer link's outbox also has two lanes beside the capped one. Control lines (heartbeats)
//! go in an urgent lane the writer takes first, never refused and never behind more than
//! one chunk of other lines, so a link's heartbeat never waits behind its bulk. Bulk lines
//! (a reconciliation's records) wait in a lane of their own, outside the cap, and are moved
//! into the queue only while fewer than a window of bytes are unsent: they stream as the
//! socket drains, so no sync, however large, can overflow the link it runs on.
//!
//! The cap is the last resort. Before it, whoever fills an outbox can wait for it to drain
//! below a level, and outboxes can share a [`ReplyBudget`] ([`Outbox::poll_room`]): a
//! server stops reading a client whose replies it cannot send, and stops reading every
//! client while all of their unsent replies together pass the budget.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// More than the cap would be queued: the connection's reader has stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {0} bytes queued for a connection that does not read")]
pub(crate) struct Overflow(pub usize);

/// The bytes a link's bulk lane keeps queued at most.
const LINK_BULK_WINDOW: usize = 256 * 1024;

/// The most bytes of whole lines one write of a link takes.
const LINK_CHUNK: usize = 64 * 1024;

/// The sending side; clones share one queue. Single-threaded, like the actor that owns it.
#[derive(Clone, Debug)]
pub(crate) struct Outbox(Rc<RefCell<State>>);

#[derive(Debug)]
struct State {
    /// Control lines, written before anything in `queued` that the writer has not taken.
    urgent: BytesMut,
    queued: BytesMut,
    /// Lines that wait outside the cap and join `queued` as the socket drains.
    bulk: VecDeque<Arc<str>>,
    /// Bulk lines join `queued` while fewer than this many bytes are unsent.
    bulk_window: usize,
    /// The most bytes of `queued` one write takes (it ends at a line's end), so an urgent
    /// line waits behind at most that much.
    max_chunk: usize,
    /// Bytes taken by the writer and not yet written: they still count against the cap.
    in_flight: usize,
    cap: usize,
    closing: bool,
    /// A push went past the cap: the writer stops with an error, which ends the connection.
    overflowed: bool,
    waker: Option<Waker>,
    /// Someone waiting for the unsent bytes to fall below a level.
    drain_waiter: Option<(usize, Waker)>,
    budget: Option<ReplyBudget>,
    /// Bytes written since the start.
    sent_total: u64,
    /// Counts the bytes written, for `/metrics`.
    counter: Option<prometheus_client::metrics::counter::Counter>,
}

impl State {
    fn unsent(&self) -> usize {
        self.urgent.len() + self.queued.len() + self.in_flight
    }

    /// Moves bulk lines into the queue while fewer than the window of bytes are unsent.
    fn refill(&mut self) {
        while self.unsent() < self.bulk_window {
            let Some(line) = self.bulk.pop_front() else {
                break;
            };
            self.queued.extend_from_slice(line.as_bytes());
            self.queued.extend_from_slice(b"\n");
        }
    }

    /// The next chunk to write: the urgent lines, else queued lines up to `max_chunk`
    /// bytes (at least one whole line), else nothing.
    fn next_chunk(&mut self) -> Option<Bytes> {
        self.refill();
        if !self.urgent.is_empty() {
            return Some(self.urgent.split().freeze());
        }
        if self.queued.is_empty() {
            return None;
        }
        if self.queued.len() <= self.max_chunk {
            return Some(self.queued.split().freeze());
        }
        let end = self.queued[..self.max_chunk]
            .iter()
            .rposition(|&b| b == b'\n')
            .or_else(|| {
                let rest = &self.queued[self.max_chunk..];
                rest.iter()
                    .position(|&b| b == b'\n')
                    .map(|i| self.max_chunk + i)
            })
            .map_or(self.queued.len(), |i| i + 1);
        Some(self.queued.split_to(end).freeze())
    }

    /// `n` more bytes have been written.
    fn sent(&mut self, n: usize) {
        self.sent_total += n as u64;
        if let Some(counter) = &self.counter {
            counter.inc_by(n as u64);
        }
        if let Some(budget) = &self.budget {
            budget.release(n);
        }
        if let Some((level, _)) = &self.drain_waiter {
            if self.unsent() < *level {
                if let Some((_, waker)) = self.drain_waiter.take() {
                    waker.wake();
                }
            }
        }
    }
}

impl Drop for State {
    /// Bytes never sent (the connection ended first) give their share of the budget back.
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.unsent());
        }
    }
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Self {
        Outbox(Rc::new(RefCell::new(State {
            urgent: BytesMut::new(),
            queued: BytesMut::new(),
            bulk: VecDeque::new(),
            bulk_window: 0,
            max_chunk: usize::MAX,
            in_flight: 0,
            cap,
            closing: false,
            overflowed: false,
            waker: None,
            drain_waiter: None,
            budget: None,
            sent_total: 0,
            counter: None,
        })))
    }

    /// A peer link's outbox: urgent lines go first, bulk lines stream in while fewer than a
    /// window of bytes (a quarter of the cap, at most 256 KiB) are unsent, and one write
    /// takes at most 64 KiB of whole lines.
    pub(crate) fn for_link(cap: usize) -> Self {
        let out = Outbox::new(cap);
        {
            let mut s = out.0.borrow_mut();
            s.bulk_window = (cap / 4).clamp(1, LINK_BULK_WINDOW);
            s.max_chunk = LINK_CHUNK;
        }
        out
    }

    /// From now on, counts every byte written into `counter`.
    pub(crate) fn count_sent(&self, counter: prometheus_client::metrics::counter::Counter) {
        self.0.borrow_mut().counter = Some(counter);
    }

    /// An outbox whose unsent bytes also count against `budget`.
    pub(crate) fn with_budget(cap: usize, budget: ReplyBudget) -> Self {
        let out = Outbox::new(cap);
        out.0.borrow_mut().budget = Some(budget);
        out
    }

    /// Ready once fewer than `window` bytes are unsent here and the budget this outbox
    /// shares, if any, has room; until then the caller is woken when that may have changed.
    pub(crate) fn poll_room(&self, cx: &mut std::task::Context<'_>, window: usize) -> Poll<()> {
        if self.poll_unsent_below(cx, window).is_pending() {
            return Poll::Pending;
        }
        match &self.0.borrow().budget {
            Some(budget) => budget.poll_room(cx),
            None => Poll::Ready(()),
        }
    }

    /// Ready once fewer than `level` bytes are unsent; until then the writer wakes the
    /// caller when it has sent enough.
    fn poll_unsent_below(&self, cx: &mut std::task::Context<'_>, level: usize) -> Poll<()> {
        let mut s = self.0.borrow_mut();
        if s.unsent() < level {
            s.drain_waiter = None;
            Poll::Ready(())
        } else {
            s.drain_waiter = Some((level, cx.waker().clone()));
            Poll::Pending
        }
    }

    /// Queues `bytes` whole, or nothing if that would pass the cap.
    pub(crate) fn push(&self, bytes: &[u8]) -> Result<(), Overflow> {
        let cap = self.0.borrow().cap;
        self.push_parts(&[bytes], cap)
    }

    /// Queues `line` and a newline, whole or not at all.
    pub(crate) fn push_line(&self, line: &[u8]) -> Result<(), Overflow> {
        let cap = self.0.borrow().cap;
        self.push_parts(&[line, b"\n"], cap)
    }

    /// Queues a control line (and a newline) in the urgent lane: never refused, and written
    /// before every line not yet taken by the writer.
    pub(crate) fn push_urgent(&self, line: &[u8]) {
        let mut s = self.0.borrow_mut();
        s.urgent.extend_from_slice(line);
        s.urgent.extend_from_slice(b"\n");
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Queues lines in the bulk lane: outside the cap, each joining the queue once fewer
    /// than the window of bytes are unsent.
    pub(crate) fn push_bulk(&self, lines: impl IntoIterator<Item = Arc<str>>) {
        let mut s = self.0.borrow_mut();
        s.bulk.extend(lines);
        s.refill();
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    fn push_parts(&self, parts: &[&[u8]], cap: usize) -> Result<(), Overflow> {
        let mut s = self.0.borrow_mut();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if s.unsent().saturating_add(len) > cap {
            s.overflowed = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            return Err(Overflow(s.cap));
        }
        for part in parts {
            s.queued.extend_from_slice(part);
        }
        if let Some(budget) = &s.budget {
            budget.take(len);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Bytes written since the start: it grows while the reader takes what is sent.
    pub(crate) fn sent_total(&self) -> u64 {
        self.0.borrow().sent_total
    }

    /// Bytes queued or being written.
    pub(crate) fn pending(&self) -> usize {
        self.0.borrow().unsent()
    }

    /// Asks the writer to write what is queued, shut the socket's sending side and end.
    pub(crate) fn close(&self) {
        let mut s = self.0.borrow_mut();
        s.closing = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Writes whatever is queued to `w` until [`Outbox::close`], then shuts it down; ends
    /// with an error as soon as a push overflowed, even while a write is blocked on a reader
    /// that does not read, so whoever awaits it drops the connection.
    pub(crate) async fn drain_into<W: AsyncWrite + Unpin>(self, mut w: W) -> io::Result<()> {
        let mut chunk: Option<Bytes> = None;
        let mut written = 0;
        poll_fn(|cx| loop {
            {
                let mut s = self.0.borrow_mut();
                if s.overflowed {
                    return Poll::Ready(Err(io::Error::other(Overflow(s.cap))));
                }
                // Pushes (and overflows) wake us, also while a write is pending.
                s.waker = Some(cx.waker().clone());
                if chunk.is_none() {
                    if let Some(next) = s.next_chunk() {
                        s.in_flight = next.len();
                        chunk = Some(next);
                        written = 0;
                    } else if s.closing {
                        return Poll::Ready(Ok(()));
                    } else {
                        return Poll::Pending;
                    }
                }
            }
            let Some(bytes) = &chunk else { continue };
            match Pin::new(&mut w).poll_write(cx, &bytes[written..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    written += n;
                    let mut s = self.0.borrow_mut();
                    s.in_flight -= n;
                    s.sent(n);
                    if written == bytes.len() {
                        chunk = None;
                    }
                }
            }
        })
        .await?;
        w.shutdown().await
    }
}

/// Bytes queued and unsent in many outboxes (every client's of one server), against one
/// limit. Like a semaphore for memory: readers wait for room, writers give it back.
#[derive(Clone, Debug)]
pub(crate) struct ReplyBudget(Rc<BudgetState>);

#[derive(Debug)]
struct BudgetState {
    used: Cell<usize>,
    /// The most ever used at once.
    #[cfg(test)]
    peak: Cell<usize>,
    limit: usize,
    /// Everyone waiting for room, woken together when it comes.
    waiting: RefCell<Vec<Waker>>,
}

impl ReplyBudget {
    /// A budget of `limit` unsent bytes.
    pub(crate) fn new(limit: usize) -> Self {
        ReplyBudget(Rc::new(BudgetState {
            used: Cell::new(0),
            #[cfg(test)]
            peak: Cell::new(0),
            limit,
            waiting: RefCell::new(Vec::new()),
        }))
    }

    /// Ready while the unsent bytes are under the limit; otherwise the caller is woken once
    /// they are.
    pub(crate) fn poll_room(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.0.used.get() < self.0.limit {
            return Poll::Ready(());
        }
        let mut waiting = self.0.waiting.borrow_mut();
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn take(&self, n: usize) {
        let used = self.0.used.get() + n;
        self.0.used.set(used);
        #[cfg(test)]
        self.0.peak.set(self.0.peak.get().max(used));
    }

    fn release(&self, n: usize) {
        let used = self.0.used.get().saturating_sub(n);
        self.0.used.set(used);
        if used < self.0.limit {
            for waker in self.0.waiting.borrow_mut().drain(..) {
                waker.wake();
            }
        }
    }

    /// Unsent bytes counted now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.0.used.get()
    }

    /// The most unsent bytes counted at any one time.
    #[cfg(test)]
    pub(crate) fn peak(&self) -> usize {
        self.0.peak.get()
    }
}

#[cfg(test)]
mod tests;
