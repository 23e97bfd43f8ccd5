//! One client connection to a server: lines out, whole replies in.
//!
//! A reply is one line, except a WHATSAT answered with an AT line, which runs to the blank
//! line that ends its JSON, as WHATSAT is answered in the herd protocol (docs/protocol.md).
//! Every wait is bounded, so a server that stops answering fails the run with its address
//! named instead of hanging it.

use std::net::SocketAddr;
use std::time::Duration;

use herd_actors::protocol::{fields, Timestamp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest wait for a connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one reply; far past any healthy server's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Conn {
    addr: SocketAddr,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conn {
    /// Connects with a read buffer of `buffer` bytes (small for thousands of idle ones).
    pub(crate) async fn open(addr: SocketAddr, buffer: usize) -> Result<Conn, String> {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("cannot connect to {addr}: no answer in {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        // Requests are single small writes that must leave at once, not wait for Nagle.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY on a connection to {addr}: {e}"))?;
        let (read, writer) = stream.into_split();
        Ok(Conn {
            addr,
            reader: BufReader::with_capacity(buffer, read),
            writer,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| format!("cannot send to {}: {e}", self.addr))
    }

    /// Reads the next reply into `into` (cleared first), line terminators included.
    pub(crate) async fn reply(&mut self, whatsat: bool, into: &mut Vec<u8>) -> Result<(), String> {
        into.clear();
        let addr = self.addr;
        timeout(REPLY_TIMEOUT, self.read_reply(whatsat, into))
            .await
            .map_err(|_| format!("no reply from {addr} within {REPLY_TIMEOUT:?}"))?
            .map_err(|e| format!("reading a reply from {addr}: {e}"))
    }

    async fn read_reply(&mut self, whatsat: bool, into: &mut Vec<u8>) -> std::io::Result<()> {
        self.read_line(into).await?;
        if whatsat && into.starts_with(b"AT ") {
            loop {
                let start = into.len();
                self.read_line(into).await?;
                if into[start..] == *b"\n" {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn read_line(&mut self, into: &mut Vec<u8>) -> std::io::Result<()> {
        let n = self.reader.read_until(b'\n', into).await?;
        if n == 0 || into.last() != Some(&b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }

    /// The client time of the record this server holds for `client`, or `None` if it
    /// answers `?` (it has never heard of the client). Asks for the smallest answer
    /// WHATSAT allows, so the upstream work is as small as it can be.
    pub(crate) async fn held_time(&mut self, client: &str) -> Result<Option<i64>, String> {
        self.send(format!("WHATSAT {client} 0.001 1\n").as_bytes())
            .await?;
        let mut reply = Vec::new();
        self.reply(true, &mut reply).await?;
        if reply.starts_with(b"? ") {
            return Ok(None);
        }
        at_time(&reply).map(Some).ok_or_else(|| {
            format!(
                "{} answered WHATSAT {client} with neither an AT line nor `?`: {}",
                self.addr,
                excerpt(&reply)
            )
        })
    }
}

/// The client time (last field) of the AT line that starts `reply`.
pub(crate) fn at_time(reply: &[u8]) -> Option<i64> {
    let line = reply.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut it = fields(line);
    if it.next() != Some("AT") {
        return None;
    }
    Timestamp::parse(it.nth(4)?).map(Timestamp::nanos)
}

/// The start of a reply, for an error message.
pub(crate) fn excerpt(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(&reply[..reply.len().min(160)]);
    format!("{:?}", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_the_sixth_field_of_the_at_line() {
        let reply = b"AT Hill +0.1 kiwi +34.1-118.4 1621464827.959498503\n{}\n\n";
        assert_eq!(at_time(reply), Some(1_621_464_827_959_498_503));
        assert_eq!(at_time(b"? WHATSAT kiwi 1 1\n"), None);
        assert_eq!(at_time(b"AT Hill +0.1 kiwi\n"), None);
    }
}
