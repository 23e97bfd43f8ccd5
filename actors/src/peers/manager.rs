//! PeerManager: owns one supervised PeerLink per neighbour and fans floods out to them.

use std::sync::Arc;

use super::link::{LinkSettings, LinkSlot, LinkTarget, Nudge, PeerLink};
use super::wire;
use crate::log::EventLog;
use crate::protocol::Record;
use crate::store::LocationStore;
use actix::prelude::*;

/// One neighbour's link, as the manager reaches it.
pub struct LinkHandle {
    pub neighbour: Arc<str>,
    pub nudge: Recipient<Nudge>,
    /// The link's outbox while it is up: floods are pushed straight into it, with no
    /// mailbox hop, so they are queued by the time a `Flood` is answered.
    pub slot: LinkSlot,
}

pub struct PeerManager {
    me: Arc<str>,
    links: Vec<LinkHandle>,
}

impl PeerManager {
    /// A manager over links already started (tests hand it stand-ins).
    pub fn with_links(me: Arc<str>, links: Vec<LinkHandle>) -> Self {
        PeerManager { me, links }
    }

    /// Starts a supervised link to each neighbour.
    pub fn start_links(
        me: Arc<str>,
        targets: Vec<LinkTarget>,
        settings: &LinkSettings,
        store: &Addr<LocationStore>,
        log: &EventLog,
    ) -> Self {
        let links = targets
            .into_iter()
            .map(|target| {
                let neighbour = target.neighbour.clone();
                let slot = LinkSlot::default();
                let (settings, store, log) = (settings.clone(), store.clone(), log.clone());
                let link_slot = slot.clone();
                let addr = Supervisor::start(move |_| {
                    PeerLink::new(target, settings, store, log, link_slot)
                });
                LinkHandle {
                    neighbour,
                    nudge: addr.recipient(),
                    slot,
                }
            })
            .collect();
        PeerManager { me, links }
    }
}

impl Actor for PeerManager {
    type Context = Context<Self>;
}

/// Request: send a record that is new here to every neighbour that does not have it yet.
/// Response: once every link has queued it (the handler queues it itself), so a client's AT
/// reply leaves after its flood.
///
/// A flood carries the names of the servers that have the record or are being sent it
/// (`seen`); a server sends it only to neighbours outside that set whose links are up, and
/// adds itself and them to it. On the default herd that is 5 or 6 peer messages per check-in
/// instead of 8. A neighbour left out because a link dropped just then is not lost: the link
/// syncs everything the neighbour lacks when it comes back.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Flood {
    pub record: Record,
    /// The neighbour it came from, if any.
    pub from: Option<Arc<str>>,
    pub seen: Vec<Arc<str>>,
}

impl Handler<Flood> for PeerManager {
    type Result = ();

    fn handle(&mut self, flood: Flood, _: &mut Context<Self>) {
        let Flood {
            record,
            from,
            mut seen,
        } = flood;
        let targets: Vec<&LinkHandle> = self
            .links
            .iter()
            .filter(|l| {
                from.as_ref() != Some(&l.neighbour)
                    && !seen.contains(&l.neighbour)
                    && l.slot.borrow().is_some()
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        for name in std::iter::once(&self.me).chain(from.iter()) {
            if !seen.contains(name) {
                seen.push(name.clone());
            }
        }
        seen.extend(targets.iter().map(|l| l.neighbour.clone()));
        let line = wire::flood_line(&seen, record.at_line());
        for link in targets {
            if let Some(out) = link.slot.borrow().as_ref() {
                // On overflow the outbox ends its writer with the error, and the link drops
                // and resyncs: nothing to do here.
                let _ = out.push_line(line.as_bytes());
            }
        }
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
