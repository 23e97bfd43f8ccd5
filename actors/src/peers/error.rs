//! Why a peer link could not be made or did not last. Each kind keeps its source, and its
//! message is what the event log shows after `peer NAME down:` or `refused peer handshake`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::LineError;

/// A failure on the dialling side of a link: the link goes down and is dialled again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with {addr}: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// What the neighbour answered, its first 200 characters: another process's text, which
    /// every log and `herd status` escape before it is shown.
    #[error("handshake refused: {0}")]
    Refused(String),
    #[error(
        "the neighbour speaks peer protocol {theirs} and this server {}: \
         run the same herd version on both",
        super::wire::VERSION
    )]
    Version { theirs: u32 },
    #[error("the neighbour wants the herd's secret and none is configured")]
    NoSecret,
    #[error("{0}")]
    Input(#[from] LineError),
    #[error("write failed: {0}")]
    Write(#[source] io::Error),
    #[error("closed by the neighbour")]
    Closed,
    #[error("no word from the neighbour for {0:?}")]
    Silent(Duration),
    #[error("the neighbour sent a line that is not UTF-8")]
    BadLine,
    #[error("bad reconciliation line {0:?}")]
    BadRecon(String),
    #[error("the store is gone")]
    StoreGone,
}

/// Why the listening side refused a connection that asked to be a peer link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "malformed hello, expected HERD-PEER {} <from> <to>",
        super::wire::VERSION
    )]
    MalformedHello,
    #[error(
        "{from} speaks peer protocol {theirs} and this server {}: run the same herd \
         version on both",
        super::wire::VERSION
    )]
    Version { from: String, theirs: u32 },
    #[error("this is {me}, not {to}")]
    WrongServer { me: String, to: String },
    #[error("{from} is not a neighbour of {me}")]
    NotNeighbour { from: String, me: String },
    #[error("no randomness for a challenge: {0}")]
    NoRandomness(String),
    #[error("expected HERD-PROOF <hmac>")]
    ExpectedProof,
    #[error("wrong secret from {0}")]
    WrongSecret(String),
    #[error("no proof within {0:?}")]
    NoProof(Duration),
    #[error("this herd's peer links use TLS: a hello in plain text is refused")]
    PlainOnTls,
    #[error("the certificate shown is not valid for {from}: {why}")]
    NotTheirCertificate { from: String, why: String },
}
