//! Session behaviour over real sockets, with the server's actors in this process.

use crate::places::fake::{FakeGoogle, Mode};
use crate::server::Tuning;
use crate::session::ClientLimits;
use crate::settings::Settings;
use crate::test_support::{hill_config, logged, read_until, start_hill, until_closed};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A one-server config in a temp dir; `places` is TOML for the `[places]` table.
fn config(dir: &tempfile::TempDir, places: &str) -> Settings {
    hill_config(dir.path(), &format!("[places]\n{places}"), "")
}

#[actix::test]
async fn a_slow_whatsat_holds_back_later_replies_until_it_is_answered() {
    let fake = FakeGoogle::start(Mode::Delay(Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir,
        &format!(
            "provider = \"google\"\nbase_url = \"{}\"\napi_key = \"k\"",
            fake.base_url()
        ),
    );
    let addr = start_hill(&cfg, Tuning::default()).await.addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"IAMAT kiwi +1+1 1\n").await.unwrap();
    read_until(&mut s, b"\n").await;
    // The WHATSAT waits on Google; the IAMAT and the invalid line after it do not, yet their
    // replies must come after the WHATSAT's.
    s.write_all(b"WHATSAT kiwi 1 1\nIAMAT pear +2+2 2\nbogus\n")
        .await
        .unwrap();
    let got = String::from_utf8(read_until(&mut s, b"? bogus\n").await).unwrap();
    let (whatsat, rest) = got.split_at(got.find("\n\n").expect("whatsat first") + 2);
    assert!(
        whatsat.starts_with("AT Hill ") && whatsat.contains("\"status\""),
        "{got}"
    );
    assert!(
        rest.starts_with("AT Hill ") && rest.contains(" pear +2+2 2\n"),
        "{got}"
    );
}

/// The event log's lines about `peer`, once its replies are all logged (the log is
/// written every 50 ms).
fn lines_of(dir: &tempfile::TempDir, peer: std::net::SocketAddr) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(dir.path().join("logs/Hill.log")).unwrap_or_default();
        let mine: Vec<String> = log
            .lines()
            .filter(|l| l.contains(&format!(" {peer} ")))
            .map(str::to_owned)
            .collect();
        if mine.last().is_some_and(|l| l.contains("bogus999")) {
            return mine;
        }
        assert!(std::time::Instant::now() < deadline, "{mine:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[actix::test]
async fn a_client_that_stops_reading_is_held_back_then_gets_every_reply() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = Tuning {
        limits: ClientLimits {
            reply_window: 16 * 1024,
            ..Tuning::default().limits
        },
        ..Default::default()
    };
    let server = start_hill(&config(&dir, ""), tuning).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"IAMAT la +34.068930-118.445127 1\n")
        .await
        .unwrap();
    read_until(&mut s, b"\n").await;
    // Each reply is kilobytes: far more than the socket buffers, and nothing is read.
    const LINES: usize = 4000;
    let (mut read, mut write) = s.into_split();
    let writer = tokio::spawn(async move {
        write
            .write_all(&b"WHATSAT la 50 20\n".repeat(LINES))
            .await
            .unwrap();
        write
    });
    // Nothing is read for a while; the server stops reading once the replies it cannot
    // send fill the kernel's buffers and its window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Once the client reads, every reply comes, in order, and nothing was dropped.
    let mut got = 0usize;
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while got < LINES {
        let n = tokio::time::timeout(Duration::from_secs(20), read.read(&mut buf))
            .await
            .expect("replies keep coming")
            .unwrap();
        assert!(n > 0, "dropped after {got} replies");
        tail.extend_from_slice(&buf[..n]);
        while let Some(end) = tail.windows(2).position(|w| w == b"\n\n") {
            assert!(
                tail.starts_with(b"AT Hill "),
                "{:?}",
                String::from_utf8_lossy(&tail)
            );
            tail.drain(..end + 2);
            got += 1;
        }
    }
    drop(writer.await.unwrap());
    // What the server held unsent for this client at worst: the window, plus the replies
    // to commands it had already read when the window filled.
    let peak = server.budget().peak();
    assert!(
        peak <= 16 * 1024 + 32 * 12 * 1024,
        "{peak} bytes held for one client"
    );
}

#[actix::test]
async fn an_overlong_line_closes_the_connection_after_earlier_replies() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_hill(&config(&dir, ""), Tuning::default()).await.addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut input = b"IAMAT ok +1+1 1\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100_000));
    let _ = s.write_all(&input).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    let got = String::from_utf8(got).unwrap();
    assert!(
        got.starts_with("AT Hill ") && got.ends_with(" ok +1+1 1\n"),
        "{got:?}"
    );
}

#[actix::test]
async fn lines_behind_a_slow_reply_wait_unread_and_are_all_answered_in_order() {
    let fake = FakeGoogle::start(Mode::Hang);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir,
        &format!(
            "provider = \"google\"\nbase_url = \"{}\"\napi_key = \"k\"\ntimeout_ms = 1000",
            fake.base_url()
        ),
    );
    let tuning = Tuning {
        limits: ClientLimits {
            max_pending: 8,
            ..Tuning::default().limits
        },
        ..Default::default()
    };
    let addr = start_hill(&cfg, tuning).await.addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"IAMAT kiwi +1+1 1\n").await.unwrap();
    read_until(&mut s, b"\n").await;
    let me = s.local_addr().unwrap();
    // The WHATSAT hangs upstream; the lines behind it wait, most of them unread.
    let mut input = b"WHATSAT kiwi 1 1\n".to_vec();
    for i in 0..1000 {
        input.extend(format!("bogus{i}\n").as_bytes());
    }
    s.write_all(&input).await.unwrap();
    // The WHATSAT's time-out answers it; then every line behind it is read and answered.
    let got = String::from_utf8(read_until(&mut s, b"? bogus999\n").await).unwrap();
    let (whatsat, rest) = got.split_at(got.find("\n\n").expect("the WHATSAT first") + 2);
    assert!(whatsat.contains("UPSTREAM_TIMEOUT"), "{whatsat}");
    let expected: String = (0..1000).map(|i| format!("? bogus{i}\n")).collect();
    assert_eq!(rest, expected);
    // The log keeps the server's order of events: while the WHATSAT hung, the server read
    // no more than the commands that may await replies.
    let log = lines_of(&dir, me);
    let answered = log
        .iter()
        .position(|l| l.contains(" out ") && l.contains("UPSTREAM_TIMEOUT"))
        .expect("the WHATSAT's reply is logged");
    let read_before = log[..answered]
        .iter()
        .filter(|l| l.contains(" in ") && !l.contains(" IAMAT "))
        .count();
    assert_eq!(
        read_before,
        8,
        "read while the WHATSAT hung: {:?}",
        &log[..answered]
    );
}

/// A server whose sessions time out quickly.
async fn impatient(
    dir: &tempfile::TempDir,
    idle: Duration,
    line: Duration,
) -> std::net::SocketAddr {
    let tuning = Tuning {
        limits: ClientLimits {
            idle_timeout: Some(idle),
            line_timeout: Some(line),
            ..Tuning::default().limits
        },
        ..Default::default()
    };
    start_hill(&config(dir, ""), tuning).await.addr
}

#[actix::test]
async fn a_connection_that_says_nothing_is_closed_after_the_idle_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let addr = impatient(&dir, Duration::from_millis(200), Duration::from_secs(10)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(until_closed(&mut s).await, b"");
}

#[actix::test]
async fn a_client_that_keeps_talking_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    let addr = impatient(&dir, Duration::from_secs(1), Duration::from_secs(10)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Three idle time-outs long, never silent for a quarter of one.
    for i in 0..12 {
        s.write_all(format!("IAMAT a +1+1 {i}\n").as_bytes())
            .await
            .unwrap();
        let reply = read_until(&mut s, b"\n").await;
        assert!(reply.starts_with(b"AT Hill "), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[actix::test]
async fn a_line_sent_a_byte_at_a_time_is_cut_off_at_the_line_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let addr = impatient(&dir, Duration::from_secs(10), Duration::from_millis(300)).await;
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = s.into_split();
    // A byte every 50 ms: never idle, but the line never ends.
    let dribble = tokio::spawn(async move {
        for &b in b"IAMAT slow +1+1 1".iter().cycle() {
            if write.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut got))
        .await
        .expect("the server closed the connection")
        .ok();
    assert_eq!(got, b"");
    dribble.abort();
}

#[actix::test]
async fn a_check_in_that_cannot_be_stored_closes_the_connection_after_the_replies_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herd.toml");
    let toml = format!(
        "[store]\ndir = \"{}\"\n[log]\ndir = \"{}\"\n[servers.Hill]\naddr = \"127.0.0.1:1\"\n",
        dir.path().join("data").display(),
        dir.path().join("logs").display()
    );
    std::fs::write(&path, toml).unwrap();
    let cfg = Settings::load_with_env(&path, Vec::new()).unwrap();
    let tuning = Tuning {
        store_fails: true,
        ..Default::default()
    };
    let addr = start_hill(&cfg, tuning).await.addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Too big for the room left in the store's file, which may not grow.
    let big = format!("IAMAT {} +1+1 2\n", "b".repeat(8000));
    s.write_all(format!("bogus\n{big}IAMAT after +1+1 3\n").as_bytes())
        .await
        .unwrap();
    // The protocol has no reply for a valid check-in the server could not keep: the line
    // before it is answered, then the connection closes, and nothing after it is answered.
    assert_eq!(until_closed(&mut s).await, b"? bogus\n");
    // And the operator reads why.
    let log = dir.path().join("logs/Hill.log");
    logged(&log, ": check-in not stored: cannot write ").await;
}
