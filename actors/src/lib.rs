//! The proxy-herd server, as a library: `start` wires the actors of one server.
//!
//! Layout:
//! - [`protocol`]: client lines <-> typed commands and AT records; pure, no I/O.
//! - [`codec`]: framing of lines as bytes, with a length cap.
//! - [`outbox`]: a bounded per-socket write queue (actix's `FramedWrite` has no backpressure).
//! - [`config`]: `herd.toml` -> validated [`config::HerdConfig`].
//! - [`session`]: the Session actor, one per TCP connection.
//! - [`store`]: the LocationStore actor, each client's latest record.
//! - [`peers`]: PeerManager and its supervised PeerLinks: flooding and anti-entropy.
//! - [`places`]: the PlacesFetcher actor, its providers (embedded, google, google-new), and
//!   the cache, shared calls and call cap that keep Google's bill down.
//! - [`log`]: the per-server event log, written off the serving path.
//! - [`server`]: the listener and what sessions share.

pub mod codec;
pub mod config;
pub mod log;
pub mod outbox;
pub mod peers;
pub mod places;
pub mod protocol;
pub mod server;
pub mod session;
pub mod store;

pub use server::{bind, preflight, start, start_with, Limits, Server, StartError, Tuning};
