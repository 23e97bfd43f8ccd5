//! TLS peer links from the outside: `herd certs` makes a herd's files, a herd on them
//! floods as ever and refuses plain-text peers, a server whose files are missing or do not
//! fit does not start, and a herd off loopback does not start without TLS.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// The default herd's files, with `[tls] dir` in a folder of the test's.
fn tls_herd() -> (HerdFiles, TempDir) {
    let tls = TempDir::new("tls");
    let files = HerdFiles::new(GRAPH, &format!("[tls]\ndir = \"{}\"\n", tls.0.display()));
    (files, tls)
}

/// `herd certs --config` of `files`, and whatever more; it must succeed.
fn certs(files: &HerdFiles, more: &[&str]) -> String {
    let mut args = vec!["certs", "--config", files.config.to_str().unwrap()];
    args.extend_from_slice(more);
    let out = herd(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `herd serve NAME` that is expected to fail at once; its stderr.
fn refused(config: &std::path::Path, name: &str) -> String {
    let out = herd(&["serve", name, "--config", config.to_str().unwrap()]);
    assert!(!out.status.success(), "{name} started: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn herd_certs_makes_a_ca_and_each_servers_files_and_overwrites_nothing() {
    let (files, tls) = tls_herd();
    let said = certs(&files, &[]);
    assert!(said.contains("keep it offline"), "{said}");
    for file in ["ca.pem", "ca.key"].into_iter().map(String::from).chain(
        NAMES
            .iter()
            .flat_map(|n| [format!("{n}.pem"), format!("{n}.key")]),
    ) {
        let meta = std::fs::metadata(tls.0.join(&file)).expect(&file);
        if file.ends_with(".key") {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    let first = std::fs::read(tls.0.join("ca.pem")).unwrap();
    let again = herd(&["certs", "--config", files.config.to_str().unwrap()]);
    assert!(!again.status.success());
    let stderr = String::from_utf8(again.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{} exists", tls.0.join("ca.pem").display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read(tls.0.join("ca.pem")).unwrap(), first);
    certs(&files, &["--force"]);
    assert_ne!(std::fs::read(tls.0.join("ca.pem")).unwrap(), first);
}

#[test]
fn herd_certs_writes_where_out_says() {
    let files = HerdFiles::new(GRAPH, "");
    let out = files.dir.0.join("elsewhere");
    let said = certs(&files, &["--out", out.to_str().unwrap()]);
    assert!(out.join("Singleton.key").exists());
    // The config has no [tls]: it is told how to use them.
    assert!(said.contains("dir = "), "{said}");
}

#[test]
fn a_herd_on_tls_floods_and_refuses_plain_text_peers() {
    let (files, _tls) = tls_herd();
    certs(&files, &[]);
    let _servers = start_herd(&files);
    let at = check_in(
        &files,
        "Hill",
        "IAMAT kiwi +34.068930-118.445127 1621464827.5",
    );
    for name in NAMES {
        eventually_holds(&files, name, "kiwi", &at);
    }
    // A neighbour's name in plain text gets nowhere on a TLS herd.
    let mut c = Conn::open(files.addr("Smith"));
    c.send(b"HERD-PEER 2 Hill Smith\nAT Hill +0.000000001 kiwi +9+9 1621464828\n");
    let reply = String::from_utf8(c.finish()).unwrap();
    assert_eq!(
        reply,
        "HERD-REFUSED this herd's peer links use TLS: a hello in plain text is refused\n"
    );
    wait_for("Smith to log the refused handshake", || {
        files
            .log("Smith")
            .contains("refused peer handshake from 127.0.0.1:")
            .then_some(())
    });
    for name in NAMES {
        assert_eq!(held(&files, name, "kiwi").as_deref(), Some(at.as_str()));
    }
}

#[test]
fn a_server_whose_files_are_missing_or_do_not_fit_does_not_start() {
    let (files, tls) = tls_herd();
    let stderr = refused(&files.config, "Hill");
    let ca = tls.0.join("ca.pem");
    assert!(
        stderr.contains(&format!("cannot read the herd's CA {}", ca.display())),
        "{stderr}"
    );
    certs(&files, &[]);
    // Smith's key in Hill's place.
    std::fs::copy(tls.0.join("Smith.key"), tls.0.join("Hill.key")).unwrap();
    let stderr = refused(&files.config, "Hill");
    assert!(
        stderr.contains(&format!(
            "the key {} does not belong to the certificate {}",
            tls.0.join("Hill.key").display(),
            tls.0.join("Hill.pem").display()
        )),
        "{stderr}"
    );
    // Smith's certificate and key in Hill's place: a pair, but for the wrong server.
    std::fs::copy(tls.0.join("Smith.pem"), tls.0.join("Hill.pem")).unwrap();
    let stderr = refused(&files.config, "Hill");
    assert!(
        stderr.contains(&format!(
            "the certificate {} does not prove server 'Hill'",
            tls.0.join("Hill.pem").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("it is for Smith, 127.0.0.1"), "{stderr}");
    // Files of another herd's CA.
    std::fs::remove_file(tls.0.join("Jaquez.pem")).unwrap();
    let other = TempDir::new("other-ca");
    certs(&files, &["--out", other.0.to_str().unwrap()]);
    std::fs::copy(other.0.join("Jaquez.pem"), tls.0.join("Jaquez.pem")).unwrap();
    std::fs::copy(other.0.join("Jaquez.key"), tls.0.join("Jaquez.key")).unwrap();
    let stderr = refused(&files.config, "Jaquez");
    assert!(
        stderr.contains("it is not signed by the herd's CA"),
        "{stderr}"
    );
}

#[test]
fn a_herd_off_loopback_does_not_start_without_tls_even_with_a_secret() {
    let files = HerdFiles::new(GRAPH, "secret = \"s3cret\"\n");
    let config = std::fs::read_to_string(&files.config).unwrap();
    let smith = files.addr("Smith").to_string();
    let away = config.replace(&smith, "198.51.100.3:12002");
    let path = files.dir.0.join("away.toml");
    std::fs::write(&path, &away).unwrap();
    let stderr = refused(&path, "Hill");
    assert!(
        stderr.contains(
            "server 'Smith' is at 198.51.100.3:12002, off loopback, and the herd's peer links \
             do not use TLS"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("herd certs"), "{stderr}");

    // With TLS the rule is met: Hill gets as far as its own files (this machine has none
    // of the herd's addresses to listen on for Smith, but Hill's is on loopback).
    let tls = TempDir::new("away-tls");
    let with_tls = format!("{away}\n[tls]\ndir = \"{}\"\n", tls.0.display());
    std::fs::write(&path, with_tls).unwrap();
    let stderr = refused(&path, "Hill");
    assert!(stderr.contains("cannot read the herd's CA"), "{stderr}");
}
