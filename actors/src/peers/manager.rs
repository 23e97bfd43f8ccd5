//! PeerManager: owns this server's outbound link to each neighbour, fans floods out to
//! them, and starts an [`InboundPeer`] for each link a neighbour dials in.
//!
//! Each link dials its neighbour, proves who it is, then reconciles the two stores (range
//! fingerprints, [`super::recon`]) and streams the neighbour every record it lacks or holds
//! otherwise, as the socket drains; floods go out alongside from the moment the link is up. When a link fails the manager drops the connection and
//! dials again after an exponential, jittered backoff; a neighbour that dials us makes the
//! waiting link dial at once. Records only ever travel from dialler to listener: each server
//! floods over the links it dialled, so nothing that a listener says can change the
//! dialler's table.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use bytes::BytesMut;

use super::handshake::{InboundLines, InboundWrite, LinkTarget, PeerPolicy};
use super::inbound::{DialedIn, InboundDeps, InboundPeer};
use super::link::{Link, LinkSettings, LinkState};
use super::records::Records;
use super::spread::Spread;
use super::tls::PeerCertificate;
use super::wire;
use crate::event_log::EventLog;
use crate::metrics::PeerMetrics;
use crate::outbox::Outbox;

/// The outbound links of one server, and the door for its inbound ones.
pub(crate) struct PeerManager {
    links: Vec<Link>,
    /// This server's name, settings, store and log, for its links and for every inbound
    /// peer it starts.
    deps: Rc<InboundDeps>,
}

impl PeerManager {
    /// A manager with a link to each of `targets`, each link (and each inbound link)
    /// counting into `metrics`; the links dial once it is started.
    pub(crate) fn new(
        targets: Vec<LinkTarget>,
        policy: PeerPolicy,
        settings: LinkSettings,
        records: Records,
        log: EventLog,
        metrics: PeerMetrics,
    ) -> Self {
        let links = targets
            .into_iter()
            .map(|target| {
                let link_metrics = metrics.link(&target.neighbour);
                Link::new(target, &settings, link_metrics)
            })
            .collect();
        PeerManager {
            links,
            deps: Rc::new(InboundDeps {
                policy,
                records,
                log,
                settings,
                metrics,
            }),
        }
    }
}

impl Actor for PeerManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.links.len() {
            self.dial(i, ctx);
        }
        ctx.run_interval(self.deps.settings.heartbeat, |act, ctx| act.heartbeat(ctx));
    }
}

/// A record that is new here goes to every neighbour that does not have it yet. The
/// response comes once it is queued on every link that takes it (the handler queues it
/// itself), so a client's AT reply leaves after its flood.
impl Handler<Spread> for PeerManager {
    type Result = ();

    fn handle(&mut self, spread: Spread, _: &mut Context<Self>) {
        let Spread {
            record,
            from,
            mut seen,
        } = spread;
        let targets: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| {
                from.as_ref() != Some(l.neighbour())
                    && !seen.contains(l.neighbour())
                    && l.queue().is_some()
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        for name in std::iter::once(&self.deps.policy.me).chain(from.iter()) {
            if !seen.contains(name) {
                seen.push(name.clone());
            }
        }
        seen.extend(targets.iter().map(|l| l.neighbour().clone()));
        let line = wire::flood_line(&seen, record.at_line());
        for link in targets {
            if let Some(queue) = link.queue() {
                // On overflow the queue ends its writer with the error, and the link drops
                // and resyncs: nothing to do here.
                let _ = queue.push_line(line.as_bytes());
                link.metrics.flood_sent();
            }
        }
    }
}

impl Handler<DialedIn> for PeerManager {
    type Result = ();

    /// The neighbour is up: if our link to it waits to retry, dial now. If our link is up,
    /// send a `PING`: a neighbour that dials in afresh has likely restarted, and if its host
    /// went down without closing our connection, writing is what brings the reset that tells
    /// us, so the link redials and syncs the neighbour at once.
    fn handle(&mut self, DialedIn(name): DialedIn, ctx: &mut Context<Self>) {
        let Some(i) = self.links.iter().position(|l| *l.neighbour() == name) else {
            return;
        };
        match &self.links[i].state {
            LinkState::Waiting { .. } => self.dial(i, ctx),
            LinkState::Up(up) => up.queue.push_urgent(wire::PING.as_bytes()),
            LinkState::Dialling => {}
        }
    }
}

/// Request: take over a connection whose first line, `hello`, asks to be a peer link.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Handoff {
    pub(crate) addr: SocketAddr,
    pub(crate) hello: BytesMut,
    /// The rest of its input, with whatever was read past the hello.
    pub(crate) lines: InboundLines,
    /// Its sending side.
    pub(crate) write: InboundWrite,
    /// The certificate the dialler showed, if it came over TLS.
    pub(crate) cert: Option<PeerCertificate>,
}

impl Handler<Handoff> for PeerManager {
    type Result = ();

    fn handle(&mut self, handoff: Handoff, ctx: &mut Context<Self>) {
        let Handoff {
            addr,
            hello,
            lines,
            write,
            cert,
        } = handoff;
        let (deps, dialled_in) = (Rc::clone(&self.deps), ctx.address().recipient());
        InboundPeer::start(deps, dialled_in, addr, &hello, lines, write, cert);
    }
}

/// Request: how each outbound link is doing.
#[derive(Message, Debug)]
#[rtype(result = "Vec<LinkStatus>")]
pub(crate) struct LinkStatuses;

/// One outbound link, as [`LinkStatuses`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkStatus {
    pub(crate) neighbour: Arc<str>,
    pub(crate) up: bool,
    /// When it last came up or went down.
    pub(crate) since: SystemTime,
    /// Why it last went down or failed to come up, and when.
    pub(crate) last_error: Option<(String, SystemTime)>,
    /// Bytes queued for the neighbour and not yet written.
    pub(crate) queued_bytes: usize,
}

impl Handler<LinkStatuses> for PeerManager {
    type Result = MessageResult<LinkStatuses>;

    fn handle(&mut self, _: LinkStatuses, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.links
                .iter()
                .map(|l| LinkStatus {
                    neighbour: l.neighbour().clone(),
                    up: l.queue().is_some(),
                    since: l.since,
                    last_error: l.last_error.clone(),
                    queued_bytes: l.queue().map_or(0, Outbox::pending),
                })
                .collect(),
        )
    }
}

mod links;
#[cfg(test)]
mod tests;
