//! One server of the herd, wired: its actors, its listener, its event log, and its admin
//! listener (started first, so it answers `503 loading store` while the store loads).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use tokio::net::{TcpListener, TcpSocket};

use crate::admin::health::{Readiness, ServerPhase};
use crate::admin::{Admin, AdminState};
use crate::admission::{connection_cap, Admission, Caps};
use crate::event_log::EventLog;
use crate::listener::{accept_loop, home_serves, ToPeers, Workers};
use crate::metrics::{open_files_limit, Metrics};
#[cfg(test)]
use crate::outbox::ReplyBudget;
use crate::peers::handshake::{LinkTarget, PeerPolicy};
use crate::peers::manager::PeerManager;
use crate::peers::tls::PeerTls;
use crate::places::PlacesFetcher;
use crate::session::SessionShared;
use crate::settings::{ServerSettings, Settings, SettingsError};
use crate::store::committer::Committer;
use crate::store::durable::{Database, StoreError};
use crate::store::journal;
use crate::store::table::Table;
use crate::store::{Bounds, Flush, GetStoreStats, LocationStore, PEER_CLOCK_SLACK};

mod store_and_peers;
mod tuning;

use store_and_peers::start_store_and_peers;
pub(crate) use tuning::Tuning;

/// A running server. Dropping it does not stop it; stop the actix `System`.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    log: EventLog,
    store: Addr<LocationStore>,
    readiness: Readiness,
    admin: Option<Admin>,
    #[cfg(test)]
    budget: ReplyBudget,
}

impl Server {
    /// Where its admin listener listens, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// The server's event log file.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Starts a new event log file at the log's path, once what was logged so far is in the
    /// old one: what SIGHUP does, so that logrotate can rename the file and signal.
    pub fn reopen_log(&self) {
        self.log.reopen();
    }

    /// The reply budget its sessions share.
    #[cfg(test)]
    pub(crate) fn budget(&self) -> &ReplyBudget {
        &self.budget
    }

    /// Writes out what the store has taken, notes why the server stops, and writes out its
    /// event log; returns once both are on disk.
    pub async fn shut_down(&self, why: &str) -> io::Result<()> {
        self.readiness.set(ServerPhase::Stopping);
        let _ = self.store.send(Flush).await;
        if let Ok(stats) = self.store.send(GetStoreStats).await {
            self.log.note(&format!(
                "store: {} records held; {} commits of {} records since start, {} failed",
                stats.records, stats.commits, stats.committed, stats.failed
            ));
        }
        self.log.note(why);
        self.log.flush_and_close()
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not allow it.
    #[error(transparent)]
    Config(#[from] SettingsError),
    /// Its event log cannot be opened.
    #[error("cannot open the event log in {dir}: {error}")]
    Log {
        /// The log directory.
        dir: String,
        /// What went wrong; in the message, so not a `source()` as well.
        error: io::Error,
    },
    /// Its listening socket has no address.
    #[error("cannot listen: {0}")]
    Listen(io::Error),
    /// Its store cannot be used.
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
    /// The thread loading its store ended without a table (it panicked).
    #[error("the thread loading the store ended without it")]
    LoaderGone,
    /// A herd off loopback must run its peer links over TLS.
    #[error(
        "server '{server}' is at {addr}, off loopback, and the herd's peer links do not use \
         TLS: set dir under [tls] in {config} (or HERD_TLS__DIR), and make the files with \
         `herd certs`"
    )]
    NoTls {
        /// The first server off loopback.
        server: String,
        /// Its address.
        addr: SocketAddr,
        /// The config file.
        config: String,
    },
    /// The server's TLS files are missing or do not fit one another.
    #[error(transparent)]
    Tls(Box<dyn std::error::Error + Send + Sync>),
    /// An admin listener off loopback must ask for the herd's secret.
    #[error(
        "server '{server}' has its admin listener off loopback ({addr}) and the herd has no \
         secret: set `secret` in the config or HERD_SECRET (every admin request but \
         /health must then carry it), or put `admin` on 127.0.0.1"
    )]
    AdminNoSecret {
        /// The server.
        server: String,
        /// Its admin address.
        addr: SocketAddr,
    },
    /// Its admin listener cannot listen.
    #[error("cannot listen on {addr} for the admin listener: {error}")]
    Admin {
        /// The admin address.
        addr: SocketAddr,
        /// What went wrong; in the message, so not a `source()` as well.
        error: io::Error,
    },
}

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        StartError::Store(Box::new(e))
    }
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
/// loopback runs its peer links over TLS. Between hosts a shared secret is not enough: it
/// proves a neighbour once, then every record would cross the network in clear text, open
/// to anyone on the path to read and to change. On one machine plain links stay allowed.
/// An admin listener off loopback needs the herd's secret, which it then asks of every
/// request but `/health`.
pub fn preflight<'a>(config: &'a Settings, name: &str) -> Result<&'a ServerSettings, StartError> {
    let me = config.server(name)?;
    if let Some(addr) = me.admin {
        if config.secret.is_none() && !addr.ip().is_loopback() {
            return Err(StartError::AdminNoSecret {
                server: me.name.clone(),
                addr,
            });
        }
    }
    if config.tls.is_some() || config.is_all_loopback() {
        return Ok(me);
    }
    let away = config.servers.iter().find(|s| !s.addr.ip().is_loopback());
    let away = away.unwrap_or(me);
    Err(StartError::NoTls {
        server: away.name.clone(),
        addr: away.addr,
        config: config.path.display().to_string(),
    })
}

/// Starts server `name` of `config` on `listener`: loads its store, then starts its actors
/// and takes clients. Must run inside an actix `System`.
pub async fn start(
    config: &Settings,
    name: &str,
    listener: TcpListener,
) -> Result<Server, StartError> {
    let tuning = Tuning::from_limits(&config.limits).with_workers(config.workers());
    start_with(config, name, listener, tuning).await
}

/// [`start`] with limits and peer-link timings of the caller's choosing.
pub(crate) async fn start_with(
    config: &Settings,
    name: &str,
    listener: TcpListener,
    tuning: Tuning,
) -> Result<Server, StartError> {
    let me = preflight(config, name)?;
    // Before anything starts: a server whose files do not fit must not run at all.
    let tls = match &config.tls {
        None => None,
        Some(tls) => Some(Arc::new(
            PeerTls::load(tls, me, &config.servers).map_err(|e| StartError::Tls(Box::new(e)))?,
        )),
    };
    let log = EventLog::open(&config.log_dir, &me.name)
        .map_err(|error| StartError::Log {
            dir: config.log_dir.display().to_string(),
            error,
        })?
        .with_heartbeats(config.log_heartbeats);
    let addr = listener.local_addr().map_err(StartError::Listen)?;
    let name: Arc<str> = Arc::from(me.name.as_str());
    let metrics = Arc::new(Metrics::new(
        &me.neighbours,
        log.dropped_counter(),
        SystemTime::now(),
    ));
    let readiness = Readiness::default();
    let admin = match me.admin {
        None => None,
        Some(admin) => {
            let failed = |error| StartError::Admin { addr: admin, error };
            let listener = bind(admin)
                .and_then(TcpListener::into_std)
                .map_err(failed)?;
            let state = AdminState::new(
                config,
                me,
                admin,
                Arc::clone(&metrics),
                readiness.clone(),
                log.clone(),
            );
            let admin = Admin::start(listener, state).await.map_err(failed)?;
            log.note(&format!("admin listener on http://{}/", admin.addr()));
            Some(admin)
        }
    };
    let bounds = Bounds {
        max_age: config.store.max_age,
        // The same bound the sessions hold check-ins to.
        max_ahead: tuning.limits.max_clock_ahead,
        max_records: config.store.max_records,
    };
    let (committer, table) = match &config.store.dir {
        None => (None, Table::default()),
        Some(dir) => {
            readiness.set(ServerPhase::LoadingStore);
            let db = Database::open(dir, &name, config.store.fsync)?;
            let path = db.path().to_owned();
            let started = std::time::Instant::now();
            let (mut db, mut table, next_segment) = load_beside(db).await?;
            log.note(&format!(
                "loaded {} records from {} in {:.3}s",
                table.len(),
                path.display(),
                started.elapsed().as_secs_f64()
            ));
            // Taken before the clock bound was, or from a server whose clock ran ahead:
            // each would win over every later check-in of its client, here and in the herd.
            let future = bounds.future_cutoff();
            let dropped = table.forget_after(future);
            if dropped > 0 {
                db.forget_after(future)?;
                log.note(&format!(
                    "dropped {dropped} records dated more than {}s ahead of this server's \
                     clock (limits.max_clock_ahead_s, and {}s for the servers' clocks)",
                    bounds.max_ahead.as_secs(),
                    PEER_CLOCK_SLACK.as_secs()
                ));
            }
            #[cfg_attr(not(test), allow(unused_mut))]
            let mut committer = if config.store.fsync {
                Committer::thread(db)
            } else {
                Committer::journal(db, next_segment, metrics.store.clone())?
            };
            #[cfg(test)]
            if tuning.store_fails {
                committer.fail_writes(Some(true)).await;
            }
            (Some(committer), table)
        }
    };
    let secret: Option<Arc<[u8]>> = config
        .secret
        .as_ref()
        .map(|s| Arc::from(s.expose().as_bytes()));
    let mut targets = Vec::new();
    for neighbour in &me.neighbours {
        targets.push(LinkTarget {
            me: name.clone(),
            neighbour: Arc::from(neighbour.as_str()),
            addr: config.server(neighbour)?.addr,
            secret: secret.clone(),
            tls: tls.clone(),
        });
    }
    let policy = PeerPolicy {
        me: name.clone(),
        neighbours: targets.iter().map(|t| t.neighbour.clone()).collect(),
        secret,
        tls: tls.is_some(),
    };
    // The store sends new records to the peers, which send it theirs and ask it what their
    // neighbours lack: each is made around the other's address (see `store_and_peers`).
    let (store, peers) = start_store_and_peers(
        |floods| {
            LocationStore::new(floods, table, committer, bounds).with_metrics(metrics.store.clone())
        },
        |asks| {
            let (log, metrics) = (log.clone(), metrics.peers.clone());
            PeerManager::new(targets, policy, tuning.links, asks, log, metrics)
        },
    );
    // Descriptors for all but clients: a link to each neighbour and one from it, calls to
    // the places provider, and a margin for the listener, the log, the store and the rest.
    let reserved = 2 * me.neighbours.len() + config.places.max_concurrent + 64;
    let places = PlacesFetcher::new(config.places.clone())
        .with_metrics(metrics.places.clone())
        .start();
    if let Some(admin) = &admin {
        admin
            .state()
            .wire(store.clone(), peers.clone(), places.clone());
    }
    let shared = SessionShared {
        name: name.clone(),
        store: store.clone(),
        places,
        log: log.clone(),
        limits: tuning.limits,
        metrics: metrics.clients.clone(),
    };
    let to_peers = ToPeers::here(peers.recipient());
    let workers = Workers::start(tuning.workers, shared, tuning.reply_budget, to_peers);
    #[cfg(test)]
    let budget = workers.home().budget.clone();
    if tls.is_some() {
        log.note("peer links use TLS: each neighbour proves its name with its certificate");
    } else if config.secret.is_none() && !me.neighbours.is_empty() {
        log.note("no secret configured: peers are accepted by name alone (loopback herd)");
        eprintln!("herd: warning: no secret in the config; peer links are not authenticated");
    }
    log.note(&format!(
        "{name} listening on {addr}, with {} worker thread{}",
        tuning.workers,
        if tuning.workers == 1 { "" } else { "s" }
    ));
    let caps = Caps {
        // The binary raises the soft limit on open files to the hard limit at start-up.
        total: connection_cap(
            tuning.max_connections,
            open_files_limit().unwrap_or(1024),
            reserved,
        ),
        per_ip: tuning.max_connections_per_ip,
        probation: 2 * me.neighbours.len(),
        workers: tuning.workers,
        home_serves: home_serves(tuning.workers),
    };
    let admission = Admission::new(caps);
    actix_rt::spawn(accept_loop(listener, workers, admission, tls));
    readiness.set(ServerPhase::Serving);
    Ok(Server {
        addr,
        log,
        store,
        readiness,
        admin,
        #[cfg(test)]
        budget,
    })
}

/// Reads every record of `db` (and of its journal, which it then folds into it), on a
/// thread of its own (seconds, for a large store), so the rest of the system (the admin
/// listener's answers) goes on meanwhile; the number of the next journal segment.
async fn load_beside(mut db: Database) -> Result<(Database, Table, u64), StartError> {
    let loaded = tokio::task::spawn_blocking(move || {
        let (table, next) = journal::recover(&mut db)?;
        Ok::<_, StoreError>((db, table, next))
    });
    Ok(loaded.await.map_err(|_| StartError::LoaderGone)??)
}
