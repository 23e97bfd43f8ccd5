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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;

/// One label and its value: every labelled family here has exactly one label.
type Label = [(&'static str, &'static str); 1];
/// A neighbour's name as a label.
type NeighbourLabel = [(&'static str, String); 1];

/// What became of a check-in (an `IAMAT` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckIn {
    /// Newer than what the server held: stored and flooded.
    New,
    /// Not newer than what the server held (a repeat, or a stale one): answered, not kept.
    NotNewer,
    /// Not a valid `IAMAT` line: answered `?`.
    Invalid,
    /// Valid and newer, but the store could not commit it: the connection closed.
    NotStored,
}

impl CheckIn {
    const ALL: [CheckIn; 4] = [
        CheckIn::New,
        CheckIn::NotNewer,
        CheckIn::Invalid,
        CheckIn::NotStored,
    ];

    fn label(self) -> &'static str {
        match self {
            CheckIn::New => "new",
            CheckIn::NotNewer => "not_newer",
            CheckIn::Invalid => "invalid",
            CheckIn::NotStored => "not_stored",
        }
    }
}

/// Where a places answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlacesAnswer {
    /// The reply cache of a Google provider.
    CacheHit,
    /// A call another question had already started.
    SharedCall,
    /// A call this question started (a miss).
    UpstreamCall,
    /// The bundled data set, which has no cache and makes no call.
    Embedded,
}

impl PlacesAnswer {
    const ALL: [PlacesAnswer; 4] = [
        PlacesAnswer::CacheHit,
        PlacesAnswer::SharedCall,
        PlacesAnswer::UpstreamCall,
        PlacesAnswer::Embedded,
    ];

    fn label(self) -> &'static str {
        match self {
            PlacesAnswer::CacheHit => "cache_hit",
            PlacesAnswer::SharedCall => "shared_call",
            PlacesAnswer::UpstreamCall => "upstream_call",
            PlacesAnswer::Embedded => "embedded",
        }
    }
}

/// The `status` words a places reply can carry: Google's, and ours for failures
/// (`places::upstream`). Any other word an upstream sends counts as `OTHER`, so the label
/// set stays bounded whatever comes back.
pub(crate) const PLACES_STATUSES: [&str; 11] = [
    "OK",
    "ZERO_RESULTS",
    "INVALID_REQUEST",
    "OVER_QUERY_LIMIT",
    "REQUEST_DENIED",
    "UNKNOWN_ERROR",
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_ERROR",
    "UPSTREAM_BAD_RESPONSE",
    "OTHER",
];

/// A WHATSAT's reply status: its places status, or `invalid` (malformed) or
/// `unknown_client` for a `?` reply.
const WHATSAT_LABELS: [&str; PLACES_STATUSES.len() + 2] = [
    "OK",
    "ZERO_RESULTS",
    "INVALID_REQUEST",
    "OVER_QUERY_LIMIT",
    "REQUEST_DENIED",
    "UNKNOWN_ERROR",
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_ERROR",
    "UPSTREAM_BAD_RESPONSE",
    "OTHER",
    "invalid",
    "unknown_client",
];

/// The index of `status` in [`PLACES_STATUSES`] (`OTHER` for a word not listed).
fn places_status(status: &str) -> usize {
    PLACES_STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(PLACES_STATUSES.len() - 1)
}

/// Upper bounds of the upstream latency buckets, in seconds: Google answers in tens to
/// hundreds of milliseconds; the tail reaches the configured time-out (5 s by default).
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram of durations whose every observation is a few relaxed atomic adds.
/// (prometheus-client's own histogram takes a lock per observation.)
#[derive(Clone, Default)]
pub(crate) struct LatencyHistogram(Arc<LatencyCells>);

#[derive(Default)]
struct LatencyCells {
    /// Observations per bucket, not cumulative; the last is past every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub(crate) fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // The count from the buckets themselves, so the two always agree.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// WHATSAT replies by status: updated by the places fetcher (answered) and the session
/// (`?` replies).
#[derive(Debug, Clone, Default)]
pub(crate) struct WhatsatCounters(Arc<[Counter; WHATSAT_LABELS.len()]>);

impl WhatsatCounters {
    /// A WHATSAT answered with places whose status is `status`.
    pub(crate) fn answered(&self, status: &str) {
        self.0[places_status(status)].inc();
    }

    /// A WHATSAT answered `?`: malformed.
    pub(crate) fn invalid(&self) {
        self.0[PLACES_STATUSES.len()].inc();
    }

    /// A WHATSAT answered `?`: about a client the herd has never seen.
    pub(crate) fn unknown_client(&self) {
        self.0[PLACES_STATUSES.len() + 1].inc();
    }

    /// Every WHATSAT answered so far.
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }

    /// Each status with its count.
    pub(crate) fn by_status(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        WHATSAT_LABELS
            .iter()
            .copied()
            .zip(self.0.iter().map(Counter::get))
    }
}

/// What the sessions and the accept loop count.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientMetrics {
    check_ins: [Counter; CheckIn::ALL.len()],
    pub(crate) whatsats: WhatsatCounters,
    invalid_lines: Counter,
    accepted: Counter,
    refused: Counter,
    open: Gauge,
}

impl ClientMetrics {
    pub(crate) fn check_in(&self, outcome: CheckIn) {
        self.check_ins[outcome as usize].inc();
    }

    /// A line answered `?`, whatever its command.
    pub(crate) fn invalid_line(&self) {
        self.invalid_lines.inc();
    }

    /// A connection the server took; it counts as open while the guard lives.
    pub(crate) fn accepted(&self) -> OpenConnection {
        self.accepted.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }

    /// A connection closed at once, past the connection caps.
    pub(crate) fn refused(&self) {
        self.refused.inc();
    }

    /// Check-ins by outcome.
    pub(crate) fn check_ins(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CheckIn::ALL
            .iter()
            .map(|o| (o.label(), self.check_ins[*o as usize].get()))
    }

    /// Check-ins answered with an AT line (new or not).
    pub(crate) fn check_ins_answered(&self) -> u64 {
        self.check_ins[CheckIn::New as usize].get()
            + self.check_ins[CheckIn::NotNewer as usize].get()
    }

    pub(crate) fn invalid_lines(&self) -> u64 {
        self.invalid_lines.get()
    }

    /// Connections open now, accepted and refused since the start.
    pub(crate) fn connections(&self) -> (i64, u64, u64) {
        (self.open.get(), self.accepted.get(), self.refused.get())
    }
}

/// Holds one connection's place in the open-connections gauge.
#[derive(Debug)]
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the places fetcher counts; cheap to clone into the futures of its calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlacesMetrics(Arc<PlacesHandles>);

#[derive(Debug, Default)]
struct PlacesHandles {
    answers: [Counter; PlacesAnswer::ALL.len()],
    upstream: [LatencyHistogram; PLACES_STATUSES.len()],
    whatsats: WhatsatCounters,
}

impl PlacesMetrics {
    /// A question answered, from `from`, with a reply whose status is `status`.
    pub(crate) fn answered(&self, from: PlacesAnswer, status: &str) {
        self.0.answers[from as usize].inc();
        self.0.whatsats.answered(status);
    }

    /// A call that went upstream took `took` and brought an answer of `status`.
    pub(crate) fn upstream_call(&self, status: &str, took: Duration) {
        self.0.upstream[places_status(status)].observe(took);
    }

    /// Answers by where they came from.
    pub(crate) fn answers(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PlacesAnswer::ALL
            .iter()
            .map(|a| (a.label(), self.0.answers[*a as usize].get()))
    }

    /// WHATSATs by status, as this handle counts them.
    #[cfg(test)]
    pub(crate) fn whatsats(&self) -> &WhatsatCounters {
        &self.0.whatsats
    }

    /// Calls that went upstream, with the status of their answers.
    pub(crate) fn upstream_calls(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PLACES_STATUSES
            .iter()
            .copied()
            .zip(self.0.upstream.iter().map(LatencyHistogram::count))
    }
}

/// What one neighbour's link counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkMetrics {
    up: Gauge,
    ups: Counter,
    downs: Counter,
    floods_sent: Counter,
    floods_received: Counter,
    queued_bytes: Gauge,
}

impl LinkMetrics {
    /// The outbound link came up (`true`) or went down.
    pub(crate) fn link(&self, up: bool) {
        self.up.set(i64::from(up));
        if up {
            self.ups.inc();
        } else {
            self.downs.inc();
        }
    }

    pub(crate) fn flood_sent(&self) {
        self.floods_sent.inc();
    }

    pub(crate) fn flood_received(&self) {
        self.floods_received.inc();
    }

    /// Floods sent to and received from the neighbour.
    pub(crate) fn floods(&self) -> (u64, u64) {
        (self.floods_sent.get(), self.floods_received.get())
    }

    /// Bytes waiting in the link's queue, as last read.
    pub(crate) fn set_queued_bytes(&self, bytes: usize) {
        self.queued_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Each neighbour's link metrics, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerMetrics(Arc<[(Arc<str>, LinkMetrics)]>);

impl PeerMetrics {
    /// The link metrics of `neighbour`: a detached set for a name the config does not have
    /// (which the handshake never lets through).
    pub(crate) fn link(&self, neighbour: &str) -> LinkMetrics {
        self.0
            .iter()
            .find(|(name, _)| &**name == neighbour)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// The registry of one server and every handle into it.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) clients: ClientMetrics,
    pub(crate) places: PlacesMetrics,
    pub(crate) peers: PeerMetrics,
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
