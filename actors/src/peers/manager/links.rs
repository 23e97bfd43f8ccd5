//! How each outbound link comes up, syncs, beats and goes down: the manager's side of a
//! link's life, from the dial to the backoff after it fails.

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
use crate::peers::link::{LinkState, UpLink};
use crate::peers::records::Missing;
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
        let queue = Outbox::new(self.deps.settings.max_queued);
        // Floods are queued from now on, so nothing that arrives during the sync is missed.
        // The queue is new and its cap at least a MiB: the SYNC goes in, as the sync's lines do.
        queue.push_line_uncapped(wire::SYNC.as_bytes());
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
        self.deps.log.peer_up(link.neighbour());
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
            log::debug!("{} -> {neighbour}: ignored {text:?}", self.deps.policy.me);
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
        self.deps
            .records
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
                log::debug!("{} -> {}: {why}", self.deps.policy.me, link.neighbour())
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
                // On overflow the writer ends with the error and the link drops.
                let _ = up.queue.push_line(wire::PING.as_bytes());
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
            Some(Ok(PeerInput::Line(line))) => self.link_line(link, generation, &line, ctx),
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
