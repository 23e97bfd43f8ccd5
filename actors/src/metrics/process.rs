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
        if let Some(rss) = read("/proc/self/status").and_then(|s| resident_bytes(&s)) {
            let help = "Resident memory size in bytes.";
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                help,
                rss as f64,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            // One of them is the directory being read.
            let open = fds.count().saturating_sub(1);
            let help = "Number of open file descriptors.";
            gauge(&mut encoder, "process_open_fds", help, open as f64)?;
        }
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            let help = "Maximum number of open file descriptors.";
            gauge(&mut encoder, "process_max_fds", help, soft as f64)?;
        }
        if let Some(cpu) = read("/proc/self/stat").and_then(|s| cpu_seconds(&s, clock_ticks())) {
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

/// `VmRSS` of `/proc/PID/status`, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User plus system time of `/proc/PID/stat`, in seconds.
fn cpu_seconds(stat: &str, ticks_per_second: f64) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime 14 and stime 15.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
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
    fn resident_memory_is_read_from_vm_rss_in_kilobytes() {
        let status = "Name:\therd\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(resident_bytes(status), Some(2048 * 1024));
        assert_eq!(resident_bytes("Name:\therd\n"), None);
    }

    #[test]
    fn cpu_time_is_user_plus_system_even_with_a_spaced_name() {
        let stat = "4242 (herd serve) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_seconds(stat, 100.0), Some(3.0));
    }

    #[test]
    fn this_process_has_resident_memory_and_open_files() {
        let rss = read("/proc/self/status").and_then(|s| resident_bytes(&s));
        assert!(rss.is_some_and(|b| b > 0), "{rss:?}");
        let cpu = read("/proc/self/stat").and_then(|s| cpu_seconds(&s, clock_ticks()));
        assert!(cpu.is_some_and(|c| c >= 0.0), "{cpu:?}");
    }
}
