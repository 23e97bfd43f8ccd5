//! `herd certs [--config PATH] [--out DIR]`: a CA for the herd, and a certificate and key
//! for each server of the config, so that TLS peer links are one command away.
//!
//! Writes `<out>/ca.pem` and `<out>/ca.key`, then `<out>/<NAME>.pem` and `<out>/<NAME>.key`
//! for each server. A server's certificate holds its name (a DNS name: what its neighbours
//! check) and the IP address of its `addr`, and serves both ends of a link (server and
//! client authentication). Each server needs `ca.pem` and its own two files; `ca.key`
//! signs certificates and nothing else, so it belongs on no server. Key files are written
//! readable by their owner alone. Existing files are never overwritten unless `--force`
//! says so, and then all are made afresh (a new CA means every server needs new files).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use herd_actors::settings::{ServerSettings, Settings};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

const DAY: Duration = Duration::from_secs(86_400);
/// How long the CA is valid: it outlives many rounds of server certificates.
const CA_DAYS: u32 = 3650;
/// Certificates start an hour back, so that a host whose clock is a little behind the one
/// that made them does not find them not yet valid.
const SKEW: Duration = Duration::from_secs(3600);

/// What `herd certs` was asked for.
pub struct Request<'a> {
    pub config: &'a Path,
    /// Where to write; `[tls] dir` of the config, or `tls`, when not given.
    pub out: Option<&'a Path>,
    /// How long each server's certificate is valid.
    pub days: u32,
    /// Replace files that exist.
    pub force: bool,
}

pub fn run(request: &Request<'_>) -> anyhow::Result<()> {
    let config = Settings::load(request.config)?;
    let out = match (request.out, config.tls_dir()) {
        (Some(out), _) | (None, Some(out)) => out.to_owned(),
        (None, None) => PathBuf::from("tls"),
    };
    let mut files = vec![out.join("ca.pem"), out.join("ca.key")];
    for server in &config.servers {
        files.push(out.join(format!("{}.pem", server.name)));
        files.push(out.join(format!("{}.key", server.name)));
    }
    if !request.force {
        if let Some(there) = files.iter().find(|f| f.exists()) {
            bail!(
                "{} exists; herd certs overwrites nothing (--force makes every file afresh, \
                 with a new CA)",
                there.display()
            );
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let now = SystemTime::now();
    let ca_key = KeyPair::generate().context("cannot make the CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "proxy-herd CA");
    // It signs the herd's server certificates and nothing else: no intermediate CA below it.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = (now - SKEW).into();
    params.not_after = (now + CA_DAYS * DAY).into();
    let ca_cert = params
        .self_signed(&ca_key)
        .context("cannot sign the CA's certificate")?;
    write(&out.join("ca.pem"), &ca_cert.pem(), false)?;
    write(&out.join("ca.key"), &ca_key.serialize_pem(), true)?;
    let ca = Issuer::new(params, ca_key);
    for server in &config.servers {
        let (cert, key) = server_files(server, &ca, now, request.days)?;
        write(&out.join(format!("{}.pem", server.name)), &cert, false)?;
        write(&out.join(format!("{}.key", server.name)), &key, true)?;
    }
    let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
    println!(
        "wrote a CA and certificates for {} in {}, valid for {} days:",
        names.join(", "),
        out.display(),
        request.days
    );
    println!("  each host: ca.pem, and its server's NAME.pem and NAME.key");
    println!("  ca.key: on no server; keep it offline to sign new certificates");
    if config.tls_dir().is_none() {
        println!(
            "to use them, set under [tls] in {}: dir = \"{}\"",
            request.config.display(),
            out.display()
        );
    }
    Ok(())
}

/// A certificate for `server`, signed by `ca`, and its key, in PEM.
fn server_files(
    server: &ServerSettings,
    ca: &Issuer<'_, KeyPair>,
    now: SystemTime,
    days: u32,
) -> anyhow::Result<(String, String)> {
    let name = &server.name;
    let key = KeyPair::generate().with_context(|| format!("cannot make {name}'s key"))?;
    let dns = name
        .clone()
        .try_into()
        .with_context(|| format!("server name '{name}' cannot be a certificate's DNS name"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![SanType::DnsName(dns), SanType::IpAddress(server.addr.ip())];
    // Each server is the TLS server of the links it listens for and the client of the ones
    // it dials, with the one certificate.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = (now - SKEW).into();
    params.not_after = (now + days * DAY).into();
    let cert = params
        .signed_by(&key, ca)
        .with_context(|| format!("cannot sign {name}'s certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `text` to `path`; a key readable by its owner alone.
fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if secret {
        // An existing file (--force) keeps its mode on open: narrow it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
