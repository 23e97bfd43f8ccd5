//! The `PlacesFetcher` actor: answers places questions from the configured provider.
//!
//! One fetcher per server. For the Google providers a question is, in turn:
//!
//! 1. a cache hit: the kept answer, cut to the question's bound (see [`super::cache`]);
//! 2. coalesced: it waits on the call in flight for the same key and a bound it covers;
//! 3. a miss: it starts a call of its own (see [`super::flight`]), which every later
//!    question for that key may join, and whose `OK` or `ZERO_RESULTS` answer is kept.
//!
//! Calls run as futures of their own, so a slow provider holds up neither the actor nor
//! the other questions; each ends within the configured timeout with a reply in the Nearby
//! Search shape, whatever happens upstream. The embedded provider's questions go to the
//! [`Searcher`], on a thread of its own, so the serving thread never makes their answers.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult,
    ResponseFuture, WrapFuture,
};
use futures::FutureExt;
use serde_json::Value;

use super::cache::{CacheKey, ReplyCache};
use super::flight::{self, Flight, Landing, Slots, Upstream};
use super::searcher::{Search, Searcher};
use super::upstream::Clients;
use super::{layout, status_of, NearbyQuery, PlacesSettings, Provider, UPSTREAM_UNAVAILABLE};
use crate::metrics::{PlacesAnswer, PlacesMetrics};

/// How often the counts are logged, when they have changed.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Request: the places in a circle, as the JSON text of a Nearby Search response in
/// Google's layout (see [`layout`]), without a trailing newline. Never fails: an upstream
/// failure is a reply with a non-OK `status` and an `error_message`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Arc<str>")]
pub(crate) struct Nearby(pub(crate) NearbyQuery);

/// Request: what the cache and the upstream calls have done since the fetcher started.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PlacesStats")]
pub(crate) struct GetPlacesStats;

/// Request: the last failure of an upstream call, and when it came, if there was one.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<(SystemTime, String)>")]
pub(crate) struct LastFailure;

/// Counts of Google questions (the embedded provider's are not counted): each is a hit, a
/// coalesced question or a miss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PlacesStats {
    /// Answered from the cache.
    pub(crate) hits: u64,
    /// Answered by a call that another question had started.
    pub(crate) coalesced: u64,
    /// Started a call.
    pub(crate) misses: u64,
    /// Calls that got a slot and went upstream (a miss that timed out in the queue did
    /// not).
    pub(crate) upstream_calls: u64,
    /// Answers in the cache now.
    pub(crate) cached: usize,
}

/// Where the fetcher reads the time its cache goes by. Tests turn it forward past a TTL
/// instead of sleeping until the cache goes stale.
#[derive(Debug, Clone, Default)]
pub(crate) struct CacheClock {
    #[cfg(test)]
    ahead: Rc<std::cell::Cell<Duration>>,
}

impl CacheClock {
    fn now(&self) -> Instant {
        #[cfg(test)]
        return Instant::now() + self.ahead.get();
        #[cfg(not(test))]
        Instant::now()
    }

    /// Turns the clock (and every clone of it) forward by `by`.
    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        self.ahead.set(self.ahead.get() + by);
    }
}

/// Fetches places from the provider chosen in `herd.toml`.
pub(crate) struct PlacesFetcher {
    settings: Arc<PlacesSettings>,
    /// Built on first use inside the actor's runtime, as `awc::Client` must be; shared by
    /// every call so connections to Google are kept alive and reused.
    clients: Option<Clients>,
    /// Makes the embedded provider's answers; started with the fetcher, for that provider.
    searcher: Option<Addr<Searcher>>,
    cache: ReplyCache,
    /// The call in flight for each key, if any: the one with the largest bound.
    flights: HashMap<CacheKey, Flight>,
    next_flight: u64,
    slots: Rc<Slots>,
    /// The counts last logged, so an idle server logs nothing.
    logged: PlacesStats,
    clock: CacheClock,
    metrics: PlacesMetrics,
    /// The last answer that was a failure, for `/status`.
    last_failure: Option<(SystemTime, String)>,
}

impl PlacesFetcher {
    /// A fetcher for `settings`; start it with [`Actor::start`] inside an actix system.
    pub(crate) fn new(settings: PlacesSettings) -> Self {
        Self::with_clock(settings, CacheClock::default())
    }

    /// A fetcher whose cache goes by `clock`.
    pub(crate) fn with_clock(settings: PlacesSettings, clock: CacheClock) -> Self {
        PlacesFetcher {
            cache: ReplyCache::new(settings.cache.clone()),
            slots: Rc::new(Slots::new(settings.max_concurrent)),
            settings: Arc::new(settings),
            clients: None,
            searcher: None,
            flights: HashMap::new(),
            next_flight: 0,
            logged: PlacesStats::default(),
            clock,
            metrics: PlacesMetrics::default(),
            last_failure: None,
        }
    }

    /// The fetcher, counting its answers and timing its calls into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: PlacesMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn clients(&mut self) -> Clients {
        let timeout = self.settings.timeout;
        self.clients
            .get_or_insert_with(|| Clients::new(timeout))
            .clone()
    }

    /// What the metrics have counted of Google questions, and the cache's size.
    fn stats(&self) -> PlacesStats {
        let m = &self.metrics;
        PlacesStats {
            hits: m.answers_from(PlacesAnswer::CacheHit),
            coalesced: m.answers_from(PlacesAnswer::SharedCall),
            misses: m.answers_from(PlacesAnswer::UpstreamCall),
            upstream_calls: m.upstream_total(),
            cached: self.cache.len(),
        }
    }

    /// Starts a call for `q` asking for `covers` results, which questions for `key` up to
    /// that bound may join until it lands.
    fn launch(
        &mut self,
        upstream: Upstream,
        key: CacheKey,
        mut q: NearbyQuery,
        covers: usize,
        ctx: &mut Context<Self>,
    ) -> Landing {
        self.next_flight += 1;
        let id = self.next_flight;
        q.bound = covers;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let flight_key = key.clone();
        let call = flight::call(
            self.clients(),
            Arc::clone(&self.settings),
            Rc::clone(&self.slots),
            upstream,
            q,
            deadline,
            self.metrics.clone(),
        );
        let landing = call.map(Rc::new).boxed_local().shared();
        // The actor holds one waiter of its own, so the call runs to its end (and its
        // answer is kept) even if every client that asked has gone.
        ctx.spawn(
            landing
                .clone()
                .into_actor(self)
                .map(move |reply, act, _| act.land(key, id, covers, &reply)),
        );
        let flight = Flight {
            id,
            covers,
            landing: landing.clone(),
        };
        self.flights.insert(flight_key, flight);
        landing
    }

    /// A call has answered: it no longer takes joiners, and a good answer is kept.
    fn land(&mut self, key: CacheKey, id: u64, covers: usize, reply: &Value) {
        if self.flights.get(&key).is_some_and(|flight| flight.id == id) {
            self.flights.remove(&key);
        }
        let status = status_of(reply);
        if matches!(status, "OK" | "ZERO_RESULTS") {
            if let Ok(text) = serde_json::to_string(reply) {
                self.cache.insert(key, text, covers, self.clock.now());
            }
        } else {
            let message = reply.get("error_message").and_then(Value::as_str);
            let what = format!("places: {status}: {}", message.unwrap_or("no message"));
            self.last_failure = Some((SystemTime::now(), what));
        }
    }

    fn log_stats(&mut self) {
        let stats = self.stats();
        if stats != self.logged {
            log::info!(
                "places: {} hits, {} coalesced, {} misses, {} upstream calls, {} cached",
                stats.hits,
                stats.coalesced,
                stats.misses,
                stats.upstream_calls,
                stats.cached
            );
            self.logged = stats;
        }
    }
}

/// The status of an answer that can only be `OK` or `ZERO_RESULTS`: one from the cache,
/// which keeps no other, or from the embedded provider. A `ZERO_RESULTS` answer holds no
/// places, so its text is short: only a short reply is looked into, and a long one costs
/// no scan.
fn ok_or_zero_results(reply: &str) -> &'static str {
    const SHORT: usize = 1024;
    if reply.len() <= SHORT && reply.contains(r#""status" : "ZERO_RESULTS""#) {
        "ZERO_RESULTS"
    } else {
        "OK"
    }
}

/// `reply` with its `results` cut to `bound`, in Google's layout.
fn cut_to_bound(mut reply: Value, bound: usize) -> String {
    if let Some(results) = reply.get_mut("results").and_then(Value::as_array_mut) {
        results.truncate(bound);
    }
    layout::to_google_json(&reply)
}

impl Actor for PlacesFetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.settings.provider {
            Provider::Embedded => {
                self.searcher.get_or_insert_with(Searcher::start);
            }
            Provider::Google | Provider::GoogleNew => {
                ctx.run_interval(STATS_EVERY, |act, _| act.log_stats());
            }
        }
    }
}

/// The answer is shared, not copied: a cache hit hands out the kept text itself, which a
/// session on another thread reads and drops there.
impl Handler<Nearby> for PlacesFetcher {
    type Result = ResponseFuture<Arc<str>>;

    fn handle(&mut self, Nearby(q): Nearby, ctx: &mut Self::Context) -> Self::Result {
        let Some(upstream) = Upstream::of(self.settings.provider) else {
            let search = self
                .searcher
                .get_or_insert_with(Searcher::start)
                .send(Search(q));
            let metrics = self.metrics.clone();
            return Box::pin(async move {
                match search.await {
                    Ok(text) => {
                        metrics.answered(PlacesAnswer::Embedded, ok_or_zero_results(&text));
                        text
                    }
                    Err(_) => {
                        metrics.answered(PlacesAnswer::Embedded, UPSTREAM_UNAVAILABLE);
                        let why = "the places searcher stopped";
                        super::failure_json(UPSTREAM_UNAVAILABLE, why).into()
                    }
                }
            });
        };
        let bound = q.bound;
        let key = CacheKey::new(&q, self.settings.cache.precision, self.settings.provider);
        let kept = self.cache.get(&key, bound, self.clock.now(), |text| {
            serde_json::from_str(text)
                .ok()
                .map(|reply| cut_to_bound(reply, bound))
        });
        if let Some(text) = kept {
            self.metrics
                .answered(PlacesAnswer::CacheHit, ok_or_zero_results(&text));
            log::debug!("places: cache hit for {key:?}, bound {bound}");
            return Box::pin(async move { text });
        }
        let (landing, from) = match self.flights.get(&key) {
            Some(flight) if flight.covers >= bound => {
                log::debug!("places: joined the call in flight for {key:?}, bound {bound}");
                (flight.landing.clone(), PlacesAnswer::SharedCall)
            }
            _ => {
                log::info!("places: cache miss for {key:?}, bound {bound}: calling upstream");
                let covers = upstream.fetch_bound(bound);
                let landing = self.launch(upstream, key, q, covers, ctx);
                (landing, PlacesAnswer::UpstreamCall)
            }
        };
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let reply = landing.await;
            metrics.answered(from, status_of(&reply));
            cut_to_bound(Value::clone(&*reply), bound).into()
        })
    }
}

impl Handler<LastFailure> for PlacesFetcher {
    type Result = Option<(SystemTime, String)>;

    fn handle(&mut self, _: LastFailure, _: &mut Self::Context) -> Self::Result {
        self.last_failure.clone()
    }
}

impl Handler<GetPlacesStats> for PlacesFetcher {
    type Result = MessageResult<GetPlacesStats>;

    fn handle(&mut self, _: GetPlacesStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}
