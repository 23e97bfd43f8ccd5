//! One client checking in over and over, each check-in later than its last, so each is
//! newer than what the herd holds. It drives `iamat`, the probes of `conns` and the rounds of
//! `flood`, and seeds the client `whatsat` asks for.

use std::collections::VecDeque;

use herd_actors::protocol::Timestamp;

use super::closed_loop::Worker;
use super::conn::{excerpt, Conn};

/// A prefix for this run's client ids, so runs against one herd never share a client.
pub(crate) fn run_id() -> String {
    format!("bench{:08x}", fastrand::u32(..))
}

/// POSIX seconds with nine fraction digits, as an IAMAT carries them.
fn time_text(nanos: i64) -> String {
    format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    )
}

/// One client checking in over and over, always later than before.
pub(crate) struct CheckIns {
    client: String,
    /// `IAMAT <client> <coordinates> `: all but the time.
    prefix: Vec<u8>,
    /// Client times sent and not yet answered, oldest first.
    in_flight: VecDeque<i64>,
    last_sent: i64,
    /// The newest time the server acknowledged with its AT line.
    acked: Option<i64>,
}

impl CheckIns {
    pub(crate) fn new(client: String) -> CheckIns {
        let prefix = format!("IAMAT {client} +34.068930-118.445127 ").into_bytes();
        CheckIns {
            client,
            prefix,
            in_flight: VecDeque::new(),
            last_sent: 0,
            acked: None,
        }
    }

    /// The client time of the latest request.
    pub(crate) fn last_sent(&self) -> i64 {
        self.last_sent
    }

    /// The client and its newest acknowledged time, if any check-in was acknowledged.
    pub(crate) fn newest(&self) -> Option<(String, i64)> {
        self.acked.map(|t| (self.client.clone(), t))
    }
}

impl Worker for CheckIns {
    const WHATSAT: bool = false;

    fn request(&mut self, out: &mut Vec<u8>) {
        // The wall clock, but never the same time twice: two check-ins within one
        // nanosecond would tie, and a tie is not newer.
        let time = Timestamp::now().nanos().max(self.last_sent + 1);
        self.last_sent = time;
        self.in_flight.push_back(time);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(time_text(time).as_bytes());
        out.push(b'\n');
    }

    fn judge(&mut self, reply: &[u8]) -> bool {
        let Some(time) = self.in_flight.pop_front() else {
            return false;
        };
        // `AT <server> <diff> <client> <coordinates> <time>`, the time echoed as sent.
        let right = reply.starts_with(b"AT ")
            && reply
                .strip_suffix(b"\n")
                .is_some_and(|line| line.ends_with(time_text(time).as_bytes()));
        if right {
            self.acked = Some(time);
        }
        right
    }
}

/// Checks `client` in once on `conn`; the client time the server acknowledged.
pub(crate) async fn check_in_once(conn: &mut Conn, client: String) -> Result<i64, String> {
    let mut checkin = CheckIns::new(client);
    let mut line = Vec::new();
    checkin.request(&mut line);
    conn.send(&line).await?;
    let mut reply = Vec::new();
    conn.reply(false, &mut reply).await?;
    if checkin.judge(&reply) {
        Ok(checkin.last_sent())
    } else {
        Err(format!(
            "{} did not acknowledge {}: {}",
            conn.addr(),
            excerpt(&line),
            excerpt(&reply)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_in_times_strictly_increase_and_replies_must_echo_them() {
        let mut w = CheckIns::new("kiwi".into());
        let mut out = Vec::new();
        w.request(&mut out);
        w.request(&mut out);
        let text = String::from_utf8(out).unwrap();
        let times: Vec<i64> = text
            .lines()
            .map(|l| {
                Timestamp::parse(l.rsplit(' ').next().unwrap())
                    .unwrap()
                    .nanos()
            })
            .collect();
        assert!(times[1] > times[0]);
        let reply = |t: i64| {
            format!(
                "AT Hill +0.000000001 kiwi +34.068930-118.445127 {}\n",
                time_text(t)
            )
        };
        assert!(
            !w.judge(reply(times[1]).as_bytes()),
            "answers come in order"
        );
        assert!(w.judge(reply(times[1]).as_bytes()));
        assert_eq!(w.newest(), Some(("kiwi".to_string(), times[1])));
        assert!(!w.judge(b"? IAMAT kiwi\n"), "nothing is in flight");
    }

    #[test]
    fn times_have_nine_fraction_digits() {
        assert_eq!(time_text(1_621_464_827_000_000_005), "1621464827.000000005");
    }
}
