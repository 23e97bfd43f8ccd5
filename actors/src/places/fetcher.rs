//! The `PlacesFetcher` actor: answers places questions from the configured provider.
//!
//! One fetcher per server. Upstream calls run as futures of their own, so a slow provider
//! holds up neither the actor nor the other questions in flight; each ends within the
//! configured timeout with a reply in the Nearby Search shape, whatever happens upstream.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, ResponseFuture};

use super::{embedded, google, google_new, layout, NearbyQuery, PlacesSettings, Provider};

/// Request: the places in a circle, as the JSON text of a Nearby Search response in
/// Google's layout (see [`layout`]), without a trailing newline. Never fails: an upstream
/// failure is a reply with a non-OK `status` and an `error_message`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "String")]
pub struct Nearby(pub NearbyQuery);

/// Fetches places from the provider chosen in `herd.toml`.
pub struct PlacesFetcher {
    settings: Arc<PlacesSettings>,
    /// Built on first use inside the actor's runtime, as `awc::Client` must be; shared by
    /// every call so connections to Google are kept alive and reused.
    client: Option<awc::Client>,
}

impl PlacesFetcher {
    /// A fetcher for `settings`; start it with [`Actor::start`] inside an actix system.
    pub fn new(settings: PlacesSettings) -> Self {
        PlacesFetcher {
            settings: Arc::new(settings),
            client: None,
        }
    }

    fn client(&mut self) -> awc::Client {
        let timeout = self.settings.timeout;
        self.client
            .get_or_insert_with(|| super::upstream::client(timeout))
            .clone()
    }
}

impl Actor for PlacesFetcher {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        // Pay for parsing the data set at start-up, not on the first client's question.
        if self.settings.provider == Provider::Embedded {
            embedded::preload();
        }
    }
}

impl Handler<Nearby> for PlacesFetcher {
    type Result = ResponseFuture<String>;

    fn handle(&mut self, Nearby(q): Nearby, _ctx: &mut Self::Context) -> Self::Result {
        let settings = Arc::clone(&self.settings);
        match settings.provider {
            Provider::Embedded => {
                // Microseconds of work on an in-memory index: no reason to leave the actor.
                let text = layout::to_google_json(&embedded::nearby(&q));
                Box::pin(async move { text })
            }
            Provider::Google => {
                let client = self.client();
                Box::pin(async move {
                    layout::to_google_json(&google::nearby(&client, &settings, &q).await)
                })
            }
            Provider::GoogleNew => {
                let client = self.client();
                Box::pin(async move {
                    layout::to_google_json(&google_new::nearby(&client, &settings, &q).await)
                })
            }
        }
    }
}
