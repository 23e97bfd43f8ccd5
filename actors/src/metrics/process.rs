//! The process's own figures, read from `/proc/self` when `/metrics` is scraped, under the
//! names every Prometheus process collector uses (`process_resident_memory_bytes`, ...).
//!
//! Reading them costs a few small file reads per scrape and nothing in between. On a
//! system without `/proc` a figure that cannot be read is left out of the scrape.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::procfs;

/// Encodes the process figures at each scrape.
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    /// When the server started, in seconds since the epoch.
    started: f64,
}

impl ProcessCollector {
    pub(crate) fn new(started: SystemTime) -> Self {
        let started = started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        ProcessCollector { started }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder, name, help, value: f64| {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)
        };
        if let Some(rss) = read("/proc/self/status").and_then(|s| procfs::status_bytes(&s, "VmRSS"))
        {
            let help = "Resident memory size in bytes.";
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                help,
                rss as f64,
            )?;
        }
        if let Some(open) = open_fds() {
            let help = "Number of open file descriptors.";
            gauge(&mut encoder, "process_open_fds", help, open as f64)?;
        }
        if let Some(soft) = open_files_limit() {
            let help = "Maximum number of open file descriptors.";
            gauge(&mut encoder, "process_max_fds", help, soft as f64)?;
        }
        if let Some(cpu) = cpu_seconds() {
            let help = "Total user and system CPU time spent in seconds.";
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                help,
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
        }
        let help = "Start time of the process since unix epoch in seconds.";
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            help,
            self.started,
        )
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The files this process has open, less the directory read to count them.
fn open_fds() -> Option<usize> {
    let open = procfs::open_files(std::process::id()).ok()?;
    Some(open.saturating_sub(1))
}

/// The soft limit on this process's open files.
pub(crate) fn open_files_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// This process's user plus system CPU time, in seconds.
fn cpu_seconds() -> Option<f64> {
    let ticks = procfs::cpu_ticks(&read("/proc/self/stat")?)?;
    Some(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for a name it does not know.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory_and_open_files() {
        let rss = read("/proc/self/status").and_then(|s| procfs::status_bytes(&s, "VmRSS"));
        assert!(rss.is_some_and(|b| b > 0), "{rss:?}");
        let cpu = cpu_seconds();
        assert!(cpu.is_some(), "{cpu:?}");
        let fds = open_fds();
        assert!(fds.is_some_and(|n| n > 0), "{fds:?}");
    }
}
