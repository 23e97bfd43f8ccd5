//! The signals a herd process answers, installed at once: a signal that came before its
//! handler would end the process by default, without its clean stop.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A signal the herd answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    /// SIGTERM: stop.
    Term,
    /// SIGINT (Ctrl-C): stop.
    Int,
    /// SIGHUP: reopen the log.
    Hup,
}

impl Sig {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sig::Term => "SIGTERM",
            Sig::Int => "SIGINT",
            Sig::Hup => "SIGHUP",
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP, handled from the moment this is made.
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers (on the current tokio runtime).
    pub(crate) fn install() -> anyhow::Result<Signals> {
        let handle =
            |kind, sig: Sig| signal(kind).with_context(|| format!("cannot handle {}", sig.name()));
        Ok(Signals {
            term: handle(SignalKind::terminate(), Sig::Term)?,
            int: handle(SignalKind::interrupt(), Sig::Int)?,
            hup: handle(SignalKind::hangup(), Sig::Hup)?,
        })
    }

    /// The next signal; a stop is seen before a hang-up that came with it.
    pub(crate) async fn next(&mut self) -> Sig {
        tokio::select! {
            biased;
            Some(()) = self.term.recv() => Sig::Term,
            Some(()) = self.int.recv() => Sig::Int,
            Some(()) = self.hup.recv() => Sig::Hup,
        }
    }
}
