//! Why a `herd.toml` was refused: every message names the file and the fault, because the
//! operator reads it on stderr at start-up and must know what to edit.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration the herd refuses to start with.
///
/// One variant per fault, so tests (and a caller that wants to) can tell them apart; the
/// `Display` text is what the operator sees. Every `path` is the file being read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: io::Error,
    },

    /// The file is not TOML.
    #[error("{} is not valid TOML: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The TOML parser's account, with line and column.
        message: String,
    },

    /// A key the herd does not know: most likely a typo that must not pass silently.
    #[error("unknown key '{key}' in {}", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The full dotted key (`places.provder`).
        key: String,
    },

    /// A value in the file that is not what its key needs.
    #[error("bad {key} {value} in {}: expected {expected}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The full dotted key.
        key: String,
        /// The value as found, quoted if it is a string; only its kind if it may be secret.
        value: String,
        /// What the key needs.
        expected: String,
    },

    /// A value from an environment variable that is not what its key needs.
    #[error("bad {var}={value:?} in the environment (loading {}): expected {expected}", path.display())]
    BadEnv {
        /// The file the variable overrides.
        path: PathBuf,
        /// The variable, as named in the environment.
        var: String,
        /// Its value.
        value: String,
        /// What the key it sets needs.
        expected: String,
    },

    /// An environment variable meant for the herd whose value is not UTF-8.
    #[error("environment variable {var} is not valid UTF-8 (loading {})", path.display())]
    EnvNotUnicode {
        /// The file the variable would override.
        path: PathBuf,
        /// The variable.
        var: String,
    },

    /// A Google provider, and no API key anywhere.
    #[error(
        "places provider \"{provider}\" needs an API key, and none is set (loading {}): \
         set GOOGLE_PLACES_API_KEY or HERD_PLACES__API_KEY in the environment, \
         or api_key under [places]",
        path.display()
    )]
    MissingApiKey {
        /// The file.
        path: PathBuf,
        /// The provider as written (`google`, `google-new`).
        provider: &'static str,
    },

    /// A herd of no servers.
    #[error("no servers in {}: add a [servers.NAME] table with an addr", path.display())]
    NoServers {
        /// The file.
        path: PathBuf,
    },

    /// A server name that would not fit in a reply or a log file name.
    #[error(
        "bad server name {name:?} in {}: use only ASCII letters, digits, '-' and '_' \
         (the name appears in replies and names the log file)",
        path.display()
    )]
    BadServerName {
        /// The file.
        path: PathBuf,
        /// The name as written.
        name: String,
    },

    /// A server table without the address it listens on.
    #[error("server '{server}' has no addr in {}", path.display())]
    MissingAddr {
        /// The file.
        path: PathBuf,
        /// The server.
        server: String,
    },

    /// A server address that is not IP:PORT, or that could not be found again.
    #[error("server '{server}' has a bad {key} {addr} in {}: {reason}", path.display())]
    BadAddr {
        /// The file.
        path: PathBuf,
        /// The server.
        server: String,
        /// Which of the server's addresses (`addr`).
        key: &'static str,
        /// The value as found, quoted if it is a string.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Two servers on one address: the second could never listen.
    #[error("servers '{first}' and '{second}' have the same addr {addr} in {}", path.display())]
    DuplicateAddr {
        /// The file.
        path: PathBuf,
        /// The address.
        addr: SocketAddr,
        /// The server first by name.
        first: String,
        /// The other one.
        second: String,
    },

    /// A link to a server that is not in the file.
    #[error("server '{server}' lists unknown neighbour '{neighbour}' in {}", path.display())]
    UnknownNeighbour {
        /// The file.
        path: PathBuf,
        /// The server whose table lists it.
        server: String,
        /// The name listed.
        neighbour: String,
    },

    /// A link from a server to itself.
    #[error("server '{server}' lists itself as a neighbour in {}", path.display())]
    SelfNeighbour {
        /// The file.
        path: PathBuf,
        /// The server.
        server: String,
    },

    /// A server asked for by name that the file does not have.
    #[error("no server named '{name}' in {} (servers: {})", path.display(), known.join(", "))]
    NoSuchServer {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The servers there are, sorted.
        known: Vec<String>,
    },
}
