//! A bounded queue of bytes for one socket, drained by a writer future.
//!
//! actix's `FramedWrite` has no backpressure and does not say how much it holds, so a peer
//! that never reads would grow our memory without bound. Here a push past the cap fails and
//! the owner drops the connection. Pushing never blocks and never writes: the writer future
//! takes everything queued since its last write in one `write`, so replies and floods that
//! pile up under load leave in batches.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// More than the cap would be queued: the connection's reader has stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {0} bytes queued for a connection that does not read")]
pub(crate) struct Overflow(pub usize);

/// The sending side; clones share one queue. Single-threaded, like the actor that owns it.
#[derive(Clone, Debug)]
pub(crate) struct Outbox(Rc<RefCell<State>>);

#[derive(Debug)]
struct State {
    queued: BytesMut,
    /// Bytes taken by the writer and not yet written: they still count against the cap.
    in_flight: usize,
    cap: usize,
    closing: bool,
    /// A push went past the cap: the writer stops with an error, which ends the connection.
    overflowed: bool,
    waker: Option<Waker>,
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Self {
        Outbox(Rc::new(RefCell::new(State {
            queued: BytesMut::new(),
            in_flight: 0,
            cap,
            closing: false,
            overflowed: false,
            waker: None,
        })))
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

    /// Queues `line` and a newline past the cap: for a bounded burst the owner already holds
    /// in memory (a peer sync sends a copy of the table), which must not fail a link forever.
    pub(crate) fn push_line_uncapped(&self, line: &[u8]) {
        self.push_parts(&[line, b"\n"], usize::MAX)
            .unwrap_or_else(|_| unreachable!("no cap to pass"));
    }

    /// Queues `bytes` past the cap (see [`Outbox::push_line_uncapped`]).
    pub(crate) fn push_uncapped(&self, bytes: &[u8]) {
        self.push_parts(&[bytes], usize::MAX)
            .unwrap_or_else(|_| unreachable!("no cap to pass"));
    }

    fn push_parts(&self, parts: &[&[u8]], cap: usize) -> Result<(), Overflow> {
        let mut s = self.0.borrow_mut();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if (s.queued.len() + s.in_flight).saturating_add(len) > cap {
            s.overflowed = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            return Err(Overflow(s.cap));
        }
        for part in parts {
            s.queued.extend_from_slice(part);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Bytes queued or being written.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        let s = self.0.borrow();
        s.queued.len() + s.in_flight
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
                    if !s.queued.is_empty() {
                        let next = s.queued.split().freeze();
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
                    if written == bytes.len() {
                        chunk = None;
                        self.0.borrow_mut().in_flight = 0;
                    }
                }
            }
        })
        .await?;
        w.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn push_past_the_cap_fails_whole() {
        let out = Outbox::new(10);
        assert_eq!(out.push(b"12345678"), Ok(()));
        assert_eq!(out.push(b"abc"), Err(Overflow(10)));
        assert_eq!(out.pending(), 8);
        assert_eq!(out.push(b"ab"), Ok(()));
        out.push_uncapped(b"past the cap");
        assert_eq!(out.pending(), 22);
        assert_eq!(out.push_line(b"x"), Err(Overflow(10)));
    }

    #[actix::test]
    async fn writer_sends_everything_in_order_then_shuts_down() {
        let (a, mut b) = tokio::io::duplex(4);
        let out = Outbox::new(1 << 20);
        let writer = actix_rt::spawn(out.clone().drain_into(a));
        out.push(b"one\n").unwrap();
        out.push(b"two\n").unwrap();
        out.close();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"one\ntwo\n");
        assert!(writer.await.unwrap().is_ok());
        assert_eq!(out.pending(), 0);
    }

    #[actix::test]
    async fn bytes_being_written_count_against_the_cap() {
        let (a, _b) = tokio::io::duplex(4);
        let out = Outbox::new(8);
        let _writer = actix_rt::spawn(out.clone().drain_into(a));
        out.push(b"12345678").unwrap();
        // Let the writer take the chunk; the reader never reads past 4 bytes.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(out.pending(), 8);
        assert_eq!(out.push(b"x"), Err(Overflow(8)));
    }

    #[actix::test]
    async fn an_overflow_ends_the_writer_with_an_error() {
        let (a, _b) = tokio::io::duplex(4);
        let out = Outbox::new(8);
        let writer = actix_rt::spawn(out.clone().drain_into(a));
        assert!(out.push(b"123456789").is_err());
        let err = writer.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("more than 8 bytes"), "{err}");
    }
}
