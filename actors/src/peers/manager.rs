//! PeerManager: owns one supervised PeerLink per neighbour and fans floods out to them.

use std::sync::Arc;

use actix::prelude::*;
use futures::future::join_all;

use super::link::{LinkSettings, LinkTarget, Nudge, PeerLink, Push};
use crate::log::EventLog;
use crate::protocol::Record;
use crate::store::LocationStore;

/// One neighbour's link, as the manager reaches it.
pub struct LinkHandle {
    pub neighbour: Arc<str>,
    pub push: Recipient<Push>,
    pub nudge: Recipient<Nudge>,
}

#[derive(Default)]
pub struct PeerManager {
    links: Vec<LinkHandle>,
}

impl PeerManager {
    /// A manager over links already started (tests hand it stand-ins).
    pub fn with_links(links: Vec<LinkHandle>) -> Self {
        PeerManager { links }
    }

    /// Starts a supervised link to each neighbour.
    pub fn start_links(
        targets: Vec<LinkTarget>,
        settings: &LinkSettings,
        store: &Addr<LocationStore>,
        log: &EventLog,
    ) -> Self {
        let links = targets
            .into_iter()
            .map(|target| {
                let neighbour = target.neighbour.clone();
                let (settings, store, log) = (settings.clone(), store.clone(), log.clone());
                let addr = Supervisor::start(move |_| PeerLink::new(target, settings, store, log));
                LinkHandle {
                    neighbour,
                    push: addr.clone().recipient(),
                    nudge: addr.recipient(),
                }
            })
            .collect();
        PeerManager { links }
    }
}

impl Actor for PeerManager {
    type Context = Context<Self>;
}

/// Request: send a record that is new here to every neighbour but the one it came from.
/// Response: once every link has queued it, so a client's AT reply leaves after its flood.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Flood {
    pub record: Record,
    pub except: Option<Arc<str>>,
}

impl Handler<Flood> for PeerManager {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, flood: Flood, _: &mut Context<Self>) -> ResponseFuture<()> {
        let line = flood.record.at_line_shared();
        let sends: Vec<_> = self
            .links
            .iter()
            .filter(|l| flood.except.as_ref() != Some(&l.neighbour))
            .map(|l| l.push.send(Push(line.clone())))
            .collect();
        Box::pin(async move {
            join_all(sends).await;
        })
    }
}

/// Request: `neighbour` has just dialled us, so its own link back is worth dialling now.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DialedIn(pub Arc<str>);

impl Handler<DialedIn> for PeerManager {
    type Result = ();

    fn handle(&mut self, DialedIn(name): DialedIn, _: &mut Context<Self>) {
        for link in self.links.iter().filter(|l| l.neighbour == name) {
            link.nudge.do_send(Nudge);
        }
    }
}
