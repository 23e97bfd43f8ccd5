//! Black-box test harness: real `herd` processes on free loopback ports, a config written
//! to a temporary folder, and raw TCP clients.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod metrics;
pub mod netns;
pub mod relay;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any single read waits before the test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "herd-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("HERD_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` distinct loopback addresses, free when picked, for servers that bind them later.
///
/// A port the kernel hands out for `bind(0)` or as a connection's own end is taken from its
/// ephemeral range, and one picked there and let go could be handed to another socket
/// before the server binds it: a test beside this one then holds the "server's" port, the
/// server cannot start, and the test's connections reach the wrong listener. So these come
/// from below that range, where the kernel assigns nothing, in turns of one counter for the
/// whole test process (tests running at once never share one), from a start that differs
/// between processes. Each is checked free as it is picked.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    const LOWEST: u16 = 10_000;
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU16> = std::sync::OnceLock::new();
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
        .max(LOWEST + 1_000);
    let span = ephemeral - LOWEST;
    let next = NEXT.get_or_init(|| {
        let start = (std::process::id() % u32::from(span)) as u16;
        std::sync::atomic::AtomicU16::new(start)
    });
    let mut addrs = Vec::with_capacity(n);
    while addrs.len() < n {
        let turn = next.fetch_add(1, Ordering::Relaxed) % span;
        let addr = SocketAddr::from(([127, 0, 0, 1], LOWEST + turn));
        if TcpListener::bind(addr).is_ok() {
            addrs.push(addr);
        }
    }
    addrs
}

/// A herd.toml for `servers` (name, neighbours) on fresh ports, plus `extra` TOML (places,
/// secret, ...) placed before the server tables; logs go in the test's folder, and so do
/// the stores of the servers the helpers below start ([`store_env`]).
pub struct HerdFiles {
    pub dir: TempDir,
    pub config: PathBuf,
    pub addrs: Vec<(String, SocketAddr)>,
    /// Each server's admin listener, when the herd has them.
    pub admins: Vec<(String, SocketAddr)>,
}

impl HerdFiles {
    pub fn new(servers: &[(&str, &[&str])], extra: &str) -> HerdFiles {
        HerdFiles::build(servers, extra, false)
    }

    /// As [`HerdFiles::new`], and each server has an admin listener on a port of its own.
    pub fn with_admin(servers: &[(&str, &[&str])], extra: &str) -> HerdFiles {
        HerdFiles::build(servers, extra, true)
    }

    fn build(servers: &[(&str, &[&str])], extra: &str, admin: bool) -> HerdFiles {
        let dir = TempDir::new("herd");
        let ports = free_addrs(servers.len() * if admin { 2 } else { 1 });
        let names = servers.iter().map(|(n, _)| n.to_string());
        let addrs: Vec<(String, SocketAddr)> = names.clone().zip(ports.iter().copied()).collect();
        let admins: Vec<(String, SocketAddr)> = names
            .zip(ports.iter().skip(servers.len()).copied())
            .collect();
        let mut toml = format!(
            "{extra}\n[log]\ndir = \"{}\"\n",
            dir.0.join("logs").display()
        );
        // No [store] table: each server started from this config gets its own store in the
        // test's folder through the environment (`store_env`), which works for another
        // build too (HERD_TEST_BIN), one that may not know `[store]`.
        for ((name, neighbours), (_, addr)) in servers.iter().zip(&addrs) {
            let list: Vec<String> = neighbours.iter().map(|n| format!("\"{n}\"")).collect();
            toml.push_str(&format!(
                "\n[servers.{name}]\naddr = \"{addr}\"\nneighbours = [{}]\n",
                list.join(", ")
            ));
            if let Some((_, admin)) = admins.iter().find(|(n, _)| n == name) {
                toml.push_str(&format!("admin = \"{admin}\"\n"));
            }
        }
        let config = dir.0.join("herd.toml");
        std::fs::write(&config, toml).expect("write config");
        HerdFiles {
            dir,
            config,
            addrs,
            admins,
        }
    }

    /// Where server `name`'s admin listener listens.
    pub fn admin(&self, name: &str) -> SocketAddr {
        self.admins
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no admin listener for {name}"))
    }

    /// One server with no neighbours.
    pub fn single(extra: &str) -> HerdFiles {
        HerdFiles::new(&[("Hill", &[])], extra)
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.0.join("logs").join(format!("{name}.log"))
    }

    /// Server `name`'s event log as it is now (empty while there is none).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Starts `herd serve name` and waits until it accepts connections.
    pub fn serve(&self, name: &str) -> Server {
        Server::start(&self.config, name, self.addr(name), &[])
    }
}

/// The `herd` binary under test: this build's, or the one `HERD_TEST_BIN` names (to run
/// the black-box tests against another build, such as an older one).
pub fn herd_bin() -> String {
    std::env::var("HERD_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_herd").to_owned())
}

/// Where a server started from `config` keeps its store, unless the file has a `[store]`
/// table of its own: `data` beside the file, in the test's folder, so that tests running
/// at once never share one (nor the `./data` of the working directory). It is given as
/// `HERD_STORE__DIR`, which reaches what `herd up` and `herd bench startup` start as well,
/// and which a build without a store ignores, as it does every `HERD_*` variable that
/// names no key.
pub fn store_env(config: &Path) -> Option<(&'static str, PathBuf)> {
    let text = std::fs::read_to_string(config).ok()?;
    if text.lines().any(|l| l.trim() == "[store]") {
        return None;
    }
    Some(("HERD_STORE__DIR", config.parent()?.join("data")))
}

/// A `herd serve` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(config: &Path, name: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Server {
        Server::start_with(Command::new(herd_bin()), config, name, addr, env)
    }

    /// `herd serve` with at most `files` open descriptors (a hard limit it cannot raise).
    pub fn start_with_open_files(
        config: &Path,
        name: &str,
        addr: SocketAddr,
        files: u32,
    ) -> Server {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={files}:{files}")).arg(herd_bin());
        Server::start_with(cmd, config, name, addr, &[])
    }

    fn start_with(
        mut cmd: Command,
        config: &Path,
        name: &str,
        addr: SocketAddr,
        env: &[(&str, &str)],
    ) -> Server {
        cmd.args(["serve", name, "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("GOOGLE_PLACES_API_KEY");
        if let Some((k, v)) = store_env(config) {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn herd serve");
        let server = Server { child, addr };
        wait_until_listening(addr);
        server
    }

    /// SIGTERM, then the exit status (waiting at most a few seconds).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Polls until `addr` accepts a connection (10 s at most).
pub fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `herd` with `args` to completion; with a `--config` among them, with the store
/// [`store_env`] gives that config.
pub fn herd(args: &[&str]) -> Output {
    let mut cmd = Command::new(herd_bin());
    cmd.args(args)
        .env_remove("GOOGLE_PLACES_API_KEY")
        .stdin(Stdio::null());
    let config = args.windows(2).find(|w| w[0] == "--config").map(|w| w[1]);
    if let Some((k, v)) = config.and_then(|c| store_env(Path::new(c))) {
        cmd.env(k, v);
    }
    cmd.output().expect("run herd")
}

/// `herd up --config CONFIG`, stopped with SIGTERM when dropped (so its servers stop with
/// it, which SIGKILL would leave running), passed or not.
pub struct HerdUp(pub Child);

impl HerdUp {
    /// Starts it, its stderr to `stderr`; it does not wait for the servers.
    pub fn start(config: &Path, stderr: Stdio) -> HerdUp {
        let mut cmd = Command::new(herd_bin());
        cmd.args(["up", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .env_remove("GOOGLE_PLACES_API_KEY");
        if let Some((k, v)) = store_env(config) {
            cmd.env(k, v);
        }
        HerdUp(cmd.spawn().expect("spawn herd up"))
    }
}

impl Drop for HerdUp {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            signal(&self.0, "TERM");
            let _ = self.0.wait();
        }
    }
}

/// A child's output, read as it comes by a thread of its own, so that a test can wait for
/// a line while the child runs and still see everything once it has exited.
pub struct Lines {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Lines {
    pub fn of(pipe: Option<impl Read + Send + 'static>) -> Lines {
        let mut pipe = pipe.expect("a piped output");
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let into = std::sync::Arc::clone(&text);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let got = String::from_utf8_lossy(&buf[..n]);
                into.lock().expect("unpoisoned").push_str(&got);
            }
        });
        Lines { text, reader }
    }

    /// Waits (20 s at most) until the output holds `needle`.
    pub fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text.lock().expect("unpoisoned").clone();
            if text.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "never {needle:?} in:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything, once the pipe has closed (the child has exited).
    pub fn all(self) -> String {
        self.reader.join().expect("the reading thread");
        let text = self.text.lock().expect("unpoisoned");
        text.clone()
    }
}

/// A raw client connection with a read time-out.
pub struct Conn(pub TcpStream);

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        Conn(s)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("write");
    }

    /// Reads until the input so far ends with `end`, or fails on EOF/time-out.
    pub fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while !got.ends_with(end) {
            let n = self.0.read(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "read failed ({e}) after {:?}",
                    String::from_utf8_lossy(&got)
                )
            });
            assert!(n > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// Reads `n` lines.
    pub fn read_lines(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.iter().filter(|&&b| b == b'\n').count() < n {
            let k = self.0.read(&mut buf).expect("read");
            assert!(k > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..k]);
        }
        String::from_utf8(got)
            .expect("utf8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One request, one line back.
    pub fn line(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        String::from_utf8(self.read_until(b"\n")).expect("utf8")
    }

    /// A WHATSAT (or anything) answered with a blank-line-terminated reply.
    pub fn whatsat(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        String::from_utf8(self.read_until(b"\n\n")).expect("utf8")
    }

    /// A WHATSAT's reply: `? ...` line, or everything up to the blank line.
    pub fn whatsat_or_invalid(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while !(got.starts_with(b"? ") && got.ends_with(b"\n") || got.ends_with(b"\n\n")) {
            let n = self.0.read(&mut buf).expect("read");
            assert!(n > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).expect("utf8")
    }

    /// Half-closes, then reads everything until the server closes.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.shutdown(Shutdown::Write).expect("shutdown");
        let mut got = Vec::new();
        self.0.read_to_end(&mut got).expect("read to end");
        got
    }
}

/// Seconds since the epoch with nine fraction digits, for IAMAT.
pub fn now_text() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Great-circle distance in metres.
pub fn distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * a.sqrt().asin()
}

/// Splits a WHATSAT reply into its AT line and its JSON, checking the framing.
pub fn split_whatsat(reply: &str) -> (&str, serde_json::Value) {
    assert!(
        reply.ends_with("\n\n"),
        "reply must end with a blank line: {reply:?}"
    );
    let body = &reply[..reply.len() - 2];
    assert!(!body.contains("\n\n"), "blank line inside reply: {reply:?}");
    let (at, json) = body.split_once('\n').expect("AT line then JSON");
    (at, serde_json::from_str(json).expect("reply JSON parses"))
}

/// The default herd's servers, in its order.
pub const NAMES: [&str; 5] = ["Hill", "Jaquez", "Smith", "Campbell", "Singleton"];

/// Two servers linked to each other.
pub const PAIR: &[(&str, &[&str])] = &[("Hill", &["Jaquez"]), ("Jaquez", &["Hill"])];

/// The default herd's graph, as the shipped herd.toml wires it.
pub const GRAPH: &[(&str, &[&str])] = &[
    ("Hill", &["Jaquez", "Smith"]),
    ("Jaquez", &["Hill", "Singleton"]),
    ("Smith", &["Hill", "Singleton", "Campbell"]),
    ("Campbell", &["Smith", "Singleton"]),
    ("Singleton", &["Jaquez", "Smith", "Campbell"]),
];

/// Waits until the event log of `server` shows its links to all `neighbours` up.
pub fn links_up(files: &HerdFiles, server: &str, neighbours: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = files.log(server);
        if neighbours
            .iter()
            .all(|n| log.contains(&format!("peer {n} up")))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{server}'s links did not come up:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every server of [`GRAPH`], started, with every link up.
pub fn start_herd(files: &HerdFiles) -> Vec<Server> {
    start_herd_of(files, GRAPH)
}

/// Every server of `graph` (the one `files` was made for), started, with every link up.
pub fn start_herd_of(files: &HerdFiles, graph: &[(&str, &[&str])]) -> Vec<Server> {
    let servers: Vec<Server> = graph.iter().map(|(name, _)| files.serve(name)).collect();
    for (name, neighbours) in graph {
        links_up(files, name, neighbours);
    }
    servers
}

/// The AT line a server holds for `client`, or `None` if it answers `?`.
pub fn held(files: &HerdFiles, server: &str, client: &str) -> Option<String> {
    let reply =
        Conn::open(files.addr(server)).whatsat_or_invalid(&format!("WHATSAT {client} 0.001 1"));
    if reply.starts_with("? ") {
        return None;
    }
    reply.lines().next().map(str::to_owned)
}

/// Polls until `server` holds exactly `at` for `client` (10 s at most).
pub fn eventually_holds(files: &HerdFiles, server: &str, client: &str, at: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = held(files, server, client);
        if got.as_deref() == Some(at) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{server} holds {got:?} for {client}, expected {at:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks `line` in at `server`; its AT line, which must be `server`'s.
pub fn check_in(files: &HerdFiles, server: &str, line: &str) -> String {
    let reply = Conn::open(files.addr(server)).line(line);
    assert!(reply.starts_with(&format!("AT {server} ")), "{reply:?}");
    reply.trim_end().to_owned()
}

/// `GET path` on `addr` over HTTP/1.1: the status code and the body. `None` while nothing
/// answers there (a server still starting, or gone).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_as(addr, path, &addr.to_string())
}

/// [`http_get`] with the request's `Host` header saying `host`.
pub fn http_get_as(addr: SocketAddr, path: &str, host: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).expect("an HTTP answer in UTF-8");
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// Polls `check` (every 20 ms, 10 s at most) until it returns something.
pub fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_for_within(what, Duration::from_secs(10), check)
}

/// Polls `check` (every 20 ms, `limit` at most) until it returns something.
pub fn wait_for_within<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next `n` replies to pipelined WHATSATs: each an AT line with its JSON and a blank
/// line, or a `? ` line.
pub fn whatsat_replies(conn: &mut Conn, n: usize) -> Vec<String> {
    let mut got: Vec<u8> = Vec::new();
    let mut replies = Vec::with_capacity(n);
    let mut buf = [0u8; 65536];
    while replies.len() < n {
        let end = if got.starts_with(b"? ") {
            got.iter().position(|&b| b == b'\n').map(|i| i + 1)
        } else {
            got.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
        };
        if let Some(end) = end {
            let reply: Vec<u8> = got.drain(..end).collect();
            replies.push(String::from_utf8(reply).expect("utf8"));
            continue;
        }
        let k = conn.0.read(&mut buf).expect("read");
        assert!(k > 0, "EOF after {} replies", replies.len());
        got.extend_from_slice(&buf[..k]);
    }
    replies
}

/// `herd serve Hill` of `files`, with `la` checked in at UCLA and the places data set
/// loaded (it is loaded on first use), so that what is measured next is the serving alone.
pub fn hill_with_places_loaded(files: &HerdFiles) -> Server {
    let server = files.serve("Hill");
    check_in(files, "Hill", "IAMAT la +34.068930-118.445127 1621464827.5");
    Conn::open(files.addr("Hill")).whatsat("WHATSAT la 50 20");
    server
}
