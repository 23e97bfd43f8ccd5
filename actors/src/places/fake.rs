//! A fake Google Places server for tests: both APIs, on 127.0.0.1, with scripted failures.
//!
//! It runs on a thread of its own with its own Tokio runtime, so the same server serves
//! `#[actix::test]` actor tests and plain `#[test]` black-box tests that run the `herd`
//! binary. It speaks just enough HTTP/1.1 (keep-alive, `Content-Length` bodies), records
//! every request and how many were unanswered at once, and stops when dropped.
//!
//! ```no_run
//! use herd_actors::places::fake::{FakeGoogle, Mode};
//! let google = FakeGoogle::start(Mode::Ok { results: 5 });
//! // point `places.base_url` at google.base_url(), ask, then:
//! assert_eq!(google.count(), 1);
//! ```
//!
//! The path picks the API, the [`Mode`] the behaviour: `GET
//! /maps/api/place/nearbysearch/json` answers in the legacy shape, `POST
//! /v1/places:searchNearby` in the New API's shape; any other path gets a 404.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the fake does with every request.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Answers 200 with this many places (whatever the request asked for, so that tests
    /// see the caller cut them), `ZERO_RESULTS` (or `{}` for the New API) when 0. Numbers
    /// have telling text: ratings `4.50`, longitudes like `-118.4451270000001`.
    Ok {
        /// How many places.
        results: usize,
    },
    /// Answers with this HTTP status and a plain-text body.
    Status(u16),
    /// Answers as `Ok { results: 1 }`, but as an HTTP/1.0 server that closes every
    /// connection after its answer (Python's `http.server`): a client that pools
    /// connections may send its next request into one already closed.
    OneShot,
    /// Answers as `OneShot`, but leaves each connection open after its answer and closes it,
    /// unanswered, when the next request arrives on it: the race of `OneShot` (its close
    /// still on its way when the client sends on the connection again), lost every time.
    StaleKeepAlive,
    /// Refuses, quoting the key it was sent in its `error_message`, as a badly behaved
    /// proxy in front of Google might.
    QuotesKey,
    /// Answers 200 with a body that is not JSON.
    BadJson,
    /// Answers 200 with JSON that has no list of places.
    NoResults,
    /// Reads the request and never answers (the connection stays open until the client
    /// closes it).
    Hang,
    /// Waits this long, then answers as `Ok { results: 3 }`.
    Delay(Duration),
    /// Google refuses the key: the legacy API answers 200 with `REQUEST_DENIED` and an
    /// `error_message`; the New API answers 403 with
    /// `{"error": {"code": 403, "message": ..., "status": "PERMISSION_DENIED"}}`.
    Denied,
}

/// The `error_message` of [`Mode::Denied`] (both APIs).
pub const DENIED_MESSAGE: &str = "The provided API key is invalid.";

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path without the query: `/maps/api/place/nearbysearch/json`.
    pub path: String,
    /// The raw query string, still percent-encoded, without the `?`.
    pub query: String,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body, as text (both APIs send JSON).
    pub body: String,
}

impl RecordedRequest {
    /// A header's value; names are case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded (`+` stays `+`: only `%XX` is decoded).
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then(|| percent_decode(v))
        })
    }
}

/// What the fake has seen, shared with its connection tasks.
#[derive(Default)]
struct Seen {
    requests: Vec<RecordedRequest>,
    /// Requests read and not yet answered.
    in_flight: usize,
    max_in_flight: usize,
}

type SharedSeen = Arc<Mutex<Seen>>;

/// A running fake server; dropping it stops the server and closes its connections.
pub struct FakeGoogle {
    addr: SocketAddr,
    seen: SharedSeen,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGoogle {
    /// Starts a fake on 127.0.0.1 on a free port, on a thread of its own; it accepts
    /// connections as soon as this returns.
    pub fn start(mode: Mode) -> FakeGoogle {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake Google");
        listener
            .set_nonblocking(true)
            .expect("make the fake's socket non-blocking");
        let addr = listener.local_addr().expect("the fake's address");
        let seen = SharedSeen::default();
        let (shutdown, stop) = oneshot::channel();
        let recorded = Arc::clone(&seen);
        let thread = std::thread::Builder::new()
            .name("fake-google".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the fake's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("the fake's listener");
                    tokio::select! {
                        _ = stop => {}
                        _ = serve(listener, mode, recorded) => {}
                    }
                });
                // Dropping the runtime here ends every connection task, hanging ones too.
            })
            .expect("spawn the fake's thread");
        FakeGoogle {
            addr,
            seen,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `places.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.seen
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.seen
            .lock()
            .map(|s| s.requests.len())
            .unwrap_or_default()
    }

    /// The most requests that were waiting for their answers at one time, over every
    /// connection (one whose client gave up and closed its connection waits no more): what
    /// a cap on concurrent calls must hold down.
    pub fn max_in_flight(&self) -> usize {
        self.seen
            .lock()
            .map(|s| s.max_in_flight)
            .unwrap_or_default()
    }
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A base URL where nothing listens: a port that was free a moment ago.
pub fn unreachable_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("the free port's address");
    drop(listener);
    format!("http://{addr}")
}

async fn serve(listener: TcpListener, mode: Mode, seen: SharedSeen) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(connection(stream, mode.clone(), Arc::clone(&seen)));
    }
}

/// Serves the requests of one connection in turn until the client closes it.
async fn connection(stream: TcpStream, mode: Mode, seen: SharedSeen) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut answered = false;
    while let Some(request) = read_request(&mut read).await {
        if answered && mode == Mode::StaleKeepAlive {
            return;
        }
        if let Ok(mut seen) = seen.lock() {
            seen.requests.push(request.clone());
            seen.in_flight += 1;
            seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
        }
        let Some((status, content_type, body)) = respond(&mode, &request).await else {
            // Never answered: it waits until the client gives up and closes.
            let mut rest = [0u8; 1024];
            while matches!(read.read(&mut rest).await, Ok(n) if n > 0) {}
            if let Ok(mut seen) = seen.lock() {
                seen.in_flight -= 1;
            }
            return;
        };
        let http_1_0 = matches!(mode, Mode::OneShot | Mode::StaleKeepAlive);
        let version = if http_1_0 { "1.0" } else { "1.1" };
        // Clients read the status code, never the reason phrase.
        let head = format!(
            "HTTP/{version} {status} Fake\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let sent = write.write_all(head.as_bytes()).await.is_ok()
            && write.write_all(body.as_bytes()).await.is_ok();
        if let Ok(mut seen) = seen.lock() {
            seen.in_flight -= 1;
        }
        if !sent || mode == Mode::OneShot {
            return;
        }
        answered = true;
    }
}

/// Reads one request; `None` at the end of the connection or on anything malformed.
async fn read_request<R: AsyncBufReadExt + Unpin>(read: &mut R) -> Option<RecordedRequest> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        read.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.ok()?;
    let body = String::from_utf8_lossy(&body).into_owned();
    Some(RecordedRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Status, content type and body for a request, or `None` to never answer.
async fn respond(mode: &Mode, request: &RecordedRequest) -> Option<(u16, &'static str, String)> {
    const JSON: &str = "application/json; charset=UTF-8";
    let new_api = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/maps/api/place/nearbysearch/json") => false,
        ("POST", "/v1/places:searchNearby") => true,
        _ => return Some((404, "text/plain", "no such fake endpoint".into())),
    };
    let ok = |n| {
        Some((
            200,
            JSON,
            if new_api {
                new_places(n)
            } else {
                legacy_places(n)
            },
        ))
    };
    match mode {
        Mode::Ok { results } => ok(*results),
        Mode::OneShot | Mode::StaleKeepAlive => ok(1),
        Mode::Status(code) => Some((*code, "text/plain", format!("fake failure {code}"))),
        Mode::BadJson => Some((
            200,
            "text/html",
            "<html><body>not json</body></html>".into(),
        )),
        Mode::NoResults if new_api => Some((200, JSON, r#"{"places": "none"}"#.into())),
        Mode::NoResults => Some((200, JSON, r#"{"status": "OK"}"#.into())),
        Mode::Hang => None,
        Mode::Delay(delay) => {
            tokio::time::sleep(*delay).await;
            ok(3)
        }
        Mode::QuotesKey => {
            let key = request
                .param("key")
                .or_else(|| request.header("x-goog-api-key").map(str::to_owned))
                .unwrap_or_default();
            Some(if new_api {
                (
                    403,
                    JSON,
                    format!(
                        r#"{{"error": {{"code": 403, "message": "no such key: {key}", "status": "PERMISSION_DENIED"}}}}"#
                    ),
                )
            } else {
                (
                    200,
                    JSON,
                    format!(
                        r#"{{"error_message": "no such key: {key}", "html_attributions": [], "results": [], "status": "REQUEST_DENIED"}}"#
                    ),
                )
            })
        }
        Mode::Denied if new_api => Some((
            403,
            JSON,
            format!(
                r#"{{"error": {{"code": 403, "message": "{DENIED_MESSAGE}", "status": "PERMISSION_DENIED"}}}}"#
            ),
        )),
        Mode::Denied => Some((
            200,
            JSON,
            format!(
                r#"{{"error_message": "{DENIED_MESSAGE}", "html_attributions": [], "results": [], "status": "REQUEST_DENIED"}}"#
            ),
        )),
    }
}

/// A legacy Nearby Search body with `n` places, in Google's key order.
fn legacy_places(n: usize) -> String {
    let places: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"business_status": "OPERATIONAL", "geometry": {{"location": {{"lat": 34.0689300, "lng": -118.445127000000{i}}}}}, "name": "Fake Place {i}", "place_id": "fake-place-{i}", "rating": 4.50, "types": ["cafe", "food", "point_of_interest", "establishment"], "user_ratings_total": {}, "vicinity": "{i} Fake Street, Los Angeles"}}"#,
                10 + i
            )
        })
        .collect();
    let status = if n == 0 { "ZERO_RESULTS" } else { "OK" };
    format!(
        r#"{{"html_attributions": [], "results": [{}], "status": "{status}"}}"#,
        places.join(", ")
    )
}

/// A Places API (New) `searchNearby` body with `n` places (`{}` when none, as Google does).
fn new_places(n: usize) -> String {
    if n == 0 {
        return "{}".into();
    }
    let places: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id": "fake-place-{i}", "types": ["cafe", "food"], "formattedAddress": "{i} Fake Street, Los Angeles, CA 90024, USA", "location": {{"latitude": 34.0689300, "longitude": -118.445127000000{i}}}, "rating": 4.50, "userRatingCount": {}, "businessStatus": "OPERATIONAL", "displayName": {{"text": "Fake Place {i}", "languageCode": "en"}}, "shortFormattedAddress": "{i} Fake Street, Los Angeles"}}"#,
                10 + i
            )
        })
        .collect();
    format!(r#"{{"places": [{}]}}"#, places.join(", "))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read, Write};

    /// Black-box tests use the fake from a plain thread: no runtime of theirs is needed,
    /// and one connection carries several requests.
    #[test]
    fn serves_plain_threads_with_keep_alive() {
        let google = FakeGoogle::start(Mode::Ok { results: 2 });
        let stream =
            std::net::TcpStream::connect(google.base_url().trim_start_matches("http://")).unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        for _ in 0..2 {
            (&stream)
                .write_all(
                    b"GET /maps/api/place/nearbysearch/json?key=a%2Bb HTTP/1.1\r\nHost: x\r\n\r\n",
                )
                .unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["results"].as_array().unwrap().len(), 2);
        }
        assert_eq!(google.count(), 2);
        assert_eq!(google.requests()[0].param("key").as_deref(), Some("a+b"));
        assert_eq!(google.requests()[0].header("HOST"), Some("x"));
    }
}
