//! The proxy-herd server, as a library: [`start`] wires the actors of one server.
//!
//! Layout, following a client's line through the server:
//! - [`protocol`]: client lines <-> typed commands and AT records; pure, no I/O.
//! - `codec`: framing of lines as bytes, with a length cap.
//! - `outbox`: a bounded per-socket write queue (actix's `FramedWrite` has no backpressure).
//! - `listener` and `admission`: the accept loop, which connections it takes, the worker
//!   thread each lives on (`workers`), and the door each goes through: its first line (or,
//!   on a TLS herd, its first byte) sends it to the peer side, on the home thread, or to a
//!   client session on its worker.
//! - `session`: the Session actor, one per client connection; for the sessions of a worker
//!   thread, the courier that carries their check-ins to the store together and the desk
//!   on the home thread that answers their WHATSATs.
//! - `store`: the LocationStore actor, each client's latest record, and its durable copy
//!   (grouped commits appended to a journal on the event loop, which an applier thread
//!   writes into SQLite).
//! - `peers`: PeerManager and its links to the neighbours (flooding and anti-entropy), the
//!   inbound peer actor the listener's door hands a neighbour's connection to, and mutual
//!   TLS on the links.
//! - [`places`]: the PlacesFetcher actor, its providers (embedded, google, google-new), and
//!   the cache, shared calls and call cap that keep Google's bill down. Public only for
//!   its fake Google server (feature `testing`), which the black-box tests start.
//! - `event_log`: the per-server event log, written off the serving path.
//! - `metrics`: the Prometheus registry and the handles every part above counts into
//!   (atomics only, no lock on the serving path); a leaf, but for [`procfs`].
//! - [`procfs`]: what Linux's `/proc` says of a process, read for `/metrics` and, of the
//!   servers it loads, by `herd bench`.
//! - [`admin`]: the admin listener (actix-web): `/metrics`, health, status and the live
//!   page; it reads the metrics and asks the actors.
//! - [`settings`]: `herd.toml` -> typed serde structs -> one validated [`settings::Settings`].
//! - `server`: the wiring of one server.
//!
//! Records flow one way through the imports: session -> store -> peers. The peers reach
//! the store only through recipients they are handed at start-up, by the one function that
//! wires the two to each other (`server::store_and_peers`). Every part counts into
//! `metrics`, a leaf but for the `procfs` parsers; `admin` reads the actors, and only the
//! wiring imports it.
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
mod admission;
mod codec;
mod event_log;
mod listener;
mod metrics;
mod outbox;
mod peers;
pub mod places;
pub mod procfs;
pub mod protocol;
mod server;
mod session;
pub mod settings;
mod store;
#[cfg(test)]
mod test_support;

pub use event_log::escaped;
pub use server::{bind, preflight, start, Server, StartError};
pub use store::durable::fill_store;
