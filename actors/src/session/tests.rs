//! Session behaviour over real sockets, with the server's actors in this process.

use super::*;
use crate::places::fake::{FakeGoogle, Mode};
use crate::server::{bind, start_with, Tuning};
use crate::settings::Settings;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A one-server config in a temp dir; `places` is TOML for the `[places]` table.
fn config(dir: &tempfile::TempDir, places: &str) -> Settings {
    let path = dir.path().join("herd.toml");
    let toml = format!(
        "[places]\n{places}\n[log]\ndir = \"{}\"\n[servers.Hill]\naddr = \"127.0.0.1:1\"\n",
        dir.path().join("logs").display()
    );
    std::fs::write(&path, toml).unwrap();
    Settings::load_with_env(&path, Vec::new()).unwrap()
}

async fn serve(config: &Settings, tuning: Tuning) -> std::net::SocketAddr {
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    start_with(config, "Hill", listener, tuning).unwrap().addr
}

async fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("reply in time")
            .unwrap();
        assert!(n > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
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
    let addr = serve(&cfg, Tuning::default()).await;
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

#[actix::test]
async fn a_client_that_never_reads_is_dropped_at_the_queue_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "");
    let tuning = Tuning {
        limits: Limits {
            max_queued: 64 * 1024,
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = serve(&cfg, tuning).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"IAMAT la +34.068930-118.445127 1\n")
        .await
        .unwrap();
    read_until(&mut s, b"\n").await;
    // Each reply is kilobytes; far more than socket buffers plus the cap, never read.
    let request = b"WHATSAT la 50 20\n".repeat(4000);
    let (mut read, mut write) = s.into_split();
    let _ = write.write_all(&request).await;
    // The server gives up on us: what we read ends (EOF or reset) well short of every reply.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the server kept a non-reading client ({total} bytes read)"),
        }
    }
    assert!(total < 4000 * 1000, "read {total} bytes");
}

#[actix::test]
async fn an_overlong_line_closes_the_connection_after_earlier_replies() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(&config(&dir, ""), Tuning::default()).await;
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
async fn lines_piling_up_behind_a_slow_reply_are_capped() {
    let fake = FakeGoogle::start(Mode::Hang);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir,
        &format!(
            "provider = \"google\"\nbase_url = \"{}\"\napi_key = \"k\"\ntimeout_ms = 60000",
            fake.base_url()
        ),
    );
    let tuning = Tuning {
        limits: Limits {
            max_in_flight: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = serve(&cfg, tuning).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"IAMAT kiwi +1+1 1\n").await.unwrap();
    read_until(&mut s, b"\n").await;
    // The WHATSAT hangs upstream; the invalid lines behind it wait for it, up to the cap.
    let mut input = b"WHATSAT kiwi 1 1\n".to_vec();
    input.extend(b"bogus\n".repeat(1000));
    s.write_all(&input).await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .expect("the server dropped the connection");
    assert!(
        n.is_err() || rest.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}
