//! A session's input: the connection's lines, read only while the client's replies can be
//! sent.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use super::replies::Awaited;
use crate::codec::{LineCodec, LineError};
use crate::outbox::Outbox;

pub(super) type Lines = FramedRead<OwnedReadHalf, LineCodec>;

/// The connection's lines, as the session's stream.
///
/// Reading pauses (the stream is pending) while the client's unsent replies fill the reply
/// window, while too many of its commands await replies, or while the server's reply
/// budget is spent: TCP's own flow control then holds the client back. The session can also
/// take the lines back whole, with what was read ahead, to hand the connection over.
pub(super) struct Input {
    pub(super) lines: Rc<RefCell<Option<Lines>>>,
    pub(super) out: Outbox,
    pub(super) awaited: Rc<Awaited>,
    pub(super) window: usize,
}

impl Input {
    /// Whether reading must wait: for the client to take replies, for the server's reply
    /// budget, or for commands to be answered. Registers `cx` to be woken when it may go on.
    fn held_back(&self, cx: &mut Context<'_>) -> bool {
        self.out.poll_room(cx, self.window).is_pending() || !self.awaited.has_room(cx)
    }
}

impl Stream for Input {
    type Item = Result<BytesMut, LineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let held = self.held_back(cx);
        let mut lines = self.lines.borrow_mut();
        // While held back, a begun line's rest may wait in the kernel: the codec stops the
        // line's clock, so the line time-out bounds the client's slowness, not ours.
        match (lines.as_mut(), held) {
            (Some(lines), true) => {
                lines.decoder_mut().hold();
                Poll::Pending
            }
            (Some(lines), false) => {
                lines.decoder_mut().release();
                Pin::new(lines).poll_next(cx)
            }
            (None, true) => Poll::Pending,
            (None, false) => Poll::Ready(None),
        }
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
            lines: Rc::new(RefCell::new(Some(FramedRead::new(
                read,
                LineCodec::new(100),
            )))),
            out: out.clone(),
            awaited: Rc::new(Awaited::new(16)),
            window: 10,
        };
        (input, client)
    }

    fn line_age(input: &Input) -> Option<Duration> {
        input.lines.borrow().as_ref()?.decoder().line_age()
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
        let held = line_age(&input).expect("a line has begun");
        let hold = Duration::from_millis(300);
        tokio::time::sleep(hold).await;
        let age = line_age(&input).expect("still unread");
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
