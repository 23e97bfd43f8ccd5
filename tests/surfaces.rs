//! What an operator sees must not be written by others: text from outside the server (a
//! client's id, a neighbour's words, another server's `/status`) reaches the event log and
//! the terminal escaped, and the admin listener answers only those it is meant for.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;

/// The characters no client id may hold besides C0 controls: C1 controls (U+0085 is a line
/// break to some programs, U+009B a CSI to some terminals), the line and paragraph
/// separators, the bidirectional embeddings, overrides and isolates.
const HIDDEN: [char; 10] = [
    '\u{80}', '\u{85}', '\u{9b}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{202e}',
    '\u{2066}', '\u{2069}',
];

#[test]
fn client_ids_with_c1_bidirectional_or_separator_characters_are_refused_and_logged_escaped() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut conn = Conn::open(files.addr("Hill"));
    let me = conn.0.local_addr().expect("the client's address");
    for c in HIDDEN {
        let line = format!("IAMAT pay{c}fdp.exe +1+1 1");
        assert_eq!(conn.line(&line), format!("? {line}\n"), "{c:?}");
    }
    // Ids with their neighbours in Unicode are ids like any other.
    let at = conn.line("IAMAT n\u{a0}\u{2027}\u{202f}\u{2065}\u{206a}b +1+1 1");
    assert!(at.starts_with("AT Hill "), "{at}");
    drop(conn);
    let log = wait_for("the connection's end logged", || {
        let log = files.log("Hill");
        log.contains(&format!("closed {me}")).then_some(log)
    });
    assert!(!log.chars().any(hidden), "{log}");
    for c in HIDDEN {
        let escaped = format!("IAMAT pay\\u{{{:x}}}fdp.exe +1+1 1", u32::from(c));
        assert!(
            log.contains(&format!(" in {me} {escaped}\n")),
            "{escaped}:\n{log}"
        );
        assert!(
            log.contains(&format!(" out {me} ? {escaped}\n")),
            "{escaped}:\n{log}"
        );
    }
}

/// Whether `c` is a control character or one of [`HIDDEN`], but for the newline that ends
/// each line of a log.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n') || HIDDEN.contains(&c)
}

/// A listener on `addr` that answers each connection with `answer` (given what it read up
/// to the first empty line or line end, as `ends` says) until dropped.
struct Impostor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Impostor {
    fn start(addr: SocketAddr, ends: &'static [u8], answer: Vec<u8>) -> Impostor {
        let listener = TcpListener::bind(addr).expect("bind the impostor");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.ends_with(ends) {
                    match conn.read(&mut buf) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let _ = conn.write_all(&answer);
            }
        });
        Impostor {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Terminal commands: set the window's title, clear the screen, write the clipboard (OSC
/// 52), and a C1 CSI; then a line break and a fake row.
const TERMINAL_COMMANDS: &str =
    "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u{9b}31m\u{202e}\r\nSmith  4h  9  3/3";

#[test]
fn herd_status_shows_what_neighbours_and_other_servers_say_escaped() {
    let files = HerdFiles::with_admin(PAIR, "");
    // Jaquez is an impostor: on its port it refuses Hill's hello with terminal commands;
    // on its admin port it answers /status with them in every text.
    let _peer = Impostor::start(
        files.addr("Jaquez"),
        b"\n",
        format!("HERD-REFUSED {TERMINAL_COMMANDS}\n").into_bytes(),
    );
    let text = serde_json::to_string(TERMINAL_COMMANDS).expect("a JSON string");
    let status = format!(
        r#"{{"server":{text},"addr":{text},"state":{text},"reason":{text},"uptime_s":1.0,
        "records":7,"links":[{{"neighbour":{text},"up":true,"since":{text},"for_s":1.0,
        "last_error":{text},"queued_bytes":0}}],
        "rates":{{"window_s":1.0,"check_ins_per_s":0.0,"whatsats_per_s":0.0}},
        "counters":{{"check_ins":{{}},"whatsats":{{}},"invalid_lines":0,"connections_open":0,
        "connections_accepted":0,"connections_refused":0,"places_answers":{{}},
        "places_upstream_calls":{{}},"floods_sent":{{}},"floods_received":{{}},
        "event_log_dropped_lines":0}},
        "last_error":{{"at":{text},"ago_s":1.0,"what":{text}}}}}"#
    );
    let _admin = Impostor::start(
        files.admin("Jaquez"),
        b"\r\n\r\n",
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{status}",
            status.len()
        )
        .into_bytes(),
    );
    let _hill = files.serve("Hill");
    wait_for("Hill's link to record the refusal", || {
        let (_, body) = http_get(files.admin("Hill"), "/status")?;
        body.contains("HERD-REFUSED").then_some(())
    });
    let out = herd(&["status", "--config", files.config.to_str().expect("utf8")]);
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(!stdout.chars().any(hidden), "{stdout:?}");
    // A header and a row per server, each row whole.
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    // The neighbour's line ended at its \r\n; the admin port's text is all there.
    let commands = r"\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u{9b}31m\u{202e}";
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(
        rows[0].starts_with("Hill ") && rows[0].contains(commands),
        "{stdout}"
    );
    let all = format!(r"{commands}\r\nSmith  4h  9  3/3");
    assert!(
        rows[1].starts_with("Jaquez ") && rows[1].contains(&all),
        "{stdout}"
    );
}

/// `GET path` on `addr` with `Host: host`: the status code.
fn status_code_for_host(addr: SocketAddr, path: &str, host: &str) -> u16 {
    let (code, _) = http_get_as(addr, path, host).expect("the admin listener answers");
    code
}

#[test]
fn the_loopback_admin_listener_answers_only_requests_addressed_to_loopback() {
    let files = HerdFiles::with_admin(&[("Hill", &[])], "");
    let _hill = files.serve("Hill");
    let admin = files.admin("Hill");
    let port = admin.port();
    wait_for("the server to serve", || {
        http_get(admin, "/health").filter(|(code, _)| *code == 200)
    });
    // What a page in a browser sends once its own name resolves to 127.0.0.1.
    let foreign = [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("10.0.0.5:{port}"),
    ];
    let own = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("[::1]:{port}"),
        format!("127.0.0.2:{port}"),
    ];
    for path in ["/health", "/status", "/metrics", "/herd", "/"] {
        for host in &foreign {
            assert_eq!(
                status_code_for_host(admin, path, host),
                403,
                "{path} {host}"
            );
        }
        for host in &own {
            assert_eq!(
                status_code_for_host(admin, path, host),
                200,
                "{path} {host}"
            );
        }
    }
}
