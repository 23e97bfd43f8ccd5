//! How each outbound link comes up, syncs, beats and goes down: the manager's side of a
//! link's life, from the dial to the backoff after it fails.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use futures::stream::{self, StreamExt};
use tokio_util::codec::FramedRead;

use super::PeerManager;
use crate::codec::{LineCodec, LineError, PeerInput, PeerLines};
use crate::outbox::Outbox;
use crate::peers::error::LinkError;
use crate::peers::handshake::{self, Connected, LinkRead, LinkWrite};
use crate::peers::link::{LinkState, Resync, UpLink};
use crate::peers::recon::{Answer, Query};
use crate::peers::records::{FirstQuery, FollowUp};
use crate::peers::wire;

impl PeerManager {
    /// Dials link `i` now.
    pub(super) fn dial(&mut self, i: usize, ctx: &mut Context<Self>) {
        let link = &mut self.links[i];
        if let LinkState::Waiting { timer } = &link.state {
            ctx.cancel_future(*timer);
        }
        link.generation += 1;
        link.state = LinkState::Dialling;
        let generation = link.generation;
        let target = Arc::clone(&link.target);
        let limit = self.deps.settings.handshake_timeout;
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
        // Floods are queued from now on, so nothing that arrives during the sync is missed.
        let queue = Outbox::for_link(self.deps.settings.max_queued);
        queue.count_sent(self.links[i].metrics.sent_bytes());
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
            // The first query is on its way from the store.
            resync: Resync::Reconciling {
                in_flight: 1,
                waiting: VecDeque::new(),
                queries: 0,
                records: 0,
                started: Instant::now(),
            },
            io,
            last_heard: Instant::now(),
        });
        self.deps.log.peer_up(link.neighbour());
        self.deps
            .records
            .first_query
            .send(FirstQuery)
            .into_actor(self)
            .map(move |query, act, ctx| match query {
                Ok(query) => act.resync_step(i, generation, vec![query], Vec::new()),
                Err(_) => act.link_failed(i, generation, &LinkError::StoreGone, ctx),
            })
            .spawn(ctx);
    }

    /// One step of link `i`'s reconciliation: `records` the neighbour lacks go into the
    /// bulk lane, and `queries` are sent as the window allows. The step that asked for them
    /// is done (its query leaves the window); the reconciliation ends when nothing is left.
    fn resync_step(
        &mut self,
        i: usize,
        generation: u64,
        queries: Vec<Query>,
        records: Vec<Arc<str>>,
    ) {
        let link = &mut self.links[i];
        if !link.is_current(generation) {
            return;
        }
        let neighbour = link.target.neighbour.clone();
        let LinkState::Up(up) = &mut link.state else {
            return;
        };
        let Resync::Reconciling {
            in_flight,
            waiting,
            queries: asked,
            records: sent,
            started,
        } = &mut up.resync
        else {
            return;
        };
        *sent += records.len();
        link.metrics.synced(records.len());
        up.queue.push_bulk(records);
        waiting.extend(queries);
        *in_flight -= 1;
        while *in_flight < Resync::WINDOW {
            let Some(query) = waiting.pop_front() else {
                break;
            };
            // Queries are few (the window) and small: under the cap unless the neighbour
            // stopped reading, and then the overflow ends the link, as a flood's would.
            if up.queue.push_line(query.line().as_bytes()).is_err() {
                return;
            }
            *in_flight += 1;
            *asked += 1;
        }
        if *in_flight == 0 {
            let note = format!(
                "peer {neighbour} reconciled: {} queries, {} records sent, in {:.3} s",
                asked,
                sent,
                started.elapsed().as_secs_f64()
            );
            up.resync = Resync::Done;
            self.deps.log.note(&note);
        }
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

    /// A line from the neighbour on link `i`: answers to our reconciliation queries and to
    /// our heartbeats.
    fn link_line(&mut self, i: usize, generation: u64, line: &[u8], ctx: &mut Context<Self>) {
        let LinkState::Up(up) = &mut self.links[i].state else {
            return;
        };
        up.last_heard = Instant::now();
        let text = std::str::from_utf8(line).unwrap_or("");
        if text == wire::PONG {
            return;
        }
        let Some(answer) = Answer::parse(text) else {
            let e = LinkError::BadRecon(text.chars().take(80).collect());
            self.link_failed(i, generation, &e, ctx);
            return;
        };
        if !matches!(up.resync, Resync::Reconciling { .. }) {
            let neighbour = self.links[i].neighbour();
            log::debug!("{} -> {neighbour}: ignored {text:?}", self.deps.policy.me);
            return;
        }
        self.deps
            .records
            .follow_up
            .send(FollowUp(answer))
            .into_actor(self)
            .map(move |next, act, ctx| match next {
                Ok(next) => act.resync_step(i, generation, next.queries, next.records),
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
        let why = e.to_string();
        match &link.state {
            LinkState::Up(up) => {
                for task in up.io {
                    ctx.cancel_future(task);
                }
                link.since = SystemTime::now();
                link.metrics.link(false);
                self.deps.log.peer_down(link.neighbour(), &why);
            }
            LinkState::Dialling => {
                log::debug!("{} -> {}: {why}", self.deps.policy.me, link.neighbour());
                // A neighbour of another version refuses every dial alike: said once.
                let new = link
                    .last_error
                    .as_ref()
                    .is_none_or(|(last, _)| *last != why);
                if matches!(e, LinkError::Version { .. }) && new {
                    let note = format!("peer {} refused us: {why}", link.neighbour());
                    self.deps.log.note(&note);
                }
            }
            LinkState::Waiting { .. } => return,
        }
        link.last_error = Some((why, SystemTime::now()));
        let delay = link.backoff.next_delay();
        let timer = ctx.run_later(delay, move |act, ctx| act.dial(i, ctx));
        self.links[i].state = LinkState::Waiting { timer };
    }

    /// Every heartbeat: gives up the links whose neighbour has been silent too long, and
    /// asks the others for a `PONG`.
    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let limit = self.deps.settings.silence_limit();
        for i in 0..self.links.len() {
            let link = &self.links[i];
            let LinkState::Up(up) = &link.state else {
                continue;
            };
            if up.last_heard.elapsed() > limit {
                let generation = link.generation;
                self.link_failed(i, generation, &LinkError::Silent(limit), ctx);
            } else {
                // Urgent: never refused, never behind a sync's bulk.
                up.queue.push_urgent(wire::PING.as_bytes());
            }
        }
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
            Some(Ok(PeerInput::Line(line))) => {
                self.links[link].metrics.received_line(line.len());
                self.link_line(link, generation, &line, ctx)
            }
            Some(Ok(PeerInput::Skipped(n))) => self.deps.log.note(&format!(
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
