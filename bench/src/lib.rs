//! `herd bench SCENARIO`: a load generator for any herd that speaks SPEC.md.
//!
//! It talks to servers only as a client would (IAMAT and WHATSAT over TCP), so the same
//! figures can be taken of proxy-herd and of any other herd, such as a Python baseline. It
//! runs on a tokio runtime of its own, apart from the actix server code, and every run is
//! bounded: in connections, in time, and to loopback targets unless `--allow-remote`.
//!
//! Layout:
//! - [`conn`]: one client connection: send lines, read whole replies.
//! - [`closed_loop`]: C connections each keeping D requests in flight, timed into a histogram.
//! - [`check_in`]: one client checking in, each time later than before (`iamat`, `flood`,
//!   `conns`, the seed of `whatsat`).
//! - [`fresh`]: whether every server holds the newest record of every client.
//! - [`procfs`]: CPU time, resident memory and open files of a process, from `/proc`.
//! - [`progress`]: the once-a-second line on stderr.
//! - [`report`]: the summary, for people or as one JSON line.
//! - one file per scenario: [`iamat`], [`whatsat`], [`flood`], [`conns`], [`startup`].

mod check_in;
mod closed_loop;
mod conn;
mod conns;
mod flood;
mod fresh;
mod iamat;
mod procfs;
mod progress;
mod report;
mod startup;
mod whatsat;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use herd_actors::config::HerdConfig;

/// The names `--servers` gives plain addresses, in order: SPEC.md's default herd.
const HERD_ORDER: [&str; 5] = ["Hill", "Jaquez", "Smith", "Campbell", "Singleton"];

/// More connections than this is a mistake, not a benchmark (and past the port range).
const MAX_CONNECTIONS: usize = 50_000;

/// No run may be asked to last longer than this.
const MAX_SECONDS: f64 = 3600.0;

/// One way to load a herd.
#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Check-ins at full speed, each newer than the last for its client, so each one floods.
    Iamat(iamat::Args),
    /// WHATSAT for one seeded client at full speed; optionally counts upstream calls.
    Whatsat(whatsat::Args),
    /// Time from an IAMAT at one server until every other server answers WHATSAT with it.
    Flood(flood::Args),
    /// Many idle connections to one server: memory per connection, and RTT while they are open.
    Conns(conns::Args),
    /// Time from exec of a server command until its address accepts connections.
    Startup(startup::Args),
}

/// Which herd to load, and how to print the summary.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Server addresses in herd order (Hill,Jaquez,Smith,Campbell,Singleton); each is
    /// ADDR or NAME=ADDR.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    servers: Vec<String>,
    /// A herd.toml to take the servers from (in name order) instead of --servers.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The one server to load (or, for flood, the one that receives the IAMATs).
    #[arg(long)]
    at: Option<String>,
    /// Print the summary as one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Allow targets off loopback: without it, only 127.0.0.0/8 and ::1 are loaded.
    #[arg(long)]
    allow_remote: bool,
}

/// One server of the herd under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
}

impl Common {
    /// The servers named by `--servers` or `--config`, refused if any is off loopback.
    fn targets(&self) -> Result<Vec<Target>, String> {
        let targets = match &self.config {
            Some(path) => HerdConfig::load(path)
                .map_err(|e| e.to_string())?
                .servers
                .into_iter()
                .map(|s| Target {
                    name: s.name,
                    addr: s.addr,
                })
                .collect(),
            None => parse_servers(&self.servers)?,
        };
        for t in &targets {
            self.check_loopback(&t.addr, &t.name)?;
        }
        Ok(targets)
    }

    fn check_loopback(&self, addr: &SocketAddr, what: &str) -> Result<(), String> {
        if self.allow_remote || addr.ip().is_loopback() {
            Ok(())
        } else {
            Err(format!(
                "{what} ({addr}) is not a loopback address: pass --allow-remote to load it"
            ))
        }
    }

    /// The server `--at` names, or the first one.
    fn at<'a>(&self, targets: &'a [Target]) -> Result<&'a Target, String> {
        match &self.at {
            None => targets
                .first()
                .ok_or_else(|| "no servers given".to_string()),
            Some(name) => targets.iter().find(|t| &t.name == name).ok_or_else(|| {
                let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
                format!(
                    "--at {name}: no such server (the servers are {})",
                    names.join(", ")
                )
            }),
        }
    }

    /// Where each of `n` connections goes: all to `--at`, or round-robin over the herd.
    fn spread(&self, targets: &[Target], n: usize) -> Result<Vec<Target>, String> {
        if self.at.is_some() {
            let one = self.at(targets)?;
            return Ok(vec![one.clone(); n]);
        }
        Ok((0..n).map(|i| targets[i % targets.len()].clone()).collect())
    }
}

/// The distinct servers of a plan, in order.
fn servers_of(plan: &[Target]) -> Vec<Target> {
    let mut seen: Vec<Target> = Vec::new();
    for t in plan {
        if !seen.iter().any(|s| s.name == t.name) {
            seen.push(t.clone());
        }
    }
    seen
}

/// The distinct server names of a plan, in order: `Hill,Jaquez`.
fn names(plan: &[Target]) -> String {
    let names: Vec<String> = servers_of(plan).into_iter().map(|t| t.name).collect();
    names.join(",")
}

/// `ADDR` or `NAME=ADDR`, in herd order.
fn parse_servers(list: &[String]) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let (name, addr_text) = match item.split_once('=') {
            Some((name, addr)) => (name.to_string(), addr),
            None => match HERD_ORDER.get(i) {
                Some(name) => (name.to_string(), item.as_str()),
                None => {
                    return Err(format!(
                        "--servers: address {} ({item}) needs a name, as NAME=ADDR: only the \
                         first five are named after the default herd",
                        i + 1
                    ))
                }
            },
        };
        let addr = addr_text.parse().map_err(|_| {
            format!("--servers: {addr_text:?} is not an address such as 127.0.0.1:12000")
        })?;
        if targets.iter().any(|t| t.name == name) {
            return Err(format!("--servers: {name} is named twice"));
        }
        targets.push(Target { name, addr });
    }
    if targets.is_empty() {
        return Err("--servers: no address given".into());
    }
    Ok(targets)
}

/// `--duration 2.5`: seconds, positive and at most an hour.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX_SECONDS) {
        return Err(format!("{s} s is outside 0 < seconds <= {MAX_SECONDS}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--connections`: at least one, and few enough to be a benchmark.
fn parse_connections(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of connections"))?;
    if n == 0 || n > MAX_CONNECTIONS {
        return Err(format!("{n} connections is outside 1..={MAX_CONNECTIONS}"));
    }
    Ok(n)
}

/// Resolves `host:port` and checks it is on loopback unless remote targets are allowed.
fn loopback_host(common: &Common, host_port: &str, what: &str) -> Result<SocketAddr, String> {
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{what}: cannot resolve {host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what}: {host_port} resolves to no address"))?;
    common.check_loopback(&addr, what)?;
    Ok(addr)
}

/// Runs one scenario and prints its summary.
pub fn run(scenario: Scenario) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let (report, json) = match scenario {
        Scenario::Iamat(args) => {
            let json = args.common.json;
            (runtime.block_on(iamat::run(args))?, json)
        }
        Scenario::Whatsat(args) => {
            let json = args.common.json;
            (runtime.block_on(whatsat::run(args))?, json)
        }
        Scenario::Flood(args) => {
            let json = args.common.json;
            (runtime.block_on(flood::run(args))?, json)
        }
        Scenario::Conns(args) => {
            let json = args.common.json;
            (runtime.block_on(conns::run(args))?, json)
        }
        Scenario::Startup(args) => {
            let json = args.common.json;
            (startup::run(args)?, json)
        }
    };
    report.print(json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_take_the_default_herd_names_in_order() {
        let list = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        let t = parse_servers(&list).unwrap();
        assert_eq!((t[0].name.as_str(), t[1].name.as_str()), ("Hill", "Jaquez"));
        assert_eq!(t[1].addr, "127.0.0.1:2".parse().unwrap());
    }

    #[test]
    fn a_sixth_address_must_be_named() {
        let mut list: Vec<String> = (0..6).map(|i| format!("127.0.0.1:{}", i + 1)).collect();
        assert!(parse_servers(&list).unwrap_err().contains("address 6"));
        list[5] = "Extra=127.0.0.1:6".into();
        assert_eq!(parse_servers(&list).unwrap()[5].name, "Extra");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("7200").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
