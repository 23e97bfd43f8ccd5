//! A slow link between two servers, without netem (the test machine's kernel has none): a
//! delaying, throttling TCP relay (`common::relay`) carries Hill's link to Jaquez, and the
//! floods that cross it still arrive, in order of newness.
//!
//! `addr` in herd.toml is both where clients connect and where neighbours dial, so the
//! relay cannot sit in front of Jaquez for everyone. Each host reads its own copy of the
//! file, though, and Hill's copy names the relay's address for Jaquez, as a route through
//! a slow tunnel would: Hill's link to Jaquez (the one Hill's floods take) goes through
//! the relay, while clients and Jaquez's own link to Hill go direct. No root needed.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::relay::{Relay, RelayOptions};
use common::*;

const DELAY: Duration = Duration::from_millis(100);
const RATE: u64 = 64 * 1024;

fn loopback_any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The client time of an AT line (its last field).
fn client_time(at: &str) -> f64 {
    at.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn the_relay_delays_every_chunk_and_throttles_the_bandwidth() {
    let sink = TcpListener::bind(loopback_any()).unwrap();
    let options = RelayOptions {
        delay: DELAY,
        bytes_per_sec: Some(RATE),
        tls_records: false,
    };
    let relay = Relay::start(loopback_any(), sink.local_addr().unwrap(), options);
    let mut sender = TcpStream::connect(relay.addr).unwrap();
    let (mut receiver, _) = sink.accept().unwrap();
    receiver.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    // One byte: it takes the delay.
    let sent = Instant::now();
    std::io::Write::write_all(&mut sender, b"x").unwrap();
    let mut one = [0u8; 1];
    receiver.read_exact(&mut one).unwrap();
    let latency = sent.elapsed();
    assert!(latency >= DELAY, "{latency:?}");
    // A quarter of a second's worth: it takes the delay and a quarter of a second.
    let sent = Instant::now();
    std::io::Write::write_all(&mut sender, &vec![7u8; RATE as usize / 4]).unwrap();
    let mut got = vec![0u8; RATE as usize / 4];
    receiver.read_exact(&mut got).unwrap();
    let took = sent.elapsed();
    assert!(took >= DELAY + Duration::from_millis(240), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn floods_arrive_in_order_of_newness_over_a_100_ms_throttled_link() {
    let files = HerdFiles::new(&[("Hill", &["Jaquez"]), ("Jaquez", &[])], "");
    let options = RelayOptions {
        delay: DELAY,
        bytes_per_sec: Some(RATE),
        tls_records: false,
    };
    let relay = Relay::start(loopback_any(), files.addr("Jaquez"), options);
    let shared = std::fs::read_to_string(&files.config).unwrap();
    let jaquez_at = format!("addr = \"{}\"", files.addr("Jaquez"));
    assert!(shared.contains(&jaquez_at));
    let hills = files.dir.0.join("hill.toml");
    let via_relay = shared.replace(&jaquez_at, &format!("addr = \"{}\"", relay.addr));
    std::fs::write(&hills, via_relay).unwrap();
    let _jaquez = files.serve("Jaquez");
    let _hill = Server::start(&hills, "Hill", files.addr("Hill"), &[]);
    links_up(&files, "Hill", &["Jaquez"]);
    links_up(&files, "Jaquez", &["Hill"]);
    assert_eq!(relay.accepted(), 1, "Hill's link goes through the relay");

    // One check-in: it reaches Jaquez no sooner than the link's delay allows.
    let sent = Instant::now();
    let probe = check_in(&files, "Hill", "IAMAT probe +1+1 1");
    eventually_holds(&files, "Jaquez", "probe", &probe);
    let first = sent.elapsed();
    assert!(first >= DELAY, "reached Jaquez in {first:?}");

    // A burst: 600 check-ins of three clients, each newer than the last, pipelined at
    // Hill. Their floods queue behind one another on the throttled link.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let watching = Arc::clone(&watching);
        let jaquez = files.addr("Jaquez");
        std::thread::spawn(move || {
            // What Jaquez holds for c0, each time it is asked, until told to stop.
            let mut seen = Vec::new();
            let mut conn = Conn::open(jaquez);
            while watching.load(Ordering::SeqCst) {
                let reply = conn.whatsat_or_invalid("WHATSAT c0 0.001 1");
                if let Some(at) = reply
                    .strip_suffix('\n')
                    .filter(|_| reply.starts_with("AT "))
                {
                    seen.push(client_time(at.lines().next().unwrap()));
                }
            }
            seen
        })
    };
    let burst = 600;
    let mut lines = String::new();
    for i in 0..burst {
        lines.push_str(&format!("IAMAT c{} +1+1 {}.5\n", i % 3, 1000 + i));
    }
    let sent = Instant::now();
    let mut hill = Conn::open(files.addr("Hill"));
    hill.send(lines.as_bytes());
    let replies = hill.read_lines(burst);
    assert!(replies.iter().all(|r| r.starts_with("AT Hill ")));
    let newest: Vec<String> = replies[burst - 3..].to_vec();
    for at in &newest {
        let client = at.split_whitespace().nth(3).unwrap();
        eventually_holds(&files, "Jaquez", client, at);
    }
    let all = sent.elapsed();
    watching.store(false, Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    eprintln!(
        "probe took {first:?}; a burst of {burst} took {all:?}; Jaquez was asked {} times",
        seen.len()
    );

    // Never an older record after a newer one, and the newest at the end. With only a
    // record or two seen that would hold whatever the order: Jaquez must have been caught
    // holding at least five of c0's records on their way.
    let mut distinct = seen.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    assert!(
        distinct.len() >= 5,
        "Jaquez was seen holding only {} distinct records of c0: {seen:?}",
        distinct.len()
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "Jaquez went back to an older record: {seen:?}"
    );
    let c0_newest = client_time(newest.iter().find(|at| at.contains(" c0 ")).unwrap());
    assert_eq!(seen.last().copied(), Some(c0_newest));
    // The bandwidth held the burst back: 600 flood lines of more than 50 bytes each take
    // more than 0.45 s at 64 KiB/s, on top of the link's delay.
    assert!(all >= DELAY + Duration::from_millis(400), "{all:?}");
    // Plain links cross the path in clear: what TLS links (tests/netns.rs) stop.
    let captured = relay.captured();
    assert!(captured.windows(6).any(|w| w == b"FLOOD "));
}
