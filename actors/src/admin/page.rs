//! The live picture: `GET /` serves one self-contained page (`page.html`: no external
//! assets, no build step) that draws the herd as a graph and redraws it every second from
//! `GET /herd`, which this server answers by asking every server of the config for its
//! `/status` through its admin address, with a short time-out each.
//!
//! ```text
//! {"from":"Hill","servers":[{"name":"Campbell","admin":"127.0.0.1:12103",
//!   "neighbours":["Singleton","Smith"],"status":{...},"error":null}, ...]}
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::status::Status;
use super::AdminState;

/// The page, as served.
pub(crate) const PAGE: &str = include_str!("page.html");

/// How long a server's `/status` may take before the page shows it as not answering.
const PEER_TIMEOUT: Duration = Duration::from_millis(500);

/// Every server of the herd, as `GET /herd` answers.
#[derive(Debug, Serialize)]
pub(crate) struct HerdView {
    /// The server that gathered it.
    from: String,
    servers: Vec<MemberView>,
}

/// One server: its place in the graph, and its status or why there is none.
#[derive(Debug, Serialize)]
struct MemberView {
    name: String,
    admin: Option<String>,
    neighbours: Vec<String>,
    status: Option<Status>,
    error: Option<String>,
}

/// The client one admin worker asks the other servers with, sending `authorization` (the
/// herd's secret) if there is one.
pub(crate) fn peer_client(authorization: Option<String>) -> StatusClient {
    StatusClient::new(PEER_TIMEOUT, authorization)
}

/// Every server's status, this one's from itself, the others' at once over HTTP.
pub(crate) async fn herd_view(state: &AdminState, client: &StatusClient) -> HerdView {
    let members = state.herd.iter().map(|member| async move {
        let status = if member.name == state.name {
            Ok(state.status().await)
        } else {
            match member.admin {
                Some(addr) => client.fetch(addr).await,
                None => Err("no admin address in the config".to_owned()),
            }
        };
        let (status, error) = match status {
            Ok(status) => (Some(status), None),
            Err(e) => (None, Some(e)),
        };
        MemberView {
            name: member.name.clone(),
            admin: member.admin.map(|a| a.to_string()),
            neighbours: member.neighbours.clone(),
            status,
            error,
        }
    });
    HerdView {
        from: state.name.clone(),
        servers: futures::future::join_all(members).await,
    }
}

/// Asks admin listeners for their `/status`: the live page's `GET /herd` and `herd status`
/// both ask with it. Make it and use it on an actix system: its HTTP client is awc's.
#[derive(Clone)]
pub struct StatusClient {
    http: awc::Client,
    /// The `Authorization` header each ask sends: it carries the herd's secret.
    authorization: Option<String>,
}

impl StatusClient {
    /// A client whose every ask has its answer within `timeout`, or fails; each ask sends
    /// `authorization` (the herd's, from
    /// [`Settings::admin_authorization`](crate::settings::Settings::admin_authorization)) as
    /// its `Authorization` header.
    pub fn new(timeout: Duration, authorization: Option<String>) -> StatusClient {
        // awc's connector needs a process-wide rustls crypto provider, even for plain HTTP;
        // installing it fails harmlessly when one already is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        StatusClient {
            http: awc::Client::builder().timeout(timeout).finish(),
            authorization,
        }
    }

    /// `GET http://ADDR/status`: the server's status, or why there is none, naming `addr`.
    pub async fn fetch(&self, addr: SocketAddr) -> Result<Status, String> {
        let mut request = self.http.get(format!("http://{addr}/status"));
        if let Some(authorization) = &self.authorization {
            request = request.insert_header(("Authorization", authorization.as_str()));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("no answer from {addr}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "{addr} answered HTTP {}",
                response.status().as_u16()
            ));
        }
        response
            .json::<Status>()
            .limit(1 << 20)
            .await
            .map_err(|e| format!("{addr} sent no status: {e}"))
    }
}

/// Shows neither the client nor the header: the header carries the secret.
impl fmt::Debug for StatusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusClient { .. }")
    }
}
