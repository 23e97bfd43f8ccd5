//! The herd's peer links: flooding new records and healing after failures.
//!
//! - [`wire`]: the peer protocol's lines (handshake, floods, heartbeats); pure.
//! - [`recon`]: range-based set reconciliation: ranges, summaries, queries and answers.
//! - [`handshake`]: who may become a peer, and the dialling side's handshake.
//! - [`link`]: one outbound link's state and backoff, as the manager keeps it.
//! - [`manager`]: PeerManager, which owns the outbound links, fans floods out, and takes
//!   over inbound links from the door that found them.
//! - [`inbound`]: InboundPeer, the listening side of a link a neighbour dialled.
//! - [`spread`]: a record on its way through the herd, which the store and the peer side
//!   send each other.
//! - [`records`]: what the peer side asks of the store, handed to it as recipients.
//! - [`tls`]: mutual TLS on the links, when the herd has `[tls]`: loading the files, both
//!   handshakes, and which names a neighbour's certificate proves.
//! - [`door`]: how a neighbour's TLS connection comes in and reaches the manager.
//! - [`error`]: why a link failed or a handshake was refused.
//!
//! `docs/peer-protocol.md` describes the protocol for operators.

pub(crate) mod door;
pub(crate) mod error;
pub(crate) mod handshake;
pub(crate) mod inbound;
pub(crate) mod link;
pub(crate) mod manager;
pub(crate) mod recon;
pub(crate) mod records;
pub(crate) mod spread;
pub(crate) mod tls;
pub(crate) mod wire;
