//! The Session actor: one per TCP connection.
//!
//! A session reads lines, turns each into a command and answers it. Commands run
//! concurrently (a WHATSAT may wait on the network while a later IAMAT does not), but the
//! replies leave in the order the lines arrived: each line takes a slot in [`ReplyQueue`]
//! and replies are written as the front slots fill.
//!
//! When the client half-closes, every line received is still answered before the session
//! shuts its own sending side and ends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::codec::{LineCodec, LineError};
use crate::outbox::Outbox;
use crate::peers::inbound::Answer;
use crate::peers::manager::DialedIn;
use crate::peers::wire;
use crate::places::{self, NearbyQuery};
use crate::protocol::{self, Command, Radius, Record, Timestamp};
use crate::server::Shared;
use crate::store::{CheckIn, Digest, Lookup, Merge};

/// Replies in arrival order, whatever order they are ready in.
#[derive(Debug, Default)]
pub struct ReplyQueue {
    /// Sequence number of the front slot.
    front: u64,
    slots: VecDeque<Option<Vec<u8>>>,
}

impl ReplyQueue {
    /// Takes the next slot; its reply will leave after every earlier one.
    pub fn reserve(&mut self) -> u64 {
        self.slots.push_back(None);
        self.front + self.slots.len() as u64 - 1
    }

    /// Fills slot `seq` and returns the replies now ready to leave, in order.
    pub fn fill(&mut self, seq: u64, reply: Vec<u8>) -> Vec<Vec<u8>> {
        if let Some(slot) = seq
            .checked_sub(self.front)
            .and_then(|i| self.slots.get_mut(usize::try_from(i).ok()?))
        {
            *slot = Some(reply);
        }
        let mut ready = Vec::new();
        while let Some(Some(_)) = self.slots.front() {
            if let Some(Some(reply)) = self.slots.pop_front() {
                ready.push(reply);
            }
            self.front += 1;
        }
        ready
    }

    /// Replies still awaited.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// What a connection is, as far as its lines have shown.
enum Mode {
    /// A client (every connection starts as one).
    Client,
    /// Sent a hello; its next line must prove it holds the herd's secret.
    Challenged { from: Arc<str>, nonce: String },
    /// An authenticated link from a neighbour: its lines are records and `SYNC`.
    Peer(Arc<str>),
    /// A failed handshake: the session closes, and ignores what else arrives.
    Refused,
}

/// One connection: a client, or the listening end of a neighbour's link.
pub struct Session {
    shared: Rc<Shared>,
    peer: SocketAddr,
    out: Outbox,
    replies: ReplyQueue,
    input_done: bool,
    mode: Mode,
    first_line: bool,
    /// Set when the server cut the connection (already logged as dropped).
    dropped: bool,
}

impl Session {
    /// Starts a session on an accepted connection.
    pub fn start(shared: Rc<Shared>, stream: TcpStream, peer: SocketAddr) -> Addr<Session> {
        let (read, write) = stream.into_split();
        Session::create(move |ctx| {
            let limits = &shared.limits;
            ctx.add_stream(FramedRead::with_capacity(
                read,
                LineCodec::new(limits.max_line),
                limits.read_buffer,
            ));
            let out = Outbox::new(limits.max_queued);
            // The session ends when its writer does: after a clean close or a failed write.
            ctx.spawn(
                fut::wrap_future::<_, Session>(out.clone().drain_into(write)).map(
                    |res, act, ctx| {
                        if let Err(e) = res {
                            act.drop_connection(&format!("write failed: {e}"), ctx);
                        }
                        ctx.stop();
                    },
                ),
            );
            shared.log.opened(peer);
            shared.connections.set(shared.connections.get() + 1);
            Session {
                shared,
                peer,
                out,
                replies: ReplyQueue::default(),
                input_done: false,
                mode: Mode::Client,
                first_line: true,
                dropped: false,
            }
        })
    }

    fn handle_line(&mut self, line: BytesMut, ctx: &mut Context<Self>) {
        self.shared.log.received(self.peer, &line);
        let first_line = std::mem::replace(&mut self.first_line, false);
        match &self.mode {
            Mode::Client if first_line && wire::is_hello(&line) => {
                let answer = self
                    .shared
                    .policy
                    .answer_hello(&String::from_utf8_lossy(&line));
                match answer {
                    Answer::Welcome(from) => self.become_peer(from, ctx),
                    Answer::Challenge { from, nonce } => {
                        self.send_peer_line(&format!("{} {nonce}", wire::CHALLENGE), ctx);
                        self.mode = Mode::Challenged { from, nonce };
                    }
                    Answer::Refuse(reason) => self.refuse(&reason, ctx),
                }
                return;
            }
            Mode::Client => {}
            Mode::Challenged { from, nonce } => {
                let from = from.clone();
                let text = String::from_utf8_lossy(&line);
                match self.shared.policy.check_proof(&from, nonce, &text) {
                    Ok(()) => self.become_peer(from, ctx),
                    Err(reason) => self.refuse(&reason, ctx),
                }
                return;
            }
            Mode::Peer(from) => {
                let from = from.clone();
                self.peer_line(from, &line, ctx);
                return;
            }
            Mode::Refused => return,
        }
        let parsed = protocol::parse_line(&line);
        if matches!(parsed, Ok(None)) {
            return;
        }
        // Replies held back behind a slow one count too, invalid or not.
        if self.replies.len() >= self.shared.limits.max_in_flight {
            self.drop_connection("too many commands awaiting replies", ctx);
            return;
        }
        let seq = self.replies.reserve();
        let command = match parsed {
            Ok(Some(command)) => command,
            Ok(None) | Err(_) => {
                self.complete(seq, protocol::invalid_reply(&line), ctx);
                return;
            }
        };
        match command {
            Command::IAmAt(cmd) => {
                let record = Record::check_in(&self.shared.name, Timestamp::now(), &cmd);
                let mut reply = Vec::with_capacity(record.at_line().len() + 1);
                reply.extend_from_slice(record.at_line().as_bytes());
                reply.push(b'\n');
                // The store floods a new record before it answers, so the flood leaves
                // before this reply does.
                self.shared
                    .store
                    .send(CheckIn(record))
                    .into_actor(self)
                    .map(move |_, act, ctx| act.complete(seq, reply, ctx))
                    .spawn(ctx);
            }
            Command::WhatsAt(cmd) => {
                let (client, radius, bound) = (cmd.client.into(), cmd.radius, cmd.bound);
                let reply =
                    whatsat_reply(self.shared.clone(), client, radius, bound, line.freeze());
                reply
                    .into_actor(self)
                    .map(move |reply, act, ctx| act.complete(seq, reply, ctx))
                    .spawn(ctx);
            }
        }
    }

    fn become_peer(&mut self, from: Arc<str>, ctx: &mut Context<Self>) {
        self.send_peer_line(&format!("{} {}", wire::WELCOME, self.shared.name), ctx);
        self.shared.log.peer_in_up(&from, self.peer);
        self.shared.peers.do_send(DialedIn(from.clone()));
        self.mode = Mode::Peer(from);
    }

    fn refuse(&mut self, reason: &str, ctx: &mut Context<Self>) {
        self.shared.log.note(&format!(
            "refused peer handshake from {}: {reason}",
            self.peer
        ));
        self.send_peer_line(&format!("{} {reason}", wire::REFUSED), ctx);
        self.mode = Mode::Refused;
        self.out.close();
    }

    /// A line from an authenticated neighbour: a record to merge, or a request for our digest.
    fn peer_line(&mut self, from: Arc<str>, line: &[u8], ctx: &mut Context<Self>) {
        let text = std::str::from_utf8(line).unwrap_or("");
        if text == wire::PING {
            return;
        }
        if text == wire::SYNC {
            self.shared
                .store
                .send(Digest)
                .into_actor(self)
                .map(|digest, act, _| {
                    // One line per client we hold: bounded by the table, and it must go
                    // whole, whatever the per-client cap.
                    if let Ok(digest) = digest {
                        let summary = format!("<digest of {} bytes>", digest.len());
                        act.shared.log.sent(act.peer, summary.as_bytes());
                        act.out.push_uncapped(digest.as_bytes());
                    }
                })
                .spawn(ctx);
            return;
        }
        // A flood, or a bare AT line from a sync.
        let (seen, at_line) = wire::parse_flood(text).unwrap_or((Vec::new(), text));
        match Record::parse_at_line(at_line) {
            Ok(record) => self.shared.store.do_send(Merge { record, from, seen }),
            Err(e) => self.shared.log.note(&format!(
                "ignored a line from peer {from}: {e}: {}",
                String::from_utf8_lossy(line)
            )),
        }
    }

    fn send_peer_line(&mut self, line: &str, ctx: &mut Context<Self>) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send_peer_bytes(&bytes, ctx);
    }

    /// Peer-protocol output: outside the client reply order, logged like any output.
    fn send_peer_bytes(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        self.shared.log.sent(self.peer, bytes);
        if let Err(overflow) = self.out.push(bytes) {
            self.drop_connection(&overflow.to_string(), ctx);
        }
    }

    /// Files the reply for slot `seq` and sends every reply that is now due.
    fn complete(&mut self, seq: u64, reply: Vec<u8>, ctx: &mut Context<Self>) {
        for reply in self.replies.fill(seq, reply) {
            self.shared.log.sent(self.peer, &reply);
            if let Err(overflow) = self.out.push(&reply) {
                self.drop_connection(&overflow.to_string(), ctx);
                return;
            }
        }
        self.finish_if_done();
    }

    /// After the client's last line, close once every reply has been queued.
    fn finish_if_done(&mut self) {
        if self.input_done && self.replies.is_empty() {
            self.out.close();
        }
    }

    fn drop_connection(&mut self, reason: &str, ctx: &mut Context<Self>) {
        self.shared.log.dropped(self.peer, reason);
        self.dropped = true;
        ctx.stop();
    }
}

/// The WHATSAT answer: the client's AT line, the places JSON, a blank line; or `? line` for
/// a client the herd has never seen.
async fn whatsat_reply(
    shared: Rc<Shared>,
    client: Box<str>,
    radius: Radius,
    bound: u8,
    line: bytes::Bytes,
) -> Vec<u8> {
    let Ok(Some(record)) = shared.store.send(Lookup(client)).await else {
        return protocol::invalid_reply(&line);
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
    let json = match shared.places.send(places::Nearby(query)).await {
        Ok(json) => json,
        Err(_) => places::failure_json("UPSTREAM_UNAVAILABLE", "places fetcher stopped"),
    };
    let mut reply = Vec::with_capacity(record.at_line().len() + json.len() + 3);
    reply.extend_from_slice(record.at_line().as_bytes());
    reply.push(b'\n');
    reply.extend_from_slice(json.as_bytes());
    reply.extend_from_slice(b"\n\n");
    reply
}

impl Actor for Session {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared
            .connections
            .set(self.shared.connections.get() - 1);
        if let Mode::Peer(from) = &self.mode {
            self.shared.log.peer_in_down(from, self.peer);
        }
        if !self.dropped {
            self.shared.log.closed(self.peer, "replies sent");
        }
    }
}

impl StreamHandler<Result<BytesMut, LineError>> for Session {
    fn handle(&mut self, item: Result<BytesMut, LineError>, ctx: &mut Context<Self>) {
        match item {
            Ok(line) => self.handle_line(line, ctx),
            Err(e) => {
                // The stream ends after an error; answer what came before, then close.
                self.shared
                    .log
                    .note(&format!("{}: input ended: {e}", self.peer));
                self.input_done = true;
                self.finish_if_done();
            }
        }
    }

    /// End of input is not the end of the session: replies may still be due.
    fn finished(&mut self, _: &mut Context<Self>) {
        self.input_done = true;
        self.finish_if_done();
    }
}

#[cfg(test)]
mod tests;
