//! What a server process costs, read from Linux's `/proc`: CPU time, resident memory and
//! open files. These work for any server, whatever it is written in, given its PID.

use std::time::{Duration, Instant};

use herd_actors::procfs;

/// Clock ticks per second in `/proc/PID/stat`: USER_HZ, which Linux fixes at 100 on every
/// architecture it exports to user space (whatever the kernel's internal HZ).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of a process, all its threads included (dead ones too).
pub(crate) fn cpu_time(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("process {pid} is gone (no {path}): did it exit?"),
        _ => format!("cannot read {path}: {e}"),
    })?;
    let total = procfs::cpu_ticks(&stat)
        .ok_or_else(|| format!("{path} has no utime and stime after its `(comm)` field"))?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// The CPU time of this process (the load generator itself).
pub(crate) fn own_cpu_time() -> Result<Duration, String> {
    cpu_time(std::process::id())
}

/// Resident memory of a process in bytes (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_bytes(pid: u32) -> Result<u64, String> {
    status_bytes(pid, "VmRSS")
}

/// The most resident memory a process has had, in bytes (`VmHWM` of `/proc/PID/status`).
pub(crate) fn peak_rss_bytes(pid: u32) -> Result<u64, String> {
    status_bytes(pid, "VmHWM")
}

/// A `FIELD: N kB` line of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    procfs::status_bytes(&status, field)
        .ok_or_else(|| format!("{path} has no `{field}: N kB` line"))
}

/// How many files (sockets included) a process has open.
pub(crate) fn open_files(pid: u32) -> Result<usize, String> {
    procfs::open_files(pid).map_err(|e| format!("cannot list /proc/{pid}/fd: {e}"))
}

/// CPU time of a herd's processes over one run.
pub(crate) struct CpuMeter {
    pids: Vec<u32>,
    /// Each process's name at the start, so a process that goes away can be named.
    names: Vec<String>,
    start: Duration,
}

/// How often [`CpuMeter::finish`] samples while it waits for the herd to go quiet.
const QUIET_SAMPLE: Duration = Duration::from_millis(100);

/// Longest wait for the herd to go quiet after a run.
const QUIET_LIMIT: Duration = Duration::from_secs(5);

impl CpuMeter {
    /// Starts metering `pids`; `None` when none were given.
    pub(crate) fn start(pids: &[u32]) -> Result<Option<CpuMeter>, String> {
        if pids.is_empty() {
            return Ok(None);
        }
        let names = pids
            .iter()
            .map(|pid| {
                let path = format!("/proc/{pid}/comm");
                std::fs::read_to_string(&path)
                    .map(|name| name.trim_end().to_string())
                    .map_err(|e| format!("--pids: cannot read {path}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(CpuMeter {
            pids: pids.to_vec(),
            names,
            start: total(pids)?,
        }))
    }

    /// The CPU time spent since the start, read once the herd has gone quiet: floods and
    /// queued work still running after the last reply are part of what the run cost. Quiet
    /// means at most one tick (10 ms) over a 100 ms sample, so idle timers do not count.
    pub(crate) async fn finish(&self) -> Result<Duration, String> {
        let deadline = Instant::now() + QUIET_LIMIT;
        let mut last = self.total()?;
        loop {
            tokio::time::sleep(QUIET_SAMPLE).await;
            let now = self.total()?;
            let quiet = now.saturating_sub(last) <= Duration::from_millis(1000 / TICKS_PER_SECOND);
            last = now;
            if quiet || Instant::now() >= deadline {
                return Ok(last.saturating_sub(self.start));
            }
        }
    }

    /// [`total`], naming the process that failed by what it was at the start.
    fn total(&self) -> Result<Duration, String> {
        total(&self.pids).map_err(|e| {
            let names: Vec<String> = self
                .pids
                .iter()
                .zip(&self.names)
                .map(|(pid, name)| format!("{pid} {name}"))
                .collect();
            format!("{e} (the processes metered were: {})", names.join(", "))
        })
    }
}

fn total(pids: &[u32]) -> Result<Duration, String> {
    pids.iter().map(|&pid| cpu_time(pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_measured() {
        let pid = std::process::id();
        let rss = rss_bytes(pid).unwrap();
        assert!(rss > 0);
        assert!(peak_rss_bytes(pid).unwrap() >= rss);
        assert!(open_files(pid).unwrap() >= 3);
        // Burn a little CPU so the count is visibly nonzero.
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        assert!(cpu_time(pid).unwrap() > Duration::ZERO);
    }
}
