//! A closed loop: each connection keeps `depth` requests in flight and sends the next one
//! only when a reply comes back, so the offered load is what the herd can answer, never a
//! queue growing without bound.
//!
//! Every connection is open before the clock starts, so the measured window holds requests
//! only. Each connection times its own requests into its own histogram (no lock on the hot
//! path); they are added up at the end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::conn::{excerpt, Conn};
use super::limits::parse_seconds;
use super::procfs::{own_cpu_time, CpuMeter};
use super::progress::Progress;
use super::report::{latency_histogram, micros, Report};
use super::targets::{names, Target};

/// Connections opened at once: a burst of thousands of SYNs would overflow listen backlogs.
pub(crate) const OPEN_AT_ONCE: usize = 256;

/// Read buffer per load connection: room for a WHATSAT reply of twenty places.
const BUFFER: usize = 32 * 1024;

/// How a closed-loop run is shaped and measured (`iamat` and `whatsat`).
#[derive(clap::Args, Debug)]
pub(crate) struct LoadArgs {
    /// Seconds of load.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub(crate) duration: Duration,
    /// Requests in flight per connection (pipelining); 1 waits for each reply.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) depth: u16,
    /// PIDs of the herd's server processes, to report their CPU time per operation.
    #[arg(long, value_delimiter = ',')]
    pub(crate) pids: Vec<u32>,
}

/// What one connection asks, and how it judges the answers.
pub(crate) trait Worker: Send + 'static {
    /// Whether replies are WHATSAT-shaped: an AT line, JSON, then a blank line.
    const WHATSAT: bool;
    /// Appends the next request, newline included.
    fn request(&mut self, out: &mut Vec<u8>);
    /// Judges the reply to the oldest request in flight: is it the right answer?
    fn judge(&mut self, reply: &[u8]) -> bool;
}

/// What the whole loop did.
pub(crate) struct Totals {
    /// Replies judged right.
    pub(crate) ok: u64,
    /// Replies judged wrong.
    pub(crate) bad: u64,
    /// From the first request to the last reply.
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
    /// The first wrong reply or broken connection, for the operator to see.
    pub(crate) first_problem: Option<String>,
    /// Connections that broke before their time was up.
    pub(crate) broken: u64,
}

impl Totals {
    pub(crate) fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Outcome {
    ok: u64,
    bad: u64,
    latency: Histogram<u64>,
    problem: Option<String>,
    broken: bool,
}

/// Runs `workers[i]` on a connection to `targets[i]` for `duration`, `depth` requests deep.
/// Gives the workers back (they know what was acknowledged) with the totals.
pub(crate) async fn run<W: Worker>(
    targets: &[Target],
    workers: Vec<W>,
    depth: usize,
    duration: Duration,
    progress: &Arc<Progress>,
) -> Result<(Vec<W>, Totals), String> {
    let conns: Vec<Conn> = stream::iter(targets.iter().map(|t| Conn::open(t.addr, BUFFER)))
        .buffered(OPEN_AT_ONCE)
        .try_collect()
        .await?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(workers)
        .map(|(conn, worker)| {
            tokio::spawn(drive(conn, worker, depth, deadline, Arc::clone(progress)))
        })
        .collect();
    let mut workers = Vec::with_capacity(tasks.len());
    let mut totals = Totals {
        ok: 0,
        bad: 0,
        elapsed: Duration::ZERO,
        latency: latency_histogram(),
        first_problem: None,
        broken: 0,
    };
    for task in tasks {
        let (worker, outcome) = task
            .await
            .map_err(|e| format!("a load connection's task failed: {e}"))?;
        workers.push(worker);
        totals.ok += outcome.ok;
        totals.bad += outcome.bad;
        totals.broken += u64::from(outcome.broken);
        totals
            .latency
            .add(&outcome.latency)
            .map_err(|e| format!("cannot add up latency histograms: {e}"))?;
        if totals.first_problem.is_none() {
            totals.first_problem = outcome.problem;
        }
    }
    totals.elapsed = start.elapsed();
    Ok((workers, totals))
}

async fn drive<W: Worker>(
    mut conn: Conn,
    mut worker: W,
    depth: usize,
    deadline: Instant,
    progress: Arc<Progress>,
) -> (W, Outcome) {
    let mut outcome = Outcome {
        ok: 0,
        bad: 0,
        latency: latency_histogram(),
        problem: None,
        broken: false,
    };
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(depth);
    let mut out = Vec::with_capacity(256);
    let mut reply = Vec::with_capacity(BUFFER);
    loop {
        out.clear();
        while in_flight.len() < depth && Instant::now() < deadline {
            worker.request(&mut out);
            in_flight.push_back(Instant::now());
        }
        if !out.is_empty() {
            if let Err(e) = conn.send(&out).await {
                outcome.problem = Some(e);
                outcome.broken = true;
                break;
            }
        }
        let Some(sent) = in_flight.pop_front() else {
            break;
        };
        if let Err(e) = conn.reply(W::WHATSAT, &mut reply).await {
            outcome.problem = Some(e);
            outcome.broken = true;
            break;
        }
        outcome.latency.saturating_record(micros(sent.elapsed()));
        if worker.judge(&reply) {
            outcome.ok += 1;
            progress.done();
        } else {
            outcome.bad += 1;
            progress.error();
            if outcome.problem.is_none() {
                outcome.problem = Some(format!(
                    "unexpected reply from {}: {}",
                    conn.addr(),
                    excerpt(&reply)
                ));
            }
        }
    }
    (worker, outcome)
}

/// A closed-loop run with the CPU time of the herd (when `load.pids` names its processes)
/// and of the load generator itself measured around it.
pub(crate) struct Measured<W> {
    pub(crate) workers: Vec<W>,
    pub(crate) totals: Totals,
    pub(crate) herd_cpu: Option<Duration>,
    pub(crate) bench_cpu: Duration,
}

/// [`run`], shaped by `load` and measured.
pub(crate) async fn measured<W: Worker>(
    targets: &[Target],
    workers: Vec<W>,
    load: &LoadArgs,
    progress: &Arc<Progress>,
) -> Result<Measured<W>, String> {
    let cpu = CpuMeter::start(&load.pids)?;
    let bench_cpu = own_cpu_time()?;
    let (workers, totals) = run(
        targets,
        workers,
        usize::from(load.depth),
        load.duration,
        progress,
    )
    .await?;
    let herd_cpu = match &cpu {
        Some(meter) => Some(meter.finish().await?),
        None => None,
    };
    Ok(Measured {
        workers,
        totals,
        herd_cpu,
        bench_cpu: own_cpu_time()?.saturating_sub(bench_cpu),
    })
}

/// Starts the report of a closed-loop run with what was loaded, how, and for how long.
pub(crate) fn report(
    scenario: &'static str,
    plan: &[Target],
    load: &LoadArgs,
    totals: &Totals,
) -> Report {
    let mut r = Report::new(scenario);
    r.text("servers", "servers loaded", names(plan));
    r.count("connections", "connections", plan.len() as u64);
    r.count(
        "depth",
        "requests in flight per connection",
        load.depth.into(),
    );
    r.figure(
        "duration_s",
        "load time",
        totals.elapsed.as_secs_f64(),
        2,
        "s",
    );
    r
}
