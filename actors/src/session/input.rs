//! A session's input: the connection's lines, read only while the client's replies can be
//! sent.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures::Stream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use crate::codec::{LineCodec, LineError};
use crate::outbox::{Outbox, ReplyBudget};

pub(super) type Lines = FramedRead<OwnedReadHalf, LineCodec>;

/// Commands read and not yet answered, shared by the session and its input.
#[derive(Debug, Default)]
pub(super) struct Awaited {
    pub(super) count: Cell<usize>,
    /// The input, waiting for the count to fall.
    pub(super) waker: RefCell<Option<Waker>>,
}

/// The connection's lines, as the session's stream.
///
/// Reading pauses (the stream is pending) while the client's unsent replies fill the reply
/// window, while too many of its commands await replies, or while the server's reply
/// budget is spent: TCP's own flow control then holds the client back. The session can also
/// take the lines back whole, with what was read ahead, to hand the connection over.
pub(super) struct Input {
    pub(super) lines: Rc<RefCell<Option<Lines>>>,
    pub(super) out: Outbox,
    pub(super) budget: ReplyBudget,
    pub(super) awaited: Rc<Awaited>,
    pub(super) window: usize,
    pub(super) max_pending: usize,
}

impl Stream for Input {
    type Item = Result<BytesMut, LineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.out.poll_unsent_below(cx, self.window).is_pending()
            || self.budget.poll_room(cx).is_pending()
        {
            return Poll::Pending;
        }
        if self.awaited.count.get() >= self.max_pending {
            *self.awaited.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match self.lines.borrow_mut().as_mut() {
            Some(lines) => Pin::new(lines).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}
