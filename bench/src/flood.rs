//! `herd bench flood`: how long a check-in takes to reach every other server.
//!
//! Each round checks a new client in at one server and, at once, polls every other server
//! with WHATSAT on a connection of its own, in a tight loop, until it answers with that
//! check-in. A client the herd has never seen gets `?` at once, without any places lookup,
//! so polls are cheap until the record arrives.
//!
//! A server's time is from the IAMAT's send to the send of the first WHATSAT it answered
//! with the record: the record arrived between that poll's send and the server reading
//! it, so the error is at most one `?` round trip, and the places lookup of the answering
//! WHATSAT (which may wait on an upstream) is not counted.

use std::time::Duration;

use futures::future::{join_all, try_join_all};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::check_in::{run_id, CheckIns};
use super::closed_loop::Worker;
use super::conn::{excerpt, Conn};
use super::progress::Progress;
use super::report::{latency_histogram, micros, Report};
use super::targets::Common;

/// A round gives up on a server after this long: far longer than a flood takes in a healthy
/// herd, which the herd protocol (docs/protocol.md) puts well under a millisecond per hop.
const ROUND_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Check-ins to time; each round lasts at most two seconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rounds: u32,
}

/// One other server, polled on its own connection.
struct Poller {
    name: String,
    conn: Conn,
    each: Histogram<u64>,
    missed: u64,
}

impl Poller {
    /// Polls until the server holds `client` at `time`; the delay since `sent`, or `None`
    /// if the round timed out.
    async fn wait_for(
        &mut self,
        client: &str,
        time: i64,
        sent: Instant,
    ) -> Result<Option<Duration>, String> {
        loop {
            let asked = Instant::now();
            if asked.duration_since(sent) > ROUND_TIMEOUT {
                self.missed += 1;
                return Ok(None);
            }
            if self.conn.held_time(client).await? == Some(time) {
                let delay = asked.duration_since(sent);
                self.each.saturating_record(micros(delay));
                return Ok(Some(delay));
            }
        }
    }
}

pub(crate) async fn run(args: Args) -> Result<Report, String> {
    let targets = args.common.targets()?;
    let origin = args.common.at(&targets)?;
    let others: Vec<_> = targets.iter().filter(|t| t.name != origin.name).collect();
    if others.is_empty() {
        return Err(format!(
            "flood needs a server besides {} to reach: give --servers or --config with two or more",
            origin.name
        ));
    }
    let mut checkins = Conn::open(origin.addr, 1024).await?;
    let mut pollers: Vec<Poller> = try_join_all(others.iter().map(|t| async {
        Ok::<_, String>(Poller {
            name: t.name.clone(),
            conn: Conn::open(t.addr, 32 * 1024).await?,
            each: latency_histogram(),
            missed: 0,
        })
    }))
    .await?;
    let run = run_id();
    let progress = Progress::start("flood", "rounds");
    let mut all = latency_histogram();
    let mut incomplete = 0u64;
    let mut reply = Vec::new();
    for round in 0..args.rounds {
        let client_id = format!("{run}-{round}");
        let mut client = CheckIns::new(client_id.clone());
        let mut line = Vec::new();
        client.request(&mut line);
        let time = client.last_sent();
        let sent = Instant::now();
        checkins.send(&line).await?;
        let polls = join_all(
            pollers
                .iter_mut()
                .map(|p| p.wait_for(&client_id, time, sent)),
        );
        let (delays, answer) = tokio::join!(polls, checkins.reply(false, &mut reply));
        answer?;
        if !client.judge(&reply) {
            return Err(format!(
                "{} did not accept a check-in: {}",
                origin.name,
                excerpt(&reply)
            ));
        }
        let delays: Vec<Option<Duration>> = delays.into_iter().collect::<Result<_, _>>()?;
        match delays.iter().copied().collect::<Option<Vec<Duration>>>() {
            Some(delays) => {
                let slowest = delays.into_iter().max().unwrap_or_default();
                all.saturating_record(micros(slowest));
                progress.done();
            }
            None => {
                incomplete += 1;
                progress.error();
            }
        }
    }
    drop(progress);

    let mut r = Report::new("flood");
    r.text("origin", "check-ins at", origin.name.clone());
    let names: Vec<&str> = pollers.iter().map(|p| p.name.as_str()).collect();
    r.text("reached", "polled", names.join(","));
    r.count("rounds", "rounds", args.rounds.into());
    r.count("incomplete", "rounds some server missed (2 s)", incomplete);
    r.latency("", "until all others hold it", &all);
    for p in &pollers {
        r.figure(
            &format!("{}_p50_ms", p.name),
            &format!("until {} holds it p50", p.name),
            p.each.value_at_quantile(0.5) as f64 / 1000.0,
            3,
            "ms",
        );
        r.count(
            &format!("{}_missed", p.name),
            &format!("rounds {} missed", p.name),
            p.missed,
        );
    }
    Ok(r)
}
