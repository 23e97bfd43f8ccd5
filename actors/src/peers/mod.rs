//! The herd's peer links: flooding new records and healing after failures.
//!
//! - [`wire`]: the peer protocol's lines (handshake, records, digests); pure.
//! - [`link`]: PeerLink, one supervised outbound link per neighbour, with backoff and sync.
//! - [`manager`]: PeerManager, which owns the links and fans floods out.
//! - [`inbound`]: the listening side of a link, which a Session becomes after a handshake.
//!
//! `docs/peer-protocol.md` describes the protocol for operators.

pub mod inbound;
pub mod link;
pub mod manager;
pub mod wire;
