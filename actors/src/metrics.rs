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
use prometheus_client::registry::{Metric, Registry};

pub(crate) use handles::{
    CheckInOutcome, ClientMetrics, LinkMetrics, OpenConnection, PeerMetrics, PlacesAnswer,
    PlacesMetrics, StoreMetrics, WhatsatCounters, PLACES_STATUSES,
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
        let check_ins: Family<Label, Counter> = registered(
            &mut r,
            "herd_check_ins",
            "IAMAT lines by outcome: new (stored and flooded), not_newer, invalid, not_stored",
        );
        let whatsats: Family<Label, Counter> = registered(
            &mut r,
            "herd_whatsats",
            "WHATSAT lines by reply status: the places status, or invalid and unknown_client \
             for lines answered ?",
        );
        // Fields are evaluated, so registered, in the order written.
        let clients = ClientMetrics {
            check_ins: CheckInOutcome::ALL
                .map(|o| check_ins.get_or_create_owned(&[("outcome", o.label())])),
            whatsats: WhatsatCounters(Arc::new(
                WHATSAT_LABELS.map(|s| whatsats.get_or_create_owned(&[("status", s)])),
            )),
            invalid_lines: registered(
                &mut r,
                "herd_invalid_lines",
                "Client lines answered ?, whatever their command",
            ),
            accepted: registered(
                &mut r,
                "herd_client_connections_accepted",
                "Connections accepted (a neighbour's counts until its hello hands it over)",
            ),
            refused: registered(
                &mut r,
                "herd_client_connections_refused",
                "Connections closed at once, past the connection caps",
            ),
            open: registered(
                &mut r,
                "herd_client_connections_open",
                "Client connections open now",
            ),
        };

        let answers: Family<Label, Counter> = registered(
            &mut r,
            "herd_places_answers",
            "Places answers by where they came from: cache_hit, shared_call, upstream_call, \
             embedded",
        );
        let upstream: Family<Label, LatencyHistogram> = registered(
            &mut r,
            "herd_places_upstream_duration_seconds",
            "Time of each call to the places provider, by the status of its answer",
        );
        let places = PlacesMetrics(Arc::new(PlacesHandles {
            answers: PlacesAnswer::ALL
                .map(|a| answers.get_or_create_owned(&[("outcome", a.label())])),
            upstream: PLACES_STATUSES.map(|s| upstream.get_or_create_owned(&[("status", s)])),
            whatsats: clients.whatsats.clone(),
        }));

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
            "Time of each commit to the store, from its start until it was written: an append \
             to the journal, or with fsync = true a transaction on the writer's thread (a \
             check-in's AT reply waits for it)",
            store.commits.clone(),
        );
        r.register(
            "herd_store_loop_blocked_seconds",
            "Time a turn of the event loop spent writing a commit (fsync = false commits on \
             the loop; with fsync = true, none)",
            store.blocked.clone(),
        );
        r.register(
            "herd_store_committed_records",
            "Records written to the store, the server's own check-ins and its neighbours'",
            store.records.clone(),
        );
        r.register(
            "herd_store_commit_failures",
            "Commits that failed (a full disk, a file no longer writable): their check-ins \
             were not acknowledged, and their records are written again once the disk takes \
             them",
            store.failures.clone(),
        );
        r.register(
            "herd_store_unwritten_records",
            "Records held in memory and not yet on disk: waiting for the next commit, or for \
             the disk to take writes again",
            store.unwritten.clone(),
        );
        r.register(
            "herd_store_unapplied_records",
            "Records in the journal (on disk) and not yet in the database, which the applier \
             thread writes every 100 ms",
            store.unapplied.clone(),
        );
        r.register(
            "herd_store_evicted_records",
            "Records dropped, here and on disk, because the store held [store] max_records",
            store.evicted.clone(),
        );
        r.register(
            "herd_records_refused",
            "Records a neighbour sent dated further ahead of this server's clock than \
             [limits] max_clock_ahead_s allows (and a minute for the servers' clocks)",
            store.future.clone(),
        );

        let records = registered(
            &mut r,
            "herd_records",
            "Clients whose latest record the server holds",
        );
        let serving = registered(
            &mut r,
            "herd_serving",
            "1 while the server takes clients, 0 while it starts, loads its store or stops",
        );
        let event_log_failing = registered(
            &mut r,
            "herd_event_log_failing",
            "1 while the event log's last write failed",
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

/// A new metric, registered in `r` as `name` with `help`: the handle that updates it.
fn registered<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    r.register(name, help, metric.clone());
    metric
}

/// The link families, each series created for a neighbour by [`LinkFamilies::link`].
struct LinkFamilies {
    up: Family<NeighbourLabel, Gauge>,
    ups: Family<NeighbourLabel, Counter>,
    downs: Family<NeighbourLabel, Counter>,
    floods_sent: Family<NeighbourLabel, Counter>,
    floods_received: Family<NeighbourLabel, Counter>,
    queued_bytes: Family<NeighbourLabel, Gauge>,
    sent_bytes: Family<NeighbourLabel, Counter>,
    received_bytes: Family<NeighbourLabel, Counter>,
    synced_records: Family<NeighbourLabel, Counter>,
}

impl LinkFamilies {
    fn register(r: &mut Registry) -> LinkFamilies {
        // Fields are evaluated, so registered, in the order written.
        LinkFamilies {
            up: registered(
                r,
                "herd_link_up",
                "1 while this server's link to the neighbour is up, else 0",
            ),
            ups: registered(
                r,
                "herd_link_ups",
                "Times the link to the neighbour came up (handshake done)",
            ),
            downs: registered(
                r,
                "herd_link_downs",
                "Times the link to the neighbour went down",
            ),
            floods_sent: registered(
                r,
                "herd_floods_sent",
                "Records flooded to the neighbour (the catch-up sync of a link not counted)",
            ),
            floods_received: registered(
                r,
                "herd_floods_received",
                "Records flooded by the neighbour (the catch-up sync of a link not counted)",
            ),
            queued_bytes: registered(
                r,
                "herd_link_queued_bytes",
                "Bytes queued for the neighbour and not yet written",
            ),
            sent_bytes: registered(
                r,
                "herd_link_sent_bytes",
                "Bytes of peer lines written to the neighbour, on both links with it (inside \
                 TLS on a TLS herd)",
            ),
            received_bytes: registered(
                r,
                "herd_link_received_bytes",
                "Bytes of peer lines read from the neighbour after its handshake, on both \
                 links with it",
            ),
            synced_records: registered(
                r,
                "herd_link_synced_records",
                "Records sent to the neighbour because a reconciliation found it lacked them",
            ),
        }
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
            sent_bytes: self.sent_bytes.get_or_create_owned(&label),
            received_bytes: self.received_bytes.get_or_create_owned(&label),
            synced_records: self.synced_records.get_or_create_owned(&label),
        }
    }
}
