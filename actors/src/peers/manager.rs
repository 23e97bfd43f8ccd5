//! PeerManager: owns this server's outbound link to each neighbour, fans floods out to
//! them, and starts an [`InboundPeer`] for each link a neighbour dials in.
//!
//! Each link dials its neighbour, proves who it is, then sends `SYNC`, reads the neighbour's
//! digest and sends it every record it lacks or holds older (anti-entropy). From then on it
//! carries this server's floods. When a link fails the manager drops the connection and
//! dials again after an exponential, jittered backoff; a neighbour that dials us makes the
//! waiting link dial at once. Records only ever travel from dialler to listener: each server
//! floods over the links it dialled, so nothing that a listener says can change the
//! dialler's table.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use bytes::BytesMut;
use futures::stream::{self, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

use super::error::LinkError;
use super::handshake::{self, Connected, LinkRead, LinkTarget, LinkWrite, PeerPolicy};
use super::inbound::{DialedIn, InboundDeps, InboundPeer};
use super::link::{Link, LinkSettings, LinkState, UpLink};
use super::records::{Missing, Records};
use super::tls::{PeerCertificate, ServerRead, ServerWrite};
use super::wire;
use crate::codec::{LineCodec, LineError, PeerInput, PeerLines};
use crate::event_log::EventLog;
use crate::metrics::PeerMetrics;
use crate::outbox::Outbox;
use crate::protocol::Record;

/// The outbound links of one server, and the door for its inbound ones.
pub(crate) struct PeerManager {
    me: Arc<str>,
    links: Vec<Link>,
    settings: LinkSettings,
    records: Records,
    log: EventLog,
    /// What each inbound peer is started with.
    inbound: Rc<InboundDeps>,
}

impl PeerManager {
    /// A manager with a link to each of `targets`; the links dial once it is started.
    pub(crate) fn new(
        me: Arc<str>,
        targets: Vec<LinkTarget>,
        policy: PeerPolicy,
        settings: LinkSettings,
        records: Records,
        log: EventLog,
    ) -> Self {
        PeerManager {
            me,
            links: targets
                .into_iter()
                .map(|target| Link::new(target, &settings))
                .collect(),
            inbound: Rc::new(InboundDeps {
                policy,
                records: records.clone(),
                log: log.clone(),
                settings: settings.clone(),
                metrics: PeerMetrics::default(),
            }),
            settings,
            records,
            log,
        }
    }

    /// The manager, with each link (and each inbound link) counting into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: PeerMetrics) -> Self {
        for link in &mut self.links {
            link.metrics = metrics.link(link.neighbour());
        }
        // Nothing else holds the inbound deps until the manager starts.
        if let Some(inbound) = Rc::get_mut(&mut self.inbound) {
            inbound.metrics = metrics;
        }
        self
    }

    /// Dials link `i` now.
    fn dial(&mut self, i: usize, ctx: &mut Context<Self>) {
        let link = &mut self.links[i];
        if let LinkState::Waiting { timer } = &link.state {
            ctx.cancel_future(*timer);
        }
        link.generation += 1;
        link.state = LinkState::Dialling;
        let generation = link.generation;
        let target = Arc::clone(&link.target);
        let limit = self.settings.handshake_timeout;
        let dial = async move { handshake::dial(&target, limit).await };
        ctx.spawn(dial.into_actor(self).map(move |res, act, ctx| match res {
            Ok(connected) => act.link_connected(i, generation, connected, ctx),
            Err(e) => act.link_failed(i, generation, &e, ctx),
        }));
    }

    /// Link `i` passed its handshake: it starts queueing floods, and syncs.
    fn link_connected(
        &mut self,
        i: usize,
        generation: u64,
        Connected { read, write }: Connected,
        ctx: &mut Context<Self>,
    ) {
        if !self.links[i].is_current(generation) {
            return;
        }
        let queue = Outbox::new(self.settings.max_queued);
        // Floods are queued from now on, so nothing that arrives during the sync is missed.
        if let Err(overflow) = queue.push_line(wire::SYNC.as_bytes()) {
            self.link_failed(
                i,
                generation,
                &LinkError::Write(std::io::Error::other(overflow)),
                ctx,
            );
            return;
        }
        let io = [
            self.spawn_reader(i, generation, read, ctx),
            self.spawn_writer(i, generation, queue.clone(), write, ctx),
        ];
        let link = &mut self.links[i];
        link.backoff.reset();
        link.since = SystemTime::now();
        link.metrics.link(true);
        link.state = LinkState::Up(UpLink {
            queue,
            digest: Some(Default::default()),
            io,
            last_heard: Instant::now(),
        });
        self.log.peer_up(link.neighbour());
    }

    /// The neighbour's lines, ending with `None` when it closes.
    fn spawn_reader(
        &mut self,
        i: usize,
        generation: u64,
        read: FramedRead<LinkRead, LineCodec>,
        ctx: &mut Context<Self>,
    ) -> SpawnHandle {
        let lines = PeerLines::new(read, wire::MAX_LINE)
            .map(Some)
            .chain(stream::once(async { None }))
            .map(move |line| LinkInput {
                link: i,
                generation,
                line,
            });
        ctx.add_stream(lines)
    }

    /// Drains the link's queue into the connection; its end is the link's end.
    fn spawn_writer(
        &mut self,
        i: usize,
        generation: u64,
        queue: Outbox,
        write: LinkWrite,
        ctx: &mut Context<Self>,
    ) -> SpawnHandle {
        let writer = queue.drain_into(write);
        ctx.spawn(writer.into_actor(self).map(move |res, act, ctx| {
            let e = match res {
                Ok(()) => LinkError::Closed,
                Err(e) => LinkError::Write(e),
            };
            act.link_failed(i, generation, &e, ctx);
        }))
    }

    /// A line from the neighbour on link `i`: its digest while the link syncs, then
    /// answers to our heartbeats.
    fn link_line(&mut self, i: usize, generation: u64, line: &[u8], ctx: &mut Context<Self>) {
        let LinkState::Up(up) = &mut self.links[i].state else {
            return;
        };
        up.last_heard = Instant::now();
        let text = std::str::from_utf8(line).unwrap_or("");
        if text == wire::PONG {
            // Heard; a PONG may come in the middle of the digest, for a PING sent before it.
            return;
        }
        let Some(digest) = &mut up.digest else {
            let neighbour = self.links[i].neighbour();
            log::debug!("{} -> {neighbour}: ignored {text:?}", self.me);
            return;
        };
        if text != wire::DIGEST_END {
            match wire::parse_digest_line(text) {
                Some((client, fingerprint)) => {
                    digest.insert(client.into(), fingerprint);
                }
                None => {
                    let e = LinkError::BadDigest(text.into());
                    self.link_failed(i, generation, &e, ctx);
                }
            }
            return;
        }
        let digest = up.digest.take().unwrap_or_default();
        self.records
            .missing
            .send(Missing(digest))
            .into_actor(self)
            .map(move |lines, act, ctx| match lines {
                Ok(lines) => {
                    let link = &act.links[i];
                    if let (true, Some(queue)) = (link.is_current(generation), link.queue()) {
                        // A sync sends a copy of (part of) the table: bounded by what we
                        // hold, and it must go whole, or a large table could never sync.
                        for line in lines {
                            queue.push_line_uncapped(line.as_bytes());
                        }
                    }
                }
                Err(_) => act.link_failed(i, generation, &LinkError::StoreGone, ctx),
            })
            .spawn(ctx);
    }

    /// Link `i` failed to come up or went down: drop its connection and dial again later.
    fn link_failed(&mut self, i: usize, generation: u64, e: &LinkError, ctx: &mut Context<Self>) {
        let link = &mut self.links[i];
        if !link.is_current(generation) {
            return;
        }
        match &link.state {
            LinkState::Up(up) => {
                for task in up.io {
                    ctx.cancel_future(task);
                }
                link.since = SystemTime::now();
                link.metrics.link(false);
                self.log.peer_down(link.neighbour(), &e.to_string());
            }
            LinkState::Dialling => log::debug!("{} -> {}: {e}", self.me, link.neighbour()),
            LinkState::Waiting { .. } => return,
        }
        link.last_error = Some(e.to_string());
        link.last_error_at = Some(SystemTime::now());
        let delay = link.backoff.next_delay();
        let timer = ctx.run_later(delay, move |act, ctx| act.dial(i, ctx));
        self.links[i].state = LinkState::Waiting { timer };
    }
}

impl PeerManager {
    /// Every heartbeat: gives up the links whose neighbour has been silent too long, and
    /// asks the others for a `PONG`.
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let limit = self.settings.silence_limit();
        for i in 0..self.links.len() {
            let link = &self.links[i];
            let LinkState::Up(up) = &link.state else {
                continue;
            };
            if up.last_heard.elapsed() > limit {
                let generation = link.generation;
                self.link_failed(i, generation, &LinkError::Silent(limit), ctx);
            } else {
                // On overflow the writer ends with the error and the link drops.
                let _ = up.queue.push_line(wire::PING.as_bytes());
            }
        }
    }
}

impl Actor for PeerManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.links.len() {
            self.dial(i, ctx);
        }
        ctx.run_interval(self.settings.heartbeat, |act, ctx| act.heartbeat(ctx));
    }
}

/// A line (or the end) of link `link`'s connection number `generation`.
struct LinkInput {
    link: usize,
    generation: u64,
    line: Option<Result<PeerInput, LineError>>,
}

impl StreamHandler<LinkInput> for PeerManager {
    fn handle(&mut self, input: LinkInput, ctx: &mut Context<Self>) {
        let LinkInput {
            link,
            generation,
            line,
        } = input;
        if !self.links[link].is_current(generation) {
            return;
        }
        match line {
            Some(Ok(PeerInput::Line(line))) => self.link_line(link, generation, &line, ctx),
            Some(Ok(PeerInput::Skipped(n))) => self.log.note(&format!(
                "ignored {n} over-long line(s) from peer {}",
                self.links[link].neighbour()
            )),
            Some(Err(e)) => self.link_failed(link, generation, &e.into(), ctx),
            None => self.link_failed(link, generation, &LinkError::Closed, ctx),
        }
    }

    /// Links' readers end one by one; the manager goes on.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

/// Request: send a record that is new here to every neighbour that does not have it yet.
/// Response: once it is queued on every link that takes it (the handler queues it itself),
/// so a client's AT reply leaves after its flood.
///
/// A flood carries the names of the servers that have the record or are being sent it
/// (`seen`); a server sends it only to neighbours outside that set whose links are up, and
/// adds itself and them to it. On the default herd that is 5 or 6 peer messages per check-in
/// instead of 8. A neighbour left out because a link dropped just then is not lost: the link
/// syncs everything the neighbour lacks when it comes back.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Flood {
    pub(crate) record: Record,
    /// The neighbour it came from, if any.
    pub(crate) from: Option<Arc<str>>,
    pub(crate) seen: Vec<Arc<str>>,
}

impl Handler<Flood> for PeerManager {
    type Result = ();

    fn handle(&mut self, flood: Flood, _: &mut Context<Self>) {
        let Flood {
            record,
            from,
            mut seen,
        } = flood;
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
        for name in std::iter::once(&self.me).chain(from.iter()) {
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
            LinkState::Up(up) => {
                // On overflow the writer ends with the error and the link drops.
                let _ = up.queue.push_line(wire::PING.as_bytes());
            }
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
    pub(crate) conn: HandedOver,
}

/// The connection a [`Handoff`] hands over: the rest of its input, with whatever was read
/// past the hello, and its sending side.
pub(crate) enum HandedOver {
    /// Plain TCP, found by a client session.
    Plain {
        read: FramedRead<OwnedReadHalf, LineCodec>,
        write: OwnedWriteHalf,
    },
    /// TLS, and the certificate the dialler showed, which chains to the herd's CA.
    Tls {
        read: ServerRead,
        write: ServerWrite,
        cert: PeerCertificate,
    },
}

impl Handler<Handoff> for PeerManager {
    type Result = ();

    fn handle(&mut self, Handoff { addr, hello, conn }: Handoff, ctx: &mut Context<Self>) {
        let (deps, dialled_in) = (Rc::clone(&self.inbound), ctx.address().recipient());
        match conn {
            HandedOver::Plain { read, write } => {
                InboundPeer::start(deps, dialled_in, addr, &hello, (read, write), None);
            }
            HandedOver::Tls { read, write, cert } => {
                InboundPeer::start(deps, dialled_in, addr, &hello, (read, write), Some(cert));
            }
        }
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
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_at: Option<SystemTime>,
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
                    last_error_at: l.last_error_at,
                    queued_bytes: l.queue().map_or(0, Outbox::pending),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
