//! The bounds that keep every run a benchmark: a run asks for at most so many connections
//! and lasts at most so long, checked as the command line is parsed.

use std::time::Duration;

/// More connections than this is a mistake, not a benchmark (and past the port range).
const MAX_CONNECTIONS: usize = 50_000;

/// No run may be asked to last longer than this.
const MAX_SECONDS: f64 = 3600.0;

/// `--duration 2.5`: seconds, positive and at most an hour.
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX_SECONDS) {
        return Err(format!("{s} s is outside 0 < seconds <= {MAX_SECONDS}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--connections`: at least one, and few enough to be a benchmark.
pub(crate) fn parse_connections(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of connections"))?;
    if n == 0 || n > MAX_CONNECTIONS {
        return Err(format!("{n} connections is outside 1..={MAX_CONNECTIONS}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("7200").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
