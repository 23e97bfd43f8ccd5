//! Mutual TLS on peer links: each server proves its own name with a certificate signed by
//! the herd's CA, and accepts a neighbour only with a certificate for the name it claims.
//!
//! A herd with `[tls]` loads its files once, at start-up ([`PeerTls::load`]), and refuses to
//! start when one is missing or does not fit: the key must belong to the certificate, and
//! the certificate must chain to the herd's CA, be valid now, and be for this server's name.
//! Every such message names the file.
//!
//! On the wire nothing else changes: a TLS 1.3 session carries the same lines a plain link
//! does (`docs/peer-protocol.md`). Both sides verify:
//! - the dialler accepts the listener only with a certificate for the neighbour it dials
//!   (the server name of the session is the neighbour's name);
//! - the listener accepts only a client certificate that chains to the herd's CA, and then
//!   a hello whose `<from>` is a name that certificate is valid for ([`PeerCertificate`]).
//!
//! So the certificate is what proves a neighbour's name, and no HMAC challenge follows.
//!
//! Clients share the port and never speak TLS: the listener tells a neighbour's TLS
//! handshake from a client's line by its first byte ([`HANDSHAKE`]), and hands the first
//! to [`super::door::take_peer`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::settings::{ServerSettings, TlsSettings};

/// The first byte of every TLS record that opens a handshake (content type 22). No client
/// line can usefully start with it: it is a control character, so such a line could only
/// be invalid input.
pub(crate) const HANDSHAKE: u8 = 0x16;

/// The listening side of a TLS peer connection.
pub(crate) type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// What a server needs for TLS peer links: its identity, and the herd's CA.
pub(crate) struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// Checks that a chain is the herd's, valid now, and for a given name.
    names: Arc<WebPkiServerVerifier>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerTls { .. }")
    }
}

/// Why a server's TLS files cannot be used. Each message names the file at fault and says the
/// cause, so that none is also a `source()` (`{:#}` would print it twice).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read {what} {}: {error}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{what} {} is not PEM: {reason}", path.display())]
    NotPem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the key {} does not belong to the certificate {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        key: PathBuf,
        cert: PathBuf,
        reason: String,
    },
    #[error(
        "the certificate {} does not prove server '{name}' under the herd's CA {}: {reason}",
        cert.display(),
        ca.display()
    )]
    NotForMe {
        cert: PathBuf,
        ca: PathBuf,
        name: String,
        reason: String,
    },
    #[error("the herd's CA {} cannot be used: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("server name '{0}' cannot be a certificate's DNS name, which TLS needs")]
    BadName(String),
    #[error(
        "servers '{0}' and '{1}' differ only in case, and certificate names do not: a \
         certificate for one would prove the other"
    )]
    CaseClash(String, String),
    #[error("server '{0}' has no {1} though TLS is on")]
    NoFile(String, &'static str),
}

impl PeerTls {
    /// Loads and checks the files of server `me` of `herd` under `tls`.
    pub(crate) fn load(
        tls: &TlsSettings,
        me: &ServerSettings,
        herd: &[ServerSettings],
    ) -> Result<PeerTls, TlsError> {
        for (i, a) in herd.iter().enumerate() {
            if let Some(b) = herd[i + 1..]
                .iter()
                .find(|b| a.name.eq_ignore_ascii_case(&b.name))
            {
                return Err(TlsError::CaseClash(a.name.clone(), b.name.clone()));
            }
        }
        let name = server_name(&me.name)?;
        let cert_path = me
            .cert
            .as_deref()
            .ok_or_else(|| TlsError::NoFile(me.name.clone(), "cert"))?;
        let key_path = me
            .key
            .as_deref()
            .ok_or_else(|| TlsError::NoFile(me.name.clone(), "key"))?;
        let ca = certificates("the herd's CA", &tls.ca)?;
        let chain = certificates("the certificate", cert_path)?;
        let key = private_key(key_path)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bad_ca = |reason: String| TlsError::BadCa {
            path: tls.ca.clone(),
            reason,
        };
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| bad_ca(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let names = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad_ca(e.to_string()))?;
        check_chain(&names, &chain, &name).map_err(|reason| TlsError::NotForMe {
            cert: cert_path.to_owned(),
            ca: tls.ca.clone(),
            name: me.name.clone(),
            reason,
        })?;
        let mismatch = |e: rustls::Error| TlsError::KeyMismatch {
            key: key_path.to_owned(),
            cert: cert_path.to_owned(),
            reason: e.to_string(),
        };
        let certified =
            rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(mismatch)?;
        // `from_der` lets a key pass whose public half it cannot see; ring's keys show theirs.
        certified.keys_match().map_err(mismatch)?;

        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad_ca(e.to_string()))?;
        let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(certified));
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad_ca(e.to_string()))?
            .with_client_cert_verifier(clients)
            .with_cert_resolver(resolver.clone());
        // Links live long and are few: no session resumption, so every link shows its
        // certificate afresh.
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(NoServerSessionStorage {});
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad_ca(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(resolver);
        client.resumption = Resumption::disabled();
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            names,
        })
    }

    /// The dialling side's handshake on `stream`: the listener must prove it is `neighbour`.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        neighbour: &str,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = server_name(neighbour).map_err(io::Error::other)?;
        self.connector.connect(name, stream).await
    }

    /// The listening side's handshake on `stream`: the dialler must show a certificate of
    /// the herd's CA, which is then checked against the name its hello claims.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> io::Result<(ServerStream, PeerCertificate)> {
        let stream = self.acceptor.accept(stream).await?;
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        let cert = PeerCertificate {
            chain,
            names: Arc::clone(&self.names),
        };
        Ok((stream, cert))
    }
}

/// The certificate a neighbour showed when it dialled in over TLS; it chains to the herd's
/// CA (the handshake checked that).
pub(crate) struct PeerCertificate {
    chain: Vec<CertificateDer<'static>>,
    names: Arc<WebPkiServerVerifier>,
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerCertificate({} certificates)", self.chain.len())
    }
}

impl PeerCertificate {
    /// Whether the certificate proves `name`; if not, why.
    pub(crate) fn is_for(&self, name: &str) -> Result<(), String> {
        let name = server_name(name).map_err(|e| e.to_string())?;
        check_chain(&self.names, &self.chain, &name)
    }
}

/// `name` as the DNS name a certificate must hold.
fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    match ServerName::try_from(name.to_owned()) {
        Ok(dns @ ServerName::DnsName(_)) => Ok(dns),
        _ => Err(TlsError::BadName(name.into())),
    }
}

/// Checks that `chain` (end entity first) chains to the verifier's CA, is valid now, and is
/// for `name`; if not, says why in words.
fn check_chain(
    verifier: &WebPkiServerVerifier,
    chain: &[CertificateDer<'static>],
    name: &ServerName<'static>,
) -> Result<(), String> {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Err("no certificate".into());
    };
    verifier
        .verify_server_cert(end_entity, intermediates, name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// A certificate error in an operator's words.
pub(crate) fn describe(e: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(why) = e else {
        return e.to_string();
    };
    match why {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            "it is not signed by the herd's CA".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".into()
        }
        CertificateError::NotValidForName => "it is for another name".into(),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
            format!("it is for {}", names.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// A name as a certificate error lists it (`DnsName("Hill")`, `IpAddress(10.0.0.1)`), as
/// an operator writes it.
fn plain_name(listed: &str) -> &str {
    let inner = |prefix: &str, suffix: &str| listed.strip_prefix(prefix)?.strip_suffix(suffix);
    inner("DnsName(\"", "\")")
        .or_else(|| inner("IpAddress(", ")"))
        .unwrap_or(listed)
}

/// Every certificate in the PEM file at `path`.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let not_pem = |reason: String| TlsError::NotPem {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(not_pem("it holds no CERTIFICATE".into()));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path`.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("the key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NotPem {
        what: "the key",
        path: path.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "it holds no PRIVATE KEY".into(),
            other => other.to_string(),
        },
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

/// What a failed TLS handshake says, with a certificate error in an operator's words.
pub(crate) fn tls_reason(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => {
            format!("{tls} ({})", describe(tls))
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
