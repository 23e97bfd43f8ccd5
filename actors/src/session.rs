//! The Session actor: one per client connection.
//!
//! A session reads lines, turns each into a command and answers it. Commands run
//! concurrently (a WHATSAT may wait on the network while a later IAMAT does not), but the
//! replies leave in the order the lines arrived: each line takes a slot in a
//! [`replies::ReplyQueue`] and replies are written as the front slots fill.
//!
//! When the client half-closes, every line received is still answered before the session
//! shuts its own sending side and ends.
//!
//! A session is a client's from its start: the door in front of it (`listener::door`) has
//! read the connection's first line, sent a neighbour's hello to the peer side, and starts
//! a session only for a client, with that line, which the session answers as its first.

mod courier;
mod deps;
mod desk;
mod input;
mod limits;
mod replies;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use bytes::BytesMut;
use tokio::net::tcp::OwnedWriteHalf;

use crate::admission::Ticket;
use crate::codec::LineError;
use crate::metrics::{CheckInOutcome, OpenConnection};
use crate::outbox::Outbox;
use crate::places;
use crate::protocol::{self, Command, Record, Timestamp};
use crate::store::CheckIn;
pub(crate) use courier::Courier;
pub(crate) use deps::{Crossing, SessionDeps, SessionShared};
pub(crate) use desk::Desk;
use desk::{find, Whereabouts};
pub(crate) use input::Input;
use input::{ReadLines, ReadsInput};
pub(crate) use limits::{ClientLimits, MAX_QUEUED, READ_BUFFER};
use replies::{Reply, ReplyQueue};

/// A client's connection as the door hands it over: its first line already read.
pub(crate) struct NewClient {
    pub(crate) addr: SocketAddr,
    /// The lines after the first (and what was read past it).
    pub(crate) input: Input,
    pub(crate) write: OwnedWriteHalf,
    pub(crate) first_line: BytesMut,
    /// Its place under the server's caps.
    pub(crate) ticket: Ticket,
    /// Counts it as open.
    pub(crate) open: OpenConnection,
}

/// Where a connection is.
enum SessionState {
    /// Reading the client's lines, and answering them.
    Reading(Input),
    /// The client's input has ended: the replies still due go out, then the connection
    /// closes.
    Answering,
    /// The server cut the connection, or closes it once the replies before the cut have
    /// left; logged as dropped, and nothing more is read or answered.
    Dropped,
}

/// One client connection.
pub(crate) struct Session {
    deps: Rc<SessionDeps>,
    peer: SocketAddr,
    state: SessionState,
    out: Outbox,
    replies: ReplyQueue,
    /// When the client last sent a line or took a reply.
    last_active: Instant,
    /// What the writer had sent at the last time-out check.
    sent_at_check: u64,
    /// Keeps the connection's place under the server's caps.
    _ticket: Ticket,
    /// Keeps it counted as open.
    _open: OpenConnection,
}

impl Session {
    /// Starts a session on a client's connection, which answers its first line first.
    pub(crate) fn start(deps: Rc<SessionDeps>, client: NewClient) -> Addr<Session> {
        let NewClient {
            addr,
            input,
            write,
            first_line,
            ticket,
            open,
        } = client;
        Session::create(move |ctx| {
            let out = input.outbox().clone();
            // Flow control counts only what the server holds; this bounds what the kernel
            // does. (Only a client's socket: a neighbour's link keeps the kernel's buffer.)
            let send_buffer = deps.limits.send_buffer();
            if let Err(e) = socket2::SockRef::from(write.as_ref()).set_send_buffer_size(send_buffer)
            {
                log::warn!("{addr}: cannot cap the send buffer: {e}");
            }
            // The session ends when its writer does: after a clean close or a failed write.
            ctx.spawn(
                fut::wrap_future::<_, Self>(out.clone().drain_into(write)).map(|res, act, ctx| {
                    if let Err(e) = res {
                        act.drop_connection(&format!("write failed: {e}"), ctx);
                    }
                    ctx.stop();
                }),
            );
            ctx.spawn(ReadLines::after(first_line));
            if let Some(every) = deps.limits.check_every() {
                ctx.run_interval(every, |act, ctx| act.check_time_outs(ctx));
            }
            Session {
                out,
                deps,
                peer: addr,
                replies: ReplyQueue::new(input.awaited()),
                state: SessionState::Reading(input),
                last_active: Instant::now(),
                sent_at_check: 0,
                _ticket: ticket,
                _open: open,
            }
        })
    }

    fn client_line(&mut self, line: BytesMut, ctx: &mut Context<Self>) {
        let parsed = protocol::parse_line(&line);
        if matches!(parsed, Ok(None)) {
            return;
        }
        let seq = self.replies.reserve();
        let command = match parsed {
            Ok(Some(command)) => command,
            Ok(None) | Err(_) => {
                self.count_invalid(&line);
                self.complete(seq, Reply::Send(protocol::invalid_reply(&line)), ctx);
                return;
            }
        };
        match command {
            Command::IAmAt(cmd) => {
                let received = Timestamp::now();
                // A record from the future would win over every later check-in of its
                // client: a time too far ahead of this server's clock is invalid.
                if cmd.time.nanos() > received.later_by(self.deps.limits.max_clock_ahead) {
                    self.count_invalid(&line);
                    self.complete(seq, Reply::Send(protocol::invalid_reply(&line)), ctx);
                    return;
                }
                let record = Record::check_in(&self.deps.name, received, &cmd);
                let mut reply = Vec::with_capacity(record.at_line().len() + 1);
                reply.extend_from_slice(record.at_line().as_bytes());
                reply.push(b'\n');
                // The store floods a new record before it answers, so the flood leaves
                // before this reply does.
                self.deps
                    .check_ins
                    .send(CheckIn(record))
                    .into_actor(self)
                    .map(move |kept, act, ctx| {
                        // A valid check-in that could not be kept has no reply in the
                        // protocol: the connection closes after the replies before it.
                        let (outcome, reply) = match kept {
                            Ok(Ok(true)) => (CheckInOutcome::New, Reply::Send(reply)),
                            Ok(Ok(false)) => (CheckInOutcome::NotNewer, Reply::Send(reply)),
                            Ok(Err(e)) => (
                                CheckInOutcome::NotStored,
                                Reply::Close(format!("check-in not stored: {e}")),
                            ),
                            Err(_) => (
                                CheckInOutcome::NotStored,
                                Reply::Close("check-in not stored: the store stopped".into()),
                            ),
                        };
                        act.deps.metrics.check_in(outcome);
                        act.complete(seq, reply, ctx);
                    })
                    .spawn(ctx);
            }
            Command::WhatsAt(cmd) => {
                let ask = Whereabouts {
                    client: cmd.client.into(),
                    radius: cmd.radius,
                    bound: cmd.bound,
                };
                let reply = whatsat_reply(Rc::clone(&self.deps), ask, line.freeze());
                reply
                    .into_actor(self)
                    .map(move |reply, act, ctx| act.complete(seq, Reply::Send(reply), ctx))
                    .spawn(ctx);
            }
        }
    }

    /// Counts a line answered `?`, and, for an IAMAT or WHATSAT, that command's outcome.
    fn count_invalid(&self, line: &[u8]) {
        let metrics = &self.deps.metrics;
        metrics.invalid_line();
        let command = line
            .split(|&b| protocol::is_space(b))
            .find(|field| !field.is_empty());
        match command {
            Some(b"IAMAT") => metrics.check_in(CheckInOutcome::Invalid),
            Some(b"WHATSAT") => metrics.whatsats.invalid(),
            _ => {}
        }
    }

    /// Files the reply for slot `seq` and sends every reply that is now due.
    fn complete(&mut self, seq: u64, reply: Reply, ctx: &mut Context<Self>) {
        if matches!(self.state, SessionState::Dropped) {
            return;
        }
        self.replies.fill(seq, reply);
        while let Some(reply) = self.replies.pop_ready() {
            match reply {
                Reply::Send(reply) => {
                    self.deps.log.sent(self.peer, &reply);
                    if let Err(overflow) = self.out.push(&reply) {
                        self.drop_connection(&overflow.to_string(), ctx);
                        return;
                    }
                }
                Reply::Close(why) => {
                    // Read no more, send what is queued, then close.
                    self.deps.log.dropped(self.peer, &why);
                    self.state = SessionState::Dropped;
                    self.out.close();
                    return;
                }
            }
        }
        self.finish_if_done();
    }

    /// Closes a connection idle for too long, or whose begun line has not ended in time.
    fn check_time_outs(&mut self, ctx: &mut Context<Self>) {
        let limits = &self.deps.limits;
        let sent = self.out.sent_total();
        if sent != self.sent_at_check {
            self.sent_at_check = sent;
            self.last_active = Instant::now();
        }
        let line_age = match &self.state {
            SessionState::Reading(input) => input.line_age(),
            SessionState::Answering | SessionState::Dropped => None,
        };
        let idle = self.replies.is_empty().then(|| self.last_active.elapsed());
        if let Some(why) = limits.overdue(idle, line_age) {
            self.drop_connection(&why, ctx);
        }
    }

    /// After the client's last line, close once every reply has been queued.
    fn finish_if_done(&mut self) {
        if matches!(self.state, SessionState::Answering) && self.replies.is_empty() {
            self.out.close();
        }
    }

    fn drop_connection(&mut self, reason: &str, ctx: &mut Context<Self>) {
        self.deps.log.dropped(self.peer, reason);
        self.state = SessionState::Dropped;
        ctx.stop();
    }
}

/// The WHATSAT answer: the client's AT line, the places JSON, a blank line; or `? line` for
/// a client the herd has never seen.
async fn whatsat_reply(deps: Rc<SessionDeps>, ask: Whereabouts, line: bytes::Bytes) -> Vec<u8> {
    let found = match &deps.desk {
        None => find(&deps.store, &deps.places, ask).await,
        // A desk that has stopped has a store that has too.
        Some(desk) => desk.send(ask).await.ok().flatten(),
    };
    let Some((record, json)) = found else {
        deps.metrics.invalid_line();
        deps.metrics.whatsats.unknown_client();
        return protocol::invalid_reply(&line);
    };
    let json = json.unwrap_or_else(|| {
        deps.metrics.whatsats.answered(places::UPSTREAM_UNAVAILABLE);
        places::failure_json(places::UPSTREAM_UNAVAILABLE, "places fetcher stopped").into()
    });
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
        if !matches!(self.state, SessionState::Dropped) {
            self.deps.log.closed(self.peer, "replies sent");
        }
    }
}

impl ReadsInput for Session {
    fn input(&mut self) -> Option<&mut Input> {
        match &mut self.state {
            SessionState::Reading(input) => Some(input),
            SessionState::Answering | SessionState::Dropped => None,
        }
    }

    fn line(&mut self, item: Result<BytesMut, LineError>, ctx: &mut Context<Self>) {
        match item {
            Ok(line) => {
                self.last_active = Instant::now();
                self.deps.log.received(self.peer, &line);
                self.client_line(line, ctx);
            }
            Err(e) => {
                // The input ends after an error; answer what came before, then close.
                self.deps
                    .log
                    .note(&format!("{}: input ended: {e}", self.peer));
                self.ended(ctx);
            }
        }
    }

    /// End of input is not the end of the session: replies may still be due.
    fn ended(&mut self, _: &mut Context<Self>) {
        if let SessionState::Reading(_) = self.state {
            self.state = SessionState::Answering;
        }
        self.finish_if_done();
    }
}

#[cfg(test)]
mod tests;
