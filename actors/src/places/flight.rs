//! One upstream call and everyone waiting on it.
//!
//! A miss starts a [`Flight`]: a call that questions with the same cache key and a bound it
//! covers join instead of calling again, so a crowd asking at once costs one call. Before it
//! calls, a flight waits for one of [`Slots`] (first come, first served), so a slow upstream
//! never holds more than `max_concurrent` calls open, however many questions pile up.
//!
//! Each flight has a deadline: its first question's arrival plus the configured timeout.
//! Time in the queue counts against it, and a question that joins later has a later
//! deadline of its own, so every reply arrives within the timeout of its question.

use std::rc::Rc;
use std::sync::Arc;

use futures::future::{LocalBoxFuture, Shared};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::upstream::{self, Clients, Failure};
use super::{google, google_new, NearbyQuery, PlacesSettings, Provider, MAX_BOUND};
use crate::metrics::PlacesMetrics;

/// The answer of a flight, once for every question that waits on it.
pub(crate) type Landing = Shared<LocalBoxFuture<'static, Rc<Value>>>;

/// A call in flight, as the fetcher keeps it for questions that may join it.
pub(crate) struct Flight {
    /// Tells this flight from a later one for the same key that replaced it.
    pub(crate) id: u64,
    /// The bound the call asks for: questions up to it may join.
    pub(crate) covers: usize,
    pub(crate) landing: Landing,
}

/// The upstream calls one fetcher may have open at once.
pub(crate) struct Slots {
    /// Tokio's semaphore queues waiters in order of arrival.
    free: Semaphore,
    max: usize,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Slots {
            free: Semaphore::new(max),
            max,
        }
    }
}

/// A provider that answers over the network, the only kind a flight calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    Google,
    GoogleNew,
}

impl Upstream {
    /// `None` for the embedded provider, which answers from memory in microseconds: it
    /// needs no cache, no sharing and no cap.
    pub(crate) fn of(provider: Provider) -> Option<Upstream> {
        match provider {
            Provider::Embedded => None,
            Provider::Google => Some(Upstream::Google),
            Provider::GoogleNew => Some(Upstream::GoogleNew),
        }
    }

    /// The bound to fetch for a question with `bound`. The legacy API has no count
    /// parameter and always sends its one page of up to 20, so keeping all of it costs
    /// nothing and serves every later bound. The New API is asked for the question's own
    /// bound (`maxResultCount`), so a later question with a larger bound calls again.
    pub(crate) fn fetch_bound(self, bound: usize) -> usize {
        match self {
            Upstream::Google => MAX_BOUND,
            Upstream::GoogleNew => bound,
        }
    }
}

/// Waits for a slot, then asks `upstream` for `q` (with the bound to fetch); never fails,
/// never outlives `deadline`. The call itself, from slot to answer, is timed into `metrics`.
pub(crate) async fn call(
    clients: Clients,
    settings: Arc<PlacesSettings>,
    slots: Rc<Slots>,
    upstream: Upstream,
    q: NearbyQuery,
    deadline: Instant,
    metrics: PlacesMetrics,
) -> Value {
    let Some(key) = &settings.api_key else {
        return Failure::missing_key().into_reply();
    };
    let permit = match tokio::time::timeout_at(deadline, slots.free.acquire()).await {
        Ok(Ok(permit)) => permit,
        // The semaphore is never closed; were it, the fetcher would be going away.
        Ok(Err(_)) => {
            return Failure::new(upstream::UNAVAILABLE, "places fetcher stopped").into_reply()
        }
        Err(_) => return queue_timeout(&settings, slots.max).into_reply(),
    };
    // A slot that came just as the deadline passed is of no use: a call sent now would be
    // given up at once, its answer never waited for.
    if Instant::now() >= deadline {
        return queue_timeout(&settings, slots.max).into_reply();
    }
    let started = Instant::now();
    let reply = match upstream {
        Upstream::Google => google::nearby(&clients, &settings, key, &q, deadline).await,
        Upstream::GoogleNew => google_new::nearby(&clients, &settings, key, &q, deadline).await,
    };
    drop(permit);
    metrics.upstream_call(super::status_of(&reply), started.elapsed());
    reply
}

/// Every slot stayed busy until the deadline: the upstream is slower than the questions
/// come in, and this one would have waited longer than the operator allowed.
fn queue_timeout(settings: &PlacesSettings, max: usize) -> Failure {
    Failure::new(
        upstream::TIMEOUT,
        format!(
            "no upstream call could start within {:?}: all {max} allowed calls \
             (places.max_concurrent) were busy",
            settings.timeout
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::places::fake::{FakeGoogle, Mode};
    use crate::places::tests::{settings, ucla};

    #[actix::test]
    async fn time_queued_for_a_slot_counts_against_the_timeout() {
        let google = FakeGoogle::start(Mode::Ok { results: 1 });
        let timeout = Duration::from_millis(100);
        let settings = Arc::new(settings(Provider::GoogleNew, google.base_url(), timeout));
        let slots = Rc::new(Slots::new(1));
        let metrics = PlacesMetrics::default();
        let busy = slots.free.try_acquire();
        assert!(busy.is_ok());
        let clients = Clients::new(timeout);
        let deadline = Instant::now() + timeout;
        let reply = call(
            clients,
            settings,
            Rc::clone(&slots),
            Upstream::GoogleNew,
            ucla(5).0,
            deadline,
            metrics.clone(),
        )
        .await;
        assert_eq!(reply["status"], upstream::TIMEOUT);
        let message = reply["error_message"].as_str().unwrap_or_default();
        assert!(
            message.contains("all 1 allowed calls (places.max_concurrent) were busy"),
            "{message}"
        );
        assert_eq!(metrics.upstream_total(), 0);
        assert_eq!(google.count(), 0, "nothing went upstream");
    }
}
