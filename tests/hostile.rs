//! Hostile clients and sick neighbours, against real `herd serve` processes: one client, or
//! one local process, must never cut a server off from its herd, exhaust it, or make it
//! store a record nobody sent.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use herd_actors::places::fake::{FakeGoogle, Mode};

/// How long these tests wait for a server to notice something (time-outs of a second,
/// a stopped neighbour's silence).
const NOTICE: Duration = Duration::from_secs(20);

/// The resident memory of a process, in bytes.
fn rss(server: &Server) -> u64 {
    proc_status(server, "VmRSS:")
}

/// The most resident memory a process has had, in bytes.
fn peak_rss(server: &Server) -> u64 {
    proc_status(server, "VmHWM:")
}

fn proc_status(server: &Server, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"));
    kb * 1024
}

/// Reads until the server closes the connection (or resets it); a read that times out
/// fails the test.
fn until_closed(conn: &mut Conn) -> Vec<u8> {
    let mut got = Vec::new();
    match conn.0.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
}

// 1. Every record a server accepts, every other server accepts.
#[test]
fn a_check_in_as_long_as_a_line_may_be_reaches_the_herd_and_links_stay_up() {
    let files = HerdFiles::new(PAIR, "");
    let _servers = start_herd_of(&files, PAIR);
    // A line exactly at the cap (8192 bytes): its AT line and its flood are longer.
    let head = "IAMAT ";
    let tail = " +34.068930-118.445127 1621464827.5";
    let id = "k".repeat(8192 - head.len() - tail.len());
    let line = format!("{head}{id}{tail}");
    assert_eq!(line.len(), 8192);
    let at = check_in(&files, "Hill", &line);
    eventually_holds(&files, "Jaquez", &id, &at);
    // Later check-ins still flow, and the link never went down.
    let later = check_in(&files, "Hill", "IAMAT later +1+1 1621464828");
    eventually_holds(&files, "Jaquez", "later", &later);
    assert!(!files.log("Hill").contains("peer Jaquez down"));
    assert!(!files.log("Jaquez").contains("peer Hill down"));
}

// 2. Peer input is applied only as whole lines.
#[test]
fn a_peer_line_cut_by_the_end_of_its_connection_is_not_applied() {
    let files = HerdFiles::new(PAIR, "");
    let _hill = files.serve("Hill");
    let mut jaquez = Conn::open(files.addr("Hill"));
    assert_eq!(
        jaquez.line("HERD-PEER 2 Jaquez Hill"),
        "HERD-WELCOME Hill\n"
    );
    // Whole, then cut inside its time field: `1621464827.95` arrives as `16214648`.
    jaquez.send(b"AT Jaquez +0.000000001 whole +1+1 1621464827.95\n");
    jaquez.send(b"AT Jaquez +0.000000001 cut +1+1 16214648");
    jaquez.0.shutdown(Shutdown::Write).expect("half-close");
    until_closed(&mut jaquez);
    assert_eq!(
        held(&files, "Hill", "whole").as_deref(),
        Some("AT Jaquez +0.000000001 whole +1+1 1621464827.95")
    );
    assert_eq!(held(&files, "Hill", "cut"), None);
}

// 3. A client that does not read costs a small window, and the server a bounded budget.
#[test]
fn clients_that_never_read_cost_the_server_little() {
    let files = HerdFiles::single("");
    let server = hill_with_places_loaded(&files);
    let before = rss(&server);
    // 100 clients, 11.7 KB of WHATSATs each (each reply some 8 KB), none reading.
    let request = "WHATSAT la 50 20\n".repeat(690);
    let hogs: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(files.addr("Hill")).expect("connect");
            s.write_all(request.as_bytes()).expect("send");
            s
        })
        .collect();
    // A client that reads is still answered, whole.
    let reply = Conn::open(files.addr("Hill")).whatsat("WHATSAT la 1 1");
    assert!(reply.starts_with("AT Hill "), "{reply}");
    // The hogs' lines are read and answered as far as the kernel's buffers and the reply
    // windows take them, then no more: wait until the server has stopped reading.
    let read_lines = || files.log("Hill").matches(" in ").count();
    let mut last = read_lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = read_lines();
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the server kept reading");
        last = now;
    }
    assert!(
        last < 100 * 690,
        "the server read every line of clients that read nothing"
    );
    // Each costs its reply window and the replies to the commands it had in flight when
    // the window filled (some 200 KB); the event log's buffer holds a few megabytes more.
    // Before flow control, this was over 500 MiB.
    let grown = peak_rss(&server).saturating_sub(before);
    assert!(
        grown < 48 << 20,
        "100 clients that never read cost {} MiB",
        grown >> 20
    );
    drop(hogs);
}

/// How many of the replies `client` was sent the event log shows, once the count has not
/// changed for a second.
fn replies_logged(files: &HerdFiles, client: std::net::SocketAddr) -> usize {
    let out = format!(" out {client} ");
    let count = || files.log("Hill").matches(&out).count();
    let mut last = count();
    let mut still = 0;
    let deadline = Instant::now() + NOTICE;
    while still < 5 {
        std::thread::sleep(Duration::from_millis(200));
        let now = count();
        still = if now == last { still + 1 } else { 0 };
        last = now;
        assert!(Instant::now() < deadline, "the server kept answering");
    }
    last
}

#[test]
fn a_client_that_never_reads_is_sent_its_window_and_the_kernels_share_no_more() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    check_in(
        &files,
        "Hill",
        "IAMAT la +34.068930-118.445127 1621464827.5",
    );
    let reply = Conn::open(files.addr("Hill"))
        .whatsat("WHATSAT la 50 20")
        .len();
    // A client whose own receive buffer is as small as the kernel allows, so that what
    // the server makes for it is what the server and its kernel hold.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    socket.connect(&files.addr("Hill").into()).expect("connect");
    let client_buffer = socket.recv_buffer_size().expect("its receive buffer");
    let mut hog = TcpStream::from(socket);
    let me = hog.local_addr().expect("its address");
    hog.write_all("WHATSAT la 50 20\n".repeat(534).as_bytes())
        .expect("send");
    let made = replies_logged(&files, me) * reply;
    // The defaults: a 64 KiB reply window in the server, as much in the kernel, and the
    // replies to the 16 commands in flight when the window filled (and the one that
    // filled it). Without the kernel's share capped, it took all 534 (4 MiB).
    let window = 64 << 10;
    let bound = window + window + client_buffer + 17 * reply;
    assert!(
        made <= bound,
        "made {made} bytes of replies, more than {bound}"
    );
    assert!(made >= window, "made only {made} bytes of replies");
    drop(hog);
}

// 4. A client that pipelines any number of lines and reads gets every reply.
#[test]
fn a_client_that_pipelines_a_hundred_thousand_lines_and_reads_gets_every_reply() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let stream = TcpStream::connect(files.addr("Hill")).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read time-out");
    let mut writer = stream.try_clone().expect("clone");
    const LINES: usize = 100_000;
    let sender = std::thread::spawn(move || {
        let mut batch = String::new();
        for i in 0..LINES {
            batch.push_str(&format!("IAMAT p{} +1+1 {i}\n", i % 100));
            if batch.len() > 64 * 1024 {
                writer.write_all(batch.as_bytes()).expect("send");
                batch.clear();
            }
        }
        writer.write_all(batch.as_bytes()).expect("send");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut replies = 0usize;
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut reader, &mut line).expect("read") > 0 {
        assert!(
            line.ends_with(&format!(" p{} +1+1 {replies}\n", replies % 100)),
            "reply {replies}: {line:?}"
        );
        replies += 1;
        line.clear();
    }
    sender.join().expect("sender");
    assert_eq!(replies, LINES);
}

// 5. Time-outs, and a connection cap that follows the descriptors a server has.
#[test]
fn idle_and_slow_connections_are_closed_after_their_time_outs() {
    let files = HerdFiles::single("[limits]\nidle_timeout_s = 1\nline_timeout_s = 1\n");
    let _server = files.serve("Hill");
    let mut idle = Conn::open(files.addr("Hill"));
    let mut slow = Conn::open(files.addr("Hill"));
    let started = Instant::now();
    let dribbler = std::thread::spawn(move || {
        // A byte every 100 ms: never idle, and the line never ends.
        for &b in b"IAMAT slow +1+1 1".iter().cycle() {
            if slow.0.write_all(&[b]).is_err() || started.elapsed() > READ_TIMEOUT {
                return until_closed(&mut slow);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unreachable!("the cycle never ends")
    });
    assert_eq!(until_closed(&mut idle), b"");
    assert_eq!(dribbler.join().expect("dribbler"), b"");
    assert!(started.elapsed() < READ_TIMEOUT, "closed only by the test");
    wait_for_within("both closings logged", NOTICE, || {
        let log = files.log("Hill");
        (log.contains(": idle for 1s") && log.contains(": a line unfinished after 1s"))
            .then_some(())
    });
}

#[test]
fn past_the_descriptors_it_has_a_server_closes_new_connections_at_once_and_recovers() {
    let files = HerdFiles::single("");
    let server = Server::start_with_open_files(&files.config, "Hill", files.addr("Hill"), 256);
    // Far more idle connections than 256 descriptors can hold...
    let conns: Vec<Conn> = (0..400).map(|_| Conn::open(files.addr("Hill"))).collect();
    // ...of which those past the cap were closed at once: a line on each is answered, or
    // finds the connection closed.
    let mut held = Vec::new();
    let mut refused = 0;
    for conn in conns {
        match try_line_on(&conn, "IAMAT held +1+1 1") {
            Some(reply) => {
                assert!(reply.starts_with("AT Hill "), "{reply}");
                held.push(conn);
            }
            None => refused += 1,
        }
    }
    assert!(
        refused > 0 && !held.is_empty(),
        "{} held, {refused} refused",
        held.len()
    );
    // Once they go, a new client is served again, and no accept ever failed.
    drop(held);
    wait_for_within("a new client is served", NOTICE, || {
        try_line(&files, "IAMAT new +1+1 1")
            .is_some_and(|r| r.starts_with("AT Hill "))
            .then_some(())
    });
    wait_for_within("the refusals logged", NOTICE, || {
        files
            .log("Hill")
            .contains(": too many connections")
            .then_some(())
    });
    assert!(!files.log("Hill").contains("accept failed"));
    drop(server);
}

#[test]
fn one_address_can_be_capped_without_capping_the_others() {
    let files = HerdFiles::single("[limits]\nmax_connections_per_ip = 3\n");
    let _server = files.serve("Hill");
    let held: Vec<Conn> = (0..3).map(|_| Conn::open(files.addr("Hill"))).collect();
    let mut fourth = Conn::open(files.addr("Hill"));
    assert_eq!(until_closed(&mut fourth), b"");
    // Another loopback address is another client.
    let from_other =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    from_other
        .bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
                .into(),
        )
        .expect("bind 127.0.0.2");
    from_other
        .connect(&files.addr("Hill").into())
        .expect("connect from 127.0.0.2");
    let mut other = Conn(from_other.into());
    other
        .0
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("time-out");
    let reply = other.line("IAMAT other +1+1 1");
    assert!(reply.starts_with("AT Hill "), "{reply}");
    drop(held);
}

#[test]
fn a_server_full_of_clients_still_lets_its_neighbours_in() {
    let files = HerdFiles::new(PAIR, "[limits]\nmax_connections = 5\n");
    let _hill = files.serve("Hill");
    // Five clients, each answered (a connection let in while the start-up probe still held
    // a place would be on probation, and closed at its first line).
    let mut held = Vec::new();
    let mut at = String::new();
    while held.len() < 5 {
        let conn = Conn::open(files.addr("Hill"));
        let line = format!("IAMAT full +1+1 {}", held.len() + 1);
        if let Some(reply) = try_line_on(&conn, &line) {
            at = reply.trim_end().to_owned();
            held.push(conn);
        }
    }
    // Jaquez starts while Hill is full of clients, and still joins the herd.
    let _jaquez = files.serve("Jaquez");
    links_up(&files, "Hill", &["Jaquez"]);
    links_up(&files, "Jaquez", &["Hill"]);
    eventually_holds(&files, "Jaquez", "full", &at);
    // A client past the cap that is no neighbour is closed once it speaks.
    let mut late = Conn::open(files.addr("Hill"));
    late.send(b"IAMAT late +1+1 1\n");
    assert_eq!(until_closed(&mut late), b"");
    drop(held);
}

/// One line to Hill on a new connection, and its reply, if the server answers.
fn try_line(files: &HerdFiles, line: &str) -> Option<String> {
    try_line_on(&Conn::open(files.addr("Hill")), line)
}

/// One line on `conn`, and its reply, if the server answers.
fn try_line_on(conn: &Conn, line: &str) -> Option<String> {
    let mut c = Conn(conn.0.try_clone().expect("clone"));
    c.0.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut c.0), &mut reply).ok()?;
    (!reply.is_empty()).then_some(reply)
}

// 6. A stopped neighbour is seen down within seconds, and resynced when it continues.
#[test]
fn a_stopped_neighbour_is_noticed_and_resynced_when_it_continues() {
    let files = HerdFiles::new(PAIR, "");
    let servers = start_herd_of(&files, PAIR);
    signal(&servers[1].child, "STOP");
    wait_for_within("Hill sees Jaquez down", NOTICE, || {
        files
            .log("Hill")
            .contains("peer Jaquez down: no word from the neighbour")
            .then_some(())
    });
    let at = check_in(&files, "Hill", "IAMAT while-stopped +1+1 1");
    signal(&servers[1].child, "CONT");
    eventually_holds(&files, "Jaquez", "while-stopped", &at);
}

// 7. The herd `herd up` starts is closed to processes that only know a server's name.
#[test]
fn herd_up_without_a_secret_gives_its_servers_a_fresh_one() {
    let files = HerdFiles::new(PAIR, "");
    let up = HerdUp::start(&files.config, std::process::Stdio::null());
    wait_until_listening(files.addr("Hill"));
    let mut intruder = Conn::open(files.addr("Hill"));
    let answer = intruder.line("HERD-PEER 2 Jaquez Hill");
    assert!(answer.starts_with("HERD-CHALLENGE "), "{answer}");
    // The servers themselves share the secret: the herd works.
    wait_until_listening(files.addr("Jaquez"));
    let at = check_in(&files, "Hill", "IAMAT upped +1+1 1");
    eventually_holds(&files, "Jaquez", "upped", &at);
    drop(up);
}

/// A herd of one server asking the fake Google, with `places` added to its table.
fn google_herd(fake: &FakeGoogle, places: &str) -> HerdFiles {
    HerdFiles::single(&format!(
        "[places]\nprovider = \"google\"\nbase_url = \"{}\"\n{places}",
        fake.base_url()
    ))
}

// 8. An upstream that closes every connection after its answer is still asked well.
#[test]
fn concurrent_places_calls_to_a_server_that_closes_each_connection_all_succeed() {
    twenty_distinct_places_asked_three_times_all_answer(Mode::OneShot);
}

/// Twenty clients at twenty places, asked about three times over (no cache): every answer
/// is OK, whatever the upstream `mode` does with its connections.
fn twenty_distinct_places_asked_three_times_all_answer(mode: Mode) {
    let fake = FakeGoogle::start(mode);
    let files = google_herd(&fake, "api_key = \"k\"\ncache_ttl_s = 0\n");
    let _server = Server::start(&files.config, "Hill", files.addr("Hill"), &[]);
    let mut c = Conn::open(files.addr("Hill"));
    let mut ask = String::new();
    for i in 0..20 {
        c.line(&format!(
            "IAMAT c{i} +{:.6}-118.445127 1621464827.5",
            34.0 + 0.01 * f64::from(i)
        ));
        ask.push_str(&format!("WHATSAT c{i} 10 5\n"));
    }
    for round in 0..3 {
        c.send(ask.as_bytes());
        for (i, reply) in whatsat_replies(&mut c, 20).iter().enumerate() {
            let (_, json) = split_whatsat(reply);
            assert_eq!(json["status"], "OK", "round {round}, c{i}: {json}");
        }
    }
}

// 9. The key never shows, and an answer is never rewritten to hide it.
#[test]
fn a_short_api_key_leaves_answers_as_they_came() {
    let fake = FakeGoogle::start(Mode::Ok { results: 2 });
    let files = google_herd(&fake, "api_key = \"K\"\n");
    let _server = Server::start(&files.config, "Hill", files.addr("Hill"), &[]);
    let mut c = Conn::open(files.addr("Hill"));
    c.line("IAMAT kiwi +34.068930-118.445127 1621464827.5");
    let reply = c.whatsat("WHATSAT kiwi 10 2");
    assert!(reply.contains("\"status\" : \"OK\""), "{reply}");
    assert!(!reply.contains("redacted"), "{reply}");
}

#[test]
fn a_host_that_keeps_knocking_as_a_neighbour_is_summed_up_not_logged_line_by_line() {
    let files = HerdFiles::new(PAIR, "");
    let _hill = files.serve("Hill");
    for _ in 0..50 {
        let mut c = Conn::open(files.addr("Hill"));
        c.send(b"HERD-PEER 2 Mallory Hill\n");
        let answer = String::from_utf8(until_closed(&mut c)).expect("UTF-8");
        assert_eq!(answer, "HERD-REFUSED Mallory is not a neighbour of Hill\n");
    }
    // Each connection is logged as opened; the first refusal is written whole, with its
    // hello; the other 49 wait for the minute's summary.
    let log = wait_for("every connection logged", || {
        let log = files.log("Hill");
        // The 50, and the one that found the server listening.
        (log.matches(" open 127.0.0.1:").count() == 51).then_some(log)
    });
    assert_eq!(log.matches("HERD-PEER 2 Mallory Hill").count(), 1, "{log}");
    assert_eq!(
        log.matches("refused peer handshake from").count(),
        1,
        "{log}"
    );
}

#[test]
fn concurrent_distinct_calls_to_an_http_1_0_server_whose_closes_come_late_all_succeed() {
    // Every kept-alive connection the client pools is closed by the server when it is used
    // again: the retry of a call that met one must not take another.
    twenty_distinct_places_asked_three_times_all_answer(Mode::StaleKeepAlive);
}
