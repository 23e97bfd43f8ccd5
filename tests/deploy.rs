//! `deploy/herd@.service`, the systemd unit of one server: `systemd-analyze verify` accepts it
//! (where it is installed), and the binary runs as the unit runs it: its command line, its
//! environment and nothing else, from `/`, with the directories and credentials systemd
//! would make, under a test folder instead of `/`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const UNIT: &str = include_str!("../deploy/herd@.service");

/// The `[Service]` section's settings, in order, each key with every value it was given.
fn service() -> BTreeMap<String, Vec<String>> {
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = "";
    for line in UNIT.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let (key, value) = line.split_once('=').expect("KEY=value");
        if section == "[Service]" {
            settings.entry(key.into()).or_default().push(value.into());
        }
    }
    settings
}

/// The one value of `key`.
fn one<'a>(service: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    match service.get(key).map(Vec::as_slice) {
        Some([value]) => value,
        other => panic!("{key}: {other:?}"),
    }
}

/// What systemd makes of the unit's specifiers and paths for instance Hill, under `root`.
struct Host {
    root: PathBuf,
}

impl Host {
    fn path(&self, under_root: &str) -> PathBuf {
        self.root.join(under_root.trim_start_matches('/'))
    }

    fn credentials(&self) -> PathBuf {
        self.path("/run/credentials/herd@Hill.service")
    }

    /// `text` with the specifiers and absolute paths of the unit resolved.
    fn resolve(&self, text: &str) -> String {
        let text = text
            .replace("/usr/local/bin/herd", &herd_bin())
            .replace("/etc/herd", &self.path("/etc/herd").display().to_string())
            .replace("%i", "Hill")
            .replace("%S", &self.path("/var/lib").display().to_string())
            .replace("%L", &self.path("/var/log").display().to_string())
            .replace("%d", &self.credentials().display().to_string());
        assert!(
            !text.contains('%'),
            "a specifier this test does not know: {text}"
        );
        text
    }
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit file is not verified here");
        return;
    };
    assert!(out.status.success());
    let dir = TempDir::new("unit");
    // An instance, with a binary that exists here: verify checks that it does.
    let unit = dir.0.join("herd@Hill.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/herd", &herd_bin())).expect("written");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "warnings: {said}");
}

#[test]
fn the_unit_runs_a_tls_server_that_says_when_it_serves_and_reopens_its_log_on_reload() {
    let service = service();
    assert_eq!(one(&service, "Type"), "notify");
    assert_eq!(one(&service, "DynamicUser"), "yes");
    assert_eq!(one(&service, "Restart"), "on-failure");
    let root = TempDir::new("host");
    let host = Host {
        root: root.0.clone(),
    };
    // The herd's files, as the README's five-host install puts them.
    let addr = free_addrs(1)[0];
    let etc = host.path("/etc/herd");
    std::fs::create_dir_all(&etc).expect("/etc/herd");
    let config = etc.join("herd.toml");
    let elsewhere = host.path("/elsewhere");
    let toml = format!(
        "[log]\ndir = \"{}\"\n[store]\ndir = \"{}\"\n\n[servers.Hill]\naddr = \"{addr}\"\n\
         neighbours = []\n",
        elsewhere.display(),
        elsewhere.display()
    );
    std::fs::write(&config, toml).expect("herd.toml");
    let certs = herd(&[
        "certs",
        "--config",
        config.to_str().expect("UTF-8"),
        "--out",
        etc.join("tls").to_str().expect("UTF-8"),
    ]);
    assert!(certs.status.success(), "{certs:?}");
    // What systemd does before it starts the service.
    for dir in ["StateDirectory", "LogsDirectory"] {
        let base = if dir == "StateDirectory" {
            "/var/lib"
        } else {
            "/var/log"
        };
        let made = host.path(base).join(one(&service, dir));
        std::fs::create_dir_all(made).expect("a service directory");
    }
    std::fs::create_dir_all(host.credentials()).expect("the credentials directory");
    for credential in &service["LoadCredential"] {
        let (id, from) = credential.split_once(':').expect("ID:PATH");
        let to = host.credentials().join(host.resolve(id));
        std::fs::copy(host.resolve(from), to).expect("a credential");
    }
    let notify_path = host.path("/run/notify");
    let notify = UnixDatagram::bind(&notify_path).expect("the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a time-out");

    let exec = host.resolve(one(&service, "ExecStart"));
    let mut words = exec.split_whitespace();
    let mut command = Command::new(words.next().expect("a binary"));
    command
        .args(words)
        .env_clear()
        .current_dir("/")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for assignments in &service["Environment"] {
        for assignment in host.resolve(assignments).split_whitespace() {
            let (key, value) = assignment.split_once('=').expect("KEY=value");
            command.env(key, value);
        }
    }
    let mut server = Server {
        child: command.spawn().expect("the unit's command"),
        addr,
    };
    let stderr = Lines::of(server.child.stderr.take());
    let mut said = [0u8; 256];
    let n = notify.recv(&mut said).expect("a notification");
    assert!(
        String::from_utf8_lossy(&said[..n])
            .lines()
            .any(|l| l == "READY=1"),
        "{:?}",
        String::from_utf8_lossy(&said[..n])
    );
    // Ready means serving: the places data set is in the binary, nothing is read from `/`.
    let mut c = Conn::open(addr);
    assert!(c
        .line("IAMAT unit +34.068930-118.445127 1")
        .starts_with("AT Hill "));
    let (_, json) = split_whatsat(&c.whatsat("WHATSAT unit 10 1"));
    assert_eq!(json["status"], "OK");
    drop(c);

    let log = host.path("/var/log/herd/Hill.log");
    wait_for("the log in LogsDirectory", || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains(" IAMAT unit ").then_some(())
    });
    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(text.contains("peer links use TLS"), "{text}");
    assert!(
        host.path("/var/lib/herd/Hill.db").exists(),
        "no store in StateDirectory"
    );
    assert!(
        !elsewhere.exists(),
        "the config's own directories were used"
    );

    // `systemctl reload`, after logrotate has renamed the file.
    std::fs::rename(&log, log.with_extension("log.1")).expect("rotated");
    let pid = server.child.id().to_string();
    let reload = host
        .resolve(one(&service, "ExecReload"))
        .replace("$MAINPID", &pid);
    let mut words = reload.split_whitespace();
    let reloaded = Command::new(words.next().expect("a command"))
        .args(words)
        .status();
    assert!(reloaded.is_ok_and(|s| s.success()));
    wait_for("a new log", || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("note reopened the event log").then_some(())
    });
    let stopping = notify_said_after_stop(&mut server, &notify);
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
    let stderr = stderr.all();
    assert!(stderr.contains("herd: Hill serving on"), "{stderr}");
}

/// SIGTERM (systemd's way to stop), a clean exit within the unit's stop time-out, and what
/// the server told the notify socket meanwhile.
fn notify_said_after_stop(server: &mut Server, notify: &UnixDatagram) -> String {
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let mut said = [0u8; 256];
    let n = notify.recv(&mut said).expect("a notification");
    String::from_utf8_lossy(&said[..n]).into_owned()
}
