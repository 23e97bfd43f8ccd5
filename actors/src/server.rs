//! One server of the herd: the listener and what its sessions share.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tokio::net::{TcpListener, TcpSocket};

use crate::config::{HerdConfig, ServerConfig};
use crate::log::EventLog;
use crate::peers::inbound::PeerPolicy;
use crate::peers::link::{LinkSettings, LinkTarget};
use crate::peers::manager::PeerManager;
use crate::places::PlacesFetcher;
use crate::session::Session;
use crate::store::LocationStore;

/// Caps that keep one connection from taking the server's memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest line accepted; a longer one closes the connection after earlier replies.
    pub max_line: usize,
    /// First size of each connection's read buffer; it grows only for long input.
    pub read_buffer: usize,
    /// Bytes of replies queued for a client that does not read before it is dropped.
    pub max_queued: usize,
    /// Commands awaiting replies on one connection before it is dropped.
    pub max_in_flight: usize,
    /// Open client connections; more are accepted and closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 8 * 1024,
            read_buffer: 256,
            max_queued: 4 * 1024 * 1024,
            max_in_flight: 4096,
            max_connections: 65_536,
        }
    }
}

/// What every session of one server uses.
pub struct Shared {
    pub name: Arc<str>,
    pub store: Addr<LocationStore>,
    pub peers: Addr<PeerManager>,
    pub policy: PeerPolicy,
    pub places: Addr<PlacesFetcher>,
    pub log: EventLog,
    pub limits: Limits,
    pub connections: Cell<usize>,
}

/// A running server. Dropping it does not stop it; stop the actix `System`.
pub struct Server {
    pub addr: SocketAddr,
    pub log: EventLog,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the event log in {dir}: {source}")]
    Log { dir: String, source: io::Error },
    #[error("cannot listen: {0}")]
    Listen(io::Error),
    #[error("the herd has servers off loopback and no secret: set `secret` in the config or HERD_SECRET")]
    NoSecret,
}

/// Binds `addr` so that a restarted server gets its port back at once (`SO_REUSEADDR`),
/// with a backlog deep enough for a burst of thousands of connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Checks what can be checked before binding: the server exists, and a herd that leaves
/// loopback has a secret (unauthenticated peer links are only safe on one machine).
pub fn preflight<'a>(config: &'a HerdConfig, name: &str) -> Result<&'a ServerConfig, StartError> {
    let me = config.server(name)?;
    if config.secret.is_none() && !config.is_all_loopback() {
        return Err(StartError::NoSecret);
    }
    Ok(me)
}

/// Knobs that are not in `herd.toml`: sensible defaults, which tests tighten.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub limits: Limits,
    pub links: LinkSettings,
}

/// Starts server `name` of `config` on `listener`. Must run inside an actix `System`.
pub fn start(config: &HerdConfig, name: &str, listener: TcpListener) -> Result<Server, StartError> {
    start_with(config, name, listener, Tuning::default())
}

/// [`start`] with limits and peer-link timings of the caller's choosing.
pub fn start_with(
    config: &HerdConfig,
    name: &str,
    listener: TcpListener,
    tuning: Tuning,
) -> Result<Server, StartError> {
    let me = preflight(config, name)?;
    let log = EventLog::open(&config.log_dir, &me.name).map_err(|source| StartError::Log {
        dir: config.log_dir.display().to_string(),
        source,
    })?;
    let addr = listener.local_addr().map_err(StartError::Listen)?;
    let name: Arc<str> = Arc::from(me.name.as_str());
    let secret: Option<Arc<[u8]>> = config
        .secret
        .as_ref()
        .map(|s| Arc::from(s.expose().as_bytes()));
    let mut targets = Vec::new();
    for neighbour in &me.neighbours {
        let peer = config.server(neighbour)?;
        targets.push(LinkTarget {
            me: name.clone(),
            neighbour: Arc::from(neighbour.as_str()),
            addr: peer.addr,
            secret: secret.clone(),
        });
    }
    let policy = PeerPolicy {
        me: name.clone(),
        neighbours: targets.iter().map(|t| t.neighbour.clone()).collect(),
        secret,
    };
    // The store and the peer manager each need the other's address.
    let store_ctx = Context::<LocationStore>::new();
    let store = store_ctx.address();
    let peers =
        PeerManager::start_links(name.clone(), targets, &tuning.links, &store, &log).start();
    store_ctx.run(LocationStore::new(peers.clone().recipient()));
    let shared = Rc::new(Shared {
        name: name.clone(),
        store,
        peers,
        policy,
        places: PlacesFetcher::new(config.places.clone()).start(),
        log: log.clone(),
        limits: tuning.limits,
        connections: Cell::new(0),
    });
    if config.secret.is_none() && !me.neighbours.is_empty() {
        log.note("no secret configured: peers are accepted by name alone (loopback herd)");
        eprintln!("herd: warning: no secret in the config; peer links are not authenticated");
    }
    log.note(&format!("{name} listening on {addr}"));
    actix_rt::spawn(accept_loop(listener, shared));
    Ok(Server { addr, log })
}

async fn accept_loop(listener: TcpListener, shared: Rc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shared.connections.get() >= shared.limits.max_connections {
                    shared.log.dropped(peer, "too many connections");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                Session::start(shared.clone(), stream, peer);
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                shared.log.note(&format!("accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
