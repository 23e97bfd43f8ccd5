//! `herd bench iamat`: check-ins at full speed, every one a flood.
//!
//! Each connection is its own client and stamps each check-in later than its last, so every
//! IAMAT is newer than what the herd holds and floods to every server. Afterwards every
//! server is asked for every client's record: a herd that drops floods under load shows
//! up as stale records, however fast it answered.

use std::time::Duration;

use super::check_in::{run_id, CheckIns};
use super::closed_loop::{self, LoadArgs};
use super::fresh;
use super::limits::{parse_connections, parse_seconds};
use super::progress::Progress;
use super::report::Report;
use super::targets::Common;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// Connections, each its own client; spread over the servers round-robin unless --at.
    #[arg(long, default_value = "50", value_parser = parse_connections)]
    connections: usize,
    /// After the load, how long servers may take to hold every client's newest record.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    settle: Duration,
}

pub(crate) async fn run(args: Args) -> Result<Report, String> {
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
