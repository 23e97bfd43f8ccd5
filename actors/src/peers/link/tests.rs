use super::*;
use crate::peers::manager::Flood;
use crate::protocol::{parse_line, Command, Record, Timestamp};
use crate::store::CheckIn;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter_and_resets() {
    let min = Duration::from_millis(50);
    let max = Duration::from_secs(2);
    let mut b = Backoff::new(min, max);
    let mut window = min;
    for _ in 0..10 {
        let d = b.next_delay();
        assert!(
            d >= window / 2 && d <= window,
            "{d:?} outside window {window:?}"
        );
        window = (window * 2).min(max);
    }
    b.reset();
    assert!(b.next_delay() <= min);
}

/// A store whose floods go nowhere: links only read the table here.
fn store() -> Addr<LocationStore> {
    struct Nowhere;
    impl Actor for Nowhere {
        type Context = Context<Self>;
    }
    impl Handler<Flood> for Nowhere {
        type Result = ();
        fn handle(&mut self, _: Flood, _: &mut Context<Self>) {}
    }
    LocationStore::new(Nowhere.start().recipient()).start()
}

fn record(line: &str) -> Record {
    match parse_line(line.as_bytes()) {
        Ok(Some(Command::IAmAt(c))) => Record::check_in("Hill", Timestamp::from_nanos(0), &c),
        other => panic!("{other:?}"),
    }
}

fn log() -> (EventLog, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "herd-link-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    (EventLog::open(&dir, "Hill").expect("log"), dir)
}

/// Plays the listening neighbour on one accepted connection.
struct Neighbour {
    read: BufReader<OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Neighbour {
    /// Accepts the link, checks its hello (and proof), and welcomes it.
    async fn accept(listener: &TcpListener, secret: Option<&[u8]>) -> Neighbour {
        let (stream, _) = listener.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        assert_eq!(
            read_line(&mut read).await.unwrap(),
            "HERD-PEER 1 Hill Smith"
        );
        if let Some(secret) = secret {
            write.write_all(b"HERD-CHALLENGE 00ff\n").await.unwrap();
            let proof = read_line(&mut read).await.unwrap();
            let proof = wire::argument(&proof, wire::PROOF).unwrap().to_owned();
            assert!(wire::verify(secret, "Hill", "Smith", "00ff", &proof));
        }
        write.write_all(b"HERD-WELCOME Smith\n").await.unwrap();
        Neighbour { read, write }
    }

    /// The next line the link sent; a SYNC is answered with an empty digest.
    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(10), read_line(&mut self.read))
            .await
            .expect("a line from the link")
            .unwrap();
        if line == wire::SYNC {
            self.write.write_all(b"DIGEST-END\n").await.unwrap();
        }
        line
    }
}

fn start_link(
    addr: SocketAddr,
    secret: Option<&[u8]>,
    store: Addr<LocationStore>,
) -> (Addr<PeerLink>, LinkSlot) {
    let target = LinkTarget {
        me: "Hill".into(),
        neighbour: "Smith".into(),
        addr,
        secret: secret.map(Arc::from),
    };
    let settings = LinkSettings {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..LinkSettings::default()
    };
    let (log, _) = log();
    let slot = LinkSlot::default();
    let link_slot = slot.clone();
    let link = Supervisor::start(move |_| PeerLink::new(target, settings, store, log, link_slot));
    (link, slot)
}

#[actix::test]
async fn link_comes_up_when_the_listener_appears_late_and_again_after_a_drop() {
    // A port that nothing listens on yet: the link keeps retrying with backoff.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let store = store();
    let kiwi = record("IAMAT kiwi +1+1 5");
    store.send(CheckIn(kiwi.clone())).await.unwrap();
    let (link, slot) = start_link(addr, None, store.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(addr).await.unwrap();

    // First connection: SYNC, then the record the neighbour's empty digest lacks.
    let mut first = accept(&listener).await;
    assert_eq!(first.line().await, "SYNC");
    assert_eq!(first.line().await, kiwi.at_line());
    drop(first);

    // The link comes back after the drop, syncs again, then carries floods.
    let mut second = accept(&listener).await;
    assert_eq!(second.line().await, "SYNC");
    assert_eq!(second.line().await, kiwi.at_line());
    let pear = record("IAMAT pear +2+2 6");
    // The link is up (it has synced): a flood pushed into its outbox goes out.
    let out = slot.borrow().clone().expect("the link is up");
    out.push_line(pear.at_line().as_bytes()).unwrap();
    assert_eq!(second.line().await, pear.at_line());
    // A nudge while up probes the connection instead of dialling again.
    link.send(Nudge).await.unwrap();
    assert_eq!(second.line().await, "PING");
}

async fn accept(listener: &TcpListener) -> Neighbour {
    tokio::time::timeout(Duration::from_secs(10), Neighbour::accept(listener, None))
        .await
        .expect("the link dialled")
}

#[actix::test]
async fn link_answers_the_challenge_with_the_secret() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _link = start_link(listener.local_addr().unwrap(), Some(b"k3y"), store());
    let mut n = tokio::time::timeout(
        Duration::from_secs(10),
        Neighbour::accept(&listener, Some(b"k3y")),
    )
    .await
    .expect("link authenticated");
    assert_eq!(n.line().await, "SYNC");
}

#[actix::test]
async fn a_neighbour_that_stops_reading_is_dropped_and_resynced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = LinkTarget {
        me: "Hill".into(),
        neighbour: "Smith".into(),
        addr: listener.local_addr().unwrap(),
        secret: None,
    };
    let settings = LinkSettings {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        max_queued: 64 * 1024,
        ..LinkSettings::default()
    };
    let (log, _) = log();
    let store = store();
    let slot = LinkSlot::default();
    let link_slot = slot.clone();
    let _link = Supervisor::start(move |_| PeerLink::new(target, settings, store, log, link_slot));
    let mut stalled = accept(&listener).await;
    assert_eq!(stalled.line().await, "SYNC");
    // From here the neighbour reads nothing: far more than socket buffers plus the cap.
    let line: Arc<str> = record(&format!("IAMAT {} +1+1 1", "x".repeat(200))).at_line_shared();
    for _ in 0..100_000 {
        let Some(out) = slot.borrow().clone() else {
            break; // Dropped for overflowing: what this test waits for.
        };
        let _ = out.push_line(line.as_bytes());
        tokio::task::yield_now().await;
    }
    // The link gave up on the stalled connection and dialled again, and syncs afresh.
    let mut again = accept(&listener).await;
    assert_eq!(again.line().await, "SYNC");
    drop(stalled);
}

#[actix::test]
async fn links_probe_a_silent_neighbour_with_keep_alives() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    keep_alive(&stream).unwrap();
    let socket = socket2::SockRef::from(&stream);
    assert!(socket.keepalive().unwrap());
    assert_eq!(
        socket.tcp_keepalive_time().unwrap(),
        Duration::from_secs(10)
    );
    assert_eq!(
        socket.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(3)
    );
    assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
}
