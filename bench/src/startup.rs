//! `herd bench startup -- COMMAND...`: time from exec of a server until it accepts, or,
//! with `--fill N`, until it answers from a store of N records.
//!
//! Spawns the command, tries to connect to the server's address every millisecond, and
//! stops the command once a connection succeeds; the figure is the slowest of the runs.
//! With `--fill N`, a first launch (not timed) is given N check-ins and stopped with
//! SIGTERM; each timed launch then counts until a WHATSAT for one of those clients is
//! answered, which a server with a store does only once it has loaded it, and reads the
//! resident memory of the process it spawned (`VmRSS` and `VmHWM`) just before it kills it.
//! With `--store-file PATH` as well, it reports the size of that file (and of its `-wal`)
//! after the filling launch's clean stop: what N records cost on disk. Only the processes
//! this spawned are stopped, by their PIDs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::procfs::{peak_rss_bytes, rss_bytes};
use super::report::Report;
use super::targets::Common;

/// Pause between connection attempts.
const POLL: Duration = Duration::from_millis(1);

/// A launch that has not accepted after this long has failed.
const LAUNCH_LIMIT: Duration = Duration::from_secs(10);

/// A refused loopback connection answers in microseconds; this only bounds a lost SYN.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Launches to time; the slowest is the figure.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// First give the server this many clients' check-ins (a store to load), then time
    /// until it answers a WHATSAT for one of them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    fill: Option<u32>,
    /// With --fill: the store file the server writes (e.g. data/Hill.db), whose size (and
    /// its -wal's) after the filling launch is reported.
    #[arg(long, value_name = "PATH", requires = "fill")]
    store_file: Option<PathBuf>,
    /// The server command and its arguments, after `--`; it must listen on the address of
    /// --at (or the first server).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub(crate) fn run(args: Args) -> Result<Report, String> {
    let targets = args.common.targets()?;
    let addr = args.common.at(&targets)?.addr;
    let shown = args.command.join(" ");
    if let Some(n) = args.fill {
        fill(&args.command, addr, n, &shown)?;
    }
    let on_disk = args.store_file.as_deref().map(store_size).transpose()?;
    let mut times = Vec::new();
    // With --fill, each run's (VmRSS, VmHWM) in KiB once the server answered from its store.
    let mut memory: Vec<(u64, u64)> = Vec::new();
    for run in 1..=args.runs {
        if TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok() {
            return Err(format!(
                "something already listens on {addr}: the command under test must be the one \
                 to open it"
            ));
        }
        let start = Instant::now();
        let mut child = Command::new(&args.command[0])
            .args(&args.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        let took =
            wait_until_accepting(&mut child, addr, start, &shown).and_then(|took| {
                match args.fill {
                    Some(_) => wait_until_answering(addr, start),
                    None => Ok(took),
                }
            });
        // What the server holds once it answers from its store: read before the kill.
        let resident = match (&took, args.fill) {
            (Ok(_), Some(_)) => Some(resident_kib(child.id())),
            _ => None,
        };
        // Kill, not SIGTERM: a graceful stop is not what is measured, and this is the
        // process this run spawned, by PID.
        let _ = child.kill();
        let _ = child.wait();
        let took = took?;
        match resident.transpose()? {
            Some((rss, peak)) => {
                eprintln!(
                    "herd bench startup [run {run}] {:.2} ms, {rss} KiB resident (peak {peak} KiB)",
                    took.as_secs_f64() * 1000.0
                );
                memory.push((rss, peak));
            }
            None => eprintln!(
                "herd bench startup [run {run}] {:.2} ms",
                took.as_secs_f64() * 1000.0
            ),
        }
        times.push(took);
    }
    let ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    let each: Vec<String> = ms.iter().map(|m| format!("{m:.2}")).collect();
    let mut r = Report::new("startup");
    r.text("command", "command", shown);
    r.text("addr", "address polled", addr.to_string());
    r.count("runs", "runs", args.runs.into());
    if let Some(n) = args.fill {
        r.count("records", "records in the store", n.into());
    }
    r.text("startup_ms_each", "each run (ms)", each.join(","));
    r.figure(
        "startup_ms_max",
        "slowest run",
        ms.iter().copied().fold(0.0, f64::max),
        2,
        "ms",
    );
    if !memory.is_empty() {
        let each: Vec<String> = memory.iter().map(|(rss, _)| rss.to_string()).collect();
        r.text(
            "rss_kib_each",
            "resident once answering, each run (KiB)",
            each.join(","),
        );
        r.count(
            "rss_kib_max",
            "resident once answering, largest (KiB)",
            memory.iter().map(|&(rss, _)| rss).max().unwrap_or(0),
        );
        r.count(
            "rss_peak_kib_max",
            "peak resident until then, largest (KiB)",
            memory.iter().map(|&(_, peak)| peak).max().unwrap_or(0),
        );
    }
    if let (Some((db, wal)), Some(path)) = (on_disk, &args.store_file) {
        r.text("store_file", "store file", path.display().to_string());
        r.count("store_bytes", "store file size (bytes)", db);
        r.count("store_wal_bytes", "its -wal file (bytes)", wal);
    }
    Ok(r)
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn resident_kib(pid: u32) -> Result<(u64, u64), String> {
    Ok((rss_bytes(pid)? / 1024, peak_rss_bytes(pid)? / 1024))
}

/// The size of the store file at `path`, and of its write-ahead log beside it (0 when there
/// is none), in bytes.
fn store_size(path: &Path) -> Result<(u64, u64), String> {
    let db = std::fs::metadata(path)
        .map_err(|e| format!("--store-file {}: {e}", path.display()))?
        .len();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    Ok((db, wal))
}

fn wait_until_accepting(
    child: &mut Child,
    addr: SocketAddr,
    start: Instant,
    shown: &str,
) -> Result<Duration, String> {
    loop {
        if TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok() {
            return Ok(start.elapsed());
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("cannot watch {shown}: {e}"))?
        {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err(format!(
                "{shown} exited ({status}) before {addr} accepted a connection: {}",
                stderr.trim()
            ));
        }
        if start.elapsed() > LAUNCH_LIMIT {
            return Err(format!(
                "{shown} did not accept on {addr} within {LAUNCH_LIMIT:?}"
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Client names of the filled store.
fn filled(i: u32) -> String {
    format!("fill{i}")
}

/// Runs the server once and checks `n` clients in over one pipelined connection, then
/// stops it with SIGTERM (which writes out what it took).
fn fill(command: &[String], addr: SocketAddr, n: u32, shown: &str) -> Result<(), String> {
    let started = Instant::now();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let filled_in = wait_until_accepting(&mut child, addr, started, shown).and_then(|_| {
        let stream =
            TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let reader = stream.try_clone().map_err(|e| format!("{addr}: {e}"))?;
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stream);
            for i in 0..n {
                writeln!(
                    out,
                    "IAMAT {} +34.068930-118.445127 {}",
                    filled(i),
                    1_600_000_000 + i
                )?;
            }
            out.flush()
        });
        let mut lines = BufReader::new(reader);
        let mut line = String::new();
        for i in 0..n {
            line.clear();
            let got = lines
                .read_line(&mut line)
                .map_err(|e| format!("{addr}: {e}"))?;
            if got == 0 || !line.starts_with("AT ") {
                return Err(format!("check-in {i} at {addr} got {line:?}"));
            }
        }
        writer
            .join()
            .map_err(|_| "the filling thread panicked".to_owned())?
            .map_err(|e| format!("cannot send to {addr}: {e}"))
    });
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    filled_in?;
    stopped.map_err(|e| format!("cannot stop {shown}: {e}"))?;
    eprintln!(
        "herd bench startup: filled {n} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits until the server answers a WHATSAT for the first filled client with its record.
fn wait_until_answering(addr: SocketAddr, start: Instant) -> Result<Duration, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(LAUNCH_LIMIT))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut writer = stream.try_clone().map_err(|e| format!("{addr}: {e}"))?;
    writeln!(writer, "WHATSAT {} 1 1", filled(0)).map_err(|e| format!("{addr}: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    if line.starts_with("AT ") {
        Ok(start.elapsed())
    } else {
        Err(format!(
            "{addr} answered {line:?}: the store was not loaded"
        ))
    }
}
