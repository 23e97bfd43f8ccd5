//! Why a `herd.toml` was refused: every message names the file and the fault, because the
//! operator reads it on stderr at start-up and must know what to edit.

use std::io;
use std::path::PathBuf;

/// A configuration the herd refuses to start with.
///
/// One variant per fault, so tests (and a caller that wants to) can tell them apart; the
/// `Display` text is what the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} is not valid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },

    /// A key the herd does not know: most likely a typo that must not pass silently.
    #[error("unknown key '{key}' in {}", path.display())]
    UnknownKey { path: PathBuf, key: String },

    /// A value in the file that is not what its key needs.
    #[error("bad {key} {value} in {}: expected {expected}", path.display())]
    BadValue {
        path: PathBuf,
        key: String,
        /// The value as found, quoted if it is a string.
        value: String,
        expected: String,
    },

    /// A value from an environment variable that is not what its key needs.
    #[error("bad {var}={value:?} in the environment (loading {}): expected {expected}", path.display())]
    BadEnv {
        path: PathBuf,
        var: String,
        value: String,
        expected: String,
    },

    /// An environment variable meant for the herd whose value is not UTF-8.
    #[error("environment variable {var} is not valid UTF-8 (loading {})", path.display())]
    EnvNotUnicode { path: PathBuf, var: String },

    #[error(
        "places provider \"{provider}\" needs an API key, and none is set (loading {}): \
         set GOOGLE_PLACES_API_KEY or HERD_PLACES__API_KEY in the environment, \
         or api_key under [places]",
        path.display()
    )]
    MissingApiKey {
        path: PathBuf,
        provider: &'static str,
    },

    #[error("no servers in {}: add a [servers.NAME] table with an addr", path.display())]
    NoServers { path: PathBuf },

    #[error(
        "bad server name {name:?} in {}: use only ASCII letters, digits, '-' and '_' \
         (the name appears in replies and names the log file)",
        path.display()
    )]
    BadServerName { path: PathBuf, name: String },

    #[error("server '{server}' has no addr in {}", path.display())]
    MissingAddr { path: PathBuf, server: String },

    #[error("server '{server}' has a bad addr {addr:?} in {}: {reason}", path.display())]
    BadAddr {
        path: PathBuf,
        server: String,
        addr: String,
        reason: &'static str,
    },

    #[error("servers '{first}' and '{second}' have the same addr {addr} in {}", path.display())]
    DuplicateAddr {
        path: PathBuf,
        addr: std::net::SocketAddr,
        first: String,
        second: String,
    },

    #[error("server '{server}' lists unknown neighbour '{neighbour}' in {}", path.display())]
    UnknownNeighbour {
        path: PathBuf,
        server: String,
        neighbour: String,
    },

    #[error("server '{server}' lists itself as a neighbour in {}", path.display())]
    SelfNeighbour { path: PathBuf, server: String },

    #[error("no server named '{name}' in {} (servers: {})", path.display(), known.join(", "))]
    NoSuchServer {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
}
