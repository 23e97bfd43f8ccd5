//! TLS peer links: the files a server starts with, and the neighbours it lets in, through a
//! real server and real TLS handshakes. Certificates are made here with `rcgen`: the herd's
//! CA, another CA, expired ones, and ones for other servers' names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::*;
use crate::peers::error::LinkError;
use crate::peers::handshake::{dial, LinkTarget};
use crate::server::Tuning;
use crate::settings::Settings;
use crate::test_support::{ask, hill_config, logged, read_line, start_hill};

const PATIENCE: Duration = Duration::from_secs(10);
const DAY: Duration = Duration::from_secs(86_400);

/// A certificate authority of the tests' making.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `name`, valid from a day ago for a year.
    fn issue(&self, name: &str) -> Issued {
        let now = SystemTime::now();
        self.issue_between(name, now - DAY, now + 365 * DAY)
    }

    fn issue_between(&self, name: &str, from: SystemTime, until: SystemTime) -> Issued {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = from.into();
        params.not_after = until.into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A herd of Hill, Smith and Jaquez (both Hill's neighbours) with `[tls] dir` in `dir`;
/// the CA and Hill's files are written there.
fn herd(dir: &Path, ca: &Ca, hill: &Issued) -> Settings {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(tls.join("Hill.pem"), &hill.cert).unwrap();
    std::fs::write(tls.join("Hill.key"), &hill.key).unwrap();
    hill_config(
        dir,
        &format!("[tls]\ndir = \"{}\"", tls.display()),
        "[servers.Smith]\naddr = \"127.0.0.1:2\"\nneighbours = [\"Hill\"]\n\
         [servers.Jaquez]\naddr = \"127.0.0.1:3\"\nneighbours = [\"Hill\"]\n",
    )
}

/// `PeerTls::load` for server `name` of `config`.
fn load(config: &Settings, name: &str) -> Result<PeerTls, TlsError> {
    let tls = config.tls.as_ref().expect("TLS is on");
    PeerTls::load(tls, config.server(name).unwrap(), &config.servers)
}

/// Hill of a [`herd`] in a fresh directory, with its files from a new herd CA, started with
/// `tuning`: the directory (to keep while the test runs), the CA, Hill's address and its
/// event log.
async fn tls_hill(tuning: Tuning) -> (tempfile::TempDir, Ca, SocketAddr, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Hill"));
    let server = start_hill(&config, tuning).await;
    (dir, ca, server.addr, server.log_path().to_owned())
}

/// A dialler that trusts `trust` to sign Hill's certificate and shows `shown`.
fn connector(trust: &Ca, shown: &Issued) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trust.pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(shown.cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(shown.key.as_bytes()).unwrap();
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    TlsConnector::from(Arc::new(config))
}

/// Dials Hill over TLS with `connector`, sends `hello`, and returns the session and Hill's
/// first line, or what ended the connection instead.
async fn dial_hill(
    addr: SocketAddr,
    connector: &TlsConnector,
    hello: &str,
) -> (Option<TlsStream<TcpStream>>, Result<String, String>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("Hill").unwrap();
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(e) => return (None, Err(e.to_string())),
    };
    tls.write_all(format!("{hello}\n").as_bytes())
        .await
        .unwrap();
    let answer = read_line(&mut tls).await;
    (Some(tls), answer)
}

/// Asserts that Hill holds no record of kiwi: a client asking for it gets `?`.
async fn holds_nothing(addr: SocketAddr) {
    assert_eq!(ask(addr, "WHATSAT kiwi 1 1").await, "? WHATSAT kiwi 1 1\n");
}

fn message(e: TlsError) -> String {
    e.to_string()
}

// ---- The files a server starts with ----

#[test]
fn a_servers_own_files_signed_by_the_herds_ca_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Hill"));
    load(&config, "Hill").expect("Hill's files fit");
}

#[test]
fn a_missing_file_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Hill"));
    let tls = dir.path().join("tls");
    // Smith has no files at all: its certificate is the first thing missed.
    let e = message(load(&config, "Smith").unwrap_err());
    let smith = tls.join("Smith.pem");
    assert!(
        e.starts_with(&format!(
            "cannot read the certificate {}: ",
            smith.display()
        )),
        "{e}"
    );
    std::fs::remove_file(tls.join("Hill.key")).unwrap();
    let e = message(load(&config, "Hill").unwrap_err());
    let key = tls.join("Hill.key");
    assert!(
        e.starts_with(&format!("cannot read the key {}: ", key.display())),
        "{e}"
    );
    std::fs::remove_file(tls.join("ca.pem")).unwrap();
    let e = message(load(&config, "Hill").unwrap_err());
    let ca_path = tls.join("ca.pem");
    assert!(
        e.starts_with(&format!(
            "cannot read the herd's CA {}: ",
            ca_path.display()
        )),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_pem_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Hill"));
    let key = dir.path().join("tls/Hill.key");
    std::fs::write(&key, "not a key\n").unwrap();
    assert_eq!(
        message(load(&config, "Hill").unwrap_err()),
        format!(
            "the key {} is not PEM: it holds no PRIVATE KEY",
            key.display()
        )
    );
}

#[test]
fn a_key_that_is_not_the_certificates_stops_the_server_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Hill"));
    let tls = dir.path().join("tls");
    std::fs::write(tls.join("Hill.key"), ca.issue("Hill").key).unwrap();
    let e = message(load(&config, "Hill").unwrap_err());
    let expected = format!(
        "the key {} does not belong to the certificate {}",
        tls.join("Hill.key").display(),
        tls.join("Hill.pem").display()
    );
    assert!(e.starts_with(&expected), "{e}");
}

#[test]
fn a_certificate_the_herds_ca_did_not_sign_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &Ca::new("another CA").issue("Hill"));
    let tls = dir.path().join("tls");
    assert_eq!(
        message(load(&config, "Hill").unwrap_err()),
        format!(
            "the certificate {} does not prove server 'Hill' under the herd's CA {}: it is \
             not signed by the herd's CA",
            tls.join("Hill.pem").display(),
            tls.join("ca.pem").display()
        )
    );
}

#[test]
fn a_certificate_for_another_server_or_expired_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Smith"));
    let e = message(load(&config, "Hill").unwrap_err());
    assert!(e.ends_with("it is for Smith"), "{e}");

    let now = SystemTime::now();
    let expired = ca.issue_between("Hill", now - 30 * DAY, now - DAY);
    let config = herd(dir.path(), &ca, &expired);
    let e = message(load(&config, "Hill").unwrap_err());
    assert!(e.ends_with("it has expired"), "{e}");
}

#[test]
fn server_names_that_differ_only_in_case_are_refused_on_a_tls_herd() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let mut config = herd(dir.path(), &ca, &ca.issue("Hill"));
    let mut twin = config.server("Smith").unwrap().clone();
    twin.name = "smith".into();
    config.servers.push(twin);
    assert_eq!(
        message(load(&config, "Hill").unwrap_err()),
        "servers 'Smith' and 'smith' differ only in case, and certificate names do not: a \
         certificate for one would prove the other"
    );
}

// ---- The neighbours a TLS server lets in ----

#[actix::test]
async fn a_neighbour_with_the_herds_certificate_for_its_name_gets_in() {
    let (_dir, ca, addr, log) = tls_hill(Tuning::default()).await;
    let smith = connector(&ca, &ca.issue("Smith"));
    let (tls, answer) = dial_hill(addr, &smith, "HERD-PEER 2 Smith Hill").await;
    // No challenge: the certificate proved the name.
    assert_eq!(answer.as_deref(), Ok("HERD-WELCOME Hill\n"));
    let mut tls = tls.unwrap();
    tls.write_all(b"FLOOD Smith AT Smith +0.000000001 kiwi +1+1 7\nPING\n")
        .await
        .unwrap();
    assert_eq!(read_line(&mut tls).await.as_deref(), Ok("PONG\n"));
    assert_eq!(
        ask(addr, "WHATSAT kiwi 1 1").await,
        "AT Smith +0.000000001 kiwi +1+1 7\n"
    );
    logged(&log, "peer Smith inbound up from").await;
}

#[actix::test]
async fn a_certificate_of_another_ca_is_refused_and_logged() {
    let (_dir, ca, addr, log) = tls_hill(Tuning::default()).await;
    let stranger = connector(&ca, &Ca::new("another CA").issue("Smith"));
    let (_, answer) = dial_hill(addr, &stranger, "HERD-PEER 2 Smith Hill").await;
    assert!(answer.is_err(), "{answer:?}");
    logged(&log, "TLS handshake failed: ").await;
    logged(&log, "(it is not signed by the herd's CA)").await;
    holds_nothing(addr).await;
}

#[actix::test]
async fn an_expired_certificate_is_refused_and_logged() {
    let (_dir, ca, addr, log) = tls_hill(Tuning::default()).await;
    let now = SystemTime::now();
    let expired = connector(&ca, &ca.issue_between("Smith", now - 30 * DAY, now - DAY));
    let (_, answer) = dial_hill(addr, &expired, "HERD-PEER 2 Smith Hill").await;
    assert!(answer.is_err(), "{answer:?}");
    let log = logged(&log, "(it has expired)").await;
    assert!(
        log.contains("refused peer handshake from 127.0.0.1:"),
        "{log}"
    );
}

#[actix::test]
async fn a_certificate_for_another_servers_name_is_refused_and_logged() {
    let (_dir, ca, addr, log) = tls_hill(Tuning::default()).await;
    // Smith's own certificate, from the herd's CA, claiming to be Jaquez (also a neighbour).
    let smith = connector(&ca, &ca.issue("Smith"));
    let (tls, answer) = dial_hill(addr, &smith, "HERD-PEER 2 Jaquez Hill").await;
    let refusal = "the certificate shown is not valid for Jaquez: it is for Smith";
    assert_eq!(answer, Ok(format!("HERD-REFUSED {refusal}\n")));
    // Refused means closed: no record can follow the refusal.
    let mut tls = tls.unwrap();
    let _ = tls.write_all(b"AT Jaquez +0.000000001 kiwi +1+1 7\n").await;
    assert!(read_line(&mut tls).await.is_err());
    logged(&log, "refused peer handshake from 127.0.0.1:").await;
    logged(&log, refusal).await;
    holds_nothing(addr).await;
}

#[actix::test]
async fn a_plain_text_peer_on_a_tls_herd_is_refused_and_logged() {
    let (_dir, _, addr, log) = tls_hill(Tuning::default()).await;
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"HERD-PEER 2 Smith Hill\nAT Smith +0.000000001 kiwi +1+1 7\n")
        .await
        .unwrap();
    let refusal = "this herd's peer links use TLS: a hello in plain text is refused";
    assert_eq!(
        read_line(&mut plain).await,
        Ok(format!("HERD-REFUSED {refusal}\n"))
    );
    logged(&log, refusal).await;
    holds_nothing(addr).await;
}

#[actix::test]
async fn clients_still_speak_plain_lines_on_a_tls_herd() {
    let (_dir, _, addr, _) = tls_hill(Tuning::default()).await;
    let at = ask(addr, "IAMAT kiwi +1+1 7").await;
    assert!(at.starts_with("AT Hill "), "{at}");
    assert_eq!(ask(addr, "WHATSAT kiwi 1 1").await, at);
}

#[actix::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_time_out() {
    let mut tuning = Tuning::default();
    tuning.limits.idle_timeout = Some(Duration::from_millis(200));
    let (_dir, _, addr, log) = tls_hill(tuning).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        read_line(&mut silent).await,
        Err("closed after \"\"".into())
    );
    logged(&log, "nothing sent in 0.2s").await;
}

#[actix::test]
async fn bytes_injected_into_a_tls_link_end_it_and_change_no_record() {
    let (_dir, ca, addr, log) = tls_hill(Tuning::default()).await;
    let smith = connector(&ca, &ca.issue("Smith"));
    let (tls, answer) = dial_hill(addr, &smith, "HERD-PEER 2 Smith Hill").await;
    assert_eq!(answer.as_deref(), Ok("HERD-WELCOME Hill\n"));
    let mut tls = tls.unwrap();
    // Someone on the path writes a record into the TCP stream, beside the TLS records.
    let tcp = tls.get_mut().0;
    tcp.write_all(b"FLOOD Smith AT Smith +0.000000001 forged +1+1 7\n")
        .await
        .unwrap();
    assert!(read_line(&mut tls).await.is_err(), "the link is dropped");
    logged(&log, "peer Smith inbound down").await;
    assert_eq!(
        ask(addr, "WHATSAT forged 1 1").await,
        "? WHATSAT forged 1 1\n"
    );
}

#[actix::test]
async fn a_link_does_not_take_a_listener_whose_certificate_is_for_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("herd CA");
    let config = herd(dir.path(), &ca, &ca.issue("Hill"));
    let hill = Arc::new(load(&config, "Hill").unwrap());
    // Something listens where Hill dials Smith, with the herd's certificate for Jaquez.
    let jaquez = ca.issue("Jaquez");
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(jaquez.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(jaquez.key.as_bytes()).unwrap(),
            )
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = acceptor.accept(stream).await;
        }
    });
    let target = LinkTarget {
        me: "Hill".into(),
        neighbour: "Smith".into(),
        addr: at,
        secret: None,
        tls: Some(hill),
    };
    match dial(&target, PATIENCE).await {
        Err(LinkError::Tls { reason, .. }) => {
            assert!(reason.ends_with("(it is for Jaquez)"), "{reason}")
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a link to the wrong server came up"),
    }
}
