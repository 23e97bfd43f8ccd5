//! `[tls]` and each server's `cert` and `key`.

use std::path::PathBuf;

use super::error::Fault;
use super::tests::{loaded, refused, with_table, TWO};
use super::TlsSettings;

/// Each server's (cert, key), in name order.
fn files(config: &super::Settings) -> Vec<(Option<PathBuf>, Option<PathBuf>)> {
    let files = config.servers.iter();
    files.map(|s| (s.cert.clone(), s.key.clone())).collect()
}

fn some(path: &str) -> Option<PathBuf> {
    Some(PathBuf::from(path))
}

#[test]
fn tls_is_off_by_default_and_servers_have_no_cert_or_key() {
    let config = loaded(TWO, &[]);
    assert_eq!(config.tls, None);
    assert_eq!(files(&config), [(None, None), (None, None)]);
}

#[test]
fn a_tls_dir_holds_the_ca_and_each_servers_cert_and_key() {
    let config = loaded(&with_table("tls", "dir = \"tls\""), &[]);
    assert_eq!(
        config.tls,
        Some(TlsSettings {
            ca: PathBuf::from("tls/ca.pem"),
            dir: some("tls"),
        })
    );
    assert_eq!(
        files(&config),
        [
            (some("tls/Hill.pem"), some("tls/Hill.key")),
            (some("tls/Jaquez.pem"), some("tls/Jaquez.key")),
        ]
    );
}

#[test]
fn a_servers_own_cert_and_key_beat_the_tls_dir() {
    let text = with_table("tls", "dir = \"tls\"\nca = \"/etc/herd/ca.pem\"").replace(
        "addr = \"127.0.0.1:12001\"",
        "addr = \"127.0.0.1:12001\"\ncert = \"j.crt\"\nkey = \"j.key\"",
    );
    let config = loaded(&text, &[]);
    let ca = config.tls.as_ref().map(|tls| &tls.ca);
    assert_eq!(ca, Some(&PathBuf::from("/etc/herd/ca.pem")));
    let jaquez = config.server("Jaquez").expect("Jaquez");
    assert_eq!(
        (&jaquez.cert, &jaquez.key),
        (&some("j.crt"), &some("j.key"))
    );
}

#[test]
fn a_ca_alone_turns_tls_on_and_every_server_must_name_its_files() {
    let text = with_table("tls", "ca = \"ca.pem\"");
    let (e, message) = refused(&text, &[]);
    assert!(matches!(e.fault(), Fault::NoTlsFile(..)), "{e:?}");
    assert_eq!(
        message,
        "server 'Hill' has no cert in herd.toml: TLS is on, so set cert under [servers.Hill], \
         or dir under [tls] to use <dir>/Hill.pem"
    );
    let with_certs = text.replace(
        "neighbours = [\"Jaquez\"]",
        "neighbours = [\"Jaquez\"]\ncert = \"h.pem\"",
    );
    let (_, message) = refused(&with_certs, &[]);
    assert!(
        message.starts_with("server 'Hill' has no key in herd.toml"),
        "{message}"
    );
}

#[test]
fn the_environment_can_turn_tls_on() {
    let config = loaded(TWO, &[("HERD_TLS__DIR", "/etc/herd")]);
    assert_eq!(config.tls.map(|tls| tls.ca), some("/etc/herd/ca.pem"));
}

#[test]
fn cert_and_key_are_ignored_while_tls_is_off() {
    let text = TWO.replace(
        "neighbours = [\"Jaquez\"]",
        "cert = \"h.pem\"\nkey = \"h.key\"",
    );
    let config = loaded(&text, &[]);
    assert_eq!(files(&config), [(None, None), (None, None)]);
}

#[test]
fn an_empty_tls_dir_or_ca_leaves_tls_off() {
    let config = loaded(&with_table("tls", "dir = \"\"\nca = \"\""), &[]);
    assert_eq!(config.tls, None);
}

#[test]
fn a_cert_that_is_not_a_string_is_refused() {
    let text = TWO.replace("neighbours = [\"Jaquez\"]", "cert = 1");
    let (_, message) = refused(&text, &[]);
    assert_eq!(
        message,
        "bad servers.Hill.cert (an integer) in herd.toml: expected a string"
    );
}
