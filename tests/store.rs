//! The durable store, through real `herd serve` processes: what a server acknowledged
//! survives `kill -9`, of one server or of the whole herd.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// Checks `count` clients in over one pipelined connection per server, spread over the
/// herd; every one must be acknowledged. Returns (client, AT line) of each.
fn check_in_many(files: &HerdFiles, count: usize) -> Vec<(String, String)> {
    let per_server = count / NAMES.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                s.spawn(move || {
                    let mut conn = Conn::open(files.addr(name));
                    let clients: Vec<String> =
                        (0..per_server).map(|j| format!("s{i}c{j}")).collect();
                    let lines: String = clients
                        .iter()
                        .map(|c| format!("IAMAT {c} +1+1 {}\n", 1_000 + i))
                        .collect();
                    conn.send(lines.as_bytes());
                    let replies = conn.read_lines(per_server);
                    clients
                        .into_iter()
                        .zip(replies)
                        .map(|(client, at)| {
                            assert!(at.starts_with(&format!("AT {name} ")), "{at}");
                            (client, at)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a checking-in thread"))
            .collect()
    })
}

/// Asks `server` for every client of `acked` at once (pipelined WHATSATs on one
/// connection) and checks that each reply's AT line is the one acknowledged; `what(client)`
/// says which failed.
fn assert_answers_all(
    files: &HerdFiles,
    server: &str,
    acked: &[(String, String)],
    what: impl Fn(&str) -> String,
) {
    let mut conn = Conn::open(files.addr(server));
    let ask: String = acked
        .iter()
        .map(|(client, _)| format!("WHATSAT {client} 0.001 1\n"))
        .collect();
    conn.send(ask.as_bytes());
    let replies = whatsat_replies(&mut conn, acked.len());
    for ((client, at), reply) in acked.iter().zip(replies) {
        assert_eq!(reply.lines().next(), Some(at.as_str()), "{}", what(client));
    }
}

#[test]
fn a_herd_killed_at_once_answers_every_acknowledged_check_in_after_a_restart() {
    let files = HerdFiles::new(GRAPH, "");
    let mut servers = start_herd(&files);
    let acked = check_in_many(&files, 3000);
    assert_eq!(acked.len(), 3000);
    // A power cut, or kill -9 of all five at once.
    for server in &mut servers {
        server.kill();
    }
    let _servers = start_herd(&files);
    // Every server answers every record at once: from its own store, or its neighbours'.
    for name in NAMES {
        assert_answers_all(&files, name, &acked, |client| format!("{name} on {client}"));
    }
}

#[test]
fn a_server_killed_while_check_ins_arrive_keeps_every_one_it_acknowledged() {
    // One server alone: no neighbour can give anything back, only its store.
    let files = HerdFiles::single("");
    let mut server = files.serve("Hill");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, addr) = (Arc::clone(&acked), Arc::clone(&stop), files.addr("Hill"));
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).expect("connect");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let client = format!("w{w}n{n}");
                    if writer
                        .write_all(format!("IAMAT {client} +1+1 {}\n", 1_000 + n).as_bytes())
                        .is_err()
                    {
                        return;
                    }
                    let mut at = String::new();
                    match reader.read_line(&mut at) {
                        Ok(n) if n > 0 && at.ends_with('\n') => {
                            acked
                                .lock()
                                .expect("lock")
                                .push((client, at.trim_end().to_owned()));
                        }
                        // Killed: this one got no AT reply, and may or may not be kept.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Kill while check-ins are in flight, once a good many are acknowledged.
    wait_for_within(
        "2000 check-ins acknowledged",
        Duration::from_secs(20),
        || (acked.lock().expect("lock").len() >= 2000).then_some(()),
    );
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("a writer");
    }
    let acked = acked.lock().expect("lock").clone();
    let _server = files.serve("Hill");
    assert_answers_all(&files, "Hill", &acked, str::to_owned);
}

#[test]
fn what_a_server_took_before_sigterm_is_there_after_a_restart() {
    let files = HerdFiles::single("");
    let mut server = files.serve("Hill");
    let mut conn = Conn::open(files.addr("Hill"));
    let at = conn.line("IAMAT kept +1+1 1000").trim_end().to_owned();
    assert!(server.terminate().success());
    let _server = files.serve("Hill");
    assert_eq!(held(&files, "Hill", "kept").as_deref(), Some(at.as_str()));
}

#[test]
fn a_store_the_server_cannot_use_stops_it_with_what_to_do() {
    let files = HerdFiles::single("");
    let dir = files.dir.0.join("data");
    std::fs::create_dir_all(&dir).expect("store dir");
    std::fs::write(dir.join("Hill.db"), vec![b'x'; 4096]).expect("a damaged store");
    let out = herd(&[
        "serve",
        "Hill",
        "--config",
        files.config.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Hill.db"), "{stderr}");
    assert!(stderr.contains("move it away"), "{stderr}");
}

#[test]
fn a_sound_store_in_a_directory_the_server_cannot_write_is_not_called_damaged() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let files = HerdFiles::single("");
    let mut server = files.serve("Hill");
    Conn::open(files.addr("Hill")).line("IAMAT kept +1+1 1000");
    assert!(server.terminate().success());
    let data = files.dir.0.join("data");
    // The file alone, as a last connection's close leaves it (or a copy of it).
    let store = rusqlite::Connection::open(data.join("Hill.db")).expect("the store opens");
    store
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("a checkpoint");
    drop(store);
    assert!(!data.join("Hill.db-wal").exists());
    let mode = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    // The file may be written, its directory not, so SQLite cannot make the WAL beside it
    // (as root, whom modes do not stop, the server runs as nobody).
    mode(&data.join("Hill.db"), 0o666);
    mode(&files.dir.0.join("logs"), 0o777);
    mode(&files.log_path("Hill"), 0o666);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    mode(&data, if root { 0o755 } else { 0o555 });
    let mut cmd = std::process::Command::new(herd_bin());
    cmd.args(["serve", "Hill", "--config"])
        .arg(&files.config)
        .env("HERD_STORE__DIR", &data)
        .stdin(std::process::Stdio::null());
    if root {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run herd serve");
    mode(&data, 0o755);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert!(stderr.contains("Hill.db"), "{stderr}");
    assert!(stderr.contains("directory"), "{stderr}");
    assert!(!stderr.contains("damaged ("), "{stderr}");
    assert!(!stderr.contains("move it away"), "{stderr}");
    // Where it can be written, it serves what it held.
    let _server = files.serve("Hill");
    assert!(held(&files, "Hill", "kept").is_some());
}
