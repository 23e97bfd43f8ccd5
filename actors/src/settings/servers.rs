//! The `[servers.NAME]` tables: names, addresses and the neighbour graph.
//!
//! Servers come from the file alone: the environment never adds, removes or rewires a server,
//! since a herd whose shape depends on one process's environment would disagree with itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use config::{Map, Value, ValueKind};

use super::{describe, SettingsError};

/// The keys a `[servers.NAME]` table may hold.
const SERVER_KEYS: &[&str] = &["addr", "neighbours"];

/// One server of the herd, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Case-sensitive, as written in the table header (`[servers.Hill]` is `Hill`).
    pub name: String,
    /// Where clients and neighbours both connect.
    pub addr: SocketAddr,
    /// Every server linked to this one, sorted by name: a link listed on either side.
    pub neighbours: Vec<String>,
}

/// Reads and checks the file's `servers` table; the result is sorted by name, so every
/// listing (errors, `herd up`) comes out in the same order whatever the file's order.
pub(super) fn read_servers(
    path: &Path,
    servers: Option<&Value>,
) -> Result<Vec<ServerSettings>, SettingsError> {
    let tables = match servers.map(|value| &value.kind) {
        None => return Err(SettingsError::NoServers { path: path.into() }),
        Some(ValueKind::Table(tables)) => tables,
        Some(_) => {
            let value = servers.map(describe).unwrap_or_default();
            return Err(bad(path, "servers", value, "[servers.NAME] tables"));
        }
    };
    if tables.is_empty() {
        return Err(SettingsError::NoServers { path: path.into() });
    }
    let mut entries: Vec<(&String, &Value)> = tables.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));

    let mut listed: Vec<(ServerSettings, Vec<String>)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        check_name(path, name)?;
        let table = server_table(path, name, value)?;
        listed.push((
            read_server(path, name, table)?,
            read_neighbours(path, name, table)?,
        ));
    }
    check_unique_addrs(path, listed.iter().map(|(server, _)| server))?;

    let names: BTreeSet<&str> = listed.iter().map(|(s, _)| s.name.as_str()).collect();
    let mut links: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (server, neighbours) in &listed {
        for neighbour in neighbours {
            if *neighbour == server.name {
                return Err(SettingsError::SelfNeighbour {
                    path: path.into(),
                    server: server.name.clone(),
                });
            }
            if !names.contains(neighbour.as_str()) {
                return Err(SettingsError::UnknownNeighbour {
                    path: path.into(),
                    server: server.name.clone(),
                    neighbour: neighbour.clone(),
                });
            }
            links
                .entry(server.name.clone())
                .or_default()
                .insert(neighbour.clone());
            links
                .entry(neighbour.clone())
                .or_default()
                .insert(server.name.clone());
        }
    }
    Ok(listed
        .into_iter()
        .map(|(mut server, _)| {
            server.neighbours = links
                .remove(&server.name)
                .map(|set| set.into_iter().collect())
                .unwrap_or_default();
            server
        })
        .collect())
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

/// A server's name and address (its neighbours are filled in once the whole graph is known).
fn read_server(
    path: &Path,
    name: &str,
    table: &Map<String, Value>,
) -> Result<ServerSettings, SettingsError> {
    let addr_value = table
        .get("addr")
        .ok_or_else(|| SettingsError::MissingAddr {
            path: path.into(),
            server: name.into(),
        })?;
    let bad_addr = |addr: String, reason| SettingsError::BadAddr {
        path: path.into(),
        server: name.into(),
        addr,
        reason,
    };
    let text = match &addr_value.kind {
        ValueKind::String(text) => text,
        _ => return Err(bad_addr(describe(addr_value), EXPECTED_ADDR)),
    };
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| bad_addr(text.clone(), EXPECTED_ADDR))?;
    if addr.port() == 0 {
        return Err(bad_addr(
            text.clone(),
            "port 0 picks a new port at every start, so neighbours could not find the server",
        ));
    }
    Ok(ServerSettings {
        name: name.into(),
        addr,
        neighbours: Vec::new(),
    })
}

const EXPECTED_ADDR: &str =
    "expected IP:PORT, such as \"127.0.0.1:12000\" (host names are not looked up)";

/// The neighbours a server's own table lists, in the order written.
fn read_neighbours(
    path: &Path,
    name: &str,
    table: &Map<String, Value>,
) -> Result<Vec<String>, SettingsError> {
    let Some(list) = table.get("neighbours") else {
        return Ok(Vec::new());
    };
    let not_names = |value: &Value| {
        let key = format!("servers.{name}.neighbours");
        bad(path, &key, describe(value), "a list of server names")
    };
    let ValueKind::Array(items) = &list.kind else {
        return Err(not_names(list));
    };
    items
        .iter()
        .map(|item| match &item.kind {
            ValueKind::String(neighbour) => Ok(neighbour.clone()),
            _ => Err(not_names(item)),
        })
        .collect()
}

/// The `[servers.NAME]` table itself, with no keys but the ones a server has.
fn server_table<'v>(
    path: &Path,
    name: &str,
    value: &'v Value,
) -> Result<&'v Map<String, Value>, SettingsError> {
    let ValueKind::Table(table) = &value.kind else {
        return Err(bad(
            path,
            &format!("servers.{name}"),
            describe(value),
            "a [servers.NAME] table with addr and neighbours",
        ));
    };
    let mut unknown: Vec<&String> = table
        .keys()
        .filter(|key| !SERVER_KEYS.contains(&key.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(key) => Err(SettingsError::UnknownKey {
            path: path.into(),
            key: format!("servers.{name}.{key}"),
        }),
        None => Ok(table),
    }
}

fn check_unique_addrs<'s>(
    path: &Path,
    servers: impl Iterator<Item = &'s ServerSettings>,
) -> Result<(), SettingsError> {
    let mut seen: HashMap<SocketAddr, &str> = HashMap::new();
    for server in servers {
        if let Some(first) = seen.insert(server.addr, &server.name) {
            return Err(SettingsError::DuplicateAddr {
                path: path.into(),
                addr: server.addr,
                first: first.into(),
                second: server.name.clone(),
            });
        }
    }
    Ok(())
}

fn bad(path: &Path, key: &str, value: String, expected: &str) -> SettingsError {
    SettingsError::BadValue {
        path: path.into(),
        key: key.into(),
        value,
        expected: expected.into(),
    }
}
