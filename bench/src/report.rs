//! A run's summary: labelled lines for people on stdout, or the same figures as one JSON
//! line (`--json`) with stable keys for scripts.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value};

/// Latencies are recorded in microseconds, from 1 µs to a minute, to 3 significant digits.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("1 us..60 s at 3 digits is a valid range")
}

/// Microseconds of `d`, for [`latency_histogram`].
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) struct Report {
    scenario: &'static str,
    entries: Vec<Entry>,
}

struct Entry {
    key: String,
    label: String,
    json: Value,
    text: String,
}

impl Report {
    pub(crate) fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            entries: Vec::new(),
        }
    }

    /// A word or list: server names, a note.
    pub(crate) fn text(&mut self, key: &str, label: &str, value: impl Into<String>) {
        let value = value.into();
        self.push(key, label, Value::from(value.clone()), value);
    }

    pub(crate) fn count(&mut self, key: &str, label: &str, n: u64) {
        self.push(key, label, Value::from(n), n.to_string());
    }

    /// A measured figure, rounded to `decimals` places in both forms.
    pub(crate) fn figure(&mut self, key: &str, label: &str, x: f64, decimals: usize, unit: &str) {
        let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(0));
        let rounded = (x * scale).round() / scale;
        let text = if unit.is_empty() {
            format!("{x:.decimals$}")
        } else {
            format!("{x:.decimals$} {unit}")
        };
        self.push(key, label, Value::from(rounded), text);
    }

    /// p50, p90, p99 and max of `h` (microseconds) in milliseconds: keys `{prefix}p50_ms`...
    pub(crate) fn latency(&mut self, prefix: &str, label: &str, h: &Histogram<u64>) {
        if h.is_empty() {
            self.text(&format!("{prefix}latency"), label, "no samples");
            return;
        }
        for (name, value) in [
            ("p50", h.value_at_quantile(0.50)),
            ("p90", h.value_at_quantile(0.90)),
            ("p99", h.value_at_quantile(0.99)),
            ("max", h.max()),
        ] {
            self.figure(
                &format!("{prefix}{name}_ms"),
                &format!("{label} {name}"),
                value as f64 / 1000.0,
                3,
                "ms",
            );
        }
    }

    /// Herd CPU time over the run, and per operation (when PIDs were given); the load
    /// generator's own CPU time, to show whether it, rather than the herd, was the limit.
    pub(crate) fn cpu(&mut self, herd: Option<Duration>, ops: u64, op: &str, bench: Duration) {
        if let Some(herd) = herd {
            self.figure("herd_cpu_s", "herd CPU time", herd.as_secs_f64(), 2, "s");
            let per_op = herd.as_secs_f64() * 1e6 / ops.max(1) as f64;
            self.figure(
                "herd_cpu_us_per_op",
                &format!("herd CPU per {op}"),
                per_op,
                1,
                "us",
            );
        }
        self.figure(
            "bench_cpu_s",
            "load generator CPU",
            bench.as_secs_f64(),
            2,
            "s",
        );
    }

    fn push(&mut self, key: &str, label: &str, json: Value, text: String) {
        self.entries.push(Entry {
            key: key.to_string(),
            label: label.to_string(),
            json,
            text,
        });
    }

    /// Prints to stdout: labelled lines, or one JSON object on one line.
    pub(crate) fn print(&self, json: bool) {
        if json {
            let mut map = Map::new();
            map.insert("scenario".into(), Value::from(self.scenario));
            for e in &self.entries {
                map.insert(e.key.clone(), e.json.clone());
            }
            println!("{}", Value::Object(map));
        } else {
            println!("herd bench {}", self.scenario);
            let width = self
                .entries
                .iter()
                .map(|e| e.label.len())
                .max()
                .unwrap_or(0);
            for e in &self.entries {
                println!("  {:<width$}  {}", e.label, e.text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_rounded_alike_in_text_and_json() {
        let mut r = Report::new("iamat");
        r.figure("rate", "rate", 1234.5678, 1, "/s");
        assert_eq!(r.entries[0].text, "1234.6 /s");
        assert_eq!(r.entries[0].json.as_f64(), Some(1234.6));
    }

    #[test]
    fn latency_reports_percentiles_in_milliseconds() {
        let mut h = latency_histogram();
        for us in 1..=100 {
            h.record(us * 10).unwrap();
        }
        let mut r = Report::new("iamat");
        r.latency("", "latency", &h);
        let keys: Vec<&str> = r.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["p50_ms", "p90_ms", "p99_ms", "max_ms"]);
        assert_eq!(r.entries[3].json.as_f64(), Some(1.0));
    }
}
