//! `herd.toml` -> typed serde structs -> one validated [`Settings`], read once at start-up so
//! that everything after it works with typed, already-checked values. The shipped `herd.toml`
//! is the annotated example of every key.
//!
//! Layers, each beating the one before: the file; `GOOGLE_PLACES_API_KEY` (for
//! `places.api_key` only); `HERD_*` variables (`HERD_PLACES__PROVIDER`, `HERD_LOG__DIR`, ...).
//! The `config` crate merges them, and this module decides what may reach it:
//!
//! - Only the keys outside the server tables can come from the environment: variables are
//!   filtered to those keys first, so `HERD_*` variables that name no key are ignored and
//!   `HERD_SERVERS__*` can never add or rewire a server (the `config` crate lowercases
//!   environment keys, and server names are case-sensitive; it keeps the case of keys read
//!   from TOML, so `[servers.Hill]` is `Hill`).
//! - An empty string, in the file or the environment, means "not set": no secret, no API
//!   key, the default base URL or log directory.
//!
//! Then, in order: `file` reads the merged layers into one serde struct per table, which
//! refuses unknown keys and keeps each value as written; `validate` (and `servers` for
//! the server tables) turns them into [`Settings`], naming in every refusal the key, or the
//! variable that set it.
//!
//! A new table is a struct of `Option<Raw>` keys in `file`, a `Table<..>` field for it in
//! `HerdFile`, and a `Check` method in `validate` that turns it into a field of [`Settings`].
//! Its keys can be set from the environment at once. A server key goes in `ServerTable`
//! instead, checked in `servers`.

mod env;
mod error;
mod file;
#[cfg(test)]
mod places_tests;
mod servers;
#[cfg(test)]
mod tests;
mod validate;

use std::path::{Path, PathBuf};

use config::{Config, File, FileFormat};

use crate::places::PlacesSettings;
use file::HerdFile;

pub use error::SettingsError;
pub use servers::ServerSettings;

/// The herd as one server needs to know it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file this was read from, for messages that must name it.
    pub(crate) path: PathBuf,
    pub(crate) secret: Option<Secret>,
    pub(crate) places: PlacesSettings,
    /// Where `<NAME>.log` goes; a relative path is relative to the working directory.
    pub(crate) log_dir: PathBuf,
    /// Sorted by name, each with its symmetric neighbour set.
    pub servers: Vec<ServerSettings>,
}

/// The herd's shared secret for peer links: kept out of every `Debug` and log line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the peer handshake and nothing else.
    pub(crate) fn expose(&self) -> &str {
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
            let Some(var) = var.to_str().filter(|var| env::is_read(var)) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| SettingsError::EnvNotUnicode {
                    path: path.into(),
                    var: var.into(),
                })?;
            vars.push((var.to_owned(), value));
        }
        Self::load_with_env(path, vars)
    }

    /// Reads `path` with `env` standing in for the process environment, so tests can run in
    /// parallel without touching the real one.
    pub(crate) fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.into(),
            source,
        })?;
        let not_toml = |error| SettingsError::Toml {
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
        // The file on its own first, so that its faults are its own even where the
        // environment would paper over them (`places = "x"` with `HERD_PLACES__*` set).
        HerdFile::read(path, &file)?;
        let (env, env_keys) = env::layer(env);
        let merged = Config::builder()
            .add_source(file)
            .add_source(env)
            .build()
            .map_err(not_toml)?;
        validate::settings(path, &env_keys, HerdFile::read(path, &merged)?)
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
    pub(crate) fn is_all_loopback(&self) -> bool {
        self.servers
            .iter()
            .all(|server| server.addr.ip().is_loopback())
    }
}
