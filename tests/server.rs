//! One `herd serve` process, no neighbours: the client protocol byte for byte.

mod common;

use common::*;

const KIWI: &str = "kiwi.cs.ucla.edu +34.068930-118.445127";

/// The signed nanosecond difference printed in an AT line.
fn difference_nanos(diff: &str) -> i128 {
    let (sign, rest) = diff.split_at(1);
    let (secs, nanos) = rest.split_once('.').expect("secs.nanos");
    assert_eq!(nanos.len(), 9, "nine fraction digits in {diff}");
    let n = secs.parse::<i128>().unwrap() * 1_000_000_000 + nanos.parse::<i128>().unwrap();
    match sign {
        "+" => n,
        "-" => -n,
        _ => panic!("difference without sign: {diff}"),
    }
}

#[test]
fn iamat_is_answered_with_the_exact_at_line() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let time = now_text();
    let reply = c.line(&format!("IAMAT {KIWI} {time}"));
    let fields: Vec<&str> = reply.trim_end_matches('\n').split(' ').collect();
    assert_eq!(fields.len(), 6, "{reply:?}");
    assert_eq!(fields[0], "AT");
    assert_eq!(fields[1], "Hill");
    assert_eq!(
        format!("{} {} {}\n", fields[3], fields[4], fields[5]),
        format!("{KIWI} {time}\n")
    );
    let diff = difference_nanos(fields[2]);
    assert!((0..5_000_000_000).contains(&diff), "difference {diff} ns");
}

#[test]
fn client_time_in_the_future_gives_a_negative_difference() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000;
    let reply = c.line(&format!("IAMAT pear +1.5-2.5 {future}.5"));
    let diff = difference_nanos(reply.split(' ').nth(2).unwrap());
    assert!(
        (-1_000_500_000_000..-990_000_000_000).contains(&diff),
        "{reply:?}"
    );
    assert!(reply.ends_with(&format!(" pear +1.5-2.5 {future}.5\n")));
}

#[test]
fn every_kind_of_invalid_line_is_echoed_and_the_connection_stays_usable() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let invalid: &[&[u8]] = &[
        b"HELLO",
        b"iamat a +1+1 1",
        b"IAMAT a +1+1",
        b"IAMAT a +1+1 1 2",
        b"IAMAT a 34.0-118.0 1",
        b"IAMAT a +90.0000000000000000001+0 1",
        b"IAMAT a +0+180.5 1",
        b"IAMAT a +1+1 +10",
        b"IAMAT a +1+1 .5",
        b"IAMAT a +1+1 10.",
        b"IAMAT a +1+1 1e1",
        b"IAMAT a +1+1 1.0000000001",
        b"IAMAT a +1+1 9223372036.854775808",
        b"IAMAT a\x01b +1+1 1",
        b"IAMAT \xff\xfe +1+1 1",
        b"WHATSAT a 10",
        b"WHATSAT nobody 10 5",
        b"  \tWHATSAT  nobody\t10 5 ",
        b"WHATSAT a 0 5",
        b"WHATSAT a 50.0001 5",
        b"WHATSAT a 10 0",
        b"WHATSAT a 10 21",
        b"WHATSAT a 10 5.0",
        b"\x00",
    ];
    for line in invalid {
        let mut sent = line.to_vec();
        sent.extend_from_slice(b"\r\n");
        c.send(&sent);
        let mut expected = b"? ".to_vec();
        expected.extend_from_slice(line);
        expected.push(b'\n');
        assert_eq!(
            c.read_until(b"\n"),
            expected,
            "reply to {:?}",
            String::from_utf8_lossy(line)
        );
    }
    // Blank lines get no reply; the next command is still answered.
    c.send(b"\n \t \r\n");
    assert!(c.line("IAMAT a +1+1 1").starts_with("AT Hill "));
}

#[test]
fn pipelined_lines_are_answered_in_order() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let mut batch = String::new();
    let mut expected = Vec::new();
    for i in 0..200 {
        match i % 3 {
            0 => {
                batch.push_str(&format!("IAMAT c{i} +1+1 {i}\n"));
                expected.push(format!("c{i} +1+1 {i}"));
            }
            1 => {
                batch.push_str(&format!("BOGUS {i}\n"));
                expected.push(format!("? BOGUS {i}"));
            }
            _ => {
                batch.push_str(&format!("WHATSAT nobody{i} 1 1\n"));
                expected.push(format!("? WHATSAT nobody{i} 1 1"));
            }
        }
    }
    c.send(batch.as_bytes());
    let replies = c.read_lines(expected.len());
    for (reply, want) in replies.iter().zip(&expected) {
        assert!(
            reply.ends_with(want.as_str()),
            "{reply:?} should end with {want:?}"
        );
    }
}

#[test]
fn a_half_closed_one_shot_client_gets_every_reply_then_eof() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    c.send(b"IAMAT one +1+1 1\nWHATSAT one 10 1\nLAST without newline");
    let got = String::from_utf8(c.finish()).unwrap();
    let (first, rest) = got.split_once('\n').unwrap();
    assert!(first.starts_with("AT Hill ") && first.ends_with(" one +1+1 1"));
    let (whatsat, last) = rest.split_at(rest.find("\n\n").unwrap() + 2);
    assert!(whatsat.starts_with(first), "{whatsat:?}");
    assert_eq!(last, "? LAST without newline\n");
}

#[test]
fn embedded_places_are_all_within_the_radius_and_bounded() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let at = c.line(&format!("IAMAT {KIWI} 1621464827.959498503"));
    for (radius_km, bound) in [(10.0, 5), (50.0, 20), (0.5, 3), (2.25, 20)] {
        let reply = c.whatsat(&format!("WHATSAT kiwi.cs.ucla.edu {radius_km} {bound}"));
        let (at_line, json) = split_whatsat(&reply);
        assert_eq!(format!("{at_line}\n"), at);
        let results = json["results"].as_array().expect("results array");
        assert!(results.len() <= bound);
        for r in results {
            let loc = &r["geometry"]["location"];
            let d = distance_m(
                34.06893,
                -118.445127,
                loc["lat"].as_f64().unwrap(),
                loc["lng"].as_f64().unwrap(),
            );
            assert!(d <= radius_km * 1000.0, "{} is {d} m away", r["name"]);
        }
        if radius_km >= 10.0 {
            assert_eq!(
                results.len(),
                bound,
                "West LA has many places within {radius_km} km"
            );
        }
    }
}

#[test]
fn config_faults_are_named_on_stderr_with_a_failing_exit() {
    let dir = TempDir::new("badconfig");
    let cases = [
        (
            "[servers.Hill]\naddr = \"127.0.0.1:1\"\nneighbours = [\"Nobody\"]\n",
            "Nobody",
        ),
        (
            "[places]\nprovder = \"embedded\"\n[servers.Hill]\naddr = \"127.0.0.1:1\"\n",
            "provder",
        ),
        (
            "[servers.Hill]\naddr = \"127.0.0.1:1\"\n[servers.Jaquez]\naddr = \"127.0.0.1:1\"\n",
            "127.0.0.1:1",
        ),
        ("[servers.Hill]\naddr = \"nowhere\"\n", "nowhere"),
    ];
    for (toml, named) in cases {
        let path = dir.0.join("herd.toml");
        std::fs::write(&path, toml).unwrap();
        let out = herd(&["serve", "Hill", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}");
        assert!(
            stderr.contains(named),
            "stderr {stderr:?} should name {named:?}"
        );
        assert!(out.stdout.is_empty());
    }
    let files = HerdFiles::single("");
    let out = herd(&[
        "serve",
        "Nobody",
        "--config",
        files.config.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Nobody"));
    // Each cause once: the message is not followed by itself again as its own cause.
    assert_eq!(stderr.matches("no server named").count(), 1, "{stderr}");
    let missing = dir.0.join("absent.toml");
    let out = herd(&["serve", "Hill", "--config", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn sigterm_exits_zero_with_the_log_flushed_and_the_port_free_again() {
    let files = HerdFiles::single("");
    let mut server = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    let at = c.line("IAMAT logged +1+1 1");
    c.send(b"NOT\xffVALID\n");
    c.read_until(b"\n");
    assert!(server.terminate().success());
    let log = std::fs::read(files.log_path("Hill")).expect("log file");
    let log = String::from_utf8_lossy(&log);
    for line in log.lines() {
        let stamp = line.split(' ').next().unwrap();
        assert!(
            stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "line without an RFC 3339 UTC timestamp: {line:?}"
        );
    }
    assert!(log.contains("IAMAT logged +1+1 1"));
    assert!(log.contains(at.trim_end()));
    assert!(log.contains("NOT\\xffVALID"), "{log}");
    // Restarted on the same port at once, and the old log is kept.
    let _again = files.serve("Hill");
    let mut c = Conn::open(files.addr("Hill"));
    assert!(c.line("IAMAT again +1+1 1").starts_with("AT Hill"));
    assert!(std::fs::read_to_string(files.log_path("Hill"))
        .unwrap()
        .contains("IAMAT logged"));
}

#[test]
fn herd_client_prints_each_reply_whole() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let config = files.config.to_str().unwrap();
    let out = herd(&[
        "client",
        "Hill",
        "--config",
        config,
        "IAMAT kiwi +34.068930-118.445127 1621464827.959498503",
        "WHATSAT kiwi 10 2",
        "nonsense",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (at, rest) = stdout.split_once('\n').unwrap();
    assert!(
        at.starts_with("AT Hill ")
            && at.ends_with(" kiwi +34.068930-118.445127 1621464827.959498503")
    );
    let end = rest.find("\n\n").expect("whatsat reply") + 2;
    let (at_again, json) = split_whatsat(&rest[..end]);
    assert_eq!(at_again, at);
    assert_eq!(json["results"].as_array().unwrap().len(), 2);
    assert_eq!(&rest[end..], "? nonsense\n");

    let by_addr = herd(&[
        "client",
        &files.addr("Hill").to_string(),
        "WHATSAT kiwi 1 1",
    ]);
    assert!(by_addr.status.success());
    assert!(String::from_utf8(by_addr.stdout).unwrap().starts_with(at));

    let down = herd(&["client", &free_addrs(1)[0].to_string(), "IAMAT a +1+1 1"]);
    assert!(!down.status.success());
    assert!(down.stdout.is_empty());
    assert!(!down.stderr.is_empty());
}

#[test]
fn sighup_reopens_the_log_so_a_rename_loses_no_line() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let files = HerdFiles::single("");
    let mut server = files.serve("Hill");
    let addr = files.addr("Hill");
    let log = files.log_path("Hill");
    let rotated = log.with_extension("log.1");
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    // A client checks in without pause while the file is renamed and the server signalled,
    // as logrotate does it.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let client = std::thread::spawn(move || {
        let mut c = Conn::open(addr);
        let mut n = 0;
        while !stopped.load(Ordering::Relaxed) {
            assert!(c
                .line(&format!("IAMAT rot{n} +1+1 1"))
                .starts_with("AT Hill"));
            n += 1;
        }
        n
    });
    let logged = |path: &std::path::Path| read(path).matches(" IAMAT rot").count();
    wait_for("check-ins in the log", || (logged(&log) > 20).then_some(()));
    std::fs::rename(&log, &rotated).expect("renamed");
    signal(&server.child, "HUP");
    wait_for("a new log file", || {
        read(&log)
            .contains(" note reopened the event log")
            .then_some(())
    });
    wait_for("check-ins in the new file", || {
        (logged(&log) > 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let sent = client.join().expect("the client");
    assert!(server.terminate().success(), "SIGHUP ended the server");

    let (old, new) = (read(&rotated), read(&log));
    for i in 0..sent {
        let line = format!(" IAMAT rot{i} +1+1 1\n");
        let times = old.matches(&line).count() + new.matches(&line).count();
        assert_eq!(times, 1, "check-in {i} of {sent} logged {times} times");
    }
}
