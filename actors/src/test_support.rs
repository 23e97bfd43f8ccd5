//! What the crate's tests share: records made from IAMAT lines, an actor that hands the
//! messages it gets to the test, an event log in a temporary directory, a server Hill
//! started in this process, and reading what a connection to it sends.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::event_log::EventLog;
use crate::protocol::{parse_line, Command, Record, Timestamp};
use crate::server::{bind, start_with, Server, Tuning};
use crate::settings::Settings;

/// How long a helper here waits for a server before it fails the test instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// The record of the IAMAT `line` as `server` would take it at time 0.
pub(crate) fn record(server: &str, line: &str) -> Record {
    match parse_line(line.as_bytes()) {
        Ok(Some(Command::IAmAt(c))) => Record::check_in(server, Timestamp::from_nanos(0), &c),
        other => panic!("not an IAMAT line: {line}: {other:?}"),
    }
}

/// Stands in for an actor: every `M` it gets goes to the test's receiver.
struct Collect<M>(mpsc::UnboundedSender<M>);

impl<M: Message<Result = ()> + Send + 'static> Actor for Collect<M> {
    type Context = Context<Self>;
}

impl<M: Message<Result = ()> + Send + 'static> Handler<M> for Collect<M> {
    type Result = ();

    fn handle(&mut self, message: M, _: &mut Context<Self>) {
        let _ = self.0.send(message);
    }
}

/// A recipient whose messages the test reads from the receiver.
pub(crate) fn collector<M>() -> (Recipient<M>, mpsc::UnboundedReceiver<M>)
where
    M: Message<Result = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    (Collect(tx).start().recipient(), rx)
}

/// An event log for `server` in a fresh temporary directory, removed when it is dropped.
pub(crate) fn temp_log(server: &str) -> (EventLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EventLog::open(dir.path(), server).expect("an event log");
    (log, dir)
}

/// A herd.toml for server Hill written in `dir` and loaded: no store file, the event log
/// under `dir/logs`. `top` goes above the tables, `after` right after Hill's `addr`: more of
/// Hill's keys, then further servers' tables.
pub(crate) fn hill_config(dir: &Path, top: &str, after: &str) -> Settings {
    let path = dir.join("herd.toml");
    let toml = format!(
        "{top}\n[store]\ndir = \"\"\n[log]\ndir = \"{}\"\n\
         [servers.Hill]\naddr = \"127.0.0.1:1\"\n{after}",
        dir.join("logs").display()
    );
    std::fs::write(&path, toml).expect("a config");
    Settings::load_with_env(&path, Vec::new()).expect("a valid config")
}

/// Hill of `config`, started in this process on a free loopback port with `tuning`.
pub(crate) async fn start_hill(config: &Settings, tuning: Tuning) -> Server {
    let listener = bind("127.0.0.1:0".parse().expect("an address")).expect("a free port");
    start_with(config, "Hill", listener, tuning)
        .await
        .expect("Hill starts")
}

/// What `stream` sends up to and including `end`.
pub(crate) async fn read_until(stream: &mut (impl AsyncRead + Unpin), end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("a reply in time")
            .unwrap();
        assert!(n > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// One line, or why none came.
pub(crate) async fn read_line(stream: &mut (impl AsyncRead + Unpin)) -> Result<String, String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        match tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await {
            Err(_) => panic!("no line and no close in {PATIENCE:?}"),
            Ok(Ok(0)) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Ok(Ok(_)) => got.push(byte[0]),
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
    Ok(String::from_utf8(got).unwrap())
}

/// Reads until the server closes the connection; what came before.
pub(crate) async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got))
        .await
        .expect("the server closed the connection")
        .expect("read");
    got
}

/// A plain client's one-line exchange: sends `line`, and returns the first line of the
/// answer.
pub(crate) async fn ask(addr: SocketAddr, line: &str) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    read_line(&mut c).await.unwrap()
}

/// Waits until the event log at `path` holds `text`; the log.
pub(crate) async fn logged(path: &Path, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{text:?} not in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
