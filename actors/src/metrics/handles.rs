//! The handles each part of the server counts with: one per series, created by the
//! registry at start-up (or detached, by `Default`, for an actor tested alone).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::histogram::{LatencyHistogram, BLOCKED_BOUNDS, COMMIT_BOUNDS};

/// What became of a check-in (an `IAMAT` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckInOutcome {
    /// Newer than what the server held: stored and flooded.
    New,
    /// Not newer than what the server held (a repeat, or a stale one): answered, not kept.
    NotNewer,
    /// Not a valid `IAMAT` line: answered `?`.
    Invalid,
    /// Valid and newer, but the store could not commit it: the connection closed.
    NotStored,
}

impl CheckInOutcome {
    pub(super) const ALL: [CheckInOutcome; 4] = [
        CheckInOutcome::New,
        CheckInOutcome::NotNewer,
        CheckInOutcome::Invalid,
        CheckInOutcome::NotStored,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            CheckInOutcome::New => "new",
            CheckInOutcome::NotNewer => "not_newer",
            CheckInOutcome::Invalid => "invalid",
            CheckInOutcome::NotStored => "not_stored",
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
    pub(super) const ALL: [PlacesAnswer; 4] = [
        PlacesAnswer::CacheHit,
        PlacesAnswer::SharedCall,
        PlacesAnswer::UpstreamCall,
        PlacesAnswer::Embedded,
    ];

    pub(super) fn label(self) -> &'static str {
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
/// `unknown_client` for a `?` reply. Built from [`PLACES_STATUSES`], so that the label of
/// each counter of [`WhatsatCounters`] is the status it counts.
pub(super) const WHATSAT_LABELS: [&str; PLACES_STATUSES.len() + 2] = {
    let mut labels = ["unknown_client"; PLACES_STATUSES.len() + 2];
    let mut i = 0;
    while i < PLACES_STATUSES.len() {
        labels[i] = PLACES_STATUSES[i];
        i += 1;
    }
    labels[PLACES_STATUSES.len()] = "invalid";
    labels
};

/// The index of `status` in [`PLACES_STATUSES`] (`OTHER` for a word not listed).
fn places_status(status: &str) -> usize {
    PLACES_STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(PLACES_STATUSES.len() - 1)
}

/// WHATSAT replies by status: updated by the places fetcher (answered) and the session
/// (`?` replies).
#[derive(Debug, Clone, Default)]
pub(crate) struct WhatsatCounters(pub(super) Arc<[Counter; WHATSAT_LABELS.len()]>);

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
    pub(super) check_ins: [Counter; CheckInOutcome::ALL.len()],
    pub(crate) whatsats: WhatsatCounters,
    pub(super) invalid_lines: Counter,
    pub(super) accepted: Counter,
    pub(super) refused: Counter,
    pub(super) open: Gauge,
}

impl ClientMetrics {
    pub(crate) fn check_in(&self, outcome: CheckInOutcome) {
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
        CheckInOutcome::ALL
            .iter()
            .map(|o| (o.label(), self.check_ins[*o as usize].get()))
    }

    /// Check-ins answered with an AT line (new or not).
    pub(crate) fn check_ins_answered(&self) -> u64 {
        self.check_ins[CheckInOutcome::New as usize].get()
            + self.check_ins[CheckInOutcome::NotNewer as usize].get()
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
pub(crate) struct PlacesMetrics(pub(super) Arc<PlacesHandles>);

#[derive(Debug, Default)]
pub(super) struct PlacesHandles {
    pub(super) answers: [Counter; PlacesAnswer::ALL.len()],
    pub(super) upstream: [LatencyHistogram; PLACES_STATUSES.len()],
    pub(super) whatsats: WhatsatCounters,
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

    /// Answers that came from `from`.
    pub(crate) fn answers_from(&self, from: PlacesAnswer) -> u64 {
        self.0.answers[from as usize].get()
    }

    /// Calls that went upstream, whatever they brought.
    pub(crate) fn upstream_total(&self) -> u64 {
        self.0.upstream.iter().map(LatencyHistogram::count).sum()
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
    pub(super) up: Gauge,
    pub(super) ups: Counter,
    pub(super) downs: Counter,
    pub(super) floods_sent: Counter,
    pub(super) floods_received: Counter,
    pub(super) queued_bytes: Gauge,
    pub(super) sent_bytes: Counter,
    pub(super) received_bytes: Counter,
    pub(super) synced_records: Counter,
}

impl LinkMetrics {
    /// Where a link's outbox counts the bytes it writes.
    pub(crate) fn sent_bytes(&self) -> Counter {
        self.sent_bytes.clone()
    }

    /// A line of `len` bytes and its newline came from the neighbour.
    pub(crate) fn received_line(&self, len: usize) {
        self.received_bytes.inc_by(len as u64 + 1);
    }

    /// A reconciliation found `n` records the neighbour lacked.
    pub(crate) fn synced(&self, n: usize) {
        self.synced_records.inc_by(n as u64);
    }

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
pub(crate) struct PeerMetrics(pub(super) Arc<[(Arc<str>, LinkMetrics)]>);

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

    /// Each neighbour's name and link metrics, in the config's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &LinkMetrics)> {
        self.0.iter().map(|(name, m)| (&**name, m))
    }
}

/// What the store counts of its commits to disk.
#[derive(Debug, Clone)]
pub(crate) struct StoreMetrics {
    pub(super) commits: LatencyHistogram,
    pub(super) blocked: LatencyHistogram,
    pub(super) records: Counter,
    pub(super) failures: Counter,
    pub(crate) unwritten: Gauge,
    pub(crate) evicted: Counter,
    pub(crate) future: Counter,
    /// Why commits fail, while they do: `/health` and `/status` say so.
    failing: Arc<Mutex<Option<String>>>,
    /// Why the journal's records cannot be written into the database, while they cannot.
    applying: Arc<Mutex<Option<String>>>,
    pub(crate) unapplied: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            commits: LatencyHistogram::with_bounds(COMMIT_BOUNDS),
            blocked: LatencyHistogram::with_bounds(BLOCKED_BOUNDS),
            records: Counter::default(),
            failures: Counter::default(),
            unwritten: Gauge::default(),
            evicted: Counter::default(),
            future: Counter::default(),
            failing: Arc::default(),
            applying: Arc::default(),
            unapplied: Gauge::default(),
        }
    }
}

impl StoreMetrics {
    /// A commit of `records` records was written, `took` after it was handed to the writer.
    pub(crate) fn committed(&self, records: usize, took: Duration) {
        self.commits.observe(took);
        self.records.inc_by(records as u64);
    }

    /// A commit on the event loop held it for `took`.
    pub(crate) fn blocked(&self, took: Duration) {
        self.blocked.observe(took);
    }

    /// A commit failed: none of its records is on disk.
    pub(crate) fn failed(&self) {
        self.failures.inc();
    }

    /// Commits fail, and why (`Some`), or they work again (`None`).
    pub(crate) fn set_failing(&self, why: Option<String>) {
        if let Ok(mut failing) = self.failing.lock() {
            *failing = why;
        }
    }

    /// The journal's records cannot be written into the database, and why (`Some`), or
    /// they can again (`None`).
    pub(crate) fn set_applying_fails(&self, why: Option<String>) {
        if let Ok(mut applying) = self.applying.lock() {
            *applying = why;
        }
    }

    /// Why commits fail, or the journal cannot be applied, while they do.
    pub(crate) fn failing(&self) -> Option<String> {
        let failing = self.failing.lock().ok().and_then(|f| f.clone());
        failing.or_else(|| self.applying.lock().ok().and_then(|f| f.clone()))
    }

    /// `n` more records in the journal and not yet in the database (fewer, if negative).
    pub(crate) fn unapplied(&self, n: i64) {
        self.unapplied.inc_by(n);
    }

    /// Records held and not yet on disk.
    pub(crate) fn set_unwritten(&self, n: usize) {
        self.unwritten.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `n` records evicted to keep within the cap.
    pub(crate) fn evicted(&self, n: usize) {
        self.evicted.inc_by(n as u64);
    }

    /// A neighbour's record from too far in the future was refused.
    pub(crate) fn refused_future(&self) {
        self.future.inc();
    }

    /// Commits written, records in them, and commits that failed.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (
            self.commits.count(),
            self.records.get(),
            self.failures.get(),
        )
    }
}
