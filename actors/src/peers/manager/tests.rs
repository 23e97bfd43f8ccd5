//! The manager's links against neighbours the tests play on real sockets.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;

use super::*;
use crate::peers::handshake::PeerPolicy;
use crate::peers::recon::Query;
use crate::protocol::Record;
use crate::store::table::Table;
use crate::store::{Bounds, CheckIn, LocationStore};
use crate::test_support::{collector, record, temp_log};

/// How long a test waits for anything before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// Plays the listening neighbour on one accepted connection.
struct Neighbour {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Neighbour {
    /// Accepts the link from Hill, checks its hello (and proof), and welcomes it.
    async fn accept(listener: &TcpListener, me: &str, secret: Option<&[u8]>) -> Neighbour {
        let accepted = tokio::time::timeout(PATIENCE, listener.accept()).await;
        let (stream, _) = accepted.expect("the link dialled").expect("accept");
        let (read, write) = stream.into_split();
        let mut n = Neighbour {
            read: BufReader::new(read),
            write,
        };
        assert_eq!(n.raw_line().await, format!("HERD-PEER 2 Hill {me}"));
        if let Some(secret) = secret {
            n.send("HERD-CHALLENGE 00ff").await;
            let proof = n.raw_line().await;
            let proof = wire::argument(&proof, wire::PROOF).expect("a proof");
            assert!(wire::verify(secret, "Hill", me, "00ff", proof));
        }
        n.send(&format!("HERD-WELCOME {me}")).await;
        n
    }

    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the link");
    }

    async fn raw_line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(PATIENCE, self.read.read_line(&mut line))
            .await
            .expect("a line from the link")
            .expect("read");
        assert!(n > 0, "the link closed");
        line.trim_end_matches('\n').to_owned()
    }

    /// The next line the link sent; a reconciliation query is answered as a neighbour
    /// holding no records would.
    async fn line(&mut self) -> String {
        let line = self.raw_line().await;
        if let Some(query) = Query::parse(&line) {
            let answer = Table::default().answer(&query).expect("an answer");
            self.send(&answer.line()).await;
        }
        line
    }

    /// The link's first line is its first reconciliation query, of the whole key space.
    async fn reconciles(&mut self) {
        let line = self.line().await;
        assert!(line.starts_with("FPS - "), "{line}");
    }
}

/// A manager for Hill with a link to each of `neighbours`, over a store that holds what
/// the test checks in (and whose own floods go nowhere).
fn hill(
    neighbours: &[(&str, SocketAddr)],
    secret: Option<&[u8]>,
    settings: LinkSettings,
) -> (Addr<PeerManager>, Addr<LocationStore>, tempfile::TempDir) {
    let (floods, _) = collector::<Spread>();
    let store = LocationStore::new(floods, Table::default(), None, Bounds::default()).start();
    let secret: Option<Arc<[u8]>> = secret.map(Arc::from);
    let targets: Vec<LinkTarget> = neighbours
        .iter()
        .map(|(name, addr)| LinkTarget {
            me: "Hill".into(),
            neighbour: Arc::from(*name),
            addr: *addr,
            secret: secret.clone(),
            tls: None,
        })
        .collect();
    let policy = PeerPolicy {
        me: "Hill".into(),
        neighbours: targets.iter().map(|t| t.neighbour.clone()).collect(),
        secret,
        tls: false,
    };
    let records = Records {
        merge: store.clone().recipient(),
        first_query: store.clone().recipient(),
        reconcile: store.clone().recipient(),
        follow_up: store.clone().recipient(),
    };
    let (log, dir) = temp_log("Hill");
    let metrics = PeerMetrics::default();
    let manager = PeerManager::new(targets, policy, settings, records, log, metrics).start();
    (manager, store, dir)
}

/// Quick to retry; heartbeats rare enough that no test but the heartbeat's sees one.
fn quick() -> LinkSettings {
    LinkSettings {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        heartbeat: Duration::from_secs(60),
        ..LinkSettings::default()
    }
}

/// Polls the manager until `check` holds for its only link.
async fn until_link(manager: &Addr<PeerManager>, check: impl Fn(&LinkStatus) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let statuses = manager.send(LinkStatuses).await.expect("the manager runs");
        if check(&statuses[0]) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix::test]
async fn a_link_comes_up_when_the_listener_appears_late_and_again_after_a_drop() {
    // A port that nothing listens on yet: the link fails and keeps retrying with backoff.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let (manager, store, _dir) = hill(&[("Smith", addr)], None, quick());
    let kiwi = record("Hill", "IAMAT kiwi +1+1 5");
    assert_eq!(store.send(CheckIn(kiwi.clone())).await.unwrap(), Ok(true));
    until_link(&manager, |l| l.last_error.is_some()).await;
    let listener = TcpListener::bind(addr).await.unwrap();

    // First connection: a reconciliation, then the record the empty neighbour lacks.
    let mut first = Neighbour::accept(&listener, "Smith", None).await;
    first.reconciles().await;
    assert_eq!(first.line().await, kiwi.at_line());
    drop(first);

    // The link comes back after the drop, syncs again, then carries floods.
    let mut second = Neighbour::accept(&listener, "Smith", None).await;
    second.reconciles().await;
    assert_eq!(second.line().await, kiwi.at_line());
    let pear = record("Hill", "IAMAT pear +2+2 6");
    manager
        .send(Spread {
            record: pear.clone(),
            from: None,
            seen: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        second.line().await,
        format!("FLOOD Hill,Smith {}", pear.at_line())
    );
    // The neighbour dialling in while the link is up probes the link instead.
    manager.send(DialedIn("Smith".into())).await.unwrap();
    assert_eq!(second.line().await, "PING");
}

#[actix::test]
async fn a_link_answers_the_challenge_with_the_secret() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_manager, _store, _dir) = hill(&[("Smith", addr)], Some(b"k3y"), quick());
    let mut n = Neighbour::accept(&listener, "Smith", Some(b"k3y")).await;
    n.reconciles().await;
}

#[actix::test]
async fn a_neighbour_that_stops_reading_is_dropped_and_resynced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = LinkSettings {
        max_queued: 64 * 1024,
        ..quick()
    };
    let (manager, _store, _dir) = hill(&[("Smith", addr)], None, settings);
    let mut stalled = Neighbour::accept(&listener, "Smith", None).await;
    stalled.reconciles().await;
    until_link(&manager, |l| l.up).await;
    // From here the neighbour reads nothing: far more than socket buffers plus the cap.
    let line = record("Hill", &format!("IAMAT {} +1+1 1", "x".repeat(200)));
    for sent in 0.. {
        let flood = Spread {
            record: line.clone(),
            from: None,
            seen: Vec::new(),
        };
        manager.send(flood).await.unwrap();
        if sent % 1000 == 0 && !manager.send(LinkStatuses).await.unwrap()[0].up {
            break; // Dropped for overflowing: what this test waits for.
        }
        assert!(sent < 1_000_000, "the link never gave up on its neighbour");
    }
    // The link gave up on the stalled connection and dialled again, and syncs afresh.
    let mut again = Neighbour::accept(&listener, "Smith", None).await;
    again.reconciles().await;
    drop(stalled);
}

#[actix::test]
async fn floods_go_only_to_neighbours_that_lack_them() {
    let names = ["Jaquez", "Smith", "Campbell"];
    let mut listeners = Vec::new();
    for _ in names {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let targets: Vec<(&str, SocketAddr)> = names
        .iter()
        .zip(&listeners)
        .map(|(name, l)| (*name, l.local_addr().unwrap()))
        .collect();
    let (manager, _store, _dir) = hill(&targets, None, quick());
    let mut neighbours = Vec::new();
    for (name, listener) in names.iter().zip(&listeners) {
        let mut n = Neighbour::accept(listener, name, None).await;
        n.reconciles().await;
        neighbours.push(n);
    }
    let flood = |record: &Record, from: Option<&str>, seen: &[&str]| Spread {
        record: record.clone(),
        from: from.map(Arc::from),
        seen: seen.iter().map(|s| Arc::from(*s)).collect(),
    };

    // A check-in here goes to every link, saying who is being sent it.
    let first = record("Hill", "IAMAT kiwi +1+1 20");
    manager.send(flood(&first, None, &[])).await.unwrap();
    let line = format!("FLOOD Hill,Jaquez,Smith,Campbell {}", first.at_line());
    for n in &mut neighbours {
        assert_eq!(n.line().await, line);
    }
    // From Smith, which sent it to Campbell too: only Jaquez still needs it.
    let merged = record("Campbell", "IAMAT kiwi +7+7 30");
    let from_smith = flood(&merged, Some("Smith"), &["Smith", "Campbell"]);
    manager.send(from_smith).await.unwrap();
    let line = format!("FLOOD Smith,Campbell,Hill,Jaquez {}", merged.at_line());
    assert_eq!(neighbours[0].line().await, line);
    // A last flood shows nothing else was queued for Smith or Campbell meanwhile.
    let last = record("Hill", "IAMAT kiwi +1+1 40");
    manager.send(flood(&last, None, &[])).await.unwrap();
    let line = format!("FLOOD Hill,Jaquez,Smith,Campbell {}", last.at_line());
    for n in &mut neighbours {
        assert_eq!(n.line().await, line);
    }
}

#[actix::test]
async fn a_neighbour_that_stops_answering_heartbeats_is_given_up_and_dialled_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = LinkSettings {
        heartbeat: Duration::from_millis(50),
        ..quick()
    };
    let (manager, _store, _dir) = hill(&[("Smith", addr)], None, settings);
    let mut hung = Neighbour::accept(&listener, "Smith", None).await;
    hung.reconciles().await;
    // Pings arrive and are never answered, as with a stopped server whose kernel still
    // takes the bytes.
    assert_eq!(hung.line().await, "PING");
    until_link(&manager, |l| {
        !l.up
            && l.last_error.as_ref().map(|(why, _)| why.as_str())
                == Some("no word from the neighbour for 150ms")
    })
    .await;
    let mut again = Neighbour::accept(&listener, "Smith", None).await;
    again.reconciles().await;
    drop(hung);
}

#[actix::test]
async fn a_pong_before_an_answer_is_no_fault() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (manager, store, _dir) = hill(&[("Smith", addr)], None, quick());
    let kiwi = record("Hill", "IAMAT kiwi +1+1 5");
    assert_eq!(store.send(CheckIn(kiwi.clone())).await.unwrap(), Ok(true));
    let mut n = Neighbour::accept(&listener, "Smith", None).await;
    let query = Query::parse(&n.raw_line().await).expect("a query");
    // The neighbour answers a PING sent before the query was answered.
    let answer = Table::default().answer(&query).unwrap();
    n.send(&format!("PONG\n{}", answer.line())).await;
    assert_eq!(n.line().await, kiwi.at_line());
    until_link(&manager, |l| l.up && l.last_error.is_none()).await;
}

#[actix::test]
async fn a_heartbeat_goes_out_ahead_of_a_reconciliation_far_over_the_queue_cap() {
    // A neighbour whose kernel takes little ahead of what it reads, as a busy server's
    // socket would: what waits in front of a PING is then what our side holds.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = LinkSettings {
        max_queued: 64 * 1024,
        heartbeat: Duration::from_millis(100),
        // What the kernel's socket buffers hold (megabytes) is read before each PING.
        heartbeat_misses: 10,
        ..quick()
    };
    let (manager, store, _dir) = hill(&[("Smith", addr)], None, settings);
    // About 6 MB of records: a hundred times the link's cap.
    let id = "x".repeat(250);
    for i in 0..24_000 {
        let line = format!("IAMAT {id}{i} +1+1 5");
        assert_eq!(
            store.send(CheckIn(record("Hill", &line))).await.unwrap(),
            Ok(true)
        );
    }
    let mut n = Neighbour::accept(&listener, "Smith", None).await;
    n.reconciles().await;
    // A neighbour that reads slowly: the records stream as it drains, the heartbeats pass
    // them, and the link stays up until every record has come.
    let (mut records, mut pings) = (0, 0);
    while records < 24_000 {
        let line = n.line().await;
        if line == "PING" {
            pings += 1;
            n.send("PONG").await;
        } else {
            assert!(line.starts_with("AT Hill "), "{line}");
            records += 1;
            if records % 200 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    assert!(pings >= 2, "{pings} heartbeats while the records streamed");
    let status = &manager.send(LinkStatuses).await.unwrap()[0];
    assert!(status.up && status.last_error.is_none(), "{status:?}");
}
