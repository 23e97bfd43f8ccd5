//! Whether a server serves: what `GET /health` answers.
//!
//! A server serves once its accept loop runs, and while its event log can be written (the
//! log is the product's record of what the server did: a server that cannot keep it is not
//! healthy, though it still answers clients) and its store commits (a server whose disk
//! refuses writes holds what it takes in memory, and acknowledges no check-in, until the
//! disk takes them again). Before that it is starting, or loading its
//! store (seconds, for a large one); after SIGTERM it is stopping.
//!
//! ```text
//! 200 {"server":"Hill","status":"serving"}
//! 503 {"server":"Hill","status":"unavailable","reason":"loading store"}
//! 503 {"server":"Hill","status":"unavailable","reason":"the store cannot be written: ..."}
//! ```

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::event_log::EventLog;
use crate::metrics::StoreMetrics;

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ServerPhase {
    /// Opening its event log and the admin listener.
    Starting = 0,
    /// Opening and reading its store.
    LoadingStore = 1,
    /// Its accept loop runs: clients are answered.
    Serving = 2,
    /// Shutting down after a signal.
    Stopping = 3,
}

impl ServerPhase {
    /// The words `/health` and `/status` use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ServerPhase::Starting => "starting",
            ServerPhase::LoadingStore => "loading store",
            ServerPhase::Serving => "serving",
            ServerPhase::Stopping => "stopping",
        }
    }
}

/// The server's phase, set by the wiring as it starts and stops, read by the admin
/// handlers on their own thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness(Arc<AtomicU8>);

impl Readiness {
    pub(crate) fn set(&self, phase: ServerPhase) {
        self.0.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn phase(&self) -> ServerPhase {
        match self.0.load(Ordering::Acquire) {
            0 => ServerPhase::Starting,
            1 => ServerPhase::LoadingStore,
            2 => ServerPhase::Serving,
            _ => ServerPhase::Stopping,
        }
    }
}

/// The body of a `/health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Health {
    pub(crate) server: String,
    /// `serving` or `unavailable`.
    pub(crate) status: &'static str,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl Health {
    /// How server `name` is doing now.
    pub(crate) fn of(
        name: &str,
        readiness: &Readiness,
        log: &EventLog,
        store: &StoreMetrics,
    ) -> Health {
        let reason = match readiness.phase() {
            ServerPhase::Serving => store
                .failing()
                .map(|why| format!("the store cannot be written: {why}"))
                .or_else(|| {
                    log.write_error()
                        .map(|why| format!("the event log cannot be written: {why}"))
                }),
            phase => Some(phase.as_str().to_owned()),
        };
        Health {
            server: name.to_owned(),
            status: if reason.is_none() {
                "serving"
            } else {
                "unavailable"
            },
            reason,
        }
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.reason.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::temp_log;

    #[test]
    fn a_server_serves_only_between_its_accept_loop_and_its_stop() {
        let (log, _dir) = temp_log("Hill");
        let readiness = Readiness::default();
        let store = StoreMetrics::default();
        let reason = |r: &Readiness| Health::of("Hill", r, &log, &store).reason;
        assert_eq!(reason(&readiness).as_deref(), Some("starting"));
        readiness.set(ServerPhase::LoadingStore);
        assert_eq!(reason(&readiness).as_deref(), Some("loading store"));
        readiness.set(ServerPhase::Serving);
        let health = Health::of("Hill", &readiness, &log, &store);
        assert!(health.is_serving());
        assert_eq!(
            serde_json::to_string(&health).expect("JSON"),
            r#"{"server":"Hill","status":"serving"}"#
        );
        store.set_failing(Some("database or disk is full".into()));
        assert_eq!(
            reason(&readiness).as_deref(),
            Some("the store cannot be written: database or disk is full")
        );
        store.set_failing(None);
        assert_eq!(reason(&readiness), None);
        readiness.set(ServerPhase::Stopping);
        assert_eq!(reason(&readiness).as_deref(), Some("stopping"));
    }
}
