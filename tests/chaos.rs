//! Chaos: check-ins go on at every server while a seeded schedule kills servers with
//! SIGKILL, stops and continues them, and starts them again. Afterwards every server holds,
//! for every client, a record at least as new as each one the herd acknowledged and kept.
//! Bounded: 20 seconds of chaos, then at most 20 seconds to converge.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 8;
const CHAOS: Duration = Duration::from_secs(20);
const SEED: u64 = 9;

/// Where each server is in the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Stopped,
    Dead,
}

/// One acknowledged check-in.
#[derive(Debug)]
struct Acked {
    client: usize,
    time: u64,
    at_line: String,
    server: usize,
    /// When `server` acknowledged it.
    at: Instant,
    /// A neighbour of `server` was seen holding it (or something newer): its flood left.
    left: bool,
}

struct Herd {
    files: HerdFiles,
    servers: Mutex<Vec<(Option<Server>, State)>>,
}

impl Herd {
    fn state(&self, i: usize) -> State {
        self.servers.lock().expect("lock")[i].1
    }

    fn running(&self) -> Vec<usize> {
        let servers = self.servers.lock().expect("lock");
        (0..NAMES.len())
            .filter(|&i| servers[i].1 == State::Running)
            .collect()
    }

    /// The time of the record `server` holds for `client`, if it answers in time.
    fn time_held(&self, server: usize, client: usize) -> Option<u64> {
        let at = ask(
            self.files.addr(NAMES[server]),
            &format!("WHATSAT c{client} 0.001 1"),
        )?;
        at.starts_with("AT ")
            .then(|| at.rsplit(' ').next()?.parse().ok())
            .flatten()
    }
}

/// One line to `addr`, and the first line of its reply, if it answers within two seconds
/// (the server may be stopped or gone).
fn ask(addr: std::net::SocketAddr, line: &str) -> Option<String> {
    use std::io::{BufRead, Write};
    let mut c = try_open(addr)?;
    c.0.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    std::io::BufReader::new(&mut c.0)
        .read_line(&mut reply)
        .ok()?;
    Some(reply.trim_end().to_owned())
}

/// A connection that gives up after two seconds: the server may be stopped.
fn try_open(addr: std::net::SocketAddr) -> Option<Conn> {
    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(Conn(s))
}

/// One check-in at `server`, its AT line if acknowledged.
fn try_check_in(herd: &Herd, server: usize, client: usize, time: u64) -> Option<String> {
    let at = ask(
        herd.files.addr(NAMES[server]),
        &format!("IAMAT c{client} +1+1 {time}"),
    )?;
    at.starts_with("AT ").then_some(at)
}

#[test]
fn the_herd_converges_after_kills_stops_and_restarts_under_load() {
    let files = HerdFiles::new(GRAPH, "[limits]\npeer_heartbeat_ms = 200\n");
    let servers = start_herd(&files);
    let herd = Arc::new(Herd {
        files,
        servers: Mutex::new(
            servers
                .into_iter()
                .map(|s| (Some(s), State::Running))
                .collect(),
        ),
    });
    let neighbours: Vec<Vec<usize>> = GRAPH
        .iter()
        .map(|(_, ns)| {
            ns.iter()
                .map(|n| NAMES.iter().position(|m| m == n).expect("a server"))
                .collect()
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));

    // Check-ins, continuously, at running servers; each followed by a look at a running
    // neighbour, which shows whether its flood left.
    let driver = {
        let (herd, done, neighbours) = (Arc::clone(&herd), Arc::clone(&done), neighbours.clone());
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(SEED);
            let mut acked = Vec::new();
            let mut time = 1_000_000u64;
            while !done.load(Ordering::Relaxed) {
                let running = herd.running();
                if running.is_empty() {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let server = running[rng.usize(..running.len())];
                let client = rng.usize(..CLIENTS);
                time += 1;
                let Some(at_line) = try_check_in(&herd, server, client, time) else {
                    continue;
                };
                let at = Instant::now();
                let look = neighbours[server]
                    .iter()
                    .copied()
                    .filter(|&n| herd.state(n) == State::Running)
                    .collect::<Vec<_>>();
                let left = look.first().is_some_and(|&n| {
                    let deadline = Instant::now() + Duration::from_millis(300);
                    loop {
                        if herd.time_held(n, client).is_some_and(|t| t >= time) {
                            break true;
                        }
                        if Instant::now() > deadline {
                            break false;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                });
                acked.push(Acked {
                    client,
                    time,
                    at_line,
                    server,
                    at,
                    left,
                });
            }
            acked
        })
    };

    // The schedule: every second or so, kill, stop for a while, or start a server again.
    let mut rng = fastrand::Rng::with_seed(SEED + 1);
    let mut kills: Vec<Vec<Instant>> = vec![Vec::new(); NAMES.len()];
    let started = Instant::now();
    let mut events = Vec::new();
    while started.elapsed() < CHAOS {
        std::thread::sleep(Duration::from_millis(rng.u64(600..1200)));
        let i = rng.usize(..NAMES.len());
        let mut servers = herd.servers.lock().expect("lock");
        let running = servers.iter().filter(|s| s.1 == State::Running).count();
        let (server, state) = &mut servers[i];
        match *state {
            State::Dead => {
                *server = Some(herd.files.serve(NAMES[i]));
                *state = State::Running;
                events.push(format!("start {}", NAMES[i]));
            }
            State::Stopped => {
                if let Some(s) = server {
                    signal(&s.child, "CONT");
                }
                *state = State::Running;
                events.push(format!("continue {}", NAMES[i]));
            }
            State::Running if running > 3 && rng.bool() => {
                if let Some(s) = server {
                    s.kill();
                }
                *server = None;
                *state = State::Dead;
                kills[i].push(Instant::now());
                events.push(format!("kill {}", NAMES[i]));
            }
            State::Running if running > 3 => {
                if let Some(s) = server {
                    signal(&s.child, "STOP");
                }
                *state = State::Stopped;
                events.push(format!("stop {}", NAMES[i]));
            }
            State::Running => {}
        }
    }
    done.store(true, Ordering::Relaxed);
    let acked = driver.join().expect("driver");

    // Everyone back: dead servers start, stopped ones continue.
    {
        let mut servers = herd.servers.lock().expect("lock");
        for (i, (server, state)) in servers.iter_mut().enumerate() {
            match *state {
                State::Dead => *server = Some(herd.files.serve(NAMES[i])),
                State::Stopped => {
                    if let Some(s) = server {
                        signal(&s.child, "CONT");
                    }
                }
                State::Running => {}
            }
            *state = State::Running;
        }
    }

    // Kept: acknowledged by a server whose flood was seen to leave, or that was not killed
    // after it (a killed server forgets what only it had).
    let must_have: Vec<&Acked> = acked
        .iter()
        .filter(|a| a.left || !kills[a.server].iter().any(|k| *k > a.at))
        .collect();
    let mut floor: HashMap<usize, u64> = HashMap::new();
    for a in &must_have {
        let t = floor.entry(a.client).or_default();
        *t = (*t).max(a.time);
    }
    let by_time: HashMap<u64, &str> = acked.iter().map(|a| (a.time, a.at_line.as_str())).collect();
    assert!(
        acked.len() > 100 && must_have.len() > acked.len() / 2,
        "too little traffic to judge: {} acknowledged, {} kept; {events:?}",
        acked.len(),
        must_have.len()
    );

    eprintln!(
        "chaos: {} check-ins acknowledged, {} kept; {events:?}",
        acked.len(),
        must_have.len()
    );
    // Converged: every server holds, for every client, the same record, no older than any
    // kept one, and one that some server acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    'converge: loop {
        let views: Vec<Vec<Option<String>>> = NAMES
            .iter()
            .map(|name| {
                (0..CLIENTS)
                    .map(|c| held(&herd.files, name, &format!("c{c}")))
                    .collect()
            })
            .collect();
        let agreed = views.iter().all(|v| *v == views[0]);
        let fresh = (0..CLIENTS).all(|c| {
            let want = floor.get(&c).copied().unwrap_or(0);
            views[0][c].as_deref().is_some_and(|at| {
                let t: u64 = at
                    .rsplit(' ')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                t >= want && by_time.get(&t) == Some(&at)
            }) || want == 0 && views[0][c].is_none()
        });
        if agreed && fresh {
            break 'converge;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: {views:#?}\nfloor {floor:?}\nevents {events:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
