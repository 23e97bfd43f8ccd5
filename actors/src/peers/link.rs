//! PeerLink: this server's outbound link to one neighbour, supervised so it heals itself.
//!
//! The link dials the neighbour, proves who it is, then sends `SYNC` and reads the
//! neighbour's digest, and sends it every record it lacks or holds older (anti-entropy).
//! From then on it carries this server's floods. When the link fails, the actor stops and its
//! `Supervisor` restarts it, which dials again after an exponential, jittered backoff.
//!
//! Records only ever travel from dialler to listener: each server floods over the links it
//! dialled, so nothing that a listener says can change the dialler's table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::wire::{self, Version};
use crate::log::EventLog;
use crate::outbox::Outbox;
use crate::store::{LocationStore, Missing};

/// Exponential backoff with jitter: each delay is drawn from the upper half of a window that
/// doubles from `min` to `max`, so restarted servers do not all dial at the same instant.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    window: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            window: min,
        }
    }

    /// The next delay; the window doubles up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let w = self.window;
        self.window = (w * 2).min(self.max);
        let half = w / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// After a link came up: the next failure retries quickly again.
    pub fn reset(&mut self) {
        self.window = self.min;
    }
}

/// How the link behaves; tests shorten these.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Time allowed to connect and finish the handshake.
    pub handshake_timeout: Duration,
    /// Bytes of floods queued for a neighbour that does not read before the link is dropped.
    pub max_queued: usize,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(2),
            max_queued: 16 * 1024 * 1024,
        }
    }
}

/// Who this link connects, and with what.
#[derive(Clone)]
pub struct LinkTarget {
    pub me: Arc<str>,
    pub neighbour: Arc<str>,
    pub addr: SocketAddr,
    pub secret: Option<Arc<[u8]>>,
}

pub struct PeerLink {
    target: LinkTarget,
    settings: LinkSettings,
    store: Addr<LocationStore>,
    log: EventLog,
    backoff: Backoff,
    /// Holds the outbox while the link is up (handshake done); shared with the manager,
    /// which pushes floods straight into it.
    slot: LinkSlot,
    /// Delay before the next dial; none for the first.
    delay: Option<Duration>,
    /// The pending dial timer, so a nudge can dial at once.
    timer: Option<SpawnHandle>,
}

/// A link's outbox while it is up, `None` while it is down.
pub type LinkSlot = Rc<RefCell<Option<Outbox>>>;

impl PeerLink {
    pub fn new(
        target: LinkTarget,
        settings: LinkSettings,
        store: Addr<LocationStore>,
        log: EventLog,
        slot: LinkSlot,
    ) -> Self {
        let backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
        PeerLink {
            target,
            settings,
            store,
            log,
            backoff,
            slot,
            delay: None,
            timer: None,
        }
    }

    fn dial(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        let dial = dial(self.target.clone(), self.settings.handshake_timeout);
        ctx.spawn(dial.into_actor(self).map(|res, act, ctx| match res {
            Ok((read, write)) => act.up(read, write, ctx),
            Err(e) => {
                log::debug!("{} -> {}: {e}", act.target.me, act.target.neighbour);
                act.fail(None, ctx);
            }
        }));
    }

    fn up(
        &mut self,
        read: BufReader<OwnedReadHalf>,
        write: tokio::net::tcp::OwnedWriteHalf,
        ctx: &mut Context<Self>,
    ) {
        self.backoff.reset();
        self.log.peer_up(&self.target.neighbour);
        let out = Outbox::new(self.settings.max_queued);
        ctx.spawn(
            fut::wrap_future::<_, Self>(out.clone().drain_into(write)).map(|res, act, ctx| {
                let reason = match res {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => format!("write failed: {e}"),
                };
                act.fail(Some(&reason), ctx);
            }),
        );
        // Floods are queued from now on, so nothing that arrives during the sync is missed.
        if out.push(format!("{}\n", wire::SYNC).as_bytes()).is_err() {
            self.fail(Some("cannot queue SYNC"), ctx);
            return;
        }
        *self.slot.borrow_mut() = Some(out);
        let store = self.store.clone();
        let sync = async move {
            let (digest, read) = read_digest(read).await?;
            let lines = store
                .send(Missing(digest))
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((lines, read))
        };
        ctx.spawn(sync.into_actor(self).then(|res, act, ctx| {
            let read = match res {
                Ok((lines, read)) => {
                    // A sync sends a copy of (part of) the table: bounded by what we hold,
                    // and it must go whole, or a large table could never sync.
                    if let Some(out) = act.slot.borrow().as_ref() {
                        for line in lines {
                            out.push_line_uncapped(line.as_bytes());
                        }
                    }
                    Some(read)
                }
                Err(e) => {
                    act.fail(Some(&format!("sync failed: {e}")), ctx);
                    None
                }
            };
            async move {
                match read {
                    Some(read) => Some(wait_for_close(read).await),
                    None => None,
                }
            }
            .into_actor(act)
            .map(|reason, act, ctx| {
                if let Some(reason) = reason {
                    act.fail(Some(&reason), ctx);
                }
            })
        }));
    }

    /// Ends this incarnation; the supervisor restarts the link, which dials after a delay.
    fn fail(&mut self, reason: Option<&str>, ctx: &mut Context<Self>) {
        if self.slot.borrow_mut().take().is_some() {
            self.log
                .peer_down(&self.target.neighbour, reason.unwrap_or("link failed"));
        }
        self.delay = Some(self.backoff.next_delay());
        ctx.stop();
    }
}

impl Actor for PeerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.delay.take() {
            None => self.dial(ctx),
            Some(delay) => self.timer = Some(ctx.run_later(delay, |act, ctx| act.dial(ctx))),
        }
    }
}

impl Supervised for PeerLink {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.slot.borrow_mut().take();
        self.timer = None;
    }
}

/// Request: the neighbour just dialled us, so it is up: if waiting to retry, dial now. If
/// this link is up, send a `PING`: a neighbour that dials in afresh has likely restarted,
/// and if its host went down without closing our connection, writing is what brings the
/// reset that tells us, so the link redials and syncs the neighbour at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Nudge;

impl Handler<Nudge> for PeerLink {
    type Result = ();

    fn handle(&mut self, _: Nudge, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
            self.dial(ctx);
        } else if let Some(out) = self.slot.borrow().as_ref() {
            // On overflow the writer ends with the error and the link drops: nothing to do.
            let _ = out.push_line(wire::PING.as_bytes());
        }
    }
}

/// Connects and completes the handshake as the dialling side.
async fn dial(
    t: LinkTarget,
    limit: Duration,
) -> Result<(BufReader<OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf), String> {
    let handshake = async {
        let stream = TcpStream::connect(t.addr)
            .await
            .map_err(|e| format!("connect to {}: {e}", t.addr))?;
        let _ = stream.set_nodelay(true);
        let _ = keep_alive(&stream);
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let io = |e: std::io::Error| format!("handshake: {e}");
        write
            .write_all(wire::hello(&t.me, &t.neighbour).as_bytes())
            .await
            .map_err(io)?;
        let mut line = read_line(&mut read).await?;
        if let Some(nonce) = wire::argument(&line, wire::CHALLENGE) {
            let secret = t
                .secret
                .as_ref()
                .ok_or("the neighbour wants the herd's secret and none is configured")?;
            let proof = wire::proof(secret, &t.me, &t.neighbour, nonce);
            write
                .write_all(format!("{} {proof}\n", wire::PROOF).as_bytes())
                .await
                .map_err(io)?;
            line = read_line(&mut read).await?;
        }
        match wire::argument(&line, wire::WELCOME) {
            Some(name) if name == &*t.neighbour => Ok((read, write)),
            _ => Err(format!("handshake refused: {}", line.trim_end())),
        }
    };
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
}

/// Turns on TCP keep-alive probes, so a link to a neighbour whose host died without closing
/// the connection fails within about 20 s of silence, even with nothing to write.
fn keep_alive(stream: &TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(3))
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Reads one line of at most a few KiB (a handshake or digest line).
async fn read_line(read: &mut (impl AsyncBufRead + Unpin)) -> Result<String, String> {
    let mut line = Vec::new();
    let n = (&mut *read)
        .take(16 * 1024)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err("connection closed or line too long".into());
    }
    line.pop();
    String::from_utf8(line).map_err(|_| "line is not UTF-8".into())
}

/// The neighbour's digest: the version of every record it holds.
async fn read_digest(
    mut read: BufReader<OwnedReadHalf>,
) -> Result<(HashMap<Box<str>, Version>, BufReader<OwnedReadHalf>), String> {
    let mut digest = HashMap::new();
    loop {
        let line = read_line(&mut read).await?;
        if line == wire::DIGEST_END {
            return Ok((digest, read));
        }
        let (client, version) =
            wire::parse_digest_line(&line).ok_or_else(|| format!("bad digest line {line:?}"))?;
        digest.insert(client.into(), version);
    }
}

/// Waits until the neighbour closes the link; says why.
async fn wait_for_close(mut read: BufReader<OwnedReadHalf>) -> String {
    let mut sink = [0u8; 512];
    loop {
        match read.read(&mut sink).await {
            Ok(0) => return "closed by the neighbour".into(),
            Ok(_) => {}
            Err(e) => return format!("read failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
