//! `herd bench resync` (proxy-herd only): two neighbours whose stores hold N records each
//! and differ in D reconcile on link-up; then one restarts, differing in nothing.
//!
//! It writes both store files straight away (`herd_actors::fill_store`: a quarter of the
//! differences only at Hill, a quarter only at Smith, a quarter newer at each), starts two
//! `herd serve` processes of this binary (or `--herd`) on free loopback ports, and waits
//! until both answer a line, which a server does only once its store is loaded. From then
//! it reports:
//! - the time until every differing client is answered with its newest record by both
//!   (pipelined WHATSATs, round after round), and each server's own reconciliation time
//!   (its event log's `peer NAME reconciled` line, from its link coming up);
//! - the bytes each way, from both servers' `herd_link_sent_bytes` (whole peer lines);
//! - the peak resident memory of each server while the sync ran (sampled every 10 ms) and
//!   both servers' CPU seconds;
//! - after a SIGTERM and restart of Smith: the same for a link-up that finds no difference,
//!   and how often Hill's link went down in the 3 s after it came back (it must not).
//!
//! Everything it starts it stops, and the folder it made is removed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::procfs::{cpu_time, rss_bytes};
use super::report::Report;

/// A server that has not answered after this long (its store loading) has failed.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// A sync that has not converged after this long has failed.
const SYNC_LIMIT: Duration = Duration::from_secs(120);

/// How long the link is watched after the restart.
const WATCH: Duration = Duration::from_secs(3);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Records in each store.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(4..=20_000_000))]
    records: u32,
    /// Records on which the stores differ (a multiple of 4).
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u32).range(4..=1_000_000))]
    differences: u32,
    /// The `herd` binary to run (default: this one).
    #[arg(long, value_name = "PATH")]
    herd: Option<PathBuf>,
    /// Print one JSON line instead of labelled lines.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Two servers, Hill and Smith, of one herd.toml in a folder of their own.
struct Pair {
    dir: PathBuf,
    config: PathBuf,
    herd: PathBuf,
    addr: [SocketAddr; 2],
    admin: [SocketAddr; 2],
    children: [Option<Child>; 2],
}

const NAMES: [&str; 2] = ["Hill", "Smith"];

pub(crate) fn run(args: Args) -> Result<Report, String> {
    let (records, differences) = (args.records as usize, args.differences as usize);
    if !differences.is_multiple_of(4) || differences * 3 / 4 > records {
        return Err(format!(
            "--differences {differences}: a multiple of 4, at most 4/3 of --records"
        ));
    }
    let herd = match args.herd {
        Some(path) => path,
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let mut pair = Pair::new(herd)?;
    let result = measure(&mut pair, records, differences);
    pair.stop();
    let _ = std::fs::remove_dir_all(&pair.dir);
    result
}

fn measure(pair: &mut Pair, records: usize, differences: usize) -> Result<Report, String> {
    let mut report = Report::new("resync");
    report.count("records", "records in each store", records as u64);
    report.count(
        "differences",
        "records on which they differ",
        differences as u64,
    );
    let filling = Instant::now();
    let want = pair.fill(records, differences)?;
    report.figure(
        "fill_s",
        "both stores written in",
        filling.elapsed().as_secs_f64(),
        1,
        "s",
    );
    for i in 0..2 {
        pair.start(i)?;
    }
    for i in 0..2 {
        pair.wait_answering(i)?;
    }
    // Both processes are new: every byte on their links is this sync's.
    let sync = Sync::begin(pair, [0.0, 0.0])?;
    pair.wait_converged(&want)?;
    sync.end(pair, &mut report, "", 1)?;

    // A restart: Hill's link goes down with it and must come back once, then stay up.
    let downs = pair.metric(0, "herd_link_downs_total", "Smith")?;
    let hill_sent = pair.metric(0, "herd_link_sent_bytes_total", "Smith")?;
    pair.stop_one(1)?;
    pair.start(1)?;
    pair.wait_answering(1)?;
    let sync = Sync::begin(pair, [hill_sent, 0.0])?;
    // The second reconciliation of each (their logs are appended to across the restart).
    let deadline = Instant::now() + SYNC_LIMIT;
    while pair.reconciled(0, "Smith").len() < 2 || pair.reconciled(1, "Hill").len() < 2 {
        if Instant::now() > deadline {
            return Err("the restarted pair did not reconcile".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sync.end(pair, &mut report, "restart_", 2)?;
    std::thread::sleep(WATCH);
    let after = pair.metric(0, "herd_link_downs_total", "Smith")? - downs;
    report.count(
        "restart_link_downs",
        "Hill's link downs, the restart included, over 3 s after it",
        after as u64,
    );
    Ok(report)
}

/// What is measured over one sync: CPU and peak resident memory of both servers, bytes
/// on the link.
struct Sync {
    started: Instant,
    cpu: [Duration; 2],
    sent: [f64; 2],
    sampling: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<[u64; 2]>,
}

impl Sync {
    /// Starts measuring; `sent` is what each server's counter of bytes sent to the other
    /// held before this sync.
    fn begin(pair: &Pair, sent: [f64; 2]) -> Result<Sync, String> {
        let pids = [pair.pid(0)?, pair.pid(1)?];
        let sampling = Arc::new(AtomicBool::new(true));
        let on = Arc::clone(&sampling);
        let sampler = std::thread::spawn(move || {
            let mut peak = [0u64; 2];
            while on.load(Ordering::Relaxed) {
                for (p, pid) in peak.iter_mut().zip(pids) {
                    *p = (*p).max(rss_bytes(pid).unwrap_or(0));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        Ok(Sync {
            started: Instant::now(),
            cpu: [cpu_time(pids[0])?, cpu_time(pids[1])?],
            sent,
            sampling,
            sampler,
        })
    }

    /// Reports the sync; `nth` is which of Hill's reconciliations it was.
    fn end(self, pair: &Pair, report: &mut Report, key: &str, nth: usize) -> Result<(), String> {
        let took = self.started.elapsed();
        self.sampling.store(false, Ordering::Relaxed);
        let peak = self
            .sampler
            .join()
            .map_err(|_| "the memory sampler failed")?;
        let label = if key.is_empty() { "" } else { "restart: " };
        report.figure(
            &format!("{key}converged_s"),
            &format!("{label}both answering to converged"),
            took.as_secs_f64(),
            3,
            "s",
        );
        for (i, (from, to)) in [("Hill", "Smith"), ("Smith", "Hill")]
            .into_iter()
            .enumerate()
        {
            // The event log is written a little after the fact.
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut own = pair.reconciled(i, to);
            while own.len() < nth && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                own = pair.reconciled(i, to);
            }
            if let Some(line) = own.get(nth - 1).or(own.last()) {
                report.text(
                    &format!("{key}{}_reconciled", from.to_lowercase()),
                    &format!("{label}{from}'s link to {to}"),
                    line.clone(),
                );
            }
            let sent = pair.metric(i, "herd_link_sent_bytes_total", to)? - self.sent[i];
            report.count(
                &format!(
                    "{key}bytes_{}_to_{}",
                    from.to_lowercase(),
                    to.to_lowercase()
                ),
                &format!("{label}bytes {from} to {to}"),
                sent as u64,
            );
            report.figure(
                &format!("{key}peak_rss_{}_mib", from.to_lowercase()),
                &format!("{label}{from}'s peak RSS during the sync"),
                peak[i] as f64 / (1024.0 * 1024.0),
                1,
                "MiB",
            );
        }
        let cpu: Duration = (0..2)
            .map(|i| cpu_time(pair.pid(i)?).map(|t| t.saturating_sub(self.cpu[i])))
            .sum::<Result<Duration, String>>()?;
        report.figure(
            &format!("{key}cpu_s"),
            &format!("{label}CPU seconds, both servers"),
            cpu.as_secs_f64(),
            2,
            "s",
        );
        Ok(())
    }
}

fn at_line(server: &str, client: &str, secs: u64) -> String {
    format!("AT {server} +0.000000001 {client} +34.068930-118.445127 {secs}.000000000")
}

impl Pair {
    fn new(herd: PathBuf) -> Result<Pair, String> {
        let dir = std::env::temp_dir().join(format!("herd-resync-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ports: Vec<SocketAddr> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("no free loopback port: {e}"))?;
        let (addr, admin) = ([ports[0], ports[1]], [ports[2], ports[3]]);
        let config = dir.join("herd.toml");
        let toml = format!(
            "[store]\ndir = \"{data}\"\n[log]\ndir = \"{logs}\"\n\
             [servers.Hill]\naddr = \"{}\"\nadmin = \"{}\"\nneighbours = [\"Smith\"]\n\
             [servers.Smith]\naddr = \"{}\"\nadmin = \"{}\"\nneighbours = [\"Hill\"]\n",
            addr[0],
            admin[0],
            addr[1],
            admin[1],
            data = dir.join("data").display(),
            logs = dir.join("logs").display(),
        );
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
        Ok(Pair {
            dir,
            config,
            herd,
            addr,
            admin,
            children: [None, None],
        })
    }

    /// Writes both stores; the newest AT line of each differing client.
    fn fill(&self, records: usize, differences: usize) -> Result<Vec<(String, String)>, String> {
        let quarter = differences / 4;
        let same = records - 3 * quarter;
        let (mut hill, mut smith, mut want) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..quarter {
            let (old, new) = (1_700_000_002, 1_700_000_003);
            let only_hill = at_line("Hill", &format!("h{i}"), 1_700_000_001);
            let only_smith = at_line("Smith", &format!("s{i}"), 1_700_000_001);
            let hill_new = at_line("Hill", &format!("x{i}"), new);
            let smith_new = at_line("Smith", &format!("y{i}"), new);
            want.push((format!("h{i}"), only_hill.clone()));
            want.push((format!("s{i}"), only_smith.clone()));
            want.push((format!("x{i}"), hill_new.clone()));
            want.push((format!("y{i}"), smith_new.clone()));
            hill.extend([only_hill, hill_new, at_line("Hill", &format!("y{i}"), old)]);
            smith.extend([
                only_smith,
                smith_new,
                at_line("Smith", &format!("x{i}"), old),
            ]);
        }
        let data = self.dir.join("data");
        for (name, own) in NAMES.into_iter().zip([hill, smith]) {
            let common = (0..same).map(|i| at_line("Hill", &format!("c{i}"), 1_700_000_000));
            herd_actors::fill_store(&data, name, common.chain(own))?;
        }
        Ok(want)
    }

    fn start(&mut self, i: usize) -> Result<(), String> {
        let child = Command::new(&self.herd)
            .args(["serve", NAMES[i], "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.herd.display()))?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn pid(&self, i: usize) -> Result<u32, String> {
        self.children[i]
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| format!("{} is not running", NAMES[i]))
    }

    /// Waits until server `i` answers a line: its store is loaded.
    fn wait_answering(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + LOAD_LIMIT;
        loop {
            if let Ok(mut s) = TcpStream::connect(self.addr[i]) {
                let _ = s.set_read_timeout(Some(LOAD_LIMIT));
                let mut line = String::new();
                if s.write_all(b"loaded?\n").is_ok()
                    && BufReader::new(s).read_line(&mut line).is_ok()
                    && line == "? loaded?\n"
                {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.children[i].as_mut().map(Child::try_wait) {
                return Err(format!("{} exited: {status}", NAMES[i]));
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not answer within {LOAD_LIMIT:?}", NAMES[i]));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asks both servers for every client of `want` (pipelined), round after round, until
    /// both answer each with its newest record.
    fn wait_converged(&self, want: &[(String, String)]) -> Result<(), String> {
        let deadline = Instant::now() + SYNC_LIMIT;
        let asks: String = want
            .iter()
            .map(|(client, _)| format!("WHATSAT {client} 0.001 1\n"))
            .collect();
        loop {
            let mut left = 0;
            for addr in self.addr {
                let firsts = first_lines(addr, &asks, want.len())?;
                left += want
                    .iter()
                    .zip(&firsts)
                    .filter(|((_, at), first)| at != *first)
                    .count();
            }
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{left} differences left after {SYNC_LIMIT:?}"));
            }
            // A pause, as every other poll here makes: a round back to back with the last
            // would take the cores from the reconciliation it times, and count as its CPU.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The value of `name{neighbour="..."}` in server `i`'s `/metrics`.
    fn metric(&self, i: usize, name: &str, neighbour: &str) -> Result<f64, String> {
        let mut s = TcpStream::connect(self.admin[i])
            .map_err(|e| format!("{}'s admin listener: {e}", NAMES[i]))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .map_err(|e| format!("{}'s admin listener: {e}", NAMES[i]))?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(|e| format!("{}'s admin listener: {e}", NAMES[i]))?;
        let series = format!("{name}{{neighbour=\"{neighbour}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{} has no {series}", NAMES[i]))
    }

    /// Server `i`'s `peer NEIGHBOUR reconciled` lines so far, from its event log.
    fn reconciled(&self, i: usize, neighbour: &str) -> Vec<String> {
        let log = self.dir.join("logs").join(format!("{}.log", NAMES[i]));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let said = format!("peer {neighbour} reconciled: ");
        text.lines()
            .filter_map(|l| l.split_once(&said).map(|(_, rest)| rest.to_owned()))
            .collect()
    }

    fn stop_one(&mut self, i: usize) -> Result<(), String> {
        let Some(mut child) = self.children[i].take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} did not stop on SIGTERM", NAMES[i]));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn stop(&mut self) {
        for i in 0..2 {
            // An error means it was killed instead; nothing more to do.
            let _ = self.stop_one(i);
        }
    }
}

/// Sends `asks` (n WHATSAT lines) and returns the first line of each reply.
fn first_lines(addr: SocketAddr, asks: &str, n: usize) -> Result<Vec<String>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let writer = {
        let mut s = s.try_clone().map_err(|e| format!("{addr}: {e}"))?;
        let asks = asks.to_owned();
        std::thread::spawn(move || s.write_all(asks.as_bytes()))
    };
    let mut read = BufReader::new(&mut s);
    let mut firsts = Vec::with_capacity(n);
    let mut line = String::new();
    while firsts.len() < n {
        line.clear();
        if read
            .read_line(&mut line)
            .map_err(|e| format!("{addr}: {e}"))?
            == 0
        {
            return Err(format!("{addr} closed after {} replies", firsts.len()));
        }
        let first = line.trim_end_matches('\n').to_owned();
        if first.starts_with("AT ") {
            // The reply's JSON, up to its blank line.
            loop {
                line.clear();
                if read
                    .read_line(&mut line)
                    .map_err(|e| format!("{addr}: {e}"))?
                    == 0
                    || line == "\n"
                {
                    break;
                }
            }
        }
        firsts.push(first);
    }
    let _ = writer.join();
    Ok(firsts)
}
