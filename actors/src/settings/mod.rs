//! `herd.toml` -> typed serde structs (`file`) -> one validated [`Settings`] (`validate`,
//! `servers`), read once at start-up. The shipped `herd.toml` documents every key.
//!
//! The `config` crate layers, each over the one before: the file; `GOOGLE_PLACES_API_KEY`
//! (for `places.api_key`); `HERD_*` variables naming a key outside the server tables (`env`),
//! so that no variable can add or rewire a server. An empty string means "not set", but for
//! `store.dir = ""` in the file, which keeps the records in memory only.

mod env;
mod error;
mod file;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod places_tests;
mod servers;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, ConfigError, File, FileFormat};

use crate::places::PlacesSettings;
use error::Fault;
use file::HerdFile;

pub use error::SettingsError;
pub use servers::ServerSettings;

/// The herd as one server needs to know it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file this was read from, for messages that must name it.
    pub(crate) path: PathBuf,
    pub(crate) secret: Option<Secret>,
    /// Event-loop threads for client sessions (`workers`), as set; `None`: not set. See
    /// [`Settings::workers`].
    pub(crate) workers: Option<usize>,
    pub(crate) places: PlacesSettings,
    pub(crate) log_dir: PathBuf,
    /// Whether the event log writes the peer links' heartbeats (`[log] heartbeats`).
    pub(crate) log_heartbeats: bool,
    pub(crate) limits: Limits,
    pub(crate) store: StoreSettings,
    /// `None`: no TLS. When set, every server has a cert and key.
    pub(crate) tls: Option<TlsSettings>,
    /// Sorted by name, each with its symmetric neighbour set.
    pub servers: Vec<ServerSettings>,
}

/// `[limits]`: what one client or neighbour may cost this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes in a client's longest line.
    pub(crate) max_line: usize,
    /// Open client connections; `None`: as many as the open-files limit allows.
    pub(crate) max_connections: Option<usize>,
    /// Open client connections from one address; `None`: no cap.
    pub(crate) max_connections_per_ip: Option<usize>,
    /// Silence after which a connection is closed; `None`: never.
    pub(crate) idle_timeout: Option<Duration>,
    /// The time within which a line that has begun must end; `None`: no limit.
    pub(crate) line_timeout: Option<Duration>,
    /// Bytes of a client's unsent replies at which its reading pauses.
    pub(crate) reply_window: usize,
    /// Commands read and not yet answered, per connection, at which its reading pauses.
    pub(crate) max_pending: usize,
    /// Bytes of all clients' unsent replies at which reading pauses for every client.
    pub(crate) reply_budget: usize,
    /// How often each side of a peer link shows it is alive.
    pub(crate) peer_heartbeat: Duration,
    /// The time to connect to a neighbour and finish the handshake.
    pub(crate) peer_handshake_timeout: Duration,
    /// Bytes queued for a neighbour that does not read, past which its link is dropped.
    pub(crate) peer_queue: usize,
    /// How far ahead of this server's clock a check-in may be dated.
    pub(crate) max_clock_ahead: Duration,
}

/// What an empty `[limits]` table gives.
#[cfg(test)]
impl Default for Limits {
    fn default() -> Self {
        validate::limits(&Default::default()).expect("the default limits are valid")
    }
}

/// `[store]`: where the records outlive the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreSettings {
    /// `None`: memory only. A relative path is relative to the working directory.
    pub(crate) dir: Option<PathBuf>,
    pub(crate) fsync: bool,
    /// How long a record is kept; `None` is for ever.
    pub(crate) max_age: Option<Duration>,
    /// The most clients kept; `None`: no cap.
    pub(crate) max_records: Option<usize>,
}

/// `[tls]`, when on: the herd's CA, and where the servers' certificates are by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) ca: PathBuf,
    pub(crate) dir: Option<PathBuf>,
}

/// The herd's shared secret for peer links: kept out of every `Debug` and log line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for the peer handshake and nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Settings {
    /// Reads `path`, with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let vars = env::process_vars().map_err(|fault| SettingsError::new(path, fault))?;
        Self::load_with_env(path, vars)
    }

    /// Reads `path` with `vars` standing in for the process environment, so tests can run in
    /// parallel without touching the real one.
    pub(crate) fn load_with_env(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        Self::read(path, vars).map_err(|fault| SettingsError::new(path, fault))
    }

    fn read(path: &Path, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, Fault> {
        let text = std::fs::read_to_string(path).map_err(Fault::Read)?;
        let not_toml = |error| match error {
            ConfigError::FileParse { cause, .. } => Fault::Toml(cause.to_string()),
            other => Fault::Toml(other.to_string()),
        };
        let file = Config::builder()
            .add_source(File::from_str(&text, FileFormat::Toml))
            .build()
            .map_err(not_toml)?;
        // The file alone first, so that its faults are its own even where the environment
        // would paper over them (`places = "x"` with `HERD_PLACES__*` set).
        HerdFile::read(&file)?;
        let env = env::keys(vars);
        let mut layers = Config::builder().add_source(file);
        for (key, (_, value)) in &env {
            layers = layers.set_override(key, value.as_str()).map_err(not_toml)?;
        }
        let merged = layers.build().map_err(not_toml)?;
        validate::settings(path, &env, HerdFile::read(&merged)?)
    }

    /// The server called `name` (case-sensitive), or an error listing the ones there are.
    pub fn server(&self, name: &str) -> Result<&ServerSettings, SettingsError> {
        let found = self.servers.iter().find(|server| server.name == name);
        found.ok_or_else(|| {
            let known = self.servers.iter().map(|s| s.name.clone()).collect();
            SettingsError::new(&self.path, Fault::NoSuchServer(name.into(), known))
        })
    }

    /// The event-loop threads a server runs client sessions on (`workers` or `HERD_WORKERS`):
    /// as set, or, when unset or 0, one per core this process may use. A server alone on
    /// its host uses every core by default; `herd up`, which starts several servers on one
    /// host, sets it for each (see [`Settings::workers_set`]).
    pub fn workers(&self) -> usize {
        match self.workers {
            Some(n) if n > 0 => n,
            _ => cores(),
        }
    }

    /// Whether `workers` was set, in the file or the environment.
    pub fn workers_set(&self) -> bool {
        self.workers.is_some()
    }

    /// Whether the herd's peer links have a shared secret (`secret` or `HERD_SECRET`).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// The `Authorization` header an admin listener off loopback asks for: the herd's
    /// secret as a bearer token. It carries the secret: send it, never show it.
    pub fn admin_authorization(&self) -> Option<String> {
        self.secret
            .as_ref()
            .map(|secret| format!("Bearer {}", secret.expose()))
    }

    /// `[tls] dir`, where `herd certs` writes by default; `None` when it is not set.
    pub fn tls_dir(&self) -> Option<&Path> {
        self.tls.as_ref().and_then(|tls| tls.dir.as_deref())
    }

    /// Whether every server listens on a loopback address: a herd that never leaves this
    /// machine may run its peer links without TLS.
    pub(crate) fn is_all_loopback(&self) -> bool {
        self.servers.iter().all(|s| s.addr.ip().is_loopback())
    }
}

/// The cores this process may use (its CPU affinity and cgroup quota): at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
