//! What the two Google providers share: the HTTP client, a deadline on every call, and a
//! reply in the Nearby Search shape for every way a call can fail, so a client never waits
//! forever and always gets JSON it can read.
//!
//! Failure replies look like Google's own error replies:
//!
//! ```text
//! {"html_attributions" : [], "results" : [], "status" : "UPSTREAM_TIMEOUT",
//!  "error_message" : "no answer from http://127.0.0.1:9 within 2s"}
//! ```
//!
//! Status words of our own (Google's own words, such as `REQUEST_DENIED`, pass through):
//!
//! - `UPSTREAM_UNAVAILABLE`: no connection could be made (refused, unknown host, TLS
//!   failure), or it broke before the whole answer arrived.
//! - `UPSTREAM_TIMEOUT`: no complete answer within the configured `timeout`.
//! - `UPSTREAM_ERROR`: the service answered with an HTTP error status.
//! - `UPSTREAM_BAD_RESPONSE`: the answer is not JSON, or not the shape of a places response.
//! - `REQUEST_DENIED` (Google's word for the same thing): no API key is configured; nothing
//!   is sent.
//!
//! No message ever holds the request URL or the error text of the HTTP library (which may
//! quote the URL, and with it the key); each is written here from the error's kind.

use std::time::Duration;

use awc::error::{ConnectError, PayloadError, SendRequestError};
use awc::http::StatusCode;
use bytes::Bytes;
use serde_json::{json, Value};

use super::ApiKey;
use tokio::time::Instant;

/// Google's replies are tens of kilobytes; anything far larger is not a places response.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub(crate) const UNAVAILABLE: &str = "UPSTREAM_UNAVAILABLE";
pub(crate) const TIMEOUT: &str = "UPSTREAM_TIMEOUT";
pub(crate) const ERROR: &str = "UPSTREAM_ERROR";
pub(crate) const BAD_RESPONSE: &str = "UPSTREAM_BAD_RESPONSE";
pub(crate) const REQUEST_DENIED: &str = "REQUEST_DENIED";

/// The HTTP clients of one fetcher: `pooled` keeps connections alive for the next call;
/// `fresh` opens a new connection for every request, for the one resend of a request that
/// met a kept-alive connection already closed (see [`exchange`]).
#[derive(Clone)]
pub(crate) struct Clients {
    pooled: awc::Client,
    fresh: awc::Client,
}

impl Clients {
    /// Builds them; call it inside the actix runtime (`awc::Client` is `!Send` and uses the
    /// runtime's I/O driver).
    pub(crate) fn new(timeout: Duration) -> Clients {
        // awc's `Connector::new()` panics unless rustls has a process-wide crypto provider.
        // We enable only `ring`; installing it fails harmlessly when some provider already is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connector = || {
            awc::Connector::new()
                .timeout(timeout)
                .handshake_timeout(timeout)
        };
        let client = |connector| {
            awc::Client::builder()
                .connector(connector)
                .timeout(timeout)
                .finish()
        };
        Clients {
            pooled: client(connector()),
            // A pooled connection older than its lifetime is closed, not reused: with a
            // lifetime of zero, every request gets a connection of its own.
            fresh: client(connector().conn_lifetime(Duration::ZERO)),
        }
    }
}

/// Why a call gave no usable answer, already in the words the client will read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) status: &'static str,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status said the call failed, and the body did not say why.
    pub(crate) fn http_status(status: StatusCode) -> Self {
        Failure::new(ERROR, format!("upstream returned HTTP {}", status.as_u16()))
    }

    pub(crate) fn not_json() -> Self {
        Failure::new(BAD_RESPONSE, "upstream answer is not JSON")
    }

    pub(crate) fn missing_key() -> Self {
        Failure::new(
            REQUEST_DENIED,
            "no API key is configured for the places provider",
        )
    }

    /// The reply the client gets, logged once here so every failure leaves a trace (the
    /// message escaped: it may quote the upstream, which must not write to a terminal).
    pub(crate) fn into_reply(self) -> Value {
        log::warn!("places request failed: {}: {:?}", self.status, self.message);
        json!({
            "html_attributions": [],
            "results": [],
            "status": self.status,
            "error_message": self.message,
        })
    }
}

/// One upstream answer, read whole.
pub(crate) struct HttpAnswer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

#[cfg(test)]
impl HttpAnswer {
    /// An answer as if upstream had sent it, for the providers' shaping tests.
    pub(crate) fn canned(status: u16, body: &str) -> HttpAnswer {
        HttpAnswer {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            body: body.to_owned().into(),
        }
    }
}

/// Sends a request (made by `request` with the client it is given) and reads the whole
/// answer, giving up at `deadline`: the end of the configured `timeout` counted from the
/// question's arrival, which messages name because it is what the operator set. `base_url`
/// names the service in messages (it holds no secret, unlike the full URL).
///
/// A request that met a connection already closed is sent once more, on a new connection,
/// never on another pooled one: those may all be closed alike. The pooled client keeps
/// connections alive for the next call, and a server may close one just as it is reused.
/// One case is not a race at all: the client (actix-http) keeps alive an HTTP/1.0 answer
/// that has a `Content-Length` and no `Connection` header, though such a server (Python's
/// `http.server`) closes every connection after its answer, so the next request on it
/// always fails, and under concurrent calls the pool holds several such connections. A
/// places search only reads, so sending it again is safe even in the rare case where the
/// server did see it; the second send is timed and counted with the first, as one call.
pub(crate) async fn exchange(
    clients: &Clients,
    request: impl Fn(&awc::Client) -> awc::SendClientRequest,
    deadline: Instant,
    timeout: Duration,
    base_url: &str,
) -> Result<HttpAnswer, Failure> {
    let call = async {
        let mut response = match request(&clients.pooled).await {
            Err(e) if never_reached(&e) => {
                log::debug!(
                    "places: {base_url} closed a kept-alive connection; sending again on a new one"
                );
                request(&clients.fresh).await
            }
            first => first,
        }
        .map_err(|e| send_failure(&e, timeout, base_url))?;
        let body = response
            .body()
            .limit(MAX_BODY)
            .await
            .map_err(|e| body_failure(&e, base_url))?;
        Ok(HttpAnswer {
            status: response.status(),
            body,
        })
    };
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout, base_url)))
}

/// Whether the request failed on a connection that was closed under it, before any answer:
/// the server closed it, or writing the request failed.
fn never_reached(e: &SendRequestError) -> bool {
    matches!(
        e,
        SendRequestError::Connect(ConnectError::Disconnected) | SendRequestError::Send(_)
    )
}

pub(crate) fn timed_out(timeout: Duration, base_url: &str) -> Failure {
    Failure::new(
        TIMEOUT,
        format!("no answer from {base_url} within {timeout:?}"),
    )
}

fn send_failure(e: &SendRequestError, timeout: Duration, base_url: &str) -> Failure {
    let unavailable = |why: &str| Failure::new(UNAVAILABLE, format!("{why} {base_url}"));
    match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            timed_out(timeout, base_url)
        }
        SendRequestError::Connect(ConnectError::Io(io)) => Failure::new(
            UNAVAILABLE,
            format!("could not connect to {base_url}: {}", io.kind()),
        ),
        SendRequestError::Connect(
            ConnectError::Resolver(_) | ConnectError::NoRecords | ConnectError::Unresolved,
        ) => unavailable("could not resolve the host of"),
        SendRequestError::Connect(ConnectError::SslIsNotSupported) => {
            unavailable("no TLS support for")
        }
        SendRequestError::Connect(ConnectError::Disconnected) => {
            unavailable("the connection closed before an answer came, twice, from")
        }
        // TLS handshake failures arrive here as well (as I/O errors with rustls).
        SendRequestError::Connect(_) => unavailable("could not connect to"),
        SendRequestError::Send(io) => Failure::new(
            UNAVAILABLE,
            format!("could not send the request to {base_url}: {}", io.kind()),
        ),
        SendRequestError::Url(_) => unavailable("not a usable URL:"),
        SendRequestError::Response(_) => Failure::new(
            BAD_RESPONSE,
            format!("malformed HTTP answer from {base_url}"),
        ),
        _ => unavailable("the connection failed while talking to"),
    }
}

fn body_failure(e: &PayloadError, base_url: &str) -> Failure {
    match e {
        PayloadError::Overflow => Failure::new(
            BAD_RESPONSE,
            format!("answer from {base_url} is larger than {MAX_BODY} bytes"),
        ),
        _ => Failure::new(
            UNAVAILABLE,
            format!("connection to {base_url} broke while reading the answer"),
        ),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query value.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keys shorter than this are not looked for in answers: text that short turns up in
/// ordinary words (a key `K` is in every `"OK"`). Google's keys are 39 characters.
const SHORTEST_KEY_LOOKED_FOR: usize = 8;

/// Whether an upstream answer quotes `key` anywhere (Google does not, but a proxy in
/// between might): such an answer is refused whole, since the key must never reach a
/// client or a log, and an answer is never rewritten.
fn quotes_key(value: &Value, key: &str) -> bool {
    key.len() >= SHORTEST_KEY_LOOKED_FOR && holds(value, key)
}

/// Whether `text` is in any string or name of `value`, at any depth.
fn holds(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s.contains(text),
        Value::Array(items) => items.iter().any(|v| holds(v, text)),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains(text) || holds(v, text)),
        _ => false,
    }
}

/// The reply for a call's outcome, unless the upstream's answer or error quotes the key:
/// then a failure that says so, and nothing of what the upstream wrote.
pub(crate) fn finish(outcome: Result<Value, Failure>, key: &ApiKey) -> Value {
    let key = key.expose();
    let quoted = match &outcome {
        Ok(reply) => quotes_key(reply, key),
        Err(failure) => key.len() >= SHORTEST_KEY_LOOKED_FOR && failure.message.contains(key),
    };
    match outcome {
        _ if quoted => Failure::new(
            BAD_RESPONSE,
            "the answer quotes the API key, so it is not passed on",
        )
        .into_reply(),
        Ok(reply) => reply,
        Err(failure) => failure.into_reply(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_leaves_only_unreserved_characters() {
        assert_eq!(percent_encode("AIza-Sy_09.~"), "AIza-Sy_09.~");
        assert_eq!(percent_encode("a b&c=d+e/é"), "a%20b%26c%3Dd%2Be%2F%C3%A9");
    }

    #[test]
    fn an_answer_quotes_a_key_in_any_string_but_a_short_key_is_not_looked_for() {
        let nested = json!({"results": [{"name": "x sekrit-key"}], "n": 1});
        assert!(quotes_key(&nested, "sekrit-key"));
        assert!(quotes_key(&json!({"sekrit-key": 1}), "sekrit-key"));
        assert!(!quotes_key(&nested, "other-key-1"));
        assert!(!quotes_key(&json!({"status": "OK"}), "K"));
    }

    #[test]
    fn failure_reply_has_the_nearby_search_shape() {
        let reply = Failure::http_status(StatusCode::INTERNAL_SERVER_ERROR).into_reply();
        assert_eq!(
            reply,
            json!({
                "html_attributions": [],
                "results": [],
                "status": "UPSTREAM_ERROR",
                "error_message": "upstream returned HTTP 500",
            })
        );
    }
}
