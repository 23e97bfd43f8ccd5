//! The admin listener's HTTP side: an actix-web app on the server's own actix system.
//!
//! actix-web serves from an acceptor thread and one worker thread of its own (an arbiter of
//! the server's system), so the admin answers while the server's own thread is busy, as it
//! is while it opens a large store; and the serving path never waits on it. Connections and
//! request times are capped: the admin is for an operator, a scraper and a page, not for
//! load.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures::channel::oneshot;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

use super::{auth, page, AdminState, StatusClient};

/// Connections the admin holds at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 64;
/// The longest a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the rates of `/status` are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// A running admin listener.
pub(crate) struct Admin {
    state: Arc<AdminState>,
    addr: SocketAddr,
}

impl Admin {
    /// Serves `state` on `listener`; returns once the listener answers, whatever the
    /// server's own thread does next.
    pub(crate) async fn start(
        listener: std::net::TcpListener,
        state: AdminState,
    ) -> io::Result<Admin> {
        let addr = listener.local_addr()?;
        let state = Arc::new(state);
        let data = Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(Data::new(page::peer_client(data.authorization.clone())))
                .app_data(data.clone())
                .route("/", web::get().to(live_page))
                .route("/metrics", web::get().to(metrics))
                .route("/health", web::get().to(health))
                .route("/status", web::get().to(status))
                .route("/herd", web::get().to(herd))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .max_connections(MAX_CONNECTIONS)
        .client_request_timeout(REQUEST_TIMEOUT)
        .listen(listener)?
        .run();
        // The first poll starts the acceptor and the worker; from then on they run on their
        // own threads, and this task only waits for the end.
        let (started_tx, started) = oneshot::channel();
        actix_rt::spawn(async move {
            let mut server = std::pin::pin!(server);
            let first = futures::poll!(server.as_mut());
            let outcome = match &first {
                Poll::Ready(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
                _ => Ok(()),
            };
            let _ = started_tx.send(outcome);
            if first.is_pending() {
                if let Err(e) = server.await {
                    log::error!("admin listener stopped: {e}");
                }
            }
        });
        started
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the admin listener did not start")))?;
        let sampler = Arc::clone(&state);
        actix_rt::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            loop {
                every.tick().await;
                sampler.rates.sample(sampler.sample());
            }
        });
        Ok(Admin { state, addr })
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it reads, for the wiring to update.
    pub(crate) fn state(&self) -> &AdminState {
        &self.state
    }
}

/// A 403 for a request to a loopback listener that names another host (see
/// [`auth::is_loopback_host`]), unless `req` may be answered.
fn misaddressed(state: &AdminState, req: &HttpRequest) -> Option<HttpResponse> {
    let host = req.headers().get(header::HOST)?;
    if state.guarded || auth::is_loopback_host(host.as_bytes()) {
        return None;
    }
    Some(HttpResponse::Forbidden().body(
        "this admin listener is on loopback: it answers requests for localhost or a \
         loopback address only\n",
    ))
}

/// A 403 for a request that names another host, or a 401 asking for the secret, unless
/// `req` may be answered.
fn denied(state: &AdminState, req: &HttpRequest) -> Option<HttpResponse> {
    if let Some(misaddressed) = misaddressed(state, req) {
        return Some(misaddressed);
    }
    let secret = match (&state.secret, state.guarded) {
        (Some(secret), true) => secret,
        _ => return None,
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if auth::carries_secret(given, secret.as_bytes()) {
        return None;
    }
    Some(
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="herd admin""#))
            .body("this admin listener is off loopback: send the herd's secret\n"),
    )
}

fn no_store() -> (header::HeaderName, &'static str) {
    (header::CACHE_CONTROL, "no-store")
}

async fn live_page(state: Data<AdminState>, req: HttpRequest) -> HttpResponse {
    if let Some(denied) = denied(&state, &req) {
        return denied;
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(no_store())
        .body(page::PAGE)
}

async fn metrics(state: Data<AdminState>, req: HttpRequest) -> HttpResponse {
    if let Some(denied) = denied(&state, &req) {
        return denied;
    }
    match state.scrape().await {
        Ok(text) => HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .insert_header(no_store())
            .body(text),
        Err(_) => HttpResponse::InternalServerError().body("cannot encode the metrics\n"),
    }
}

/// Open without credentials: a load balancer probes it so.
async fn health(state: Data<AdminState>, req: HttpRequest) -> HttpResponse {
    if let Some(misaddressed) = misaddressed(&state, &req) {
        return misaddressed;
    }
    let health = state.health();
    let code = if health.is_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(code)
        .insert_header(no_store())
        .json(&health)
}

async fn status(state: Data<AdminState>, req: HttpRequest) -> HttpResponse {
    if let Some(denied) = denied(&state, &req) {
        return denied;
    }
    HttpResponse::Ok()
        .insert_header(no_store())
        .json(state.status().await)
}

async fn herd(
    state: Data<AdminState>,
    client: Data<StatusClient>,
    req: HttpRequest,
) -> HttpResponse {
    if let Some(denied) = denied(&state, &req) {
        return denied;
    }
    HttpResponse::Ok()
        .insert_header(no_store())
        .json(page::herd_view(&state, &client).await)
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .body("not found: the admin listener serves GET /, /metrics, /health, /status and /herd\n")
}
