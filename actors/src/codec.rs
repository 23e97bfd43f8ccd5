//! Lines as bytes, with a length cap.
//!
//! tokio-util's `LinesCodec` fails the whole stream on invalid UTF-8, but an invalid line must
//! be answered with its own bytes, so lines are framed as bytes and decoded per field by
//! `protocol`. The cap keeps one client from growing our memory without bound.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Why a connection's input ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits on `\n`, dropping one `\r` before it. A last line ended by end-of-input is a line.
#[derive(Debug)]
pub(crate) struct LineCodec {
    max: usize,
    /// How much of the buffer is known to hold no `\n`, so each byte is scanned once.
    scanned: usize,
    /// Lines decoded so far, up to [`BUSY_LINES`].
    lines: usize,
}

/// After this many lines a connection is busy (a peer link, a pipelining client): its read
/// buffer grows to [`BUSY_BUFFER`] so one read takes many lines. Idle clients keep the small
/// first buffer, which is what lets a server hold 10,000 of them in little memory.
const BUSY_LINES: usize = 64;
const BUSY_BUFFER: usize = 16 * 1024;

impl LineCodec {
    pub(crate) fn new(max: usize) -> Self {
        LineCodec {
            max,
            scanned: 0,
            lines: 0,
        }
    }

    /// Changes the longest line accepted from now on (a connection that turns out to be a
    /// peer link takes longer lines than a client).
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        let Some(i) = buf[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = buf.len();
            return if buf.len() > self.max {
                Err(LineError::TooLong(self.max))
            } else {
                Ok(None)
            };
        };
        let end = self.scanned + i;
        self.scanned = 0;
        let mut line = buf.split_to(end + 1);
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.truncate(end - 1);
        }
        if line.len() > self.max {
            return Err(LineError::TooLong(self.max));
        }
        if self.lines < BUSY_LINES {
            self.lines += 1;
            if self.lines == BUSY_LINES {
                buf.reserve(BUSY_BUFFER);
            }
        }
        Ok(Some(line))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.scanned = 0;
        Ok((!buf.is_empty()).then(|| buf.split()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut codec = LineCodec::new(max);
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
        while let Ok(Some(l)) = codec.decode_eof(&mut buf) {
            out.push(Ok(l.to_vec()));
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
}
