//! `herd bench iamat`: check-ins at full speed, every one a flood.
//!
//! Each connection is its own client and stamps each check-in later than its last, so every
//! IAMAT is newer than what the herd holds and floods to every server. Afterwards every
//! server is asked for every client's record: a herd that drops floods under load shows
//! up as stale records, however fast it answered.

use std::collections::VecDeque;
use std::time::Duration;

use herd_actors::protocol::Timestamp;

use super::closed_loop::{self, LoadArgs, Worker};
use super::conn::{excerpt, Conn};
use super::progress::Progress;
use super::report::Report;
use super::{fresh, parse_connections, parse_seconds, run_id, time_text, Common};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Connections, each its own client; spread over the servers round-robin unless --at.
    #[arg(long, default_value = "50", value_parser = parse_connections)]
    connections: usize,
    /// After the load, how long servers may take to hold every client's newest record.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    settle: Duration,
}

/// One client checking in over and over, always later than before.
pub struct CheckIns {
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
    pub fn new(client: String) -> CheckIns {
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
    pub fn last_sent(&self) -> i64 {
        self.last_sent
    }

    /// The client and its newest acknowledged time, if any check-in was acknowledged.
    pub fn newest(&self) -> Option<(String, i64)> {
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
pub async fn check_in_once(conn: &mut Conn, client: String) -> Result<i64, String> {
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

pub async fn run(args: Args) -> Result<Report, String> {
    let targets = args.common.targets()?;
    let plan = args.common.spread(&targets, args.connections)?;
    let run = run_id();
    let workers: Vec<CheckIns> = (0..args.connections)
        .map(|i| CheckIns::new(format!("{run}-{i}")))
        .collect();
    let progress = Progress::start("iamat", "load");
    let closed_loop::Measured {
        workers,
        totals,
        herd_cpu,
        bench_cpu,
    } = closed_loop::measured(&plan, workers, &args.load, &progress).await?;
    progress.phase("checking records");
    let newest: Vec<(String, i64)> = workers.iter().filter_map(CheckIns::newest).collect();
    let fresh = fresh::check(&targets, &newest, args.settle).await?;
    drop(progress);

    let mut r = closed_loop::report("iamat", &plan, &args.load, &totals);
    r.count("check_ins", "check-ins answered", totals.ok);
    r.count("errors", "wrong replies", totals.bad);
    r.count("broken", "connections broken", totals.broken);
    r.figure("check_ins_per_s", "check-ins/s", totals.per_second(), 1, "");
    r.latency("", "latency", &totals.latency);
    r.cpu(herd_cpu, totals.ok, "check-in", bench_cpu);
    r.count(
        "records_checked",
        "records checked (clients x servers)",
        fresh.pairs,
    );
    r.count("stale", "stale records", fresh.stale);
    r.figure(
        "check_s",
        "time until all fresh (or gave up)",
        fresh.took.as_secs_f64(),
        2,
        "s",
    );
    if let Some(problem) = totals.first_problem {
        r.text("first_problem", "first problem", problem);
    }
    Ok(r)
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
}
