//! What Linux's `/proc` says of a process: the server's own `/metrics` reads it of itself,
//! and `herd bench` of the servers it loads, by PID. The parsers take the text of a file,
//! so that a caller reads it (and names it in its errors) as it needs.

use std::io;

/// A memory figure in bytes from the text of `/proc/PID/status`: its `FIELD: N kB` line
/// (`VmRSS` resident memory, `VmHWM` the most it has been).
pub fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// User plus system CPU time in clock ticks (USER_HZ, `sysconf(_SC_CLK_TCK)`), all threads
/// included, from the text of `/proc/PID/stat`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime 14 and stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// How many files (sockets included) process `pid` has open: the entries of
/// `/proc/PID/fd`. Of this process's own, one is the directory being read.
pub fn open_files(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_vm_rss_in_kilobytes() {
        let status = "Name:\therd\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(2048 * 1024));
        assert_eq!(status_bytes("Name:\therd\n", "VmRSS"), None);
    }

    #[test]
    fn cpu_time_is_user_plus_system_even_with_a_spaced_name() {
        let stat = "4242 (herd serve) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("4242 (herd) S 1 2"), None);
    }
}
