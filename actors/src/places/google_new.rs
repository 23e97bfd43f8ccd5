//! The `google-new` provider: Places API (New) `places:searchNearby`, which is what a new
//! Google Cloud project can enable today, translated into the Nearby Search shape so that
//! clients see one format whichever provider serves.
//!
//! ```text
//! POST {base_url}/v1/places:searchNearby
//! X-Goog-Api-Key: KEY
//! X-Goog-FieldMask: places.id,places.displayName,...
//! {"maxResultCount": 5, "locationRestriction": {"circle": {
//!     "center": {"latitude": 34.068930, "longitude": -118.445127}, "radius": 10000}}}
//! ```
//!
//! The answer `{"places": [...]}` (or `{}` when nothing is near) becomes
//! `{"html_attributions": [], "results": [...], "status": "OK" | "ZERO_RESULTS"}`. Google's
//! errors, `{"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}`, keep
//! Google's message under the legacy API's word for the same thing: `REQUEST_DENIED`
//! (`PERMISSION_DENIED`, `UNAUTHENTICATED`), `INVALID_REQUEST` (`INVALID_ARGUMENT`,
//! `FAILED_PRECONDITION`, `OUT_OF_RANGE`), `OVER_QUERY_LIMIT` (`RESOURCE_EXHAUSTED`), and
//! `UPSTREAM_ERROR` for the rest.

use std::str::FromStr;

use awc::http::StatusCode;
use serde_json::{json, Map, Number, Value};
use tokio::time::Instant;

use super::upstream::{self, Clients, Failure, HttpAnswer};
use super::{ApiKey, NearbyQuery, PlacesSettings};

/// The fields translated below, and no more: Google bills by the fields asked for.
const FIELD_MASK: &str = "places.id,places.displayName,places.formattedAddress,\
places.shortFormattedAddress,places.location,places.types,places.rating,\
places.userRatingCount,places.businessStatus";

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
    let (url, body) = (format!("{base}/v1/places:searchNearby"), request_body(q));
    let request = |client: &awc::Client| {
        client
            .post(&url)
            .insert_header(("X-Goog-Api-Key", key.expose()))
            .insert_header(("X-Goog-FieldMask", FIELD_MASK))
            .send_json(&body)
    };
    let answer = upstream::exchange(clients, request, deadline, settings.timeout, base).await;
    upstream::finish(answer.and_then(|answer| translate(answer, q.bound)), key)
}

/// The search request, with the client's own digits for the centre and radius.
fn request_body(q: &NearbyQuery) -> Value {
    let exact =
        |text: &str, fallback: f64| Number::from_str(text).map_or(json!(fallback), Value::Number);
    let (lat, lng) = q.location_param.split_once(',').unwrap_or_default();
    json!({
        "maxResultCount": q.bound,
        "locationRestriction": {"circle": {
            "center": {"latitude": exact(lat, q.lat), "longitude": exact(lng, q.lng)},
            "radius": exact(&q.radius_param, q.radius_m),
        }},
    })
}

/// The New API's answer in the Nearby Search shape, or Google's error as a failure.
fn translate(answer: HttpAnswer, bound: usize) -> Result<Value, Failure> {
    let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
    if answer.status != StatusCode::OK {
        let error = body.as_ref().and_then(|b| b.get("error"));
        let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
        return Err(match message {
            Some(message) => {
                let status = error.and_then(|e| e.get("status")).and_then(Value::as_str);
                Failure::new(legacy_status(status.unwrap_or_default()), message)
            }
            None => Failure::http_status(answer.status),
        });
    }
    let body = body.ok_or_else(Failure::not_json)?;
    let bad = |what: &str| Failure::new(upstream::BAD_RESPONSE, format!("upstream answer {what}"));
    let places = match body
        .as_object()
        .ok_or_else(|| bad("is not a JSON object"))?
        .get("places")
    {
        None => &Vec::new(),
        Some(Value::Array(places)) => places,
        Some(_) => return Err(bad("has a places field that is not an array")),
    };
    let results: Vec<Value> = places
        .iter()
        .filter_map(Value::as_object)
        .take(bound)
        .map(to_result)
        .collect();
    let status = if results.is_empty() {
        "ZERO_RESULTS"
    } else {
        "OK"
    };
    Ok(json!({"html_attributions": [], "results": results, "status": status}))
}

/// The legacy API's status word for a New API (gRPC-style) error status.
fn legacy_status(status: &str) -> &'static str {
    match status {
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => "REQUEST_DENIED",
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "INVALID_REQUEST",
        "RESOURCE_EXHAUSTED" => "OVER_QUERY_LIMIT",
        _ => upstream::ERROR,
    }
}

/// One place as a Nearby Search result, keys in Google's (alphabetical) order; fields the
/// answer lacks are left out rather than invented.
fn to_result(place: &Map<String, Value>) -> Value {
    let mut r = Map::new();
    let mut copy = |to: &str, from: Option<&Value>| {
        if let Some(v) = from {
            r.insert(to.to_string(), v.clone());
        }
    };
    copy("business_status", place.get("businessStatus"));
    let location = place.get("location").map(|loc| {
        json!({"location": {
            "lat": loc.get("latitude").cloned().unwrap_or(Value::Null),
            "lng": loc.get("longitude").cloned().unwrap_or(Value::Null),
        }})
    });
    copy("geometry", location.as_ref());
    copy("name", place.get("displayName").and_then(|n| n.get("text")));
    copy("place_id", place.get("id"));
    copy("rating", place.get("rating"));
    copy("types", place.get("types"));
    copy("user_ratings_total", place.get("userRatingCount"));
    copy(
        "vicinity",
        place
            .get("shortFormattedAddress")
            .or_else(|| place.get("formattedAddress")),
    );
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::places::upstream::HttpAnswer;

    #[test]
    fn the_request_keeps_the_clients_digits() {
        let q = NearbyQuery {
            lat: 34.06893,
            lng: -118.445127,
            location_param: "34.068930,-118.445127".into(),
            radius_m: 10500.0,
            radius_param: "10500".into(),
            bound: 5,
        };
        assert_eq!(
            serde_json::to_string(&request_body(&q)).unwrap(),
            r#"{"maxResultCount":5,"locationRestriction":{"circle":{"center":{"latitude":34.068930,"longitude":-118.445127},"radius":10500}}}"#
        );
    }

    #[test]
    fn places_become_nearby_search_results_cut_to_the_bound() {
        let body = r#"{"places":[
            {"id":"ChIJ1","types":["cafe","food"],"formattedAddress":"1 Main St, Los Angeles, CA 90024, USA",
             "shortFormattedAddress":"1 Main St, Los Angeles","location":{"latitude":34.0689300,"longitude":-118.4451270000001},
             "rating":4.50,"userRatingCount":12,"businessStatus":"OPERATIONAL","displayName":{"text":"Cafe","languageCode":"en"}},
            {"id":"ChIJ2","formattedAddress":"2 Main St"},
            {"id":"ChIJ3"}]}"#;
        let reply = translate(HttpAnswer::canned(200, body), 2).unwrap();
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            concat!(
                r#"{"html_attributions":[],"results":[{"business_status":"OPERATIONAL","#,
                r#""geometry":{"location":{"lat":34.0689300,"lng":-118.4451270000001}},"name":"Cafe","#,
                r#""place_id":"ChIJ1","rating":4.50,"types":["cafe","food"],"user_ratings_total":12,"#,
                r#""vicinity":"1 Main St, Los Angeles"},{"place_id":"ChIJ2","vicinity":"2 Main St"}],"status":"OK"}"#
            )
        );
    }

    #[test]
    fn an_empty_answer_is_zero_results() {
        let reply = translate(HttpAnswer::canned(200, "{}"), 5).unwrap();
        assert_eq!(
            reply,
            json!({"html_attributions": [], "results": [], "status": "ZERO_RESULTS"})
        );
    }

    #[test]
    fn googles_errors_keep_their_message_under_the_legacy_word() {
        let body = r#"{"error":{"code":403,"message":"Places API (New) has not been used in project 1.","status":"PERMISSION_DENIED"}}"#;
        let failure = translate(HttpAnswer::canned(403, body), 5).unwrap_err();
        assert_eq!(failure.status, "REQUEST_DENIED");
        assert_eq!(
            failure.message,
            "Places API (New) has not been used in project 1."
        );
        let body =
            r#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            translate(HttpAnswer::canned(429, body), 5)
                .unwrap_err()
                .status,
            "OVER_QUERY_LIMIT"
        );
    }

    #[test]
    fn unusable_answers_are_failures() {
        let status = |a| translate(a, 5).unwrap_err().status;
        assert_eq!(
            status(HttpAnswer::canned(502, "<html>bad gateway</html>")),
            upstream::ERROR
        );
        assert_eq!(
            status(HttpAnswer::canned(200, "not json")),
            upstream::BAD_RESPONSE
        );
        assert_eq!(
            status(HttpAnswer::canned(200, r#"{"places":{}}"#)),
            upstream::BAD_RESPONSE
        );
        assert_eq!(
            status(HttpAnswer::canned(200, "[]")),
            upstream::BAD_RESPONSE
        );
    }
}
