//! `herd bench startup -- COMMAND...`: time from exec of a server until it accepts.
//!
//! Spawns the command, tries to connect to the server's address every millisecond, and
//! stops the command once a connection succeeds; the figure is the slowest of the runs.
//! Only the process this spawned is stopped, by its PID.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// The server command and its arguments, after `--`; it must listen on the address of
    /// --at (or the first server).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub(crate) fn run(args: Args) -> Result<Report, String> {
    let targets = args.common.targets()?;
    let addr = args.common.at(&targets)?.addr;
    let shown = args.command.join(" ");
    let mut times = Vec::new();
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
        let took = wait_until_accepting(&mut child, addr, start, &shown);
        // Kill, not SIGTERM: a graceful stop is not what is measured, and this is the
        // process this run spawned, by PID.
        let _ = child.kill();
        let _ = child.wait();
        let took = took?;
        eprintln!(
            "herd bench startup [run {run}] {:.2} ms",
            took.as_secs_f64() * 1000.0
        );
        times.push(took);
    }
    let ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    let each: Vec<String> = ms.iter().map(|m| format!("{m:.2}")).collect();
    let mut r = Report::new("startup");
    r.text("command", "command", shown);
    r.text("addr", "address polled", addr.to_string());
    r.count("runs", "runs", args.runs.into());
    r.text("startup_ms_each", "each run (ms)", each.join(","));
    r.figure(
        "startup_ms_max",
        "slowest run",
        ms.iter().copied().fold(0.0, f64::max),
        2,
        "ms",
    );
    Ok(r)
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
