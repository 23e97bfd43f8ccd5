//! The listening side of a peer link: one actor per connection a neighbour dialled.
//!
//! The door in front of every plain connection reads its first line; when that is a
//! `HERD-PEER` hello, the door hands the connection (and whatever it has read past the
//! hello) to the [`PeerManager`](super::manager::PeerManager), which starts an
//! [`InboundPeer`] on it. On a TLS herd a neighbour's connection opens with a TLS handshake
//! instead, and [`super::door::take_peer`] hands it over once the hello has come inside TLS,
//! with the certificate the hello's name is checked against. The inbound peer finishes the
//! handshake, then takes the dialler's lines: reconciliation queries are answered from the
//! store's range summaries, records are merged into the store, `PING` is answered with
//! `PONG` (in the outbox's urgent lane, ahead of any answer). It sends no records:
//! records travel from dialler to listener only, so each server floods over the links it
//! dialled.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::error::Refusal;
use super::handshake::{Greeting, InboundLines, InboundWrite, PeerPolicy};
use super::link::LinkSettings;
use super::recon::Query;
use super::records::{Reconcile, Records};
use super::spread::Spread;
use super::tls::PeerCertificate;
use super::wire;
use crate::codec::{LineError, PeerInput};
use crate::event_log::{Door, EventLog};
use crate::metrics::{LinkMetrics, PeerMetrics};
use crate::outbox::Outbox;
use crate::protocol::Record;

/// Request: `neighbour` has just dialled us and passed the handshake, so its server is up
/// and our own link to it is worth dialling now. Sent to whoever keeps this server's links.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct DialedIn(pub(crate) Arc<str>);

/// What every inbound peer of one server uses, and the manager that starts them.
pub(crate) struct InboundDeps {
    pub(crate) policy: PeerPolicy,
    pub(crate) records: Records,
    pub(crate) log: EventLog,
    /// The queue cap, the handshake time-out and the heartbeat this server's links keep.
    pub(crate) settings: LinkSettings,
    /// Where each neighbour's floods are counted.
    pub(crate) metrics: PeerMetrics,
}

/// How far the handshake has come.
enum Stage {
    /// Sent a challenge; the next line must prove the dialler holds the herd's secret.
    Challenged { from: Arc<str>, nonce: String },
    /// An authenticated link from this neighbour.
    Peer(Arc<str>),
    /// Refused: the refusal is being sent, then the connection closes.
    Refused,
}

/// One connection a neighbour dialled.
pub(crate) struct InboundPeer {
    deps: Rc<InboundDeps>,
    /// Told when a neighbour passes the handshake.
    dialled_in: Recipient<DialedIn>,
    addr: SocketAddr,
    out: Outbox,
    stage: Stage,
    /// When the dialler last said anything: its link sends `PING` every heartbeat.
    last_heard: Instant,
    /// The dialler's link metrics, once it has proved who it is.
    metrics: LinkMetrics,
}

impl InboundPeer {
    /// Takes over a connection whose first line was `hello`; `lines` holds whatever came
    /// after it. `cert` is what the dialler showed, if the connection is TLS.
    pub(crate) fn start(
        deps: Rc<InboundDeps>,
        dialled_in: Recipient<DialedIn>,
        addr: SocketAddr,
        hello: &[u8],
        lines: InboundLines,
        write: InboundWrite,
        cert: Option<PeerCertificate>,
    ) -> Addr<InboundPeer> {
        let hello = String::from_utf8_lossy(hello).into_owned();
        InboundPeer::create(move |ctx| {
            let out = Outbox::for_link(deps.settings.max_queued);
            ctx.add_stream(lines);
            let settings = &deps.settings;
            ctx.run_later(settings.handshake_timeout, |act, _| {
                act.handshake_timed_out()
            });
            ctx.run_interval(settings.heartbeat, |act, ctx| act.check_silence(ctx));
            ctx.spawn(
                fut::wrap_future::<_, Self>(out.clone().drain_into(write)).map(|res, act, ctx| {
                    if let Err(e) = res {
                        act.deps
                            .log
                            .dropped(act.addr, &format!("write failed: {e}"));
                    }
                    ctx.stop();
                }),
            );
            let mut peer = InboundPeer {
                deps,
                dialled_in,
                addr,
                out,
                stage: Stage::Refused,
                last_heard: Instant::now(),
                metrics: LinkMetrics::default(),
            };
            match peer.deps.policy.answer_hello(&hello, cert.as_ref()) {
                Ok(Greeting::Welcome(from)) => peer.welcome(from),
                Ok(Greeting::Challenge { from, nonce }) => {
                    peer.send_line(&format!("{} {nonce}", wire::CHALLENGE));
                    peer.stage = Stage::Challenged { from, nonce };
                }
                Err(refusal) => peer.refuse(&refusal),
            }
            peer
        })
    }

    /// A dialler that has not proved itself within the handshake time-out is refused, so
    /// an unanswered challenge holds nothing for long.
    fn handshake_timed_out(&mut self) {
        if matches!(self.stage, Stage::Challenged { .. }) {
            let limit = self.deps.settings.handshake_timeout;
            self.refuse(&Refusal::NoProof(limit));
        }
    }

    /// A link whose dialler has said nothing for several heartbeats is gone or hung: close
    /// it, and let the dialler's own link heal when it comes back.
    fn check_silence(&mut self, ctx: &mut Context<Self>) {
        let limit = self.deps.settings.silence_limit();
        if let (Stage::Peer(from), true) = (&self.stage, self.last_heard.elapsed() > limit) {
            self.deps.log.note(&format!(
                "peer {from} inbound from {} silent for {limit:?}: closing it",
                self.addr
            ));
            ctx.stop();
        }
    }

    fn welcome(&mut self, from: Arc<str>) {
        self.send_line(&format!("{} {}", wire::WELCOME, self.deps.policy.me));
        self.deps.log.peer_in_up(&from, self.addr);
        self.dialled_in.do_send(DialedIn(from.clone()));
        self.metrics = self.deps.metrics.link(&from);
        self.out.count_sent(self.metrics.sent_bytes());
        self.stage = Stage::Peer(from);
    }

    fn refuse(&mut self, refusal: &Refusal) {
        self.deps
            .log
            .refused(self.addr, Door::PeerHandshake, &refusal.to_string());
        self.send_line(&format!("{} {refusal}", wire::REFUSED));
        self.stage = Stage::Refused;
        self.out.close();
    }

    /// A line from an authenticated neighbour: a record to merge, a reconciliation query,
    /// or a heartbeat.
    fn peer_line(&mut self, from: Arc<str>, line: &[u8], ctx: &mut Context<Self>) {
        let text = std::str::from_utf8(line).unwrap_or("");
        if text == wire::PING {
            self.send_line(wire::PONG);
            return;
        }
        if let Some(query) = Query::parse(text) {
            self.deps
                .records
                .reconcile
                .send(Reconcile(query))
                .into_actor(self)
                .map(|answer, act, _| {
                    // The dialler keeps a few queries unanswered at most, so the answers
                    // stay far under the cap; past it the dialler is not reading, and the
                    // overflow ends the connection.
                    if let Ok(Some(answer)) = answer {
                        let _ = act.out.push_line(answer.line().as_bytes());
                    }
                })
                .spawn(ctx);
            return;
        }
        // A flood, or a bare AT line from a sync.
        let (seen, at_line) = match wire::parse_flood(text) {
            Some(flood) => {
                self.metrics.flood_received();
                flood
            }
            None => (Vec::new(), text),
        };
        match Record::parse_at_line(at_line) {
            Ok(record) => self.deps.records.merge.do_send(Spread {
                record,
                from: Some(from),
                seen,
            }),
            Err(e) => self.deps.log.note(&format!(
                "ignored a line from peer {from}: {e}: {}",
                String::from_utf8_lossy(line)
            )),
        }
    }

    /// A handshake line: urgent, like every control line, so it goes out before anything
    /// queued after it is taken (a `PONG` too is urgent, and must not pass the welcome).
    fn send_line(&mut self, line: &str) {
        self.deps.log.peer_sent(self.addr, line.as_bytes());
        self.out.push_urgent(line.as_bytes());
    }
}

impl Actor for InboundPeer {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Stage::Peer(from) = &self.stage {
            self.deps.log.peer_in_down(from, self.addr);
        }
    }
}

impl StreamHandler<Result<PeerInput, LineError>> for InboundPeer {
    fn handle(&mut self, item: Result<PeerInput, LineError>, ctx: &mut Context<Self>) {
        self.last_heard = Instant::now();
        let line = match item {
            Ok(PeerInput::Line(line)) => line,
            Ok(PeerInput::Skipped(n)) => {
                self.deps
                    .log
                    .note(&format!("ignored {n} over-long line(s) from {}", self.addr));
                return;
            }
            Err(e) => {
                self.deps
                    .log
                    .note(&format!("{}: input ended: {e}", self.addr));
                ctx.stop();
                return;
            }
        };
        // Reconciliation lines are many and say nothing to an operator; the link's summary
        // line says how the reconciliation went, on the dialler's side.
        if !Query::is_query(&line) {
            self.deps.log.peer_received(self.addr, &line);
        }
        match &self.stage {
            Stage::Challenged { from, nonce } => {
                let from = from.clone();
                let text = String::from_utf8_lossy(&line);
                match self.deps.policy.check_proof(&from, nonce, &text) {
                    Ok(()) => self.welcome(from),
                    Err(refusal) => self.refuse(&refusal),
                }
            }
            Stage::Peer(from) => {
                let from = from.clone();
                self.metrics.received_line(line.len());
                self.peer_line(from, &line, ctx);
            }
            Stage::Refused => {}
        }
    }

    /// The neighbour closed its side: nothing more will come, and it expects nothing.
    fn finished(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.stage, Stage::Refused) {
            // The refusal is still being written; the writer stops the actor.
            return;
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
