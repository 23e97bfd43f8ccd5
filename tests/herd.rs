//! Five `herd serve` processes on the default herd's graph: flooding, failures and healing.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_check_in_at_hill_is_answered_everywhere() {
    let files = HerdFiles::new(GRAPH, "");
    let _servers = start_herd(&files);
    let at = check_in(
        &files,
        "Hill",
        &format!("IAMAT kiwi +34.068930-118.445127 {}", now_text()),
    );
    // Hill's neighbours have it as soon as Hill has answered.
    for neighbour in ["Jaquez", "Smith"] {
        let mut c = Conn::open(files.addr(neighbour));
        let reply = c.whatsat("WHATSAT kiwi 10 3");
        let (line, json) = split_whatsat(&reply);
        assert_eq!(line, at, "{neighbour}");
        assert_eq!(json["status"], "OK");
    }
    for far in ["Campbell", "Singleton"] {
        eventually_holds(&files, far, "kiwi", &at);
    }
}

#[test]
fn the_herd_routes_around_a_dead_server_and_heals_it_on_restart() {
    let files = HerdFiles::new(GRAPH, "");
    let mut servers = start_herd(&files);
    servers[2].kill(); // Smith, kill -9
    let at = check_in(&files, "Hill", "IAMAT pear +1+1 100");
    eventually_holds(&files, "Campbell", "pear", &at);
    let at2 = check_in(&files, "Campbell", "IAMAT plum +2+2 200");
    eventually_holds(&files, "Hill", "plum", &at2);

    // Smith comes back knowing nothing, and learns both records without new check-ins.
    servers[2] = files.serve("Smith");
    eventually_holds(&files, "Smith", "pear", &at);
    eventually_holds(&files, "Smith", "plum", &at2);
}

#[test]
fn servers_started_in_reverse_order_with_delays_converge() {
    let files = HerdFiles::new(GRAPH, "");
    let mut servers = Vec::new();
    let mut ats = Vec::new();
    for (i, name) in NAMES.iter().rev().enumerate() {
        servers.push(files.serve(name));
        ats.push((
            format!("c{i}"),
            check_in(&files, name, &format!("IAMAT c{i} +1+1 {i}")),
        ));
        std::thread::sleep(Duration::from_millis(150));
    }
    for name in NAMES {
        for (client, at) in &ats {
            eventually_holds(&files, name, client, at);
        }
    }
}

#[test]
fn conflicting_check_ins_at_two_servers_leave_one_record_everywhere() {
    let files = HerdFiles::new(GRAPH, "");
    let _servers = start_herd(&files);
    for round in 0..5 {
        let client = format!("twin{round}");
        let line = format!("IAMAT {client} +1+1 1000.{round}");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| check_in(&files, "Hill", &line));
            let b = s.spawn(|| check_in(&files, "Campbell", &line));
            (a.join().unwrap(), b.join().unwrap())
        });
        // Same client time: the tie-break on the AT line picks the same winner everywhere.
        let winner = a.clone().max(b.clone());
        for name in NAMES {
            eventually_holds(&files, name, &client, &winner);
        }
    }
}

#[test]
fn peer_lines_without_a_valid_handshake_change_no_record() {
    let files = HerdFiles::new(GRAPH, "secret = \"s3cret\"\n");
    let _servers = start_herd(&files);
    let at = check_in(&files, "Hill", "IAMAT guarded +1+1 10");
    for name in NAMES {
        eventually_holds(&files, name, "guarded", &at);
    }
    let forged = "AT Hill +0.000000000 guarded +9+9 99";
    // As a client: an AT line is just invalid input.
    let mut c = Conn::open(files.addr("Smith"));
    assert_eq!(c.line(forged), format!("? {forged}\n"));
    // A hello from someone who is not a neighbour is refused.
    let mut c = Conn::open(files.addr("Smith"));
    assert!(c
        .line("HERD-PEER 2 Intruder Smith")
        .starts_with("HERD-REFUSED"));
    // A neighbour's name without the secret: challenged, then refused and closed.
    let mut c = Conn::open(files.addr("Smith"));
    assert!(c
        .line("HERD-PEER 2 Hill Smith")
        .starts_with("HERD-CHALLENGE "));
    c.send(format!("HERD-PROOF {}\n{forged}\n", "00".repeat(32)).as_bytes());
    let rest = String::from_utf8(c.finish()).unwrap();
    assert!(rest.starts_with("HERD-REFUSED"), "{rest:?}");
    // A hello that is not the first line is ordinary invalid input.
    let mut c = Conn::open(files.addr("Smith"));
    c.line("IAMAT other +1+1 1");
    assert_eq!(
        c.line("HERD-PEER 2 Hill Smith"),
        "? HERD-PEER 2 Hill Smith\n"
    );
    assert_eq!(c.line(forged), format!("? {forged}\n"));

    // Smith has answered every forged line. A check-in made after them, once everywhere,
    // shows that whatever Smith took from them would have spread by now too.
    let sentinel = check_in(&files, "Smith", "IAMAT sentinel +1+1 11");
    for name in NAMES {
        eventually_holds(&files, name, "sentinel", &sentinel);
    }
    for name in NAMES {
        assert_eq!(
            held(&files, name, "guarded").as_deref(),
            Some(at.as_str()),
            "{name}"
        );
    }
}

#[test]
fn a_wrong_secret_keeps_a_server_out_of_the_herd() {
    let files = HerdFiles::new(
        &[("Hill", &["Jaquez"]), ("Jaquez", &[])],
        "secret = \"right\"\n",
    );
    let _hill = files.serve("Hill");
    let _jaquez = Server::start(
        &files.config,
        "Jaquez",
        files.addr("Jaquez"),
        &[("HERD_SECRET", "wrong")],
    );
    wait_for("Hill to refuse Jaquez", || {
        files
            .log("Hill")
            .contains("wrong secret from Jaquez")
            .then_some(())
    });
    // Refusals repeated within a minute are summed up, not logged one by one; each attempt
    // still opens a connection, and Jaquez dials again only once the last was refused.
    let attempts = || files.log("Hill").matches(" open ").count();
    let at = check_in(&files, "Jaquez", "IAMAT sneaky +1+1 10");
    let before = attempts();
    // An attempt that began after the check-in has been refused once the next one opens; a
    // link that had got in would have carried the record.
    wait_for("Jaquez to try Hill twice more", || {
        (attempts() >= before + 2).then_some(())
    });
    assert_eq!(held(&files, "Hill", "sneaky"), None);
    assert!(held(&files, "Jaquez", "sneaky").is_some_and(|h| h == at));
}

/// Checks in continuously at random servers while killing and restarting servers at
/// random (seeded, bounded); afterwards every server holds each client's newest record.
#[test]
fn the_herd_converges_after_churn() {
    let files = HerdFiles::new(GRAPH, "");
    let mut servers: Vec<Option<Server>> = start_herd(&files).into_iter().map(Some).collect();
    let mut rng = fastrand::Rng::with_seed(131);
    let clients = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let mut newest: std::collections::HashMap<&str, (u64, String)> = Default::default();
    let mut time = 1_000u64;
    for step in 0..120 {
        if step % 10 == 5 {
            // Kill one live server, or bring a dead one back (keep at least three alive).
            let i = rng.usize(..NAMES.len());
            let live = servers.iter().filter(|s| s.is_some()).count();
            match &mut servers[i] {
                Some(s) if live > 3 => s.kill(),
                Some(_) => {}
                None => servers[i] = Some(files.serve(NAMES[i])),
            }
            if servers[i]
                .as_mut()
                .is_some_and(|s| s.child.try_wait().ok().flatten().is_some())
            {
                servers[i] = None;
            }
        }
        let live: Vec<usize> = (0..NAMES.len()).filter(|&i| servers[i].is_some()).collect();
        let at = live[rng.usize(..live.len())];
        let client = clients[rng.usize(..clients.len())];
        time += 1 + rng.u64(..3);
        let at_line = check_in(&files, NAMES[at], &format!("IAMAT {client} +1+1 {time}"));
        newest.insert(client, (time, at_line));
        std::thread::sleep(Duration::from_millis(rng.u64(0..15)));
    }
    // Bring everyone back: the graph is connected again and every server must catch up.
    for (i, s) in servers.iter_mut().enumerate() {
        if s.is_none() {
            *s = Some(files.serve(NAMES[i]));
        }
    }
    for name in NAMES {
        for (client, (_, at)) in &newest {
            eventually_holds(&files, name, client, at);
        }
    }
}

#[test]
fn herd_up_runs_every_server_and_stops_them_all() {
    let files = HerdFiles::new(GRAPH, "");
    let mut up = HerdUp::start(&files.config, std::process::Stdio::piped());
    let stderr = Lines::of(up.0.stderr.take());
    stderr.wait_for("servers up from");
    // "Up" means every server takes connections, then and there.
    for name in NAMES {
        assert!(
            std::net::TcpStream::connect(files.addr(name)).is_ok(),
            "{name} not listening once the herd is said to be up"
        );
    }
    let at = check_in(&files, "Hill", "IAMAT upclient +1+1 5");
    eventually_holds(&files, "Campbell", "upclient", &at);
    signal(&up.0, "TERM");
    let status = up.0.wait().expect("herd up exits");
    assert!(status.success());
    let stderr = stderr.all();
    // The servers share the cores, unless the environment says how many workers each has.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = match std::env::var("HERD_WORKERS").map(|n| n.parse::<usize>()) {
        Ok(Ok(0)) => cores,
        Ok(Ok(n)) => n,
        _ => (cores / NAMES.len()).max(1),
    };
    let threads = if workers == 1 { "thread" } else { "threads" };
    // Every child's output carries its name, and every child has stopped.
    for name in NAMES {
        let serving = format!("[{name}] herd: {name} serving on {}", files.addr(name));
        assert!(
            stderr.contains(&format!("{serving} with {workers} worker {threads}")),
            "{stderr}"
        );
        assert!(
            std::net::TcpStream::connect(files.addr(name)).is_err(),
            "{name} still up"
        );
    }
}

/// `herd up --config CONFIG` run to its end, which must come within `limit`: its exit
/// status and its stderr.
fn herd_up_until_it_exits(config: &std::path::Path, limit: Duration) -> (bool, String) {
    let mut up = HerdUp::start(config, std::process::Stdio::piped());
    let stderr = Lines::of(up.0.stderr.take());
    let status = wait_for_within("herd up to exit", limit, || up.0.try_wait().ok()?);
    (status.success(), stderr.all())
}

#[test]
fn herd_up_fails_within_seconds_and_never_says_up_when_a_port_is_taken() {
    let files = HerdFiles::new(GRAPH, "");
    // Another program (another herd, say) holds Smith's port.
    let _taken = std::net::TcpListener::bind(files.addr("Smith")).expect("Smith's port");
    let (success, stderr) = herd_up_until_it_exits(&files.config, Duration::from_secs(10));
    assert!(!success, "{stderr}");
    assert!(!stderr.contains("servers up"), "{stderr}");
    assert!(
        stderr.contains("[Smith] herd: cannot listen on"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server Smith exited (exit status: 1) before it took connections"),
        "{stderr}"
    );
    // No half herd is left behind.
    for name in NAMES.iter().filter(|n| **n != "Smith") {
        assert!(
            std::net::TcpStream::connect(files.addr(name)).is_err(),
            "{name} still up"
        );
    }
}

#[test]
fn herd_up_refuses_a_herd_off_loopback_without_tls_before_starting_any_server() {
    let files = HerdFiles::new(PAIR, "");
    // Jaquez on every address (off loopback), Hill where it was.
    let text = std::fs::read_to_string(&files.config).expect("the config");
    let jaquez = files.addr("Jaquez");
    let away = format!("0.0.0.0:{}", jaquez.port());
    std::fs::write(&files.config, text.replace(&jaquez.to_string(), &away)).expect("written");
    let (success, stderr) = herd_up_until_it_exits(&files.config, Duration::from_secs(10));
    assert!(!success, "{stderr}");
    assert!(
        stderr.contains(&format!("server 'Jaquez' is at {away}, off loopback")),
        "{stderr}"
    );
    assert!(!stderr.contains("servers up"), "{stderr}");
    assert!(!stderr.contains("[Hill]"), "a server was started: {stderr}");
    assert!(std::net::TcpStream::connect(files.addr("Hill")).is_err());
}

#[test]
fn herd_up_fails_once_every_server_has_exited() {
    let files = HerdFiles::new(PAIR, "");
    let mut up = HerdUp::start(&files.config, std::process::Stdio::piped());
    let stderr = Lines::of(up.0.stderr.take());
    stderr.wait_for("servers up from");
    let pid = up.0.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("herd up's children");
    let children: Vec<&str> = children.split_whitespace().collect();
    assert_eq!(children.len(), 2, "{children:?}");
    for child in &children {
        let killed = std::process::Command::new("kill")
            .args(["-KILL", child])
            .status();
        assert!(killed.is_ok_and(|s| s.success()));
    }
    let status = wait_for_within("herd up to exit", Duration::from_secs(10), || {
        up.0.try_wait().ok()?
    });
    let stderr = stderr.all();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("every server has exited"), "{stderr}");
}

#[test]
fn an_idle_herd_logs_no_heartbeats_unless_asked_to() {
    // A heartbeat every 50 ms: in a second, some 20 per link.
    let files = HerdFiles::new(PAIR, "[limits]\npeer_heartbeat_ms = 50\n");
    let _hill = files.serve("Hill");
    let _jaquez = Server::start(
        &files.config,
        "Jaquez",
        files.addr("Jaquez"),
        &[("HERD_LOG__HEARTBEATS", "true")],
    );
    links_up(&files, "Hill", &["Jaquez"]);
    links_up(&files, "Jaquez", &["Hill"]);
    wait_for("Jaquez to log heartbeats", || {
        (files.log("Jaquez").matches(" PONG\n").count() >= 10).then_some(())
    });
    let hill = files.log("Hill");
    assert!(
        !hill.contains(" PING\n") && !hill.contains(" PONG\n"),
        "{hill}"
    );
    assert!(hill.contains("peer Jaquez inbound up from"), "{hill}");
}
