//! A session's input: the connection's lines, read only while the client's replies can be
//! sent; and how the session reads it.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix::fut::ActorFuture;
use actix::{Actor, AsyncContext};
use bytes::BytesMut;
use futures::Stream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use super::limits::ClientLimits;
use super::replies::Awaited;
use crate::codec::{LineCodec, LineError};
use crate::outbox::{Outbox, ReplyBudget};

/// A connection's lines as the server frames them.
pub(crate) type Lines = FramedRead<OwnedReadHalf, LineCodec>;

/// The connection's lines, read under flow control.
///
/// Reading pauses (the stream is pending) while the client's unsent replies fill the reply
/// window, while too many of its commands await replies, or while the server's reply
/// budget is spent: TCP's own flow control then holds the client back. The door reads a
/// connection's first line through it too, so that line waits for the budget like any other.
pub(crate) struct Input {
    lines: Lines,
    /// Where the client's replies queue.
    out: Outbox,
    /// How many of its commands await replies.
    awaited: Rc<Awaited>,
    window: usize,
}

impl Input {
    /// The input of a connection just accepted, within `limits`, whose replies will count
    /// against the server's `budget`.
    pub(crate) fn open(read: OwnedReadHalf, limits: &ClientLimits, budget: ReplyBudget) -> Self {
        Input {
            lines: FramedRead::with_capacity(
                read,
                LineCodec::new(limits.max_line),
                limits.read_buffer,
            ),
            out: Outbox::with_budget(limits.max_queued, budget),
            awaited: Rc::new(Awaited::new(limits.max_pending)),
            window: limits.reply_window,
        }
    }

    /// The outbox the client's replies go to, which this input watches.
    pub(super) fn outbox(&self) -> &Outbox {
        &self.out
    }

    /// The count of commands awaiting replies, which this input watches.
    pub(super) fn awaited(&self) -> Rc<Awaited> {
        Rc::clone(&self.awaited)
    }

    /// How long the line on its way has been arriving while the server read, if one is.
    pub(crate) fn line_age(&self) -> Option<Duration> {
        self.lines.decoder().line_age()
    }

    /// The lines, with whatever was read past the last one: for a connection that turned
    /// out to be a neighbour's.
    pub(crate) fn into_lines(self) -> Lines {
        self.lines
    }

    /// Whether reading must wait: for the client to take replies, for the server's reply
    /// budget, or for commands to be answered. Registers `cx` to be woken when it may go on.
    fn held_back(&self, cx: &mut Context<'_>) -> bool {
        self.out.poll_room(cx, self.window).is_pending() || !self.awaited.has_room(cx)
    }
}

impl Stream for Input {
    type Item = Result<BytesMut, LineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // While held back, a begun line's rest may wait in the kernel: the codec stops the
        // line's clock, so the line time-out bounds the client's slowness, not ours.
        if this.held_back(cx) {
            this.lines.decoder_mut().hold();
            return Poll::Pending;
        }
        this.lines.decoder_mut().release();
        Pin::new(&mut this.lines).poll_next(cx)
    }
}

/// An actor that keeps its [`Input`] itself, so that it can look at it (a line's age) and
/// drop it (read no more) as its state says: actix's `StreamHandler`, for a stream the
/// actor owns rather than its context.
pub(super) trait ReadsInput: Actor<Context = actix::Context<Self>> {
    /// The input, while the actor reads it.
    fn input(&mut self) -> Option<&mut Input>;
    /// A line came, or the input failed (and ends).
    fn line(&mut self, item: Result<BytesMut, LineError>, ctx: &mut Self::Context);
    /// The input ended.
    fn ended(&mut self, ctx: &mut Self::Context);
}

/// Reads an actor's input for as long as it has one, handing it each line, starting with
/// one read before the actor started.
pub(super) struct ReadLines {
    first: Option<BytesMut>,
}

/// Lines handled in one turn before the reader lets the actor's other work run, as actix
/// does for a stream.
const LINES_PER_TURN: usize = 16;

impl ReadLines {
    /// A reader whose first line is `first`, then whatever the input reads.
    pub(super) fn after(first: BytesMut) -> Self {
        ReadLines { first: Some(first) }
    }
}

impl<A: ReadsInput> ActorFuture<A> for ReadLines {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        task: &mut Context<'_>,
    ) -> Poll<()> {
        if let Some(first) = self.get_mut().first.take() {
            act.line(Ok(first), ctx);
        }
        for _ in 0..LINES_PER_TURN {
            let Some(input) = act.input() else {
                return Poll::Ready(());
            };
            match Pin::new(input).poll_next(task) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(item)) => act.line(item, ctx),
                Poll::Ready(None) => {
                    act.ended(ctx);
                    return Poll::Ready(());
                }
            }
            if ctx.waiting() {
                return Poll::Pending;
            }
        }
        task.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// An input over a real connection whose replies go to `out`, with a window of 10 bytes;
    /// and the client's end.
    async fn input_with(out: &Outbox) -> (Input, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, _write) = server.into_split();
        let input = Input {
            lines: FramedRead::new(read, LineCodec::new(100)),
            out: out.clone(),
            awaited: Rc::new(Awaited::new(16)),
            window: 10,
        };
        (input, client)
    }

    #[actix::test]
    async fn a_line_is_not_timed_while_its_input_is_held_back() {
        let out = Outbox::new(1 << 20);
        let (mut input, mut client) = input_with(&out).await;
        let next = Duration::from_millis(100);
        // A line begins; then the client's replies fill the window, so reading stops, and
        // the rest of the line waits in the kernel.
        client.write_all(b"IAM").await.unwrap();
        assert!(tokio::time::timeout(next, input.next()).await.is_err());
        out.push(b"unsent reply\n").unwrap();
        client.write_all(b"AT kiwi +1+1 1\n").await.unwrap();
        assert!(tokio::time::timeout(next, input.next()).await.is_err());
        let held = input.line_age().expect("a line has begun");
        let hold = Duration::from_millis(300);
        tokio::time::sleep(hold).await;
        let age = input.line_age().expect("still unread");
        assert!(
            age < held + hold,
            "{age:?}: the hold of {hold:?} was counted"
        );
        // The client takes its replies: reading goes on, and the line comes whole.
        let writer = actix::spawn(out.clone().drain_into(tokio::io::sink()));
        let line = tokio::time::timeout(Duration::from_secs(5), input.next())
            .await
            .expect("reading goes on")
            .expect("a line")
            .expect("a whole line");
        assert_eq!(&line[..], b"IAMAT kiwi +1+1 1");
        writer.abort();
    }
}
