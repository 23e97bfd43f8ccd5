//! `herd bench whatsat`: WHATSAT for one client at full speed.
//!
//! One client checks in first, and the run waits until every server it loads holds that
//! record, so every WHATSAT of the run has an answer. A reply counts only if it is whole
//! (AT line, JSON, blank line) and its JSON says `"status" : "OK"`: a server that answers
//! fast with an upstream error is not fast. With `--places-stats`, the fake places server's
//! request count before and after gives upstream calls per WHATSAT, which is what a cache
//! or request coalescing in the herd would bring down.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::check_in::{check_in_once, run_id};
use super::closed_loop::{self, LoadArgs, Worker};
use super::conn::{excerpt, Conn};
use super::fresh;
use super::limits::parse_connections;
use super::progress::Progress;
use super::report::Report;
use super::targets::{loopback_host, servers_of, Common, Target};

/// How long every loaded server may take to learn the seeded client.
const SEED_WAIT: Duration = Duration::from_secs(5);

/// Longest wait for the places server's `/stats`.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// Connections; spread over the servers round-robin unless --at.
    #[arg(long, default_value = "10", value_parser = parse_connections)]
    connections: usize,
    /// Radius of each WHATSAT in kilometres, as sent.
    #[arg(long, default_value = "10")]
    radius: String,
    /// Most places per reply, as sent.
    #[arg(long, default_value_t = 20)]
    bound: u8,
    /// The fake places server's stats URL (http://HOST:PORT/stats): reports upstream calls
    /// per WHATSAT from its `nearbysearch` count.
    #[arg(long)]
    places_stats: Option<String>,
}

/// The same WHATSAT again and again.
struct Asks {
    request: Vec<u8>,
}

impl Worker for Asks {
    const WHATSAT: bool = true;

    fn request(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.request);
    }

    fn judge(&mut self, reply: &[u8]) -> bool {
        reply.starts_with(b"AT ") && reply.ends_with(b"\n\n") && status_is_ok(reply)
    }
}

/// Whether the reply's JSON has `"status"` `"OK"`, in any spacing (Google writes
/// `"status" : "OK"`, Python's json module `"status": "OK"`).
fn status_is_ok(reply: &[u8]) -> bool {
    const KEY: &[u8] = b"\"status\"";
    let Some(at) = reply.windows(KEY.len()).rposition(|w| w == KEY) else {
        return false;
    };
    let rest = &reply[at + KEY.len()..];
    let rest = rest.trim_ascii_start();
    rest.strip_prefix(b":")
        .is_some_and(|r| r.trim_ascii_start().starts_with(b"\"OK\""))
}

pub(crate) async fn run(args: Args) -> Result<Report, String> {
    let targets = args.common.targets()?;
    let plan = args.common.spread(&targets, args.connections)?;
    let client = format!("{}-seed", run_id());
    seed(args.common.at(&targets)?.addr, &client, &servers_of(&plan)).await?;
    let calls_before = match &args.places_stats {
        Some(url) => Some(upstream_calls(&args.common, url).await?),
        None => None,
    };
    let request = format!("WHATSAT {client} {} {}\n", args.radius, args.bound).into_bytes();
    let workers: Vec<Asks> = (0..args.connections)
        .map(|_| Asks {
            request: request.clone(),
        })
        .collect();
    let progress = Progress::start("whatsat", "load");
    let closed_loop::Measured {
        totals,
        herd_cpu,
        bench_cpu,
        ..
    } = closed_loop::measured(&plan, workers, &args.load, &progress).await?;
    drop(progress);
    let calls = match (&args.places_stats, calls_before) {
        (Some(url), Some(before)) => Some(upstream_calls(&args.common, url).await? - before),
        _ => None,
    };

    let mut r = closed_loop::report("whatsat", &plan, &args.load, &totals);
    r.text(
        "request",
        "request",
        String::from_utf8_lossy(&request).trim_end(),
    );
    r.count("replies", "replies with places", totals.ok);
    r.count("errors", "wrong or failed replies", totals.bad);
    r.count("broken", "connections broken", totals.broken);
    r.figure("replies_per_s", "replies/s", totals.per_second(), 1, "");
    r.latency("", "latency", &totals.latency);
    if let Some(calls) = calls {
        r.count("upstream_calls", "upstream calls", calls);
        let asked = (totals.ok + totals.bad).max(1);
        r.figure(
            "upstream_calls_per_whatsat",
            "upstream calls per WHATSAT",
            calls as f64 / asked as f64,
            6,
            "",
        );
    }
    r.cpu(herd_cpu, totals.ok, "WHATSAT", bench_cpu);
    if let Some(problem) = totals.first_problem {
        r.text("first_problem", "first problem", problem);
    }
    Ok(r)
}

/// Checks `client` in at `at` and waits until every server of `servers` holds it.
async fn seed(at: SocketAddr, client: &str, servers: &[Target]) -> Result<(), String> {
    let mut conn = Conn::open(at, 1024).await?;
    let time = check_in_once(&mut conn, client.to_string()).await?;
    let fresh = fresh::check(servers, &[(client.to_string(), time)], SEED_WAIT).await?;
    if fresh.stale > 0 {
        return Err(format!(
            "the seed client {client} did not reach every server in {SEED_WAIT:?}: is the herd \
             connected?"
        ));
    }
    Ok(())
}

/// The `nearbysearch` count of a fakeplaces `/stats` page.
async fn upstream_calls(common: &Common, url: &str) -> Result<u64, String> {
    let what = format!("--places-stats {url}");
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{what}: only http:// URLs are supported"))?;
    let (host_port, path) = match rest.split_once('/') {
        Some((host, path)) => (host.to_string(), format!("/{path}")),
        None => (rest.to_string(), "/".to_string()),
    };
    let host_port = if host_port.contains(':') {
        host_port
    } else {
        format!("{host_port}:80")
    };
    let addr = loopback_host(common, &host_port, &what)?;
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = timeout(STATS_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{what}: no answer within {STATS_TIMEOUT:?}"))?
        .map_err(|e| format!("{what}: {e}"))?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| &response[i + 4..])
        .filter(|_| response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200"))
        .ok_or_else(|| format!("{what}: not an HTTP 200 answer: {}", excerpt(&response)))?;
    let stats: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("{what}: the body is not JSON ({e}): {}", excerpt(body)))?;
    stats
        .get("nearbysearch")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("{what}: no `nearbysearch` count in {}", excerpt(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ok_is_found_in_either_spacing() {
        assert!(status_is_ok(b"AT x\n{\n   \"status\" : \"OK\"\n}\n\n"));
        assert!(status_is_ok(b"AT x\n{\"status\": \"OK\"}\n\n"));
        assert!(!status_is_ok(
            b"AT x\n{\n   \"status\" : \"REQUEST_DENIED\"\n}\n\n"
        ));
        assert!(!status_is_ok(b"AT x\n{}\n\n"));
    }
}
