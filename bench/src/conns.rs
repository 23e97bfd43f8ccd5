//! `herd bench conns`: many idle connections to one server.
//!
//! Opens N connections and leaves them idle, as a crowd of phones would, then measures what
//! they cost the server (resident memory per connection, from `/proc/PID/status` before and
//! after) and what they cost everyone else (IAMAT round trips on a few extra connections
//! while they are open). Last, each idle connection sends one IAMAT and must get its
//! answer: a server that silently dropped connections past some limit fails here.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use super::check_in::{check_in_once, run_id, CheckIns};
use super::closed_loop::{self, OPEN_AT_ONCE};
use super::conn::Conn;
use super::limits::{parse_connections, parse_seconds};
use super::procfs::{open_files, rss_bytes};
use super::progress::Progress;
use super::report::Report;
use super::targets::Common;

/// Busy connections that time IAMATs while the idle ones are open.
const PROBES: usize = 4;

/// Read buffer of an idle connection: its one reply is a single AT line.
const IDLE_BUFFER: usize = 512;

/// Files this process needs besides the connections (stdio, runtime, /proc reads).
const SPARE_FILES: u64 = 64;

/// Longest wait for the server to accept every connection the kernel completed.
const ACCEPT_WAIT: Duration = Duration::from_secs(10);

/// Pause after the last accept before reading memory, for per-connection set-up to finish.
const SETTLE: Duration = Duration::from_millis(300);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Idle connections to open to the server (--at, or the first).
    #[arg(long, default_value = "10000", value_parser = parse_connections)]
    connections: usize,
    /// The server's PID, for its resident memory per connection (skipped without it).
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds of IAMAT round trips on the extra connections while the idle ones are open.
    #[arg(long, default_value = "2", value_parser = parse_seconds)]
    duration: Duration,
}

pub(crate) async fn run(args: Args) -> Result<Report, String> {
    let targets = args.common.targets()?;
    let target = args.common.at(&targets)?.clone();
    raise_open_file_limit(args.connections as u64 + PROBES as u64 + SPARE_FILES)?;
    let pid = args.pid;
    let rss_before = pid.map(rss_bytes).transpose()?;
    let files_before = pid.map(open_files).transpose()?;

    let progress = Progress::start("conns", "opening");
    let opened: Vec<Result<Conn, String>> = stream::iter(0..args.connections)
        .map(|_| async {
            let conn = Conn::open(target.addr, IDLE_BUFFER).await;
            match conn {
                Ok(_) => progress.done(),
                Err(_) => progress.error(),
            }
            conn
        })
        .buffer_unordered(OPEN_AT_ONCE)
        .collect()
        .await;
    let mut first_problem = opened.iter().find_map(|c| c.as_ref().err().cloned());
    let mut idle: Vec<Conn> = opened.into_iter().filter_map(Result::ok).collect();

    // The kernel completes a connection before the server accepts it: wait until the
    // server holds a socket for each, so the memory read covers them all.
    let accepted = match (pid, files_before) {
        (Some(pid), Some(before)) => Some(wait_for_accepts(pid, before, idle.len()).await?),
        _ => None,
    };
    tokio::time::sleep(SETTLE).await;
    let rss_idle = pid.map(rss_bytes).transpose()?;

    progress.phase("probing");
    let run = run_id();
    let probes: Vec<CheckIns> = (0..PROBES)
        .map(|i| CheckIns::new(format!("{run}-probe-{i}")))
        .collect();
    let (_, probe) = closed_loop::run(
        &vec![target.clone(); PROBES],
        probes,
        1,
        args.duration,
        &progress,
    )
    .await?;

    progress.phase("answering");
    let answers: Vec<Result<(), String>> = stream::iter(idle.iter_mut().enumerate())
        .map(|(i, conn)| {
            let client = format!("{run}-idle-{i}");
            let progress = &progress;
            async move {
                let result = check_in_once(conn, client).await.map(|_| ());
                match result {
                    Ok(()) => progress.done(),
                    Err(_) => progress.error(),
                }
                result
            }
        })
        .buffer_unordered(OPEN_AT_ONCE)
        .collect()
        .await;
    let answered = answers.iter().filter(|a| a.is_ok()).count();
    if first_problem.is_none() {
        first_problem = answers.into_iter().find_map(Result::err);
    }
    let rss_used = pid.map(rss_bytes).transpose()?;
    drop(progress);
    let opened = idle.len();
    drop(idle);

    let mut r = Report::new("conns");
    r.text("server", "server", target.name.clone());
    r.count(
        "connections",
        "connections asked for",
        args.connections as u64,
    );
    r.count("opened", "connections opened", opened as u64);
    if let Some(accepted) = accepted {
        r.count("accepted", "connections the server holds", accepted as u64);
    }
    r.count(
        "answered",
        "idle connections that answered at the end",
        answered as u64,
    );
    match (rss_before, rss_idle, rss_used) {
        (Some(before), Some(idle), Some(used)) => {
            let per = |after: u64| after.saturating_sub(before) as f64 / opened.max(1) as f64;
            r.figure(
                "rss_before_kib",
                "server RSS before",
                before as f64 / 1024.0,
                0,
                "KiB",
            );
            r.figure(
                "rss_idle_kib",
                "server RSS, all open and idle",
                idle as f64 / 1024.0,
                0,
                "KiB",
            );
            r.figure(
                "rss_bytes_per_idle_conn",
                "RSS per idle connection",
                per(idle),
                0,
                "bytes",
            );
            r.figure(
                "rss_used_kib",
                "server RSS after each answered once",
                used as f64 / 1024.0,
                0,
                "KiB",
            );
            r.figure(
                "rss_bytes_per_used_conn",
                "RSS per connection after one IAMAT",
                per(used),
                0,
                "bytes",
            );
        }
        _ => r.text(
            "memory",
            "memory",
            "not measured: give --pid PID of the server",
        ),
    }
    r.figure(
        "probe_check_ins_per_s",
        "probe check-ins/s",
        probe.per_second(),
        1,
        "",
    );
    r.latency("probe_", "probe IAMAT round trip", &probe.latency);
    r.count("probe_errors", "probe wrong replies", probe.bad);
    if let Some(problem) = first_problem.or(probe.first_problem) {
        r.text("first_problem", "first problem", problem);
    }
    Ok(r)
}

/// Raises this process's soft limit on open files to its hard limit, and checks `needed`
/// fits: the default soft limit (often 1024) is far below 10,000 connections.
fn raise_open_file_limit(needed: u64) -> Result<(), String> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    if limit < needed {
        return Err(format!(
            "the open-file limit is {limit}, and this run needs {needed}: raise the hard limit \
             (ulimit -Hn) or ask for fewer --connections"
        ));
    }
    Ok(())
}

/// Waits until the server has `count` more files open than `before`; returns how many more.
async fn wait_for_accepts(pid: u32, before: usize, count: usize) -> Result<usize, String> {
    let deadline = Instant::now() + ACCEPT_WAIT;
    loop {
        let more = open_files(pid)?.saturating_sub(before);
        if more >= count || Instant::now() >= deadline {
            return Ok(more);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
