//! A histogram of durations whose every observation is a few relaxed atomic adds:
//! prometheus-client's own histogram takes a lock per observation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of the upstream latency buckets, in seconds: Google answers in tens to
/// hundreds of milliseconds; the tail reaches the configured time-out (5 s by default).
pub(super) const UPSTREAM_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the store's commit time buckets, in seconds: a commit of a busy server
/// takes tens to hundreds of microseconds; one with `fsync = true` waits for the disk.
pub(super) const COMMIT_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Upper bounds of the buckets of the time a turn of the event loop spends committing, in
/// seconds: fine below the 2 ms that no turn may pass at the 99th percentile.
pub(super) const BLOCKED_BOUNDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05,
];

/// Durations in fixed buckets; clones share the counts.
#[derive(Clone)]
pub(crate) struct LatencyHistogram(Arc<LatencyCells>);

struct LatencyCells {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last is past every bound.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// The upstream latency buckets, as every series of a family of them is created.
impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::with_bounds(UPSTREAM_BOUNDS)
    }
}

impl LatencyHistogram {
    /// An empty histogram with buckets up to each of `bounds` (ascending), and one past.
    pub(super) fn with_bounds(bounds: &'static [f64]) -> Self {
        LatencyHistogram(Arc::new(LatencyCells {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    pub(crate) fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bounds = self.0.bounds;
        let i = bounds
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(bounds.len());
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
        let bounds = self.0.bounds.iter().copied().chain([f64::INFINITY]);
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
