//! One neighbour's outbound link as the [`PeerManager`](super::manager::PeerManager) keeps
//! it: where it is in its life (waiting to dial, dialling, up), its backoff, and, while it
//! is up, the queue its floods go into.
//!
//! A link is a value, not an actor: the manager owns every link's queue, so a flood is
//! pushed straight into the queues of the links that need it, with no mailbox between.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::SpawnHandle;

use super::handshake::LinkTarget;
use super::recon::Query;
use crate::metrics::LinkMetrics;
use crate::outbox::Outbox;

/// Exponential backoff with jitter: each delay is drawn from the upper half of a window that
/// doubles from `min` to `max`, so restarted servers do not all dial at the same instant.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    window: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            window: min,
        }
    }

    /// The next delay; the window doubles up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let w = self.window;
        self.window = (w * 2).min(self.max);
        let half = w / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// After a link came up: the next failure retries quickly again.
    pub(crate) fn reset(&mut self) {
        self.window = self.min;
    }
}

/// How links behave; tests shorten these.
#[derive(Debug, Clone)]
pub(crate) struct LinkSettings {
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    /// Time allowed to connect and finish the handshake.
    pub(crate) handshake_timeout: Duration,
    /// Bytes of floods queued for a neighbour that does not read before the link is dropped.
    pub(crate) max_queued: usize,
    /// How often each side shows it is alive: the dialler sends `PING`, the listener
    /// answers `PONG`.
    pub(crate) heartbeat: Duration,
    /// Heartbeats without a word from the other side before the link is given up: a
    /// neighbour that hangs (stopped, or its host gone) is seen down within seconds.
    pub(crate) heartbeat_misses: u32,
}

impl LinkSettings {
    /// How long either side waits in silence before it gives the link up.
    pub(crate) fn silence_limit(&self) -> Duration {
        self.heartbeat * self.heartbeat_misses
    }
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(2),
            max_queued: 16 * 1024 * 1024,
            heartbeat: Duration::from_secs(1),
            heartbeat_misses: 3,
        }
    }
}

/// Where a link is in its life.
pub(crate) enum LinkState {
    /// Down; the timer dials again (sooner, if the neighbour dials us first).
    Waiting { timer: SpawnHandle },
    /// A dial and handshake are under way.
    Dialling,
    /// The handshake is done and floods go into the queue.
    Up(UpLink),
}

/// A link that is up.
pub(crate) struct UpLink {
    /// The one sending side of the connection; its writer drains it.
    pub(crate) queue: Outbox,
    /// How far the reconciliation of the two stores has come.
    pub(crate) resync: Resync,
    /// The connection's reader and writer, stopped when the link goes down.
    pub(crate) io: [SpawnHandle; 2],
    /// When the neighbour last said anything.
    pub(crate) last_heard: Instant,
}

/// Where an up link's reconciliation is: the dialler keeps at most [`Resync::WINDOW`]
/// queries unanswered, so the listener's answers never pile up past a small window.
pub(crate) enum Resync {
    /// Queries asked and not yet followed up, the ones waiting for room in the window, and
    /// what has been done so far.
    Reconciling {
        in_flight: usize,
        waiting: VecDeque<Query>,
        queries: usize,
        records: usize,
        started: Instant,
    },
    /// The stores agree, but for what floods have brought since.
    Done,
}

impl Resync {
    /// Queries a dialler keeps unanswered at most.
    pub(crate) const WINDOW: usize = 32;
}

/// One neighbour's outbound link.
pub(crate) struct Link {
    pub(crate) target: Arc<LinkTarget>,
    pub(crate) state: LinkState,
    pub(crate) backoff: Backoff,
    /// Counts dials, so that what a dead connection's reader and writer report is ignored.
    pub(crate) generation: u64,
    /// When the link last came up or went down.
    pub(crate) since: SystemTime,
    /// Why the link last went down or failed to come up, and when.
    pub(crate) last_error: Option<(String, SystemTime)>,
    /// Its state and traffic, as `/metrics` shows them.
    pub(crate) metrics: LinkMetrics,
}

impl Link {
    /// A link that has not dialled yet, counting into `metrics`.
    pub(crate) fn new(target: LinkTarget, settings: &LinkSettings, metrics: LinkMetrics) -> Self {
        Link {
            target: Arc::new(target),
            state: LinkState::Dialling,
            backoff: Backoff::new(settings.backoff_min, settings.backoff_max),
            generation: 0,
            since: SystemTime::now(),
            last_error: None,
            metrics,
        }
    }

    /// The neighbour's name.
    pub(crate) fn neighbour(&self) -> &Arc<str> {
        &self.target.neighbour
    }

    /// The queue floods go into, while the link is up.
    pub(crate) fn queue(&self) -> Option<&Outbox> {
        match &self.state {
            LinkState::Up(up) => Some(&up.queue),
            LinkState::Waiting { .. } | LinkState::Dialling => None,
        }
    }

    /// Whether `generation` is still the link's current connection.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.generation == generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_and_resets() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(min, max);
        let mut window = min;
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= window / 2 && d <= window,
                "{d:?} outside window {window:?}"
            );
            window = (window * 2).min(max);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
