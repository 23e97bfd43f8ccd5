//! The `google` provider: Google's Places Nearby Search web API.
//!
//! ```text
//! GET {base_url}/maps/api/place/nearbysearch/json?location=34.068930,-118.445127&radius=10000&key=KEY
//! ```
//!
//! Google's answer is passed on as it came (its key order, its number text, its own status
//! words and `error_message` when it refuses), with only `results` cut to the bound. Every
//! other outcome becomes a failure reply (see [`super::upstream`]).

use awc::http::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use super::upstream::{self, Clients, Failure, HttpAnswer};
use super::{ApiKey, NearbyQuery, PlacesSettings};

/// Asks Google for places around `q`; never fails, never outlives `deadline`.
pub(crate) async fn nearby(
    clients: &Clients,
    settings: &PlacesSettings,
    key: &ApiKey,
    q: &NearbyQuery,
    deadline: Instant,
) -> Value {
    // Config keeps `base_url` without a trailing slash.
    let base = &settings.base_url;
    // `location_param` holds only digits, '.', '-' and ',' (no '+', which a query string
    // would read as a space), and `radius_param` only digits and '.': both go as they are.
    let url = format!(
        "{base}/maps/api/place/nearbysearch/json?location={}&radius={}&key={}",
        q.location_param,
        q.radius_param,
        upstream::percent_encode(key.expose()),
    );
    let request = |client: &awc::Client| client.get(&url).send();
    let answer = upstream::exchange(clients, request, deadline, settings.timeout, base).await;
    upstream::finish(answer.and_then(|answer| shape(answer, q.bound)), key)
}

/// Google's answer with `results` cut to `bound`, or why it is not a usable answer.
fn shape(answer: HttpAnswer, bound: usize) -> Result<Value, Failure> {
    if answer.status != StatusCode::OK {
        return Err(Failure::http_status(answer.status));
    }
    let mut reply: Value = serde_json::from_slice(&answer.body).map_err(|_| Failure::not_json())?;
    let Some(results) = reply.get_mut("results").and_then(Value::as_array_mut) else {
        return Err(Failure::new(
            upstream::BAD_RESPONSE,
            "upstream answer has no results array",
        ));
    };
    results.truncate(bound);
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::places::upstream::HttpAnswer;

    #[test]
    fn results_are_cut_to_the_bound_and_the_rest_kept_in_order() {
        let body = r#"{"html_attributions":[],"next_page_token":"t","results":[{"a":1},{"a":2},{"a":3}],"status":"OK"}"#;
        let reply = shape(HttpAnswer::canned(200, body), 2).unwrap();
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"html_attributions":[],"next_page_token":"t","results":[{"a":1},{"a":2}],"status":"OK"}"#
        );
    }

    #[test]
    fn googles_own_refusal_passes_through() {
        let body = r#"{"error_message":"The provided API key is invalid.","html_attributions":[],"results":[],"status":"REQUEST_DENIED"}"#;
        let reply = shape(HttpAnswer::canned(200, body), 5).unwrap();
        assert_eq!(reply["status"], "REQUEST_DENIED");
        assert_eq!(reply["error_message"], "The provided API key is invalid.");
    }

    #[test]
    fn unusable_answers_are_failures() {
        let status = |a| shape(a, 5).unwrap_err().status;
        assert_eq!(status(HttpAnswer::canned(500, "{}")), upstream::ERROR);
        assert_eq!(
            status(HttpAnswer::canned(200, "<html>")),
            upstream::BAD_RESPONSE
        );
        assert_eq!(
            status(HttpAnswer::canned(200, r#"{"status":"OK"}"#)),
            upstream::BAD_RESPONSE
        );
        assert_eq!(
            status(HttpAnswer::canned(200, r#"{"results":{}}"#)),
            upstream::BAD_RESPONSE
        );
        assert_eq!(
            status(HttpAnswer::canned(200, "[1]")),
            upstream::BAD_RESPONSE
        );
    }
}
