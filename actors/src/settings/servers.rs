//! The `[servers.NAME]` tables: names, addresses and the neighbour graph, from the file
//! alone, since a herd whose shape depended on one process's environment would disagree
//! with itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::Fault;
use super::file::{bad, string, Raw, ServerTable, TomlTable};
use super::TlsSettings;

/// One server of the herd, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Case-sensitive, as written in the table header (`[servers.Hill]` is `Hill`).
    pub name: String,
    /// Where clients and neighbours both connect.
    pub addr: SocketAddr,
    /// Every server linked to this one, sorted by name: a link listed on either side.
    pub(crate) neighbours: Vec<String>,
    /// Where the admin HTTP listener listens, if anywhere.
    pub(crate) admin: Option<SocketAddr>,
    /// This server's certificate, when TLS is on.
    pub(crate) cert: Option<PathBuf>,
    /// Its private key, when TLS is on.
    pub(crate) key: Option<PathBuf>,
}

impl ServerSettings {
    /// Where its admin HTTP listener listens, if it has one.
    pub fn admin(&self) -> Option<SocketAddr> {
        self.admin
    }
}

/// The servers sorted by name (as `tables` is), so that every listing (errors, `herd up`)
/// comes out in one order whatever the file's.
pub(super) fn servers(
    tables: &BTreeMap<String, TomlTable<ServerTable>>,
    tls: Option<&TlsSettings>,
) -> Result<Vec<ServerSettings>, Fault> {
    if tables.is_empty() {
        return Err(Fault::NoServers);
    }
    let mut servers = Vec::with_capacity(tables.len());
    let mut seen: HashMap<SocketAddr, (&str, &'static str)> = HashMap::new();
    let mut links: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, TomlTable(table)) in tables {
        // The name goes into replies (`AT Hill ...`), handshakes and `<NAME>.log`.
        let fit = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if name.is_empty() || !name.bytes().all(fit) {
            return Err(Fault::BadServerName(name.clone()));
        }
        let Some(addr) = &table.addr else {
            return Err(Fault::MissingAddr(name.clone()));
        };
        let addr = socket_addr(name, "addr", addr)?;
        let admin = match &table.admin {
            None => None,
            Some(Raw::Text(admin)) if admin.is_empty() => None,
            Some(admin) => Some(socket_addr(name, "admin", admin)?),
        };
        for (key, listener) in [("addr", Some(addr)), ("admin", admin)] {
            let Some(listener) = listener else { continue };
            if let Some((first, first_key)) = seen.insert(listener, (name, key)) {
                let (first, second) = ((first.into(), first_key), (name.clone(), key));
                return Err(Fault::DuplicateAddr(listener, first, second));
            }
        }
        for neighbour in neighbours(name, &table.neighbours)? {
            if neighbour == name {
                return Err(Fault::SelfNeighbour(name.clone()));
            }
            if !tables.contains_key(neighbour) {
                return Err(Fault::UnknownNeighbour(name.clone(), neighbour.into()));
            }
            links.entry(name).or_default().insert(neighbour);
            links.entry(neighbour).or_default().insert(name);
        }
        servers.push(ServerSettings {
            name: name.clone(),
            addr,
            neighbours: Vec::new(),
            admin,
            cert: tls_file(name, "cert", &table.cert, tls, "pem")?,
            key: tls_file(name, "key", &table.key, tls, "key")?,
        });
    }
    for server in &mut servers {
        let linked = links.remove(server.name.as_str()).unwrap_or_default();
        server.neighbours = linked.into_iter().map(String::from).collect();
    }
    Ok(servers)
}

/// The address under `key` of server `name`: IP:PORT, no host name, no port 0.
fn socket_addr(name: &str, key: &'static str, raw: &Raw) -> Result<SocketAddr, Fault> {
    let addr = match raw {
        Raw::Text(text) => text.parse::<SocketAddr>().ok(),
        _ => None,
    };
    let reason = match addr {
        Some(addr) if addr.port() != 0 => return Ok(addr),
        Some(_) => {
            "port 0 picks a new port at every start, so neighbours could not find the server"
        }
        None => "expected IP:PORT, such as \"127.0.0.1:12000\" (host names are not looked up)",
    };
    Err(Fault::BadAddr(name.into(), key, raw.shown(), reason))
}

/// A server's cert or key: none with TLS off, else as set or `<dir>/<NAME>.<ext>`.
fn tls_file(
    name: &str,
    key: &'static str,
    raw: &Option<Raw>,
    tls: Option<&TlsSettings>,
    ext: &str,
) -> Result<Option<PathBuf>, Fault> {
    let set = string(&format!("servers.{name}.{key}"), raw)?;
    let Some(tls) = tls else { return Ok(None) };
    match (set, &tls.dir) {
        (Some(path), _) => Ok(Some(path.into())),
        (None, Some(dir)) => Ok(Some(dir.join(format!("{name}.{ext}")))),
        (None, None) => Err(Fault::NoTlsFile(name.into(), key, format!("{name}.{ext}"))),
    }
}

/// The neighbours a server's own table lists, in the order written.
fn neighbours<'t>(name: &str, list: &'t Option<Raw>) -> Result<Vec<&'t str>, Fault> {
    let key = format!("servers.{name}.neighbours");
    let not_names = |raw| bad(&key, Some(raw), "a list of server names");
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
