//! The listening side of peer links, through a real server: a connection whose first line
//! is a hello is handed over by the door, and what it sends after is a neighbour's.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::peers::link::LinkSettings;
use crate::peers::recon::{wire_hash, Answer, Child};
use crate::protocol::Record;
use crate::server::Tuning;
use crate::store::table::Table;
use crate::test_support::{ask, hill_config, logged, read_until, start_hill, until_closed};

/// Hill, with Smith as its neighbour, listening on a free port; `extra` goes at the top of
/// its herd.toml.
async fn hill(dir: &tempfile::TempDir, extra: &str, links: LinkSettings) -> std::net::SocketAddr {
    let smith = "[servers.Smith]\naddr = \"127.0.0.1:2\"\nneighbours = [\"Hill\"]\n";
    let config = hill_config(dir.path(), extra, smith);
    let tuning = Tuning {
        links,
        ..Tuning::default()
    };
    start_hill(&config, tuning).await.addr
}

/// What a client asking Hill about `client` gets: its AT line, or `?`.
async fn held(addr: std::net::SocketAddr, client: &str) -> String {
    let reply = ask(addr, &format!("WHATSAT {client} 1 1")).await;
    reply.trim_end_matches('\n').to_owned()
}

/// A connection from "Smith" that has been welcomed.
async fn smith(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"HERD-PEER 2 Smith Hill\n").await.unwrap();
    assert_eq!(read_until(&mut s, b"\n").await, b"HERD-WELCOME Hill\n");
    s
}

#[actix::test]
async fn a_first_line_that_is_a_peer_hello_hands_the_connection_to_the_peer_side() {
    let dir = tempfile::tempdir().unwrap();
    let addr = hill(&dir, "", LinkSettings::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The hello and the lines behind it arrive together: none may be lost in the handoff.
    s.write_all(b"HERD-PEER 2 Smith Hill\nFLOOD Smith AT Smith +0.000000001 kiwi +1+1 7\nPING\n")
        .await
        .unwrap();
    let got = read_until(&mut s, b"PONG\n").await;
    assert_eq!(got, b"HERD-WELCOME Hill\nPONG\n");
    // A dialler holding nothing asks what Hill holds: Hill lists the one record's hash.
    let empty = Table::default();
    s.write_all(format!("{}\n", empty.first_query().line()).as_bytes())
        .await
        .unwrap();
    let answer = String::from_utf8(read_until(&mut s, b"\n").await).unwrap();
    let Some(Answer::Children { children, .. }) = Answer::parse(answer.trim_end()) else {
        panic!("not an answer: {answer}");
    };
    let listed: Vec<&Child> = children.iter().filter(|c| **c != Child::Same).collect();
    let kiwi = Record::parse_at_line("AT Smith +0.000000001 kiwi +1+1 7").unwrap();
    assert_eq!(listed, [&Child::Items(vec![wire_hash(kiwi.hash())])]);
    // What a neighbour floods, a client finds.
    assert_eq!(
        held(addr, "kiwi").await,
        "AT Smith +0.000000001 kiwi +1+1 7"
    );
}

#[actix::test]
async fn a_neighbours_last_line_cut_short_is_dropped_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let addr = hill(&dir, "", LinkSettings::default()).await;
    let mut s = smith(addr).await;
    // The neighbour dies in the middle of its time field: what arrived would parse as a
    // valid record with another time, which nobody sent.
    s.write_all(b"AT Smith +0.000000001 whole +1+1 7\nAT Smith +0.000000001 cut +1+1 16214648")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    until_closed(&mut s).await;
    assert_eq!(
        held(addr, "whole").await,
        "AT Smith +0.000000001 whole +1+1 7"
    );
    assert_eq!(held(addr, "cut").await, "? WHATSAT cut 1 1");
}

#[actix::test]
async fn an_over_long_peer_line_is_skipped_and_the_link_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let addr = hill(&dir, "", LinkSettings::default()).await;
    let mut s = smith(addr).await;
    let long = format!("AT Smith +0.000000001 {} +1+1 7\n", "x".repeat(100_000));
    s.write_all(long.as_bytes()).await.unwrap();
    s.write_all(b"AT Smith +0.000000001 after +1+1 8\nPING\n")
        .await
        .unwrap();
    assert_eq!(read_until(&mut s, b"\n").await, b"PONG\n");
    assert_eq!(
        held(addr, "after").await,
        "AT Smith +0.000000001 after +1+1 8"
    );
}

#[actix::test]
async fn a_dialler_silent_for_several_heartbeats_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let links = LinkSettings {
        heartbeat: Duration::from_millis(50),
        ..LinkSettings::default()
    };
    let addr = hill(&dir, "", links).await;
    let mut s = smith(addr).await;
    // Answered while it speaks...
    s.write_all(b"PING\n").await.unwrap();
    assert_eq!(read_until(&mut s, b"\n").await, b"PONG\n");
    // ...and closed once it falls silent, as a stopped server would.
    assert_eq!(until_closed(&mut s).await, b"");
}

#[actix::test]
async fn an_unanswered_challenge_is_refused_after_the_handshake_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let links = LinkSettings {
        handshake_timeout: Duration::from_millis(100),
        ..LinkSettings::default()
    };
    let addr = hill(&dir, "secret = \"s3cret\"", links).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"HERD-PEER 2 Smith Hill\n").await.unwrap();
    let challenge = String::from_utf8(read_until(&mut s, b"\n").await).unwrap();
    assert!(challenge.starts_with("HERD-CHALLENGE "), "{challenge}");
    assert_eq!(
        until_closed(&mut s).await,
        b"HERD-REFUSED no proof within 100ms\n"
    );
}

#[actix::test]
async fn a_dialler_of_another_protocol_version_is_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    let addr = hill(&dir, "", LinkSettings::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"HERD-PEER 1 Smith Hill\n").await.unwrap();
    let refusal = "HERD-REFUSED Smith speaks peer protocol 1 and this server 2: run the same \
                   herd version on both\n";
    assert_eq!(until_closed(&mut s).await, refusal.as_bytes());
    let said = ": Smith speaks peer protocol 1 and this server 2";
    let log = logged(&dir.path().join("logs/Hill.log"), said).await;
    assert!(
        log.contains("refused peer handshake from 127.0.0.1:"),
        "{log}"
    );
}
