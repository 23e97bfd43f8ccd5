//! The progress line: once a second on stderr, so a long run shows it is alive and how fast
//! it goes, while stdout stays free for the summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Counters the workers bump; a ticker task reads them each second.
pub(crate) struct Progress {
    scenario: &'static str,
    phase: Mutex<&'static str>,
    done: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    /// Starts printing; the line stops when the last handle is dropped.
    pub(crate) fn start(scenario: &'static str, phase: &'static str) -> Arc<Progress> {
        let progress = Arc::new(Progress {
            scenario,
            phase: Mutex::new(phase),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        tokio::spawn(tick(Arc::downgrade(&progress)));
        progress
    }

    /// Names what the run does now and starts its counts from zero.
    pub(crate) fn phase(&self, phase: &'static str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
        self.done.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }

    pub(crate) fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

async fn tick(progress: Weak<Progress>) {
    let start = Instant::now();
    let mut interval = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut last = 0;
    loop {
        interval.tick().await;
        let Some(p) = progress.upgrade() else { return };
        let phase = p.phase.lock().map(|p| *p).unwrap_or("");
        let done = p.done.load(Ordering::Relaxed);
        let errors = p.errors.load(Ordering::Relaxed);
        // A phase change resets the count below the last reading.
        let rate = done.saturating_sub(last);
        last = done;
        eprintln!(
            "herd bench {} [{phase}] {:>4.0} s: {done} done, {rate}/s, {errors} errors",
            p.scenario,
            start.elapsed().as_secs_f64()
        );
    }
}
