//! A test network of Linux network namespaces: one per host, each joined by a veth pair to
//! a bridge in a namespace of its own, with addresses from 198.51.100.0/24 (TEST-NET-2,
//! reserved for documentation: nothing outside can ever answer).
//!
//! Nothing of it touches the machine's own namespace: every link is made inside the
//! namespaces the lab creates. The namespaces are named `herdtest-<pid>-<role>`; dropping
//! the [`Lab`] kills the processes it started and deletes them, also when an assertion
//! failed; a watchdog does the same, and aborts, if a test overruns its deadline; and a new
//! lab first removes what a lab of a process that no longer exists left behind (a test
//! killed with SIGKILL runs no destructor).
//!
//! Making namespaces takes root (CAP_SYS_ADMIN, CAP_NET_ADMIN), as CI has. Where that is
//! not possible, [`Lab::new`] says why, and the test skips.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The prefix of every namespace a lab makes.
const PREFIX: &str = "herdtest-";

/// Runs `ip args`; its stderr if it fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One network namespace of the lab.
#[derive(Clone, Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Runs `f` on a thread that has entered this namespace: sockets it makes live there.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|s| {
            s.spawn(|| {
                enter(&self.name);
                f()
            })
            .join()
            .expect("the thread in the namespace")
        })
    }

    /// A connection to `addr` from inside this namespace, as a client on that host makes.
    pub fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
    }
}

/// Moves the calling thread into namespace `name` (a network namespace is per thread).
fn enter(name: &str) {
    let file = File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("cannot open namespace {name}: {e}"));
    // SAFETY: setns(2) on a file descriptor we hold open, for the calling thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// What the watchdog and the destructor both clean up.
#[derive(Default)]
struct Owned {
    namespaces: Vec<String>,
    pids: Vec<u32>,
}

impl Owned {
    fn clean(&mut self) {
        for pid in self.pids.drain(..) {
            // SAFETY: kill(2) on a process this lab started, with a valid signal.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        for name in self.namespaces.drain(..).rev() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The hosts, the bridge between them, and the processes run in them.
pub struct Lab {
    pub bridge: Netns,
    pub hosts: Vec<Netns>,
    children: Vec<Child>,
    owned: Arc<Mutex<Owned>>,
    done: Arc<AtomicBool>,
}

/// The address of host `i` (from 0): 198.51.100.(i + 1).
pub fn host_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + i as u8))
}

/// The bridge namespace's own address, for a relay there.
pub const BRIDGE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 100));

impl Lab {
    /// `hosts` namespaces named after them, joined to a bridge; `Err` says why the machine
    /// cannot have them (the test then skips). Past `deadline` the watchdog cleans up and
    /// aborts the test process.
    pub fn new(hosts: &[&str], deadline: Duration) -> Result<Lab, String> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root, so no network namespaces can be made".into());
        }
        sweep_leftovers();
        let pid = std::process::id();
        let owned = Arc::new(Mutex::new(Owned::default()));
        let done = Arc::new(AtomicBool::new(false));
        let mut lab = Lab {
            bridge: Netns {
                name: format!("{PREFIX}{pid}-bridge"),
            },
            hosts: Vec::new(),
            children: Vec::new(),
            owned: Arc::clone(&owned),
            done: Arc::clone(&done),
        };
        lab.add_namespace(&lab.bridge.clone())?;
        let br = lab.bridge.name.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &br,
            "addr",
            "add",
            &format!("{BRIDGE_IP}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        for (i, host) in hosts.iter().enumerate() {
            let ns = Netns {
                name: format!("{PREFIX}{pid}-{host}"),
            };
            lab.add_namespace(&ns)?;
            let port = format!("vb{i}");
            // Made inside the bridge namespace, its other end straight into the host's: no
            // interface ever appears in the machine's own namespace.
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns.name,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/24", host_ip(i));
            ip(&["-n", &ns.name, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns.name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
            lab.hosts.push(ns);
        }
        thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < deadline {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            eprintln!("netns lab: the test ran past {deadline:?}; cleaning up and aborting");
            owned.lock().unwrap().clean();
            std::process::abort();
        });
        Ok(lab)
    }

    fn add_namespace(&mut self, ns: &Netns) -> Result<(), String> {
        ip(&["netns", "add", &ns.name])?;
        self.owned.lock().unwrap().namespaces.push(ns.name.clone());
        Ok(())
    }

    /// Starts `program args` inside host `i`'s namespace, its output to `log`; it dies with
    /// the test process.
    pub fn spawn(&mut self, i: usize, program: &str, args: &[&str], log: &std::path::Path) -> u32 {
        let out = File::create(log).expect("a file for the process's output");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i].name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .env_remove("GOOGLE_PLACES_API_KEY");
        // SAFETY: prctl(2) is async-signal-safe; it only asks for SIGKILL when the thread
        // that started the child goes, so no server outlives a test killed outright.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("ip netns exec");
        let pid = child.id();
        self.owned.lock().unwrap().pids.push(pid);
        self.children.push(child);
        pid
    }

    /// Sets host `i`'s port on the bridge up or down: a cable plugged in or pulled.
    pub fn set_port(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.bridge.name,
            "link",
            "set",
            &format!("vb{i}"),
            state,
        ])
        .expect("set the port");
    }

    /// Polls until something listens on `addr`, as seen from host `i` (10 s at most).
    pub fn wait_listening(&self, i: usize, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.hosts[i].connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {addr}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.owned.lock().unwrap().clean();
    }
}

/// Deletes the namespaces of labs whose process is gone, and kills what still runs in them.
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) with a valid signal; the process runs in a namespace
                    // only these tests make, left behind by a test process that is gone.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        let _ = ip(&["netns", "del", &name]);
    }
}
