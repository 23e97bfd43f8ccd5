//! `herd up`: every server of the config file as a child process of this same binary.
//!
//! Each child's console output is printed with its server name in front. Ctrl-C (or
//! SIGTERM) sends SIGTERM to every child, waits for them to exit (a server exits within a
//! second), and then returns. A server that dies on its own is reported and not restarted:
//! the rest of the herd routes around it, and the operator sees why it died.
//!
//! A herd whose file has no secret gets a fresh random one for this run, given to every
//! child as `HERD_SECRET`: the servers all have it, and no other local process does, so
//! the herd `herd up` starts is closed to processes that only know a server's name.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use herd_actors::settings::Settings;

/// How long children get to exit after SIGTERM before they are killed.
const GRACE: Duration = Duration::from_secs(3);

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Settings::load(config_path)?;
    let exe = std::env::current_exe().context("cannot find the herd binary")?;
    let secret = match config.has_secret() {
        true => None,
        false => Some(fresh_secret()?),
    };
    let mut children: Vec<(String, Child)> = Vec::new();
    for server in &config.servers {
        let mut command = Command::new(&exe);
        if let Some(secret) = &secret {
            command.env("HERD_SECRET", secret);
        }
        let spawned = command
            .args(["serve", &server.name, "--config"])
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(mut child) => {
                prefix_output(&server.name, child.stdout.take(), false);
                prefix_output(&server.name, child.stderr.take(), true);
                children.push((server.name.clone(), child));
            }
            Err(e) => {
                stop_all(&mut children);
                return Err(e).with_context(|| format!("cannot start server {}", server.name));
            }
        }
    }
    eprintln!(
        "herd: {} servers up from {}; Ctrl-C stops them all",
        children.len(),
        config_path.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    runtime.block_on(async {
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        let signal = crate::shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                name = &mut signal => {
                    eprintln!("herd: {name}: stopping the herd");
                    break;
                }
                _ = poll.tick() => {
                    report_exits(&mut children);
                    if children.is_empty() {
                        break;
                    }
                }
            }
        }
    });
    stop_all(&mut children);
    Ok(())
}

/// 32 random bytes, hex: a secret for one run of the herd.
fn fresh_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).context("no randomness for the herd's secret")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Copies a child's output, line by line, with `[NAME] ` in front.
fn prefix_output(name: &str, pipe: Option<impl Read + Send + 'static>, to_stderr: bool) {
    let Some(pipe) = pipe else { return };
    let prefix = format!("[{name}] ");
    std::thread::spawn(move || {
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
    });
}

/// Reports and forgets children that have exited.
fn report_exits(children: &mut Vec<(String, Child)>) {
    children.retain_mut(|(name, child)| match child.try_wait() {
        Ok(Some(status)) => {
            eprintln!("herd: server {name} exited ({status})");
            false
        }
        Ok(None) => true,
        Err(e) => {
            eprintln!("herd: cannot watch server {name}: {e}");
            false
        }
    });
}

/// SIGTERM to every child, then wait; whoever outstays the grace period is killed.
fn stop_all(children: &mut Vec<(String, Child)>) {
    for (_, child) in children.iter() {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) with a pid we spawned and still hold (not yet reaped) and a
            // valid signal number has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + GRACE;
    while !children.is_empty() && Instant::now() < deadline {
        report_exits(children);
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, child) in children.iter_mut() {
        eprintln!("herd: server {name} did not stop in {GRACE:?}; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
    children.clear();
}
