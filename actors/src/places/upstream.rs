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
use tokio::time::Instant;

/// Google's replies are tens of kilobytes; anything far larger is not a places response.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub(crate) const UNAVAILABLE: &str = "UPSTREAM_UNAVAILABLE";
pub(crate) const TIMEOUT: &str = "UPSTREAM_TIMEOUT";
pub(crate) const ERROR: &str = "UPSTREAM_ERROR";
pub(crate) const BAD_RESPONSE: &str = "UPSTREAM_BAD_RESPONSE";
pub(crate) const REQUEST_DENIED: &str = "REQUEST_DENIED";

/// Builds the HTTP client of one fetcher; call it inside the actix runtime (`awc::Client`
/// is `!Send` and uses the runtime's I/O driver).
pub(crate) fn client(timeout: Duration) -> awc::Client {
    // awc's `Connector::new()` panics unless rustls has a process-wide crypto provider. We
    // enable only `ring`; installing it fails harmlessly when some provider already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    awc::Client::builder()
        .connector(
            awc::Connector::new()
                .timeout(timeout)
                .handshake_timeout(timeout),
        )
        .timeout(timeout)
        .finish()
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

    /// The reply the client gets, logged once here so every failure leaves a trace.
    pub(crate) fn into_reply(self) -> Value {
        log::warn!("places request failed: {}: {}", self.status, self.message);
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

/// Sends a request and reads the whole answer, giving up at `deadline`: the end of the
/// configured `timeout` counted from the question's arrival, which messages name because
/// it is what the operator set. `base_url` names the service in messages (it holds no
/// secret, unlike the full URL).
pub(crate) async fn exchange(
    send: awc::SendClientRequest,
    deadline: Instant,
    timeout: Duration,
    base_url: &str,
) -> Result<HttpAnswer, Failure> {
    let call = async {
        let mut response = send
            .await
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
        // TLS handshake failures arrive here as well (as I/O errors with rustls).
        SendRequestError::Connect(_) => unavailable("could not connect to"),
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

/// Replaces the key wherever an upstream answer quotes it (Google does not, but a proxy in
/// between might), since the key must never reach a client. Keys are long random tokens,
/// so this never touches anything else.
pub(crate) fn redact(value: &mut Value, key: &str) {
    if key.is_empty() {
        return;
    }
    match value {
        Value::String(s) if s.contains(key) => *s = s.replace(key, "<redacted>"),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, key)),
        Value::Object(map) => map.values_mut().for_each(|v| redact(v, key)),
        _ => {}
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
    fn redaction_reaches_nested_strings_only() {
        let mut v = json!({"error_message": "bad key sekrit-key", "results": [{"name": "x sekrit-key"}], "n": 1});
        redact(&mut v, "sekrit-key");
        assert_eq!(
            v,
            json!({"error_message": "bad key <redacted>", "results": [{"name": "x <redacted>"}], "n": 1})
        );
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
