//! Places near a location, from the provider chosen in `herd.toml`.
//!
//! Every provider answers in the shape of Google's Places Nearby Search response, printed in
//! Google's own layout (the `layout` module), so clients see one format whichever provider
//! serves.
//!
//! The Google providers cost money per call, so the fetcher keeps their answers in a cache
//! (`cache`), lets concurrent identical questions share one call, and caps the calls in
//! flight (`flight`). The embedded provider answers from memory and goes around all that,
//! on a thread of its own (`searcher`).

use std::time::Duration;

mod cache;
#[cfg(test)]
mod cost_tests;
pub(crate) mod embedded;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
mod fetcher;
mod flight;
mod google;
mod google_new;
pub(crate) mod layout;
mod searcher;
#[cfg(test)]
mod tests;
mod upstream;

pub(crate) use cache::{CacheSettings, MAX_PRECISION};
pub(crate) use fetcher::{LastFailure, Nearby, PlacesFetcher};
pub(crate) use upstream::UNAVAILABLE as UPSTREAM_UNAVAILABLE;

/// WHATSAT's largest bound (docs/protocol.md), which is also the size of the legacy API's
/// one page of results.
pub(crate) const MAX_BOUND: usize = 20;

/// Which service answers places queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Provider {
    /// The bundled GeoNames data set: no network, no key.
    Embedded,
    /// Google's legacy Places Nearby Search web API.
    Google,
    /// Google's Places API (New) `places:searchNearby`.
    GoogleNew,
}

/// An API key: kept out of every `Debug` and log line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from the environment or the config file.
    pub(crate) fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that sends it upstream.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What the places fetcher needs to know, validated by `config`.
#[derive(Debug, Clone)]
pub(crate) struct PlacesSettings {
    /// Which service answers.
    pub(crate) provider: Provider,
    /// Scheme, host and optional port, no trailing slash: `https://maps.googleapis.com`.
    pub(crate) base_url: String,
    /// Sent to Google only; without one, the Google providers answer `REQUEST_DENIED`.
    pub(crate) api_key: Option<ApiKey>,
    /// The longest a question waits for a Google provider, from its arrival at the
    /// fetcher to its reply: time queued for a free call counts, so no reply ever takes
    /// longer, however busy the upstream.
    pub(crate) timeout: Duration,
    /// Which Google answers are kept, and for how long.
    pub(crate) cache: CacheSettings,
    /// The most upstream calls in flight at once; more wait their turn, first come first
    /// served, within `timeout`.
    pub(crate) max_concurrent: usize,
}

/// One places question: a circle and how many results at most.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NearbyQuery {
    /// The centre's latitude in degrees, for distances (the embedded provider).
    pub(crate) lat: f64,
    /// The centre's longitude in degrees.
    pub(crate) lng: f64,
    /// The location as Google's `location=` wants it: `34.068930,-118.445127` (the client's
    /// own digits, without a `+` sign, which a query string would read as a space).
    pub(crate) location_param: String,
    /// The radius in metres.
    pub(crate) radius_m: f64,
    /// The radius in metres as exact decimal text (`10500`, `0.5`), shifted from the client's
    /// kilometres without floating point.
    pub(crate) radius_param: String,
    /// The most results to return, 1..=20.
    pub(crate) bound: usize,
}

/// The `status` word of a reply in the Nearby Search shape (`""` if it has none).
pub(crate) fn status_of(reply: &serde_json::Value) -> &str {
    reply
        .get("status")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// A reply in the Nearby Search shape that says why there are no places, for failures
/// outside any provider (the fetcher itself gone while the server shuts down).
pub(crate) fn failure_json(status: &'static str, message: &str) -> String {
    layout::to_google_json(&upstream::Failure::new(status, message).into_reply())
}
