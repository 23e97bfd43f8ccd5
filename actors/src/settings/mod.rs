//! `herd.toml` -> a validated [`Settings`], read once at start-up so that everything after
//! it works with typed, already-checked values.
//!
//! ```toml
//! secret = ""                 # shared secret of the peer links; empty = none
//!
//! [places]
//! provider = "embedded"       # "embedded" (default), "google", "google-new"
//! base_url = "https://maps.googleapis.com"   # default depends on the provider
//! api_key = ""                # google, google-new
//! timeout_ms = 5000           # longest wait for places, queueing included
//! cache_ttl_s = 300           # how long a Google answer is served again; 0: no cache
//! cache_entries = 10000       # the most answers kept
//! cache_mb = 64               # the most answer text kept, in MiB
//! cache_precision = 4         # decimal places of lat/lng in the cache key (~11 m)
//! max_concurrent = 8          # the most upstream calls in flight at once
//!
//! [log]
//! dir = "logs"                # each server appends to <dir>/<NAME>.log
//!
//! [servers.Hill]
//! addr = "127.0.0.1:12000"
//! neighbours = ["Jaquez", "Smith"]
//! ```
//!
//! Layers, each beating the one before: the file; `GOOGLE_PLACES_API_KEY` (for
//! `places.api_key` only); `HERD_*` variables (`HERD_PLACES__PROVIDER`, `HERD_LOG__DIR`, ...).
//! The `config` crate merges the layers; this module decides what may reach it:
//!
//! - Only the keys outside the server tables can come from the environment. Variables are
//!   filtered to those keys before the `config` crate sees them, so `HERD_*` variables that
//!   name no key are ignored and `HERD_SERVERS__*` can never add or rewire a server (the
//!   `config` crate lowercases environment keys, and server names are case-sensitive).
//! - Servers are read from the file's own layer. The `config` crate (0.15) keeps the case of
//!   keys read from TOML, so `[servers.Hill]` is `Hill` (a test holds it to that).
//! - An empty string, in the file or the environment, means "not set": no secret, no API
//!   key, the default base URL or log directory.

mod env;
mod error;
mod merged;
#[cfg(test)]
mod places_tests;
mod servers;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};

use crate::places::PlacesSettings;
use env::{herd_var_key, EnvLayer, GoogleKeyVar, GOOGLE_KEY_VAR};
use merged::Merged;

pub use error::SettingsError;
pub use servers::ServerSettings;

/// Every key outside the server tables, by table (`""` is the top level). These, and only
/// these, can be overridden from the environment.
const SETTINGS: &[(&str, &[&str])] = &[
    ("", &["secret"]),
    (
        "places",
        &[
            "provider",
            "base_url",
            "api_key",
            "timeout_ms",
            "cache_ttl_s",
            "cache_entries",
            "cache_mb",
            "cache_precision",
            "max_concurrent",
        ],
    ),
    ("log", &["dir"]),
];

const DEFAULT_LOG_DIR: &str = "logs";

/// The herd as one server needs to know it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file this was read from, for messages that must name it.
    pub path: PathBuf,
    pub secret: Option<Secret>,
    pub places: PlacesSettings,
    /// Where `<NAME>.log` goes; a relative path is relative to the working directory.
    pub log_dir: PathBuf,
    /// Sorted by name, each with its symmetric neighbour set.
    pub servers: Vec<ServerSettings>,
}

/// The herd's shared secret for peer links: kept out of every `Debug` and log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the peer handshake and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Settings {
    /// Reads `path`, with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let mut vars = Vec::new();
        for (var, value) in std::env::vars_os() {
            // Every variable we read has an ASCII name; others are not ours to judge.
            let Ok(var) = var.into_string() else { continue };
            if var != GOOGLE_KEY_VAR && herd_var_key(&var).is_none() {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((var, value)),
                Err(_) => {
                    return Err(SettingsError::EnvNotUnicode {
                        path: path.into(),
                        var,
                    })
                }
            }
        }
        Self::load_with_env(path, vars)
    }

    /// Reads `path` with `env` standing in for the process environment, so tests can run in
    /// parallel without touching the real one.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.into(),
            source,
        })?;
        let not_toml = |error: config::ConfigError| SettingsError::Toml {
            path: path.into(),
            message: match error {
                config::ConfigError::FileParse { cause, .. } => cause.to_string(),
                other => other.to_string(),
            },
        };
        let file = Config::builder()
            .add_source(File::from_str(&text, FileFormat::Toml))
            .build()
            .map_err(not_toml)?;
        let file_root = file.cache.clone().into_table().map_err(not_toml)?;
        check_keys(path, &file_root)?;
        let servers = servers::read_servers(path, file_root.get("servers"))?;

        let env = EnvLayer::new(env);
        let merged = Config::builder()
            .add_source(file)
            .add_source(GoogleKeyVar(env.google_key))
            .add_source(
                Environment::with_prefix("HERD")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(env.herd_vars)),
            )
            .build()
            .map_err(not_toml)?;
        let settings = Merged {
            path,
            root: merged.cache.into_table().map_err(not_toml)?,
            overridden: env.overridden,
        };
        Ok(Settings {
            path: path.into(),
            secret: settings.string("secret")?.map(Secret),
            places: settings.places()?,
            log_dir: settings
                .string("log.dir")?
                .unwrap_or_else(|| DEFAULT_LOG_DIR.into())
                .into(),
            servers,
        })
    }

    /// The server called `name` (case-sensitive), or an error listing the ones there are.
    pub fn server(&self, name: &str) -> Result<&ServerSettings, SettingsError> {
        self.servers
            .iter()
            .find(|server| server.name == name)
            .ok_or_else(|| SettingsError::NoSuchServer {
                path: self.path.clone(),
                name: name.into(),
                known: self.servers.iter().map(|s| s.name.clone()).collect(),
            })
    }

    /// Whether every server listens on a loopback address: a herd that never leaves this
    /// machine may run without a secret.
    pub fn is_all_loopback(&self) -> bool {
        self.servers
            .iter()
            .all(|server| server.addr.ip().is_loopback())
    }
}

/// Refuses keys the herd does not know, anywhere in the file outside the server tables
/// (`servers` checks its own).
fn check_keys(path: &Path, root: &Map<String, Value>) -> Result<(), SettingsError> {
    let unknown = |key: String| SettingsError::UnknownKey {
        path: path.into(),
        key,
    };
    for key in sorted_keys(root) {
        if key == "servers" || leaf_keys("").contains(&key) {
            continue;
        }
        let (Some(value), Some(known)) = (root.get(key), table_keys(key)) else {
            return Err(unknown(key.into()));
        };
        let ValueKind::Table(table) = &value.kind else {
            return Err(SettingsError::BadValue {
                path: path.into(),
                key: key.into(),
                value: describe(value),
                expected: format!("a [{key}] table"),
            });
        };
        if let Some(sub) = sorted_keys(table).find(|sub| !known.contains(sub)) {
            return Err(unknown(format!("{key}.{sub}")));
        }
    }
    Ok(())
}

fn sorted_keys(table: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys.into_iter()
}

/// The keys of the settings table `table`, if there is one by that name.
fn table_keys(table: &str) -> Option<&'static [&'static str]> {
    SETTINGS
        .iter()
        .find(|(name, _)| *name == table && !name.is_empty())
        .map(|(_, keys)| *keys)
}

fn leaf_keys(table: &str) -> &'static [&'static str] {
    SETTINGS
        .iter()
        .find(|(name, _)| *name == table)
        .map_or(&[], |(_, keys)| *keys)
}

/// A value as an error message shows it: strings quoted, numbers as written, tables and
/// lists by kind.
fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(text) => format!("{text:?}"),
        ValueKind::Boolean(_)
        | ValueKind::I64(_)
        | ValueKind::I128(_)
        | ValueKind::U64(_)
        | ValueKind::U128(_)
        | ValueKind::Float(_) => value.kind.to_string(),
        _ => format!("({})", kind_of(value)),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match &value.kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a number",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "a list",
    }
}
