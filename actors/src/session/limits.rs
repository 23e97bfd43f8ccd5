//! What one client may hold of a server: its line, its unsent replies, its commands in
//! flight, and its time.

use std::time::Duration;

/// What one client may hold of the server, and for how long.
#[derive(Debug, Clone)]
pub(crate) struct ClientLimits {
    /// Longest line accepted; a longer one closes the connection after earlier replies.
    pub(crate) max_line: usize,
    /// First size of each connection's read buffer; it grows only for long input.
    pub(crate) read_buffer: usize,
    /// Reading pauses while this many bytes of the client's replies are unsent, so a client
    /// that does not read is held back by TCP itself and costs about this much.
    pub(crate) reply_window: usize,
    /// Reading also pauses while this many commands await their replies.
    pub(crate) max_pending: usize,
    /// The last resort: a client whose unsent replies pass this is dropped. Flow control
    /// keeps a client far below it; only replies already asked for can get it there.
    pub(crate) max_queued: usize,
    /// A connection with no line in (nor on its way) and no reply taken for this long is
    /// closed.
    pub(crate) idle_timeout: Option<Duration>,
    /// A line that has begun must end within this.
    pub(crate) line_timeout: Option<Duration>,
    /// A connection let in past the caps must send a peer hello within this, and a TLS
    /// neighbour finish its handshake and hello (both are `peer_handshake_timeout_ms`).
    pub(crate) probation_timeout: Duration,
    /// A check-in dated further ahead of this server's clock is invalid: it would win over
    /// every later check-in of its client.
    pub(crate) max_clock_ahead: Duration,
}

/// First size of a connection's read buffer (see [`ClientLimits::read_buffer`]): what lets a
/// server hold 10,000 idle clients in little memory.
pub(crate) const READ_BUFFER: usize = 256;

/// The unsent replies past which a client is dropped (see [`ClientLimits::max_queued`]).
pub(crate) const MAX_QUEUED: usize = 4 * 1024 * 1024;

impl ClientLimits {
    /// How often a session checks its time-outs: often enough that none is overrun by
    /// more than half.
    pub(super) fn check_every(&self) -> Option<Duration> {
        let shortest = match (self.idle_timeout, self.line_timeout) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some((shortest / 2).max(Duration::from_millis(10)))
    }
}
