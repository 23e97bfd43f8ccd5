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
    /// that does not read is held back by TCP itself and costs about this much, and as much
    /// again in the kernel (see [`ClientLimits::send_buffer`]).
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
    /// What the kernel may hold of a client's unsent replies (`SO_SNDBUF`, set to half of
    /// it because Linux doubles the value for its own bookkeeping): about one reply window,
    /// where its send buffer would otherwise grow to megabytes (`net.ipv4.tcp_wmem`) and
    /// the server would make every reply a client that does not read asked for.
    pub(crate) fn send_buffer(&self) -> usize {
        self.reply_window / 2
    }

    /// How often a connection's time-outs are checked: often enough that none is overrun
    /// by more than half.
    pub(crate) fn check_every(&self) -> Option<Duration> {
        let shortest = match (self.idle_timeout, self.line_timeout) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some((shortest / 2).max(Duration::from_millis(10)))
    }

    /// Why a connection is closed for its time, if it is now: it has been idle for `idle`
    /// (no line in and no reply taken; `None` while replies are due, which is not
    /// idleness), or a line has been on its way for `line_age`. A line on its way is not
    /// idleness either: the line time-out is its bound.
    pub(crate) fn overdue(
        &self,
        idle: Option<Duration>,
        line_age: Option<Duration>,
    ) -> Option<String> {
        match line_age {
            None => {
                let limit = self.idle_timeout?;
                (idle? >= limit).then(|| format!("idle for {}s", limit.as_secs_f64()))
            }
            Some(age) => {
                let limit = self.line_timeout?;
                (age >= limit).then(|| format!("a line unfinished after {}s", limit.as_secs_f64()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle: Option<u64>, line: Option<u64>) -> ClientLimits {
        ClientLimits {
            max_line: 100,
            read_buffer: READ_BUFFER,
            reply_window: 1024,
            max_pending: 16,
            max_queued: MAX_QUEUED,
            idle_timeout: idle.map(Duration::from_secs),
            line_timeout: line.map(Duration::from_secs),
            probation_timeout: Duration::from_secs(2),
            max_clock_ahead: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_connection_is_idle_only_with_no_line_on_its_way_and_no_reply_due() {
        let l = limits(Some(10), Some(30));
        let s = Duration::from_secs;
        assert_eq!(l.overdue(Some(s(9)), None), None);
        assert_eq!(
            l.overdue(Some(s(10)), None).as_deref(),
            Some("idle for 10s")
        );
        // Replies due: not idle, however long.
        assert_eq!(l.overdue(None, None), None);
        // A line on its way: only the line time-out counts.
        assert_eq!(l.overdue(Some(s(100)), Some(s(29))), None);
        assert_eq!(
            l.overdue(Some(s(100)), Some(s(30))).as_deref(),
            Some("a line unfinished after 30s")
        );
    }

    #[test]
    fn a_time_out_of_zero_never_closes_and_is_never_checked() {
        let s = Duration::from_secs;
        let never = limits(None, None);
        assert_eq!(never.overdue(Some(s(1 << 30)), Some(s(1 << 30))), None);
        assert_eq!(never.check_every(), None);
        assert_eq!(limits(Some(10), Some(30)).check_every(), Some(s(5)));
        assert_eq!(limits(None, Some(30)).check_every(), Some(s(15)));
    }
}
