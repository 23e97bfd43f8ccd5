//! Flow control as a reading client sees it: clients that pipeline and never read must not
//! cost the others anything they would notice. One test in a binary of its own, so that no
//! other test of this workspace runs beside the load it makes.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use herd_actors::procfs;

/// The server's CPU time so far, in clock ticks.
fn cpu_ticks(server: &Server) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id()))
        .expect("the server's /proc stat");
    procfs::cpu_ticks(&stat).expect("CPU ticks in /proc stat")
}

#[test]
fn a_reading_clients_check_ins_are_answered_within_500_ms_while_100_others_never_read() {
    let files = HerdFiles::single("");
    let server = hill_with_places_loaded(&files);
    let mut reader = Conn::open(files.addr("Hill"));
    reader.line("IAMAT reader +1+1 1");
    // 100 clients send 534 WHATSATs each (replies of some 7.5 KB) and never read.
    let request = "WHATSAT la 50 20\n".repeat(534);
    let started = Instant::now();
    let hogs: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(files.addr("Hill")).expect("connect");
            s.write_all(request.as_bytes()).expect("send");
            s
        })
        .collect();
    // The reader checks in every 10 ms until the server has made all it will for them and
    // is idle (at most 10% of a core over half a second).
    let mut took = Vec::new();
    let mut cpu = (Instant::now(), cpu_ticks(&server));
    for time in 2.. {
        let asked = Instant::now();
        let reply = reader.line(&format!("IAMAT reader +1+1 {time}"));
        took.push((asked - started, asked.elapsed()));
        assert!(reply.starts_with("AT Hill "), "{reply}");
        let worst = took.iter().map(|(_, t)| *t).max().unwrap_or_default();
        assert!(
            worst < Duration::from_millis(500),
            "a check-in took {worst:?}; (sent after, took): {took:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
        if cpu.0.elapsed() >= Duration::from_millis(500) {
            let ticks = cpu_ticks(&server);
            let idle = ticks - cpu.1 <= 5;
            cpu = (Instant::now(), ticks);
            if idle {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server was still busy after a minute"
        );
    }
    drop(hogs);
}
