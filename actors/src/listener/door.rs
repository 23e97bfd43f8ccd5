//! The door of a plain connection: its first line says whose it is.
//!
//! A neighbour dialling in without TLS opens with a `HERD-PEER` hello; a client opens with
//! a command. The door reads that first line as a session reads every line (the same cap,
//! the same flow control, the same time-outs), then hands a hello, with whatever was read
//! past it, to the peer side ([`Handoff`]), and anything else to a new client [`Session`],
//! which answers it as its first line. So a session is a client's from its start, and only
//! the door knows that neighbours come in by the same port.
//!
//! A connection let in past the caps (on probation) may only be a neighbour's: another
//! first line, or none within the peer handshake time-out, closes it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::StreamExt;
use tokio::net::TcpStream;

use super::handoff::ToPeers;
use crate::admission::Ticket;
use crate::codec::LineError;
use crate::peers::wire;
use crate::session::{ClientLimits, Input, NewClient, Session, SessionDeps};

/// What a connection's first line turned out to be, or why none came.
enum First {
    Line(BytesMut),
    /// The input ended before a line did: cleanly, or with this error.
    Ended(Option<LineError>),
    /// The connection is closed for its time: why.
    TimedOut(String),
}

/// Reads the first line of a connection just accepted, then hands the connection to the
/// peer side or to a new client session; or closes it, as a session would have.
pub(super) async fn enter(
    deps: Rc<SessionDeps>,
    to_peers: ToPeers,
    stream: TcpStream,
    addr: SocketAddr,
    ticket: Ticket,
) {
    let log = &deps.log;
    log.opened(addr);
    let open = deps.metrics.accepted();
    let (read, write) = stream.into_split();
    let mut input = Input::open(read, &deps.limits, deps.budget.clone());
    let first = first_line(&mut input, &deps.limits, ticket.on_probation()).await;
    match first {
        First::Line(hello) if wire::is_hello(&hello) => {
            log.peer_received(addr, &hello);
            // The peer side logs the connection from here on; its place under the caps
            // (`ticket`) and its count as a client connection (`open`) end here.
            to_peers.hand_over(addr, hello, input, write, log);
        }
        First::Line(line) if ticket.on_probation() => {
            log.received(addr, &line);
            log.dropped(addr, "too many connections");
        }
        First::Line(first_line) => {
            let client = NewClient {
                addr,
                input,
                write,
                first_line,
                ticket,
                open,
            };
            Session::start(Rc::clone(&deps), client);
        }
        First::Ended(error) => {
            if let Some(e) = error {
                log.note(&format!("{addr}: input ended: {e}"));
            }
            log.closed(addr, "replies sent");
        }
        First::TimedOut(why) => log.dropped(addr, &why),
    }
}

/// The first line of `input`, waiting for it no longer than `limits` let a session wait for
/// any line, nor, for a connection on probation, than a neighbour has to say its hello.
async fn first_line(input: &mut Input, limits: &ClientLimits, probation: bool) -> First {
    let opened = Instant::now();
    let probation = probation.then_some(limits.probation_timeout);
    loop {
        let waited = opened.elapsed();
        let item = match next_check(limits.check_every(), probation, waited) {
            None => input.next().await,
            Some(wait) => {
                tokio::select! {
                    // A first line already waiting is taken without arming the timer.
                    biased;
                    item = input.next() => item,
                    () = tokio::time::sleep(wait) => {
                        let waited = opened.elapsed();
                        if probation.is_some_and(|limit| waited >= limit) {
                            return First::TimedOut("too many connections".into());
                        }
                        match limits.overdue(Some(waited), input.line_age()) {
                            Some(why) => return First::TimedOut(why),
                            None => continue,
                        }
                    }
                }
            }
        };
        return match item {
            Some(Ok(line)) => First::Line(line),
            Some(Err(e)) => First::Ended(Some(e)),
            None => First::Ended(None),
        };
    }
}

/// How long until the time-outs are next checked, `waited` after the connection opened: a
/// session's period (`every`), or sooner, at the end of a probation.
fn next_check(
    every: Option<Duration>,
    probation: Option<Duration>,
    waited: Duration,
) -> Option<Duration> {
    let probation_left = probation.map(|limit| limit.saturating_sub(waited));
    match (every, probation_left) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::server::Tuning;
    use crate::test_support::{hill_config, logged, start_hill, until_closed};

    /// Hill on a free port, its event log under `dir`; the log's path.
    async fn hill(dir: &tempfile::TempDir) -> (SocketAddr, std::path::PathBuf) {
        let config = hill_config(dir.path(), "", "");
        let server = start_hill(&config, Tuning::default()).await;
        (server.addr, server.log_path().to_owned())
    }

    #[actix::test]
    async fn a_first_line_ended_by_the_end_of_input_is_answered_then_the_connection_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, _) = hill(&dir).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"IAMAT kiwi +1+1 1").await.unwrap();
        c.shutdown().await.unwrap();
        let got = String::from_utf8(until_closed(&mut c).await).unwrap();
        assert!(
            got.starts_with("AT Hill ") && got.ends_with(" kiwi +1+1 1\n"),
            "{got:?}"
        );
    }

    #[actix::test]
    async fn a_connection_that_ends_before_a_line_gets_nothing_and_is_logged_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, log) = hill(&dir).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let me = c.local_addr().unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(until_closed(&mut c).await, b"");
        logged(&log, &format!("open {me}")).await;
        logged(&log, &format!("closed {me}: replies sent")).await;
    }

    #[actix::test]
    async fn an_over_long_first_line_ends_the_connection_with_nothing_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, log) = hill(&dir).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let me = c.local_addr().unwrap();
        // Past the 8 KiB cap, with no newline: the door reads no further than the cap.
        let _ = c.write_all(&[b'x'; 20_000]).await;
        assert_eq!(until_closed(&mut c).await, b"");
        logged(
            &log,
            &format!("{me}: input ended: line longer than 8192 bytes"),
        )
        .await;
    }

    #[test]
    fn a_probation_ends_on_time_whatever_the_period_of_the_checks() {
        let s = Duration::from_secs;
        assert_eq!(next_check(Some(s(15)), None, s(100)), Some(s(15)));
        assert_eq!(next_check(Some(s(15)), Some(s(2)), s(0)), Some(s(2)));
        assert_eq!(next_check(Some(s(1)), Some(s(2)), s(0)), Some(s(1)));
        assert_eq!(next_check(None, Some(s(2)), s(1)), Some(s(1)));
        assert_eq!(next_check(None, Some(s(2)), s(3)), Some(s(0)));
        assert_eq!(next_check(None, None, s(3)), None);
    }
}
