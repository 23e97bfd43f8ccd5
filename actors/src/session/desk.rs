//! What a WHATSAT finds, and the desk that finds it for a session on a worker thread.
//!
//! A WHATSAT needs the client's record from the store, then the places near it from the
//! places fetcher, both on the server's home thread. A session on the home thread asks them
//! in turn ([`find`]). A session on another worker thread asks the [`Desk`] instead, an actor
//! on the home thread that asks both there, where a message between two actors costs no
//! wake-up of another thread, and answers once: the WHATSAT crosses between threads once
//! each way, not twice.

use std::sync::Arc;

use actix::prelude::*;

use crate::places::{Nearby, NearbyQuery, PlacesFetcher};
use crate::protocol::{Radius, Record};
use crate::store::{LocationStore, Lookup};

/// What a WHATSAT finds: `None` for a client the herd has not seen (or a store that has
/// stopped); else the client's record, and the places near it (`None` if the places
/// fetcher has stopped).
pub(crate) type Found = Option<(Record, Option<Arc<str>>)>;

/// Request: what a WHATSAT for `client` within `radius`, at most `bound` places, finds.
#[derive(Message, Debug)]
#[rtype(result = "Found")]
pub(crate) struct Whereabouts {
    pub(crate) client: Box<str>,
    pub(crate) radius: Radius,
    pub(crate) bound: u8,
}

/// Answers the WHATSATs of sessions on other threads, on the home thread.
pub(crate) struct Desk {
    store: Addr<LocationStore>,
    places: Addr<PlacesFetcher>,
}

impl Desk {
    pub(crate) fn new(store: Addr<LocationStore>, places: Addr<PlacesFetcher>) -> Self {
        Desk { store, places }
    }
}

impl Actor for Desk {
    type Context = Context<Self>;
}

impl Handler<Whereabouts> for Desk {
    type Result = ResponseFuture<Found>;

    fn handle(&mut self, ask: Whereabouts, _: &mut Context<Self>) -> Self::Result {
        let (store, places) = (self.store.clone(), self.places.clone());
        Box::pin(async move { find(&store, &places, ask).await })
    }
}

/// What `ask` finds: the client's record from `store`, then the places near it from
/// `places`.
pub(crate) async fn find(
    store: &Addr<LocationStore>,
    places: &Addr<PlacesFetcher>,
    ask: Whereabouts,
) -> Found {
    let Whereabouts {
        client,
        radius,
        bound,
    } = ask;
    let Ok(Some(record)) = store.send(Lookup(client)).await else {
        return None;
    };
    let location = record.location();
    let query = NearbyQuery {
        lat: location.lat,
        lng: location.lng,
        location_param: location.query_param(record.coordinates()),
        radius_m: radius.metres,
        radius_param: radius.metres_text,
        bound: usize::from(bound),
    };
    let json = places.send(Nearby(query)).await.ok();
    Some((record, json))
}
