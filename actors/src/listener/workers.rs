//! The event-loop threads a server runs its client sessions on (`workers`).
//!
//! The server's home thread runs the accept loop, the store, the peer manager and its
//! links, and the places fetcher. With `workers = N`, N threads run client sessions: with
//! one or two, the home thread is one of them and the rest are actix `Arbiter`s; with three
//! or more, N `Arbiter`s do and the home thread runs none (see [`home_serves`]). Each
//! accepted connection goes to the worker with the fewest connections open (the admission's
//! count, see [`Ticket::worker`]) and lives there to its end: its door, then its session.
//!
//! What crosses threads is typed messages: the check-ins of a worker's sessions, gathered
//! per turn of its event loop by the worker's courier (`session::courier`) into one
//! `CheckIns` to the store; a session's `Whereabouts` to the desk (which asks the store and
//! the places fetcher on the home thread, see `session::desk`); their answers; and, once
//! per connection, the socket itself, through an unbounded channel that only the accept
//! loop fills. No lock is
//! taken on the way of a line (a ticket's is taken at its accept and its close).
//!
//! With one or two workers the home thread serves sessions too, because threads are what a
//! small host lacks: on two cores that is one event loop fewer, and its sessions reach the
//! store without crossing a thread. From three on, the store's thread is what bounds the server (the model in
//! docs/benchmarks.md, "Every core"): a session costs a worker about 11 us a check-in, the
//! store's thread about 2.3 us, so a home thread that also served its share of sessions
//! would be the first to fill.

use std::net::SocketAddr;
use std::rc::Rc;

use actix::Actor;
use actix_rt::Arbiter;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::door;
use super::handoff::ToPeers;
use crate::admission::Ticket;
use crate::outbox::ReplyBudget;
use crate::session::{Courier, Crossing, Desk, SessionDeps, SessionShared};

/// The threads client connections are spread over.
pub(crate) struct Workers {
    /// The home thread's: its doors and sessions (worker 0), and what the accept loop logs
    /// and times connections with.
    home: Rc<SessionDeps>,
    to_peers: ToPeers,
    /// The workers that are not the home thread, in the order of [`Ticket::worker`] (from 1).
    away: Vec<Away>,
}

/// A worker thread, as the home thread sees it.
struct Away {
    connections: UnboundedSender<Accepted>,
    thread: Arbiter,
}

/// The accept loop is over (its server's system is stopping): so is the worker, with its
/// sessions, rather than idling on in a process that may go on (a test's).
impl Drop for Away {
    fn drop(&mut self) {
        self.thread.stop();
    }
}

/// A connection on its way to a worker: out of the home thread's event loop, to join the
/// worker's.
struct Accepted {
    stream: std::net::TcpStream,
    addr: SocketAddr,
    ticket: Ticket,
}

impl Workers {
    /// `count` workers (at least one) for sessions made of `shared`, sharing `budget` bytes of
    /// unsent replies evenly; a neighbour's connection goes to `to_peers`.
    pub(crate) fn start(
        count: usize,
        shared: SessionShared,
        budget: usize,
        to_peers: ToPeers,
    ) -> Workers {
        let count = count.max(1);
        let share = (budget / count).max(1);
        let home = Rc::new(shared.clone().on_worker(ReplyBudget::new(share), None));
        let home_thread = Arbiter::current();
        let mut away = Vec::new();
        let threads = if home_serves(count) { count - 1 } else { count };
        let desk = (threads > 0).then(|| Desk::new(shared.store.clone(), shared.places.clone()));
        let desk = desk.map(Actor::start);
        for _ in 0..threads {
            let thread = Arbiter::new();
            let (connections, accepted) = unbounded_channel();
            let to_peers = to_peers.for_worker(home_thread.clone());
            // Each worker logs to a lane of its own: no lock of the log is shared between
            // serving threads.
            let shared = SessionShared {
                log: shared.log.lane(),
                ..shared.clone()
            };
            let desk = desk.clone();
            // The loop itself holds the worker's `Rc`s, so it is made on the worker, with
            // the worker's courier.
            thread.spawn_fn(move || {
                let courier = Courier::new(shared.store.clone()).start();
                let crossing = desk.map(|desk| Crossing { courier, desk });
                let deps = Rc::new(shared.on_worker(ReplyBudget::new(share), crossing));
                actix_rt::spawn(serve(deps, to_peers, accepted));
            });
            away.push(Away {
                connections,
                thread,
            });
        }
        Workers {
            home,
            to_peers,
            away,
        }
    }

    /// The home thread's session dependencies.
    pub(crate) fn home(&self) -> &Rc<SessionDeps> {
        &self.home
    }

    /// Where a neighbour's connection goes from the home thread.
    pub(crate) fn to_peers(&self) -> &ToPeers {
        &self.to_peers
    }

    /// Sends a connection just accepted (or, on a TLS herd, sorted) through a door on its
    /// worker (`ticket`'s; 0 is the home thread).
    pub(crate) fn enter(&self, stream: TcpStream, addr: SocketAddr, ticket: Ticket) {
        let away = ticket.worker().checked_sub(1);
        let Some(worker) = away.and_then(|i| self.away.get(i)) else {
            let (deps, to_peers) = (Rc::clone(&self.home), self.to_peers.clone());
            actix_rt::spawn(door::enter(deps, to_peers, stream, addr, ticket));
            return;
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                self.home.log.note(&format!(
                    "{addr}: cannot hand the connection to a worker: {e}"
                ));
                return;
            }
        };
        let accepted = Accepted {
            stream,
            addr,
            ticket,
        };
        if worker.connections.send(accepted).is_err() {
            self.home.log.dropped(addr, "the server is stopping");
        }
    }
}

/// Whether, with `workers` worker threads, the home thread is one of them.
pub(crate) fn home_serves(workers: usize) -> bool {
    workers <= 2
}

/// A worker's loop: each connection it is given joins its event loop and goes through a
/// door of its own.
async fn serve(
    deps: Rc<SessionDeps>,
    to_peers: ToPeers,
    mut accepted: UnboundedReceiver<Accepted>,
) {
    while let Some(Accepted {
        stream,
        addr,
        ticket,
    }) = accepted.recv().await
    {
        match TcpStream::from_std(stream) {
            Ok(stream) => {
                let (deps, to_peers) = (Rc::clone(&deps), to_peers.clone());
                actix_rt::spawn(door::enter(deps, to_peers, stream, addr, ticket));
            }
            Err(e) => deps
                .log
                .note(&format!("{addr}: a worker cannot take the connection: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::peers::wire;
    use crate::server::Tuning;
    use crate::test_support::{ask, hill_config, logged, read_line, start_hill};

    /// A client's first exchange on a connection of its own, which stays open: once it is
    /// answered, the connection has been admitted and counts on its worker.
    async fn admitted(addr: SocketAddr) -> TcpStream {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"WHATSAT nobody 10 1\n").await.unwrap();
        assert_eq!(read_line(&mut c).await.unwrap(), "? WHATSAT nobody 10 1\n");
        c
    }

    #[actix::test]
    async fn clients_on_both_workers_are_answered_and_the_newer_record_wins_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = hill_config(dir.path(), "", "");
        let server = start_hill(&config, Tuning::default().with_workers(2)).await;
        // Connections alternate: one on the home thread, one on the other worker.
        let mut home = admitted(server.addr).await;
        let mut away = admitted(server.addr).await;
        away.write_all(b"IAMAT kiwi +1+1 20\n").await.unwrap();
        let at = read_line(&mut away).await.unwrap();
        assert!(at.ends_with(" kiwi +1+1 20\n"), "{at:?}");
        // An older check-in from the home thread's client is answered, and changes nothing.
        home.write_all(b"IAMAT kiwi +2+2 10\n").await.unwrap();
        let at = read_line(&mut home).await.unwrap();
        assert!(at.ends_with(" kiwi +2+2 10\n"), "{at:?}");
        for c in [&mut home, &mut away] {
            c.write_all(b"WHATSAT kiwi 10 1\n").await.unwrap();
            let at = read_line(c).await.unwrap();
            assert!(at.ends_with(" kiwi +1+1 20\n"), "{at:?}");
        }
    }

    #[actix::test]
    async fn a_neighbour_let_in_on_a_worker_thread_gets_its_link_with_what_it_sent_at_once() {
        // The home thread has a connection: the next goes to the other worker.
        neighbour_on_a_worker(2, 1).await;
    }

    #[actix::test]
    async fn with_three_workers_the_home_thread_serves_none_and_links_still_come_home() {
        // Every connection goes to one of the three worker threads; the fourth shares one.
        neighbour_on_a_worker(3, 3).await;
    }

    /// Hill with `workers` workers and `clients` clients connected: a neighbour dials in
    /// with its hello and a record in one write; its link comes up, the record is kept, and
    /// the link answers a heartbeat.
    async fn neighbour_on_a_worker(workers: usize, clients: usize) {
        let dir = tempfile::tempdir().unwrap();
        let smith = "neighbours = [\"Smith\"]\n\
                     [servers.Smith]\naddr = \"127.0.0.1:2\"\nneighbours = [\"Hill\"]\n";
        let config = hill_config(dir.path(), "", smith);
        let server = start_hill(&config, Tuning::default().with_workers(workers)).await;
        let mut held = Vec::new();
        for _ in 0..clients {
            held.push(admitted(server.addr).await);
        }
        let mut link = TcpStream::connect(server.addr).await.unwrap();
        // The hello and a record in one write: the door reads the record with the hello,
        // and it must reach the link on the home thread with the connection.
        let flood = wire::flood_line(&["Smith".into()], "AT Smith +0.500000000 kiwi +1+1 7");
        let first = format!("{}{flood}\n", wire::hello("Smith", "Hill"));
        link.write_all(first.as_bytes()).await.unwrap();
        logged(server.log_path(), "peer Smith inbound up from").await;
        let mut answer = String::new();
        for _ in 0..100 {
            answer = ask(server.addr, "WHATSAT kiwi 10 1").await;
            if answer.starts_with("AT ") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let log = std::fs::read_to_string(server.log_path()).unwrap();
        assert_eq!(answer, "AT Smith +0.500000000 kiwi +1+1 7\n", "{log}");
        // The link stays up: a heartbeat is answered.
        link.write_all(b"PING\n").await.unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("PONG\n") {
            got.extend(read_line(&mut link).await.unwrap().into_bytes());
        }
    }
}
