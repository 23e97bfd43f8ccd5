//! The admin listener: what an operator asks of a running server, over HTTP.
//!
//! - `health`: whether the server serves (`/health`).
//! - `status`: `/status`, one server in JSON, and the rates it reports.
//! - `page`: the live picture of the herd (`/`) and the herd view it draws (`/herd`), from
//!   each server's `/status` as [`StatusClient`] asks for it (`herd status` asks with it too).
//! - `auth`: the secret an admin listener off loopback asks for.
//! - `server`: the actix-web app, on the server's own actix system.
//!
//! The counters it serves are in the crate's `metrics` module, which every part of the
//! server writes to; this module only reads them and asks the actors (by message, with a
//! short time-out), and nothing but the wiring imports it.
//!
//! ```text
//! GET /          the live page          GET /status   this server, JSON
//! GET /metrics   Prometheus text        GET /herd     every server's /status, JSON
//! GET /health    200 serving, or 503 and the reason
//! ```

mod auth;
pub(crate) mod health;
mod page;
mod server;
mod status;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use actix::Addr;

use crate::event_log::EventLog;
use crate::metrics::Metrics;
use crate::peers::manager::{LinkStatus, LinkStatuses, PeerManager};
use crate::places::{LastFailure, PlacesFetcher};
use crate::settings::{ServerSettings, Settings};
use crate::store::{GetStoreStats, LocationStore};
use health::{Health, Readiness, ServerPhase};
use status::{RateWindow, Sample};

pub use page::StatusClient;
pub(crate) use server::Admin;
pub use status::{Counters, LastError, LinkReport, Rates, Status};

/// How long a handler waits for an actor's answer: a server too busy to answer within it
/// is reported without that part rather than not at all.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The actors the handlers ask, once they run.
struct Wired {
    store: Addr<LocationStore>,
    peers: Addr<PeerManager>,
    places: Addr<PlacesFetcher>,
}

/// A server of the herd, as the live page draws it.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    admin: Option<SocketAddr>,
    neighbours: Vec<String>,
}

/// What the admin handlers read: shared with the HTTP worker's thread.
pub(crate) struct AdminState {
    name: String,
    addr: SocketAddr,
    started: Instant,
    /// The server's metrics; their peers are its neighbours, one link each.
    metrics: Arc<Metrics>,
    readiness: Readiness,
    log: EventLog,
    /// Set once, when the actors have started.
    wired: OnceLock<Wired>,
    /// Every server of the config, this one included.
    herd: Vec<Member>,
    /// The herd's secret: asked of every request but `/health` when this listener is off
    /// loopback (`guarded`).
    secret: Option<Arc<str>>,
    /// The `Authorization` header that carries the secret to the other servers' admin
    /// listeners.
    authorization: Option<String>,
    guarded: bool,
    rates: RateWindow,
}

impl AdminState {
    /// The state of server `me` of `config`, whose admin listener listens on `admin`.
    pub(crate) fn new(
        config: &Settings,
        me: &ServerSettings,
        admin: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        log: EventLog,
    ) -> AdminState {
        AdminState {
            name: me.name.clone(),
            addr: me.addr,
            started: Instant::now(),
            metrics,
            readiness,
            log,
            wired: OnceLock::new(),
            herd: config
                .servers
                .iter()
                .map(|s| Member {
                    name: s.name.clone(),
                    admin: s.admin,
                    neighbours: s.neighbours.clone(),
                })
                .collect(),
            secret: config.secret.as_ref().map(|s| Arc::from(s.expose())),
            authorization: config.admin_authorization(),
            guarded: !admin.ip().is_loopback(),
            rates: RateWindow::default(),
        }
    }

    /// The actors have started: the handlers may ask them.
    pub(crate) fn wire(
        &self,
        store: Addr<LocationStore>,
        peers: Addr<PeerManager>,
        places: Addr<PlacesFetcher>,
    ) {
        let _ = self.wired.set(Wired {
            store,
            peers,
            places,
        });
    }

    fn health(&self) -> Health {
        Health::of(&self.name, &self.readiness, &self.log, &self.metrics.store)
    }

    /// The counts the rates are computed from, now.
    fn sample(&self) -> Sample {
        let clients = &self.metrics.clients;
        Sample {
            at: Instant::now(),
            check_ins: clients.check_ins_answered(),
            whatsats: clients.whatsats.total(),
        }
    }

    /// Asks the store and the peer manager what only they know: records held, each link's
    /// state.
    async fn ask_store_and_peers(&self) -> (Option<usize>, Option<Vec<LinkStatus>>) {
        let Some(wired) = self.wired.get() else {
            return (None, None);
        };
        let (stats, links) = futures::join!(
            ask(wired.store.send(GetStoreStats)),
            ask(wired.peers.send(LinkStatuses)),
        );
        (stats.map(|s| s.records), links)
    }

    /// Asks the places fetcher for its last failure, and when it came.
    async fn ask_places(&self) -> Option<(SystemTime, String)> {
        let wired = self.wired.get()?;
        ask(wired.places.send(LastFailure)).await.flatten()
    }

    /// The Prometheus exposition, with what is read at scrape time brought up to date.
    pub(crate) async fn scrape(&self) -> Result<String, std::fmt::Error> {
        let (records, links) = self.ask_store_and_peers().await;
        for link in links.iter().flatten() {
            let metrics = self.metrics.peers.link(&link.neighbour);
            metrics.set_queued_bytes(link.queued_bytes);
        }
        let serving = self.readiness.phase() == ServerPhase::Serving;
        let log_failing = self.log.write_error().is_some();
        self.metrics.set_scraped(records, serving, log_failing);
        self.metrics.encode()
    }

    /// What `/status` answers.
    pub(crate) async fn status(&self) -> Status {
        let ((records, links), places_failure) =
            futures::join!(self.ask_store_and_peers(), self.ask_places());
        let health = self.health();
        let mut failures: Vec<(SystemTime, String)> = places_failure.into_iter().collect();
        failures.extend(links.iter().flatten().filter_map(link_failure));
        if let Some(why) = self.log.write_error() {
            failures.push((SystemTime::now(), format!("event log: {why}")));
        }
        let links: Vec<LinkReport> = match links {
            Some(links) => links.iter().map(link_report).collect(),
            // Not started yet (or not answering): every link is down, as far as we know.
            None => self
                .metrics
                .peers
                .iter()
                .map(|(neighbour, _)| LinkReport {
                    neighbour: neighbour.to_owned(),
                    up: false,
                    since: status::rfc3339(SystemTime::now() - self.started.elapsed()),
                    for_s: self.started.elapsed().as_secs_f64(),
                    last_error: None,
                    queued_bytes: 0,
                })
                .collect(),
        };
        Status {
            server: self.name.clone(),
            addr: self.addr.to_string(),
            state: self.readiness.phase().as_str().to_owned(),
            reason: health.reason,
            uptime_s: self.started.elapsed().as_secs_f64(),
            records: records.map(|r| r as u64),
            rates: self.rates.rates(self.sample()),
            counters: self.counters(),
            last_error: status::newest(failures),
            links,
        }
    }

    fn counters(&self) -> Counters {
        let m = &self.metrics;
        let owned = |it: &mut dyn Iterator<Item = (&'static str, u64)>| {
            it.map(|(k, v)| (k.to_owned(), v)).collect()
        };
        let (open, accepted, refused) = m.clients.connections();
        let mut floods_sent = std::collections::BTreeMap::new();
        let mut floods_received = std::collections::BTreeMap::new();
        for (neighbour, link) in m.peers.iter() {
            let (sent, received) = link.floods();
            floods_sent.insert(neighbour.to_owned(), sent);
            floods_received.insert(neighbour.to_owned(), received);
        }
        Counters {
            check_ins: owned(&mut m.clients.check_ins()),
            whatsats: owned(&mut m.clients.whatsats.by_status()),
            invalid_lines: m.clients.invalid_lines(),
            connections_open: open,
            connections_accepted: accepted,
            connections_refused: refused,
            places_answers: owned(&mut m.places.answers()),
            places_upstream_calls: owned(&mut m.places.upstream_calls()),
            floods_sent,
            floods_received,
            event_log_dropped_lines: self.log.dropped_counter().get(),
        }
    }
}

/// A link as `/status` shows it.
fn link_report(link: &LinkStatus) -> LinkReport {
    LinkReport {
        neighbour: link.neighbour.to_string(),
        up: link.up,
        since: status::rfc3339(link.since),
        for_s: status::seconds_since(link.since),
        last_error: link.last_error.as_ref().map(|(why, _)| why.clone()),
        queued_bytes: link.queued_bytes as u64,
    }
}

/// Why a link is down, and since when; `None` while it is up, whatever it failed before
/// (its own report keeps that): a server's last error is one that still holds.
fn link_failure(link: &LinkStatus) -> Option<(SystemTime, String)> {
    if link.up {
        return None;
    }
    let (error, at) = link.last_error.as_ref()?;
    Some((*at, format!("link to {}: {error}", link.neighbour)))
}

/// An actor's answer, or `None` if it gave none within [`ASK_TIMEOUT`].
async fn ask<T, E>(request: impl Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(ASK_TIMEOUT, request)
        .await
        .ok()
        .and_then(Result::ok)
}
