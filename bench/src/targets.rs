//! Which herd to load: the flags every scenario shares (`--servers` or `--config`, `--at`,
//! `--json`, `--allow-remote`), turned into checked [`Target`]s. Targets off loopback are
//! refused unless `--allow-remote`, so a mistyped address cannot load someone else's server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use herd_actors::settings::Settings;

/// The names `--servers` gives plain addresses, in order: the default herd of the herd
/// protocol (docs/protocol.md).
const HERD_ORDER: [&str; 5] = ["Hill", "Jaquez", "Smith", "Campbell", "Singleton"];

/// Which herd to load, and how to print the summary.
#[derive(clap::Args, Debug)]
pub(crate) struct Common {
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
    pub(crate) json: bool,
    /// Allow targets off loopback: without it, only 127.0.0.0/8 and ::1 are loaded.
    #[arg(long)]
    allow_remote: bool,
}

/// One server of the herd under test.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
}

impl Common {
    /// The servers named by `--servers` or `--config`, refused if any is off loopback.
    pub(crate) fn targets(&self) -> Result<Vec<Target>, String> {
        let targets = match &self.config {
            Some(path) => Settings::load(path)
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
    pub(crate) fn at<'a>(&self, targets: &'a [Target]) -> Result<&'a Target, String> {
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
    pub(crate) fn spread(&self, targets: &[Target], n: usize) -> Result<Vec<Target>, String> {
        if self.at.is_some() {
            let one = self.at(targets)?;
            return Ok(vec![one.clone(); n]);
        }
        Ok((0..n).map(|i| targets[i % targets.len()].clone()).collect())
    }
}

/// The distinct servers of a plan, in order.
pub(crate) fn servers_of(plan: &[Target]) -> Vec<Target> {
    let mut seen: Vec<Target> = Vec::new();
    for t in plan {
        if !seen.iter().any(|s| s.name == t.name) {
            seen.push(t.clone());
        }
    }
    seen
}

/// The distinct server names of a plan, in order: `Hill,Jaquez`.
pub(crate) fn names(plan: &[Target]) -> String {
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

/// Resolves `host:port` and checks it is on loopback unless remote targets are allowed.
pub(crate) fn loopback_host(
    common: &Common,
    host_port: &str,
    what: &str,
) -> Result<SocketAddr, String> {
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{what}: cannot resolve {host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what}: {host_port} resolves to no address"))?;
    common.check_loopback(&addr, what)?;
    Ok(addr)
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
}
