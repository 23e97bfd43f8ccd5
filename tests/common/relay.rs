//! A TCP relay the tests put in the middle of a peer link: it can slow the link (added
//! latency, throttled bandwidth: what netem would do, on kernels without it), and it is an
//! on-path attacker's view of the link: it keeps every byte it carries, and it can write
//! bytes of its own into the stream from the dialler to the listener.
//!
//! Each accepted connection is relayed to `upstream`; each direction is a reader thread
//! that stamps every chunk with its arrival time and a writer thread that sends it `delay`
//! later, no faster than `bytes_per_sec`, so latency does not add up chunk by chunk.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the relay treats the bytes it carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelayOptions {
    /// Every chunk leaves this long after it arrived.
    pub delay: Duration,
    /// Each direction sends at most this many bytes a second; `None`: as fast as it can.
    pub bytes_per_sec: Option<u64>,
    /// The dialler-to-listener stream is TLS: injected bytes go in between two whole TLS
    /// records, so the listener reads them as a record of their own.
    pub tls_records: bool,
}

/// A running relay; it stops, and closes what it carries, when dropped.
pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Every byte carried, both directions, in the order the readers got them.
    captured: Mutex<Vec<u8>>,
    /// Bytes waiting to be written into the newest dialler-to-listener stream.
    inject: Mutex<Vec<Vec<u8>>>,
    /// Connections accepted so far; the last is the one injections go into (an older one
    /// may linger, its dialler's close held up by a partition, with its link long given up).
    accepted: AtomicUsize,
    /// Every socket carried, to close on drop.
    sockets: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Listens on `listen` and relays each connection to `upstream`. The threads are
    /// started from the calling thread, so they live in its network namespace.
    pub fn start(listen: SocketAddr, upstream: SocketAddr, options: RelayOptions) -> Relay {
        let listener = TcpListener::bind(listen).expect("the relay binds");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let addr = listener.local_addr().expect("the relay's address");
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || accept_loop(&listener, upstream, options, &accepting));
        Relay { addr, shared }
    }

    /// Every byte the relay has carried so far.
    pub fn captured(&self) -> Vec<u8> {
        self.shared.captured.lock().unwrap().clone()
    }

    /// Writes `bytes` into the stream from the dialler to the listener of the newest
    /// connection, as soon as that stream is between two TLS records (or at once, for a
    /// plain stream).
    pub fn inject(&self, bytes: &[u8]) {
        self.shared.inject.lock().unwrap().push(bytes.to_vec());
    }

    /// Whether every injected byte has been written.
    pub fn injected(&self) -> bool {
        self.shared.inject.lock().unwrap().is_empty()
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for socket in self.shared.sockets.lock().unwrap().iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: SocketAddr,
    options: RelayOptions,
    shared: &Arc<Shared>,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    continue;
                };
                let id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = client.set_nonblocking(false);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut sockets = shared.sockets.lock().unwrap();
                    sockets.push(client.try_clone().expect("clone"));
                    sockets.push(server.try_clone().expect("clone"));
                }
                pipe(&client, &server, options, Some(id), shared);
                pipe(&server, &client, options, None, shared);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One direction, `from` -> `to`: a reader and a delaying writer. `forward` is set, to the
/// connection's number, on the dialler-to-listener direction, the one injections go into.
fn pipe(
    from: &TcpStream,
    to: &TcpStream,
    options: RelayOptions,
    forward: Option<usize>,
    shared: &Arc<Shared>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut reader = from.try_clone().expect("clone");
    let reading = Arc::clone(shared);
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reading
                        .captured
                        .lock()
                        .unwrap()
                        .extend_from_slice(&buf[..n]);
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let writer = to.try_clone().expect("clone");
    let source = from.try_clone().expect("clone");
    let writing = Arc::clone(shared);
    thread::spawn(move || {
        let mut writer = writer;
        let ended_well = write_loop(&rx, &mut writer, options, forward, &writing).is_ok();
        if ended_well {
            // The sender half-closed: pass it on.
            let _ = writer.shutdown(Shutdown::Write);
        } else {
            let _ = writer.shutdown(Shutdown::Both);
            let _ = source.shutdown(Shutdown::Both);
        }
    });
}

/// Sends each chunk `delay` after it arrived, paced to the bandwidth, with injections in
/// between records; `Ok` when the input ended, `Err` when a write failed.
fn write_loop(
    rx: &Receiver<(Instant, Vec<u8>)>,
    writer: &mut TcpStream,
    options: RelayOptions,
    forward: Option<usize>,
    shared: &Shared,
) -> io::Result<()> {
    // Only the newest connection's stream takes injections.
    let newest = || forward == Some(shared.accepted.load(Ordering::SeqCst));
    let tls = options.tls_records;
    let mut records = RecordTracker::default();
    // When the link is free to send the next byte: a throttled link sends a chunk slice by
    // slice, so its last byte leaves `len / rate` after its first.
    let mut free_at = Instant::now();
    loop {
        if newest() && (records.at_boundary() || !tls) {
            inject_pending(writer, shared)?;
        }
        let (arrived, chunk) = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(next) => next,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        free_at = free_at.max(arrived + options.delay);
        // Whole records one by one, so that an injection can fall between any two.
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let n = if forward.is_some() && tls {
                records.until_boundary(rest)
            } else {
                rest.len()
            };
            let (part, tail) = rest.split_at(n);
            let slice = options
                .bytes_per_sec
                .map_or(part.len(), |rate| (rate as usize / 100).max(1));
            for piece in part.chunks(slice) {
                let now = Instant::now();
                if free_at > now {
                    thread::sleep(free_at - now);
                }
                writer.write_all(piece)?;
                free_at = match options.bytes_per_sec {
                    Some(rate) => {
                        free_at + Duration::from_secs_f64(piece.len() as f64 / rate as f64)
                    }
                    None => free_at,
                };
            }
            rest = tail;
            if newest() && tls && records.at_boundary() && !rest.is_empty() {
                inject_pending(writer, shared)?;
            }
        }
    }
}

/// Writes whatever the test asked to inject.
fn inject_pending(writer: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    let pending: Vec<Vec<u8>> = std::mem::take(&mut *shared.inject.lock().unwrap());
    for bytes in pending {
        writer.write_all(&bytes)?;
    }
    Ok(())
}

/// Where a TLS stream's record boundaries fall: each record is a 5-byte header (type,
/// version, 16-bit length) and that many bytes.
#[derive(Default)]
struct RecordTracker {
    header: Vec<u8>,
    body_left: usize,
}

impl RecordTracker {
    fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.body_left == 0
    }

    /// How many bytes of `bytes` to take to reach the next boundary (all of them if it lies
    /// beyond), taking them into account.
    fn until_boundary(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        while taken < bytes.len() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len() - taken);
                self.body_left -= n;
                taken += n;
                if self.body_left == 0 {
                    return taken;
                }
                continue;
            }
            self.header.push(bytes[taken]);
            taken += 1;
            if self.header.len() == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
                if self.body_left == 0 {
                    return taken;
                }
            }
        }
        taken
    }
}
