//! Why a `herd.toml` was refused. The operator reads the message on stderr at start-up, so
//! each names the file and what to edit.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration the herd refuses to start with; its `Display` is the operator's message.
#[derive(Debug)]
pub struct SettingsError {
    path: PathBuf,
    /// Boxed, to keep every `Result` that may carry it small.
    fault: Box<Fault>,
}

/// What is wrong, found without the file's name, which is added once, at the top.
#[derive(Debug)]
pub(crate) enum Fault {
    Read(io::Error),
    Toml(String),
    EnvNotUnicode(String),
    UnknownKey(String),
    /// The dotted key, its value as shown (only its kind, for a secret), what it needs.
    BadValue(String, String, String),
    /// The variable, its value, what its key needs.
    BadEnv(String, String, String),
    /// The provider that needs it.
    MissingApiKey(&'static str),
    NoServers,
    BadServerName(String),
    MissingAddr(String),
    /// The server, which of its addresses, the value as shown, what is wrong.
    BadAddr(String, &'static str, String, &'static str),
    /// The address, then each server with the key it is under: first by name, then the other.
    DuplicateAddr(SocketAddr, (String, &'static str), (String, &'static str)),
    /// The server, the neighbour it lists.
    UnknownNeighbour(String, String),
    SelfNeighbour(String),
    /// The server, `cert` or `key`, the file name `[tls] dir` would give.
    NoTlsFile(String, &'static str, String),
    /// The name asked for, the servers there are.
    NoSuchServer(String, Vec<String>),
}

impl SettingsError {
    pub(super) fn new(path: impl Into<PathBuf>, fault: Fault) -> Self {
        let (path, fault) = (path.into(), Box::new(fault));
        SettingsError { path, fault }
    }

    #[cfg(test)]
    pub(crate) fn fault(&self) -> &Fault {
        &self.fault
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &*self.fault {
            Fault::Read(error) => write!(f, "cannot read {path}: {error}"),
            Fault::Toml(message) => write!(f, "{path} is not valid TOML: {message}"),
            Fault::EnvNotUnicode(var) => {
                write!(
                    f,
                    "environment variable {var} is not valid UTF-8 (loading {path})"
                )
            }
            Fault::UnknownKey(key) => write!(f, "unknown key '{key}' in {path}"),
            Fault::BadValue(key, value, expected) => {
                write!(f, "bad {key} {value} in {path}: expected {expected}")
            }
            Fault::BadEnv(var, value, expected) => write!(
                f,
                "bad {var}={value:?} in the environment (loading {path}): expected {expected}"
            ),
            Fault::MissingApiKey(provider) => write!(
                f,
                "places provider \"{provider}\" needs an API key, and none is set (loading \
                 {path}): set GOOGLE_PLACES_API_KEY or HERD_PLACES__API_KEY in the environment, \
                 or api_key under [places]"
            ),
            Fault::NoServers => {
                write!(
                    f,
                    "no servers in {path}: add a [servers.NAME] table with an addr"
                )
            }
            Fault::BadServerName(name) => write!(
                f,
                "bad server name {name:?} in {path}: use only ASCII letters, digits, '-' and \
                 '_' (the name appears in replies and names the log file)"
            ),
            Fault::MissingAddr(server) => write!(f, "server '{server}' has no addr in {path}"),
            Fault::BadAddr(server, key, addr, reason) => {
                write!(
                    f,
                    "server '{server}' has a bad {key} {addr} in {path}: {reason}"
                )
            }
            Fault::DuplicateAddr(addr, (first, key), (second, other)) if key == other => write!(
                f,
                "servers '{first}' and '{second}' have the same {key} {addr} in {path}"
            ),
            Fault::DuplicateAddr(addr, (first, first_key), (second, key)) => write!(
                f,
                "server '{second}' has {key} {addr}, the {first_key} of server '{first}', in {path}"
            ),
            Fault::UnknownNeighbour(server, neighbour) => write!(
                f,
                "server '{server}' lists unknown neighbour '{neighbour}' in {path}"
            ),
            Fault::SelfNeighbour(server) => {
                write!(f, "server '{server}' lists itself as a neighbour in {path}")
            }
            Fault::NoTlsFile(server, key, file) => write!(
                f,
                "server '{server}' has no {key} in {path}: TLS is on, so set {key} under \
                 [servers.{server}], or dir under [tls] to use <dir>/{file}"
            ),
            Fault::NoSuchServer(name, known) => {
                let known = known.join(", ");
                write!(f, "no server named '{name}' in {path} (servers: {known})")
            }
        }
    }
}

/// No `source()`: the message already says the cause (the read error), and `{:#}` would print
/// it twice.
impl std::error::Error for SettingsError {}
