//! How the server's parts behave, in the units each part uses: `[limits]` of `herd.toml`,
//! and what is not in the file (link backoff), which tests tighten.

use crate::peers::link::LinkSettings;
use crate::session::{ClientLimits, MAX_QUEUED, READ_BUFFER};
use crate::settings;

/// How the server's parts behave: `[limits]` of `herd.toml` in the units each part uses,
/// and what is not in the file (link backoff); tests tighten these.
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    pub(crate) limits: ClientLimits,
    /// Open client connections; more are accepted and closed at once. Never more than the
    /// open-files limit allows.
    pub(crate) max_connections: Option<usize>,
    /// Open client connections from one address.
    pub(crate) max_connections_per_ip: Option<usize>,
    /// Bytes of replies unsent to all clients together before no client is read.
    pub(crate) reply_budget: usize,
    pub(crate) links: LinkSettings,
    /// The event-loop threads client sessions run on (`workers`, resolved): 1 runs them on
    /// the server's home thread.
    pub(crate) workers: usize,
    /// Every write to the store fails, as on a full disk.
    #[cfg(test)]
    pub(crate) store_fails: bool,
}

impl Tuning {
    /// What `[limits]` says.
    pub(crate) fn from_limits(limits: &settings::Limits) -> Tuning {
        Tuning {
            limits: ClientLimits {
                max_line: limits.max_line,
                read_buffer: READ_BUFFER,
                reply_window: limits.reply_window,
                max_pending: limits.max_pending,
                max_queued: MAX_QUEUED,
                idle_timeout: limits.idle_timeout,
                line_timeout: limits.line_timeout,
                probation_timeout: limits.peer_handshake_timeout,
                max_clock_ahead: limits.max_clock_ahead,
            },
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            reply_budget: limits.reply_budget,
            links: LinkSettings {
                handshake_timeout: limits.peer_handshake_timeout,
                max_queued: limits.peer_queue,
                heartbeat: limits.peer_heartbeat,
                ..LinkSettings::default()
            },
            workers: 1,
            #[cfg(test)]
            store_fails: false,
        }
    }

    /// These, with client sessions on `workers` threads.
    pub(crate) fn with_workers(self, workers: usize) -> Tuning {
        Tuning {
            workers: workers.max(1),
            ..self
        }
    }
}

#[cfg(test)]
impl Default for Tuning {
    fn default() -> Self {
        Tuning::from_limits(&settings::Limits::default())
    }
}
