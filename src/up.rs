//! `herd up`: every server of the config file as a child process of this same binary.
//!
//! Nothing starts unless every server could: the whole config is checked first, as each
//! server would check it (the off-loopback rule among the rest). Each child says when it takes
//! connections (`NOTIFY_SOCKET`, see [`crate::notify`]), and the herd is called up only once
//! every one has. A server that exits before that (its port taken, its files unfit) stops the
//! others, and `herd up` fails as soon as it has said why. Once up, a server that dies on its
//! own is reported and not restarted: the rest of the herd routes around it, and the
//! operator sees why it died. When none is left, `herd up` fails.
//!
//! Each child's console output is printed with its server name in front. Ctrl-C (or
//! SIGTERM) sends SIGTERM to every child, waits for them to exit (a server exits within a
//! second), and then returns. SIGHUP is passed on: each server starts a new log file.
//!
//! A herd whose file has no secret gets a fresh random one for this run, given to every
//! child as `HERD_SECRET`: the servers all have it, and no other local process does, so
//! the herd `herd up` starts is closed to processes that only know a server's name.
//!
//! The servers share this host's cores: unless the config (or `HERD_WORKERS`) sets
//! `workers`, each child gets `HERD_WORKERS` = the cores this process may use divided by
//! the servers it starts, at least 1 (five servers on 2 cores: 1 each; on 16 cores: 3).
//! A server started alone (`herd serve`) takes every core by default.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use herd_actors::settings::{self, Settings};

use crate::notify;
use crate::signals::{Sig, Signals};

/// How long children get to exit after SIGTERM before they are killed.
const GRACE: Duration = Duration::from_secs(3);

/// How long a server may take to take connections: loading a large store takes seconds
/// (about one per million records).
const START_WITHIN: Duration = Duration::from_secs(60);

/// How often the children are looked at.
const POLL: Duration = Duration::from_millis(20);

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Settings::load(config_path)?;
    for server in &config.servers {
        herd_actors::preflight(&config, &server.name)?;
    }
    let mut env = Vec::new();
    if !config.has_secret() {
        env.push(("HERD_SECRET", fresh_secret()?));
    }
    let workers = workers_each(settings::cores(), config.servers.len());
    if !config.workers_set() {
        env.push(("HERD_WORKERS", workers.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    runtime.block_on(async {
        // Before any child exists, so that no signal can end this process without them.
        let mut signals = Signals::install()?;
        let mut herd = Herd::default();
        let exe = std::env::current_exe().context("cannot find the herd binary")?;
        for server in &config.servers {
            let started = herd.start(&exe, &server.name, config_path, &env);
            if let Err(e) = started {
                herd.stop();
                return Err(e.context(format!("cannot start server {}", server.name)));
            }
        }
        let deadline = Instant::now() + START_WITHIN;
        let mut poll = tokio::time::interval(POLL);
        let mut up = false;
        loop {
            tokio::select! {
                // Signals first: on Ctrl-C the servers get SIGINT too, and their exits
                // must not be taken for deaths before the signal is seen.
                biased;
                signal = signals.next() => match signal {
                    Sig::Hup => herd.hang_up(),
                    stop => {
                        herd.stop_on(stop.name());
                        return Ok(());
                    }
                },
                _ = poll.tick() => {
                    if up {
                        herd.report_exits();
                        if herd.children.is_empty() {
                            bail!("every server has exited");
                        }
                        continue;
                    }
                    if let Some((name, status)) = herd.first_exit() {
                        herd.stop();
                        bail!("server {name} exited ({status}) before it took connections; \
                               stopped the herd");
                    }
                    if herd.is_up() {
                        up = true;
                        let each = match config.workers_set() {
                            true => format!("{} worker threads each (workers)", config.workers()),
                            false => format!(
                                "{workers} worker thread{} each ({} cores shared)",
                                if workers == 1 { "" } else { "s" },
                                settings::cores()
                            ),
                        };
                        eprintln!(
                            "herd: {} servers up from {}, {each}; Ctrl-C stops them all",
                            herd.children.len(),
                            config_path.display()
                        );
                    } else if Instant::now() > deadline {
                        let slow = herd.not_up().join(", ");
                        herd.stop();
                        bail!("{slow} took no connections within {START_WITHIN:?}; \
                               stopped the herd");
                    }
                }
            }
        }
    })
}

/// The worker threads each of `servers` servers on `cores` cores gets: an even share, at
/// least 1. Sharing rather than each taking all: five servers with two event loops each on
/// two cores would hop threads on every line and gain nothing.
fn workers_each(cores: usize, servers: usize) -> usize {
    (cores / servers.max(1)).max(1)
}

/// 32 random bytes, hex: a secret for one run of the herd.
fn fresh_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).context("no randomness for the herd's secret")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The servers running, each a child process.
#[derive(Default)]
struct Herd {
    children: Vec<Child>,
}

/// One server's process.
struct Child {
    name: String,
    process: std::process::Child,
    /// Where it says it takes connections.
    ready: notify::Listener,
    /// The threads that copy its output; done once it has exited.
    output: Vec<JoinHandle<()>>,
}

impl Herd {
    /// Starts `herd serve name` with `env` added to its environment, its output prefixed
    /// with its name.
    fn start(
        &mut self,
        exe: &Path,
        name: &str,
        config: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let ready = notify::Listener::new().context("no socket to hear it is ready on")?;
        let mut process = Command::new(exe)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", name, "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", ready.value())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let output = [
            prefix_output(name, process.stdout.take(), false),
            prefix_output(name, process.stderr.take(), true),
        ];
        self.children.push(Child {
            name: name.to_owned(),
            process,
            ready,
            output: output.into_iter().flatten().collect(),
        });
        Ok(())
    }

    /// Whether every server has said it takes connections.
    fn is_up(&mut self) -> bool {
        self.children.iter_mut().all(|c| c.ready.is_ready())
    }

    /// The servers that have not said so yet.
    fn not_up(&mut self) -> Vec<String> {
        let mut slow = Vec::new();
        for child in &mut self.children {
            if !child.ready.is_ready() {
                slow.push(child.name.clone());
            }
        }
        slow
    }

    /// The first server found to have exited, once its output is all out.
    fn first_exit(&mut self) -> Option<(String, ExitStatus)> {
        let i = self
            .children
            .iter_mut()
            .position(|c| matches!(c.process.try_wait(), Ok(Some(_))))?;
        let mut child = self.children.remove(i);
        let status = child.reap();
        Some((child.name, status))
    }

    /// Reports and forgets servers that have exited.
    fn report_exits(&mut self) {
        while let Some((name, status)) = self.first_exit() {
            eprintln!("herd: server {name} exited ({status})");
        }
    }

    /// SIGHUP to every server that is ready (one still starting may not handle it yet, and
    /// opens its log afresh anyway).
    fn hang_up(&mut self) {
        for child in &mut self.children {
            if child.ready.is_ready() {
                child.signal(libc::SIGHUP);
            }
        }
    }

    /// Stops the herd on a signal.
    fn stop_on(&mut self, signal: &str) {
        eprintln!("herd: {signal}: stopping the herd");
        self.stop();
    }

    /// SIGTERM to every server, then wait; whoever outstays the grace period is killed.
    fn stop(&mut self) {
        for child in &self.children {
            child.signal(libc::SIGTERM);
        }
        let deadline = Instant::now() + GRACE;
        while !self.children.is_empty() && Instant::now() < deadline {
            self.report_exits();
            std::thread::sleep(POLL);
        }
        for mut child in self.children.drain(..) {
            eprintln!(
                "herd: server {} did not stop in {GRACE:?}; killing it",
                child.name
            );
            let _ = child.process.kill();
            child.reap();
        }
    }
}

impl Child {
    fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = i32::try_from(self.process.id()) {
            // SAFETY: kill(2) with a pid we spawned and still hold (not yet reaped) and a
            // valid signal number has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Waits for the process (which has exited or been killed) and for the rest of its
    /// output, so that what it said comes before what is said of it.
    fn reap(&mut self) -> ExitStatus {
        let status = self.process.wait();
        for thread in self.output.drain(..) {
            let _ = thread.join();
        }
        // `wait` fails only for a child already reaped, which `Herd` never keeps.
        status.unwrap_or_default()
    }
}

/// Copies a child's output, line by line, with `[NAME] ` in front, until it ends.
fn prefix_output(
    name: &str,
    pipe: Option<impl Read + Send + 'static>,
    to_stderr: bool,
) -> Option<JoinHandle<()>> {
    let pipe = pipe?;
    let prefix = format!("[{name}] ");
    Some(std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
            let mut out = Vec::with_capacity(prefix.len() + line.len() + 1);
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(&line);
            out.push(b'\n');
            let _ = if to_stderr {
                std::io::stderr().write_all(&out)
            } else {
                std::io::stdout().write_all(&out)
            };
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_share_the_cores_evenly_and_each_gets_at_least_one() {
        assert_eq!(workers_each(2, 5), 1);
        assert_eq!(workers_each(16, 5), 3);
        assert_eq!(workers_each(8, 1), 8);
        assert_eq!(workers_each(1, 1), 1);
        assert_eq!(workers_each(4, 0), 4);
    }
}
