//! State that cannot be poisoned, and a store that cannot silently fall behind, through
//! real `herd serve` processes: a check-in or a neighbour's record from the future, records
//! from the future already on disk, a cap on records, and a full disk that comes back.

mod common;

use std::process::Command;

use common::metrics::{scrape, value};
use common::*;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// What `server` answers to a WHATSAT for `client`: its AT line, or the `?` line.
fn first_line(files: &HerdFiles, server: &str, client: &str) -> String {
    let reply = Conn::open(files.addr(server)).whatsat_or_invalid(&format!("WHATSAT {client} 1 1"));
    reply.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_check_in_from_the_future_gets_a_question_mark_and_locks_nobody_out() {
    let files = HerdFiles::single("");
    let _hill = files.serve("Hill");
    let mut conn = Conn::open(files.addr("Hill"));
    let forged = "IAMAT victim +1+1 9000000000.0";
    assert_eq!(conn.line(forged), format!("? {forged}\n"));
    // Half an hour ahead is within the default hour: a phone whose clock is off.
    let ahead = format!("IAMAT early +1+1 {}", now_secs() + 1800);
    assert!(conn.line(&ahead).starts_with("AT Hill -"));
    // The victim's next check-in with a right clock is the one everybody sees.
    let honest = format!("IAMAT victim +1+1 {}", now_text());
    let at = conn.line(&honest);
    assert!(at.starts_with("AT Hill +"), "{at}");
    assert_eq!(first_line(&files, "Hill", "victim"), at.trim_end());
}

#[test]
fn the_bound_on_a_check_ins_clock_is_limits_max_clock_ahead_s() {
    let files = HerdFiles::single("");
    let _hill = Server::start(
        &files.config,
        "Hill",
        files.addr("Hill"),
        &[("HERD_LIMITS__MAX_CLOCK_AHEAD_S", "60")],
    );
    let mut conn = Conn::open(files.addr("Hill"));
    let ten_minutes = format!("IAMAT kiwi +1+1 {}", now_secs() + 600);
    assert_eq!(conn.line(&ten_minutes), format!("? {ten_minutes}\n"));
    let half_a_minute = format!("IAMAT kiwi +1+1 {}", now_secs() + 30);
    assert!(conn.line(&half_a_minute).starts_with("AT Hill -"));
}

#[test]
fn a_neighbours_record_from_the_future_is_refused_and_counted() {
    let files = HerdFiles::with_admin(&[("Hill", &["Smith"]), ("Smith", &["Hill"])], "");
    let _hill = files.serve("Hill");
    // Smith is played here: a neighbour whose server took a forged check-in.
    let mut smith = Conn::open(files.addr("Hill"));
    smith.send(b"HERD-PEER 2 Smith Hill\n");
    assert_eq!(smith.read_until(b"\n"), b"HERD-WELCOME Hill\n");
    smith.send(b"FLOOD Smith AT Smith +0.000000001 victim +1+1 9000000000.0\n");
    let fine = format!("AT Smith +0.000000001 fine +1+1 {}", now_secs());
    smith.send(format!("FLOOD Smith {fine}\nPING\n").as_bytes());
    let heard = smith.read_until(b"PONG\n");
    assert!(heard.ends_with(b"PONG\n"));
    wait_for("the fine record", || {
        (first_line(&files, "Hill", "fine") == fine).then_some(())
    });
    assert_eq!(first_line(&files, "Hill", "victim"), "? WHATSAT victim 1 1");
    let refused = value(
        &scrape(files.admin("Hill")),
        "herd_records_refused_total",
        &[],
    );
    assert_eq!(refused, 1.0);
}

#[test]
fn records_from_the_future_on_disk_are_dropped_at_load_with_a_count_in_the_log() {
    let files = HerdFiles::single("");
    let data = files.dir.0.join("data");
    let now = now_secs();
    let lines = [
        "AT Hill +0.000000001 victim +1+1 9000000000.0".to_owned(),
        format!("AT Hill +0.000000001 fine +1+1 {now}"),
    ];
    herd_actors::fill_store(&data, "Hill", lines.clone()).expect("a store");
    let _hill = files.serve("Hill");
    assert_eq!(first_line(&files, "Hill", "fine"), lines[1]);
    assert_eq!(first_line(&files, "Hill", "victim"), "? WHATSAT victim 1 1");
    let log = files.log("Hill");
    assert!(
        log.contains("dropped 1 records dated more than 3600s ahead of this server's clock"),
        "{log}"
    );
    // Gone from the file too: a restart has nothing to drop.
    let db = rusqlite::Connection::open(data.join("Hill.db")).expect("the store");
    let rows: i64 = db
        .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
        .expect("a count");
    assert_eq!(rows, 1);
}

#[test]
fn store_max_records_caps_the_records_in_memory_and_on_disk() {
    let files = HerdFiles::with_admin(&[("Hill", &[])], "");
    let cap = [("HERD_STORE__MAX_RECORDS", "100")];
    let mut hill = Server::start(&files.config, "Hill", files.addr("Hill"), &cap);
    let mut conn = Conn::open(files.addr("Hill"));
    let now = now_secs() - 1000;
    let lines: String = (0..300)
        .map(|i| format!("IAMAT c{i} +1+1 {}\n", now + i))
        .collect();
    conn.send(lines.as_bytes());
    let replies = conn.read_lines(300);
    assert!(replies.iter().all(|r| r.starts_with("AT Hill ")));
    let metrics = scrape(files.admin("Hill"));
    let held = value(&metrics, "herd_records", &[]);
    assert!((90.0..=100.0).contains(&held), "{held} records held");
    let evicted = value(&metrics, "herd_store_evicted_records_total", &[]);
    assert_eq!(evicted, 300.0 - held);
    assert_eq!(first_line(&files, "Hill", "c0"), "? WHATSAT c0 1 1");
    assert!(first_line(&files, "Hill", "c299").starts_with("AT Hill "));
    // And on disk: a restart loads no more than the cap.
    assert_eq!(hill.terminate().code(), Some(0));
    drop(hill);
    let _hill = Server::start(&files.config, "Hill", files.addr("Hill"), &cap);
    assert_eq!(first_line(&files, "Hill", "c0"), "? WHATSAT c0 1 1");
    let held = value(&scrape(files.admin("Hill")), "herd_records", &[]);
    assert!(held <= 100.0, "{held} records after a restart");
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped; `None` where this process
/// may not mount (not root), unless HERD_REQUIRE_ROOT=1, as CI sets it, makes that a failure.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).expect("a mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var("HERD_REQUIRE_ROOT").as_deref() != Ok("1"),
                "cannot mount a tmpfs (HERD_REQUIRE_ROOT=1)"
            );
            eprintln!("skipped: mounting a small disk needs root");
            return None;
        }
        Some(SmallDisk(dir.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file that takes every free byte of the disk at `dir`.
fn fill_disk(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("a filler file");
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_turns_health_red_and_every_record_is_written_once_space_returns() {
    let files = HerdFiles::with_admin(&[("Hill", &["Smith"]), ("Smith", &["Hill"])], "");
    let disk_dir = files.dir.0.join("disk");
    let Some(_disk) = SmallDisk::mount(&disk_dir, "8m") else {
        return;
    };
    let on_disk = disk_dir.to_str().expect("a UTF-8 path");
    let _hill = files.serve("Hill");
    let mut smith = Server::start(
        &files.config,
        "Smith",
        files.addr("Smith"),
        &[("HERD_STORE__DIR", on_disk)],
    );
    links_up(&files, "Hill", &["Smith"]);
    links_up(&files, "Smith", &["Hill"]);
    let filler = fill_disk(&disk_dir);

    // Check-ins at Hill, flooded to Smith, whose disk is full.
    let mut conn = Conn::open(files.addr("Hill"));
    let n = 2000;
    let id = "x".repeat(200);
    let lines: String = (0..n)
        .map(|i| format!("IAMAT {id}{i} +1+1 {}\n", now_text()))
        .collect();
    conn.send(lines.as_bytes());
    assert_eq!(conn.read_lines(n).len(), n);
    let (_, health) = wait_for("Smith's health to say its store fails", || {
        http_get(files.admin("Smith"), "/health").filter(|(code, _)| *code == 503)
    });
    assert!(health.contains("the store cannot be written"), "{health}");
    let unwritten = value(
        &scrape(files.admin("Smith")),
        "herd_store_unwritten_records",
        &[],
    );
    assert!(unwritten > 0.0, "{unwritten}");
    let status = herd(&["status", "--config", files.config.to_str().unwrap()]);
    assert!(!status.status.success(), "{status:?}");
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("store cannot be written"), "{said}");

    // Space returns: every record Smith holds reaches its disk, and it is healthy again.
    std::fs::remove_file(&filler).expect("the filler goes");
    wait_for("Smith's store to catch up", || {
        let healthy = http_get(files.admin("Smith"), "/health").is_some_and(|(c, _)| c == 200);
        let metrics = scrape(files.admin("Smith"));
        // Nothing held only in memory, nor only in the journal.
        let left = value(&metrics, "herd_store_unwritten_records", &[])
            + value(&metrics, "herd_store_unapplied_records", &[]);
        (healthy && left == 0.0).then_some(())
    });
    smith.kill();
    let db = rusqlite::Connection::open_with_flags(
        disk_dir.join("Smith.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("Smith's store");
    let rows: i64 = db
        .query_row(
            "SELECT count(*) FROM records WHERE client LIKE 'xxx%'",
            [],
            |row| row.get(0),
        )
        .expect("a count");
    assert_eq!(rows, n as i64, "records on Smith's disk after a kill -9");
}
