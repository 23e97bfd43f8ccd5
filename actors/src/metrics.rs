//! The server's Prometheus metrics: one registry, and the handles that the serving path
//! updates.
//!
//! Every label value that can occur is known at start-up: outcomes and statuses are fixed
//! sets, and the neighbours come from the config. So each labelled series is created once,
//! here, and the serving path holds its handle: an update is one relaxed atomic add, with
//! no lock, no map look-up and no allocation. Values that cost nothing to keep but
//! something to push on every change (records held, bytes queued on a link, the
//! process's memory) are read when `/metrics` is scraped.
//!
//! Names follow Prometheus conventions: the `herd_` prefix, base units (seconds, bytes),
//! `_total` on counters (the encoder adds it), and bounded labels only: no client id, no
//! address. Every name and what it means is listed in `docs/operations.md`.
//!
//! The handles of a part that runs without a registry (an actor in a unit test) are
//! `Default`: counters that count, in no registry.

mod handles;
mod histogram;
mod process;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub(crate) use handles::{
    CheckIn, ClientMetrics, LinkMetrics, OpenConnection, PeerMetrics, PlacesAnswer, PlacesMetrics,
    StoreMetrics, WhatsatCounters, PLACES_STATUSES,
};
use handles::{PlacesHandles, WHATSAT_LABELS};
use histogram::LatencyHistogram;
pub(crate) use process::open_files_limit;
use process::ProcessCollector;

/// One label and its value: every labelled family here has exactly one label.
type Label = [(&'static str, &'static str); 1];
/// A neighbour's name as a label.
type NeighbourLabel = [(&'static str, String); 1];

/// The registry of one server and every handle into it.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) clients: ClientMetrics,
    pub(crate) places: PlacesMetrics,
    pub(crate) peers: PeerMetrics,
    pub(crate) store: StoreMetrics,
    /// When the server started: the process's start time here, its uptime in `/status`.
    pub(crate) started: SystemTime,
    records: Gauge,
    serving: Gauge,
    event_log_failing: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a server linked to `neighbours`, started at `started`; `log_dropped`
    /// is the event log's own count of the lines it could not keep.
    pub(crate) fn new(neighbours: &[String], log_dropped: Counter, started: SystemTime) -> Metrics {
        let mut r = Registry::default();
        let check_ins = Family::<Label, Counter>::default();
        let whatsats = Family::<Label, Counter>::default();
        let clients = ClientMetrics {
            check_ins: CheckIn::ALL
                .map(|o| check_ins.get_or_create_owned(&[("outcome", o.label())])),
            whatsats: WhatsatCounters(Arc::new(
                WHATSAT_LABELS.map(|s| whatsats.get_or_create_owned(&[("status", s)])),
            )),
            ..ClientMetrics::default()
        };
        r.register(
            "herd_check_ins",
            "IAMAT lines by outcome: new (stored and flooded), not_newer, invalid, not_stored",
            check_ins,
        );
        r.register(
            "herd_whatsats",
            "WHATSAT lines by reply status: the places status, or invalid and unknown_client \
             for lines answered ?",
            whatsats,
        );
        r.register(
            "herd_invalid_lines",
            "Client lines answered ?, whatever their command",
            clients.invalid_lines.clone(),
        );
        r.register(
            "herd_client_connections_accepted",
            "Connections accepted (a neighbour's counts until its hello hands it over)",
            clients.accepted.clone(),
        );
        r.register(
            "herd_client_connections_refused",
            "Connections closed at once, past the connection caps",
            clients.refused.clone(),
        );
        r.register(
            "herd_client_connections_open",
            "Client connections open now",
            clients.open.clone(),
        );

        let answers = Family::<Label, Counter>::default();
        let upstream = Family::<Label, LatencyHistogram>::default();
        let places = PlacesMetrics(Arc::new(PlacesHandles {
            answers: PlacesAnswer::ALL
                .map(|a| answers.get_or_create_owned(&[("outcome", a.label())])),
            upstream: PLACES_STATUSES.map(|s| upstream.get_or_create_owned(&[("status", s)])),
            whatsats: clients.whatsats.clone(),
        }));
        r.register(
            "herd_places_answers",
            "Places answers by where they came from: cache_hit, shared_call, upstream_call, \
             embedded",
            answers,
        );
        r.register(
            "herd_places_upstream_duration_seconds",
            "Time of each call to the places provider, by the status of its answer",
            upstream,
        );

        let families = LinkFamilies::register(&mut r);
        let peers = PeerMetrics(
            neighbours
                .iter()
                .map(|name| (Arc::from(name.as_str()), families.link(name)))
                .collect(),
        );

        let store = StoreMetrics::default();
        r.register(
            "herd_store_commit_duration_seconds",
            "Time of each commit to the store, from its hand-off to the writer thread until \
             it was written (a check-in's AT reply waits for it)",
            store.commits.clone(),
        );
        r.register(
            "herd_store_committed_records",
            "Records written to the store, the server's own check-ins and its neighbours'",
            store.records.clone(),
        );
        r.register(
            "herd_store_commit_failures",
            "Commits that failed (a full disk, a file no longer writable): their check-ins \
             were not acknowledged",
            store.failures.clone(),
        );

        let records = Gauge::default();
        r.register(
            "herd_records",
            "Clients whose latest record the server holds",
            records.clone(),
        );
        let serving = Gauge::default();
        r.register(
            "herd_serving",
            "1 while the server takes clients, 0 while it starts, loads its store or stops",
            serving.clone(),
        );
        let event_log_failing = Gauge::default();
        r.register(
            "herd_event_log_failing",
            "1 while the event log's last write failed",
            event_log_failing.clone(),
        );
        r.register(
            "herd_event_log_dropped_lines",
            "Event log lines dropped because the writer fell behind",
            log_dropped,
        );
        r.register_collector(Box::new(ProcessCollector::new(started)));
        Metrics {
            registry: r,
            clients,
            places,
            peers,
            store,
            started,
            records,
            serving,
            event_log_failing,
        }
    }

    /// What is read at scrape time: set just before encoding.
    pub(crate) fn set_scraped(&self, records: Option<usize>, serving: bool, log_failing: bool) {
        if let Some(records) = records {
            self.records.set(i64::try_from(records).unwrap_or(i64::MAX));
        }
        self.serving.set(i64::from(serving));
        self.event_log_failing.set(i64::from(log_failing));
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub(crate) fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The link families, each series created for a neighbour by [`LinkFamilies::link`].
struct LinkFamilies {
    up: Family<NeighbourLabel, Gauge>,
    ups: Family<NeighbourLabel, Counter>,
    downs: Family<NeighbourLabel, Counter>,
    floods_sent: Family<NeighbourLabel, Counter>,
    floods_received: Family<NeighbourLabel, Counter>,
    queued_bytes: Family<NeighbourLabel, Gauge>,
}

impl LinkFamilies {
    fn register(r: &mut Registry) -> LinkFamilies {
        let families = LinkFamilies {
            up: Family::default(),
            ups: Family::default(),
            downs: Family::default(),
            floods_sent: Family::default(),
            floods_received: Family::default(),
            queued_bytes: Family::default(),
        };
        r.register(
            "herd_link_up",
            "1 while this server's link to the neighbour is up, else 0",
            families.up.clone(),
        );
        r.register(
            "herd_link_ups",
            "Times the link to the neighbour came up (handshake done)",
            families.ups.clone(),
        );
        r.register(
            "herd_link_downs",
            "Times the link to the neighbour went down",
            families.downs.clone(),
        );
        r.register(
            "herd_floods_sent",
            "Records flooded to the neighbour (the catch-up sync of a link not counted)",
            families.floods_sent.clone(),
        );
        r.register(
            "herd_floods_received",
            "Records flooded by the neighbour (the catch-up sync of a link not counted)",
            families.floods_received.clone(),
        );
        r.register(
            "herd_link_queued_bytes",
            "Bytes queued for the neighbour and not yet written",
            families.queued_bytes.clone(),
        );
        families
    }

    fn link(&self, neighbour: &str) -> LinkMetrics {
        let label = [("neighbour", neighbour.to_owned())];
        LinkMetrics {
            up: self.up.get_or_create_owned(&label),
            ups: self.ups.get_or_create_owned(&label),
            downs: self.downs.get_or_create_owned(&label),
            floods_sent: self.floods_sent.get_or_create_owned(&label),
            floods_received: self.floods_received.get_or_create_owned(&label),
            queued_bytes: self.queued_bytes.get_or_create_owned(&label),
        }
    }
}
