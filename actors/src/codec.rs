//! Lines as bytes, with a length cap.
//!
//! tokio-util's `LinesCodec` fails the whole stream on invalid UTF-8, but an invalid line must
//! be answered with its own bytes, so lines are framed as bytes and decoded per field by
//! `protocol`. The cap keeps one client from growing our memory without bound.
//!
//! Clients and peers differ at the edges. A client's over-long line ends its input (every
//! earlier line is answered), and a last line ended by end-of-input is a line like any other.
//! A peer's over-long line is skipped and counted, so that no record can ever make a link
//! fail and resync in a loop; and a peer's unfinished last line is dropped, never applied:
//! a neighbour that died mid-write must not leave a cut record behind.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead};

/// Why a connection's input ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("the input ended inside a line of {0} bytes, which was dropped")]
    Cut(usize),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Whose lines these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Client,
    Peer,
}

/// Splits on `\n`, dropping one `\r` before it.
#[derive(Debug)]
pub(crate) struct LineCodec {
    max: usize,
    framing: Framing,
    /// How much of the buffer is known to hold no `\n`, so each byte is scanned once.
    scanned: usize,
    /// Lines decoded so far, up to [`BUSY_LINES`].
    lines: usize,
    /// Peers: the buffer holds the rest of an over-long line, to be thrown away.
    skipping: bool,
    /// Peers: over-long lines skipped and not yet reported.
    skipped: usize,
    /// When the line now in the buffer began to arrive, if one has begun.
    begun: Option<Instant>,
    /// Since when the server has not been reading (flow control held the input back): the
    /// rest of a begun line may be waiting in the kernel, so that time is not the line's.
    held_since: Option<Instant>,
}

/// After this many lines a connection is busy (a peer link, a pipelining client): its read
/// buffer grows to [`BUSY_BUFFER`] so one read takes many lines. Idle clients keep the small
/// first buffer, which is what lets a server hold 10,000 of them in little memory.
const BUSY_LINES: usize = 64;
const BUSY_BUFFER: usize = 16 * 1024;

impl LineCodec {
    /// A client's lines, of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        LineCodec {
            max,
            framing: Framing::Client,
            scanned: 0,
            lines: 0,
            skipping: false,
            skipped: 0,
            begun: None,
            held_since: None,
        }
    }

    /// A peer's lines, of at most `max` bytes.
    pub(crate) fn peer(max: usize) -> Self {
        let mut codec = LineCodec::new(max);
        codec.framing = Framing::Peer;
        codec
    }

    /// From now on, frames a peer's lines of at most `max` bytes: for a connection whose
    /// first line showed a neighbour.
    pub(crate) fn become_peer(&mut self, max: usize) {
        self.max = max;
        self.framing = Framing::Peer;
    }

    /// Peers: how many over-long lines were skipped since the last call.
    pub(crate) fn take_skipped(&mut self) -> usize {
        std::mem::take(&mut self.skipped)
    }

    /// When the unfinished line in the buffer began to arrive, if there is one.
    pub(crate) fn line_begun_at(&self) -> Option<Instant> {
        self.begun
    }

    /// How long the unfinished line in the buffer has been arriving while the server was
    /// reading, if there is one: the time the input was held back does not count.
    pub(crate) fn line_age(&self) -> Option<Duration> {
        let begun = self.line_begun_at()?;
        let until = self.held_since.unwrap_or_else(Instant::now);
        Some(until.saturating_duration_since(begun))
    }

    /// The server stops reading for now (its input is held back by flow control).
    pub(crate) fn hold(&mut self) {
        self.held_since.get_or_insert_with(Instant::now);
    }

    /// The server reads again: the line begun before the hold resumes its clock.
    pub(crate) fn release(&mut self) {
        if let Some(since) = self.held_since.take() {
            if let Some(begun) = &mut self.begun {
                *begun += since.elapsed();
            }
        }
    }

    /// A line too long for the cap: a client's input ends; a peer's line is skipped.
    fn too_long(&mut self) -> Result<(), LineError> {
        match self.framing {
            Framing::Client => Err(LineError::TooLong(self.max)),
            Framing::Peer => {
                self.skipped += 1;
                Ok(())
            }
        }
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        loop {
            let Some(i) = buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                if self.skipping {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                self.scanned = buf.len();
                if buf.len() > self.max {
                    self.too_long()?;
                    self.skipping = true;
                    buf.clear();
                    self.scanned = 0;
                }
                if !buf.is_empty() && self.begun.is_none() {
                    self.begun = Some(Instant::now());
                }
                return Ok(None);
            };
            let end = self.scanned + i;
            self.scanned = 0;
            let mut line = buf.split_to(end + 1);
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            if line.len() > self.max {
                self.too_long()?;
                continue;
            }
            self.begun = None;
            if self.lines < BUSY_LINES {
                self.lines += 1;
                if self.lines == BUSY_LINES {
                    buf.reserve(BUSY_BUFFER);
                }
            }
            return Ok(Some(line));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.scanned = 0;
        self.begun = None;
        if buf.is_empty() {
            return Ok(None);
        }
        let rest = buf.split();
        match self.framing {
            Framing::Client => Ok(Some(rest)),
            Framing::Peer => Err(LineError::Cut(rest.len())),
        }
    }
}

/// What a peer's input brings: a line, or word that over-long lines were skipped.
#[derive(Debug)]
pub(crate) enum PeerInput {
    Line(BytesMut),
    /// This many lines were longer than the cap and were thrown away.
    Skipped(usize),
}

/// A peer's lines, reporting skipped ones as they are found.
pub(crate) struct PeerLines<R> {
    lines: FramedRead<R, LineCodec>,
    /// A line read together with a report of skipped ones, which went first.
    held: Option<Result<BytesMut, LineError>>,
}

impl<R: AsyncRead + Unpin> PeerLines<R> {
    /// Frames `lines` (and what they have read ahead) as a peer's, of at most `max` bytes.
    pub(crate) fn new(mut lines: FramedRead<R, LineCodec>, max: usize) -> Self {
        lines.decoder_mut().become_peer(max);
        PeerLines { lines, held: None }
    }
}

impl<R: AsyncRead + Unpin> Stream for PeerLines<R> {
    type Item = Result<PeerInput, LineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = match this.held.take() {
            Some(held) => Poll::Ready(Some(held)),
            None => Pin::new(&mut this.lines).poll_next(cx),
        };
        let skipped = this.lines.decoder_mut().take_skipped();
        if skipped > 0 {
            if let Poll::Ready(Some(item)) = next {
                this.held = Some(item);
            }
            return Poll::Ready(Some(Ok(PeerInput::Skipped(skipped))));
        }
        next.map(|item| item.map(|line| line.map(PeerInput::Line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
        framed(&mut LineCodec::new(max), input)
    }

    fn framed(codec: &mut LineCodec, input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed one byte at a time: framing must not depend on how reads split the input.
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(l)) => out.push(Ok(l.to_vec())),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        return out;
                    }
                }
            }
        }
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(l)) => out.push(Ok(l.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn splits_on_newline_and_drops_one_carriage_return() {
        assert_eq!(
            lines(b"a\nb\r\nc\r\r\n\n", 100),
            vec![
                Ok(b"a".to_vec()),
                Ok(b"b".to_vec()),
                Ok(b"c\r".to_vec()),
                Ok(vec![])
            ]
        );
    }

    #[test]
    fn last_line_without_newline_is_a_line() {
        assert_eq!(
            lines(b"a\nlast", 100),
            vec![Ok(b"a".to_vec()), Ok(b"last".to_vec())]
        );
    }

    #[test]
    fn a_busy_connection_gets_a_bigger_read_buffer() {
        let mut codec = LineCodec::new(100);
        let mut buf = BytesMut::with_capacity(256);
        for _ in 0..BUSY_LINES - 1 {
            buf.extend_from_slice(b"x\n");
            assert!(codec.decode(&mut buf).unwrap().is_some());
        }
        assert!(buf.capacity() < BUSY_BUFFER);
        buf.extend_from_slice(b"x\n");
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert!(buf.capacity() >= BUSY_BUFFER);
    }

    #[test]
    fn invalid_utf8_is_framed_like_any_bytes() {
        assert_eq!(lines(b"\xff\xfe\n", 100), vec![Ok(b"\xff\xfe".to_vec())]);
    }

    #[test]
    fn overlong_line_is_an_error_after_the_lines_before_it() {
        assert_eq!(
            lines(b"ok\n0123456789abc\nnext\n", 8),
            vec![Ok(b"ok".to_vec()), Err("line longer than 8 bytes".into())]
        );
    }

    #[test]
    fn a_peers_over_long_lines_are_skipped_and_counted() {
        let mut codec = LineCodec::peer(8);
        let mut buf = BytesMut::new();
        // One over-long line arriving in pieces, then one arriving whole, then a good one.
        for piece in [
            &b"ok\n0123456"[..],
            b"789abc",
            b"def\nAT 1\n0123456789\nlast\n",
        ] {
            buf.extend_from_slice(piece);
        }
        let mut got = Vec::new();
        while let Some(line) = codec.decode(&mut buf).unwrap() {
            got.push(line.to_vec());
        }
        assert_eq!(
            got,
            vec![b"ok".to_vec(), b"AT 1".to_vec(), b"last".to_vec()]
        );
        assert_eq!(codec.take_skipped(), 2);
        assert_eq!(codec.take_skipped(), 0);
        let mut codec = LineCodec::peer(8);
        assert_eq!(
            framed(&mut codec, b"0123456789abcdef\nnext\n"),
            vec![Ok(b"next".to_vec())]
        );
        assert_eq!(codec.take_skipped(), 1);
    }

    #[test]
    fn a_peers_unfinished_last_line_is_dropped_not_applied() {
        assert_eq!(
            framed(
                &mut LineCodec::peer(100),
                b"AT a\nAT Hill +0.1 kiwi +1+1 16214648"
            ),
            vec![
                Ok(b"AT a".to_vec()),
                Err("the input ended inside a line of 31 bytes, which was dropped".into())
            ]
        );
    }

    #[test]
    fn the_start_of_an_unfinished_line_is_noted_until_it_ends() {
        let mut codec = LineCodec::new(100);
        let mut buf = BytesMut::from(&b"IAM"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let begun = codec.line_begun_at().expect("a line has begun");
        buf.extend_from_slice(b"AT a");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(codec.line_begun_at(), Some(begun), "still the same line");
        buf.extend_from_slice(b" +1+1 1\n");
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert_eq!(codec.line_begun_at(), None);
    }

    #[test]
    fn time_the_server_held_its_input_back_is_not_a_lines_age() {
        let mut codec = LineCodec::new(100);
        let mut buf = BytesMut::from(&b"IAM"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        codec.hold();
        let held = codec.line_age().expect("a line has begun");
        let pause = Duration::from_millis(100);
        std::thread::sleep(pause);
        assert_eq!(codec.line_age(), Some(held), "frozen while held");
        codec.release();
        let age = codec.line_age().expect("still the same line");
        assert!(
            age < held + pause,
            "{age:?} after {held:?} and a hold of {pause:?}"
        );
    }
}
