//! The `[servers.NAME]` tables: names, addresses and the neighbour graph.
//!
//! Servers come from the file alone: the environment never adds, removes or rewires a server,
//! since a herd whose shape depends on one process's environment would disagree with itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use super::file::{Raw, ServerTable, Table};
use super::SettingsError;

/// One server of the herd, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Case-sensitive, as written in the table header (`[servers.Hill]` is `Hill`).
    pub name: String,
    /// Where clients and neighbours both connect.
    pub addr: SocketAddr,
    /// Every server linked to this one, sorted by name: a link listed on either side.
    pub(crate) neighbours: Vec<String>,
}

/// Checks the server tables; the result is sorted by name (as `tables` is), so every listing
/// (errors, `herd up`) comes out in the same order whatever the file's order.
pub(super) fn servers(
    path: &Path,
    tables: BTreeMap<String, Table<ServerTable>>,
) -> Result<Vec<ServerSettings>, SettingsError> {
    if tables.is_empty() {
        return Err(SettingsError::NoServers { path: path.into() });
    }
    let mut servers = Vec::with_capacity(tables.len());
    let mut seen: HashMap<SocketAddr, &str> = HashMap::new();
    for (name, Table(table)) in &tables {
        check_name(path, name)?;
        let Some(addr) = &table.addr else {
            return Err(SettingsError::MissingAddr {
                path: path.into(),
                server: name.clone(),
            });
        };
        let addr = socket_addr(path, name, "addr", addr)?;
        if let Some(first) = seen.insert(addr, name) {
            return Err(SettingsError::DuplicateAddr {
                path: path.into(),
                addr,
                first: first.into(),
                second: name.clone(),
            });
        }
        servers.push(ServerSettings {
            name: name.clone(),
            addr,
            neighbours: Vec::new(),
        });
    }
    let mut links: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, Table(table)) in &tables {
        for neighbour in neighbours(path, name, &table.neighbours)? {
            if neighbour == name {
                return Err(SettingsError::SelfNeighbour {
                    path: path.into(),
                    server: name.clone(),
                });
            }
            if !tables.contains_key(neighbour) {
                return Err(SettingsError::UnknownNeighbour {
                    path: path.into(),
                    server: name.clone(),
                    neighbour: neighbour.into(),
                });
            }
            links.entry(name).or_default().insert(neighbour);
            links.entry(neighbour).or_default().insert(name);
        }
    }
    for server in &mut servers {
        let linked = links.remove(server.name.as_str()).unwrap_or_default();
        server.neighbours = linked.into_iter().map(String::from).collect();
    }
    Ok(servers)
}

/// Names go into replies (`AT Hill ...`, one white-space separated field), peer handshakes
/// and log file names (`<dir>/<NAME>.log`), so only characters that are safe in all three.
fn check_name(path: &Path, name: &str) -> Result<(), SettingsError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(SettingsError::BadServerName {
            path: path.into(),
            name: name.into(),
        })
    }
}

/// The address under `key` of server `name`: IP:PORT, no host name, no port 0.
fn socket_addr(
    path: &Path,
    name: &str,
    key: &'static str,
    raw: &Raw,
) -> Result<SocketAddr, SettingsError> {
    let reason = match raw {
        Raw::Text(text) => match text.parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => return Ok(addr),
            Ok(_) => {
                "port 0 picks a new port at every start, so neighbours could not find the server"
            }
            Err(_) => EXPECTED_ADDR,
        },
        _ => EXPECTED_ADDR,
    };
    Err(SettingsError::BadAddr {
        path: path.into(),
        server: name.into(),
        key,
        addr: raw.shown(),
        reason,
    })
}

const EXPECTED_ADDR: &str =
    "expected IP:PORT, such as \"127.0.0.1:12000\" (host names are not looked up)";

/// The neighbours a server's own table lists, in the order written.
fn neighbours<'t>(
    path: &Path,
    name: &str,
    list: &'t Option<Raw>,
) -> Result<Vec<&'t str>, SettingsError> {
    let not_names = |value: &Raw| SettingsError::BadValue {
        path: path.into(),
        key: format!("servers.{name}.neighbours"),
        value: value.shown(),
        expected: "a list of server names".into(),
    };
    match list {
        None => Ok(Vec::new()),
        Some(Raw::List(items)) => items
            .iter()
            .map(|item| match item {
                Raw::Text(neighbour) => Ok(neighbour.as_str()),
                other => Err(not_names(other)),
            })
            .collect(),
        Some(other) => Err(not_names(other)),
    }
}
