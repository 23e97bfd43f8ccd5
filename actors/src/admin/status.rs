//! `GET /status`: one server as its operator sees it, in JSON.
//!
//! ```text
//! {"server":"Hill","addr":"127.0.0.1:12000","state":"serving","uptime_s":73.2,
//!  "records":5,"links":[{"neighbour":"Jaquez","up":true,"since":"2026-11-29T21:02:11.250034Z",
//!  "for_s":61.9,"last_error":null,"queued_bytes":0}, ...],
//!  "rates":{"window_s":10.0,"check_ins_per_s":812.4,"whatsats_per_s":3.1},
//!  "counters":{"check_ins":{"new":9000,...},"whatsats":{"OK":31,...},...},
//!  "last_error":{"at":"...","ago_s":12.0,"what":"link to Smith: connection refused"}}
//! ```
//!
//! The same types read it back: `herd status` and the live page are its clients. Rates are
//! over the last ten seconds, from samples the server takes once a second.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// What `GET /status` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The server's name.
    pub server: String,
    /// Where it takes clients and neighbours.
    pub addr: String,
    /// `starting`, `loading store`, `serving` or `stopping`.
    pub state: String,
    /// Why it is not healthy (what `/health` says with its 503), if it is not.
    pub reason: Option<String>,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Clients whose record it holds; `None` until its store is loaded.
    pub records: Option<u64>,
    /// Its links to its neighbours, by name.
    pub links: Vec<LinkReport>,
    /// What it does per second.
    pub rates: Rates,
    /// The counters of `/metrics`, since the start.
    pub counters: Counters,
    /// The newest failure that still holds (a link down, the event log failing), or the
    /// places provider's last failure, with its time.
    pub last_error: Option<LastError>,
}

impl Status {
    /// Serving, and every link up.
    pub fn is_healthy(&self) -> bool {
        self.reason.is_none() && self.links.iter().all(|l| l.up)
    }

    /// Links up, and links in all.
    pub fn links_up(&self) -> (usize, usize) {
        let up = self.links.iter().filter(|l| l.up).count();
        (up, self.links.len())
    }

    /// The share of places answers that cost no upstream call (cache hits and shared
    /// calls), if the server has answered any from a Google provider.
    pub fn places_hit_rate(&self) -> Option<f64> {
        let answers = &self.counters.places_answers;
        let count = |k: &str| answers.get(k).copied().unwrap_or(0);
        let saved = count("cache_hit") + count("shared_call");
        let all = saved + count("upstream_call");
        (all > 0).then(|| saved as f64 / all as f64)
    }
}

/// One outbound link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    /// The neighbour's name.
    pub neighbour: String,
    /// Whether floods go out on it now.
    pub up: bool,
    /// When it last came up or went down (RFC 3339, UTC).
    pub since: String,
    /// Seconds since then.
    pub for_s: f64,
    /// Why it last went down or failed to come up.
    pub last_error: Option<String>,
    /// Bytes queued for the neighbour and not yet written.
    pub queued_bytes: u64,
}

/// Rates over the last seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// The seconds the rates are over (less than ten just after the start).
    pub window_s: f64,
    /// Check-ins answered with an AT line per second.
    pub check_ins_per_s: f64,
    /// WHATSATs answered per second.
    pub whatsats_per_s: f64,
}

/// The counters of `/metrics`, by label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Check-ins by outcome (`new`, `not_newer`, `invalid`, `not_stored`).
    pub check_ins: BTreeMap<String, u64>,
    /// WHATSATs by reply status.
    pub whatsats: BTreeMap<String, u64>,
    /// Lines answered `?`.
    pub invalid_lines: u64,
    /// Client connections open now.
    pub connections_open: i64,
    /// Connections accepted since the start.
    pub connections_accepted: u64,
    /// Connections closed at once, past the caps.
    pub connections_refused: u64,
    /// Places answers by where they came from.
    pub places_answers: BTreeMap<String, u64>,
    /// Calls to the places provider by the status of their answers.
    pub places_upstream_calls: BTreeMap<String, u64>,
    /// Floods sent to each neighbour.
    pub floods_sent: BTreeMap<String, u64>,
    /// Floods received from each neighbour.
    pub floods_received: BTreeMap<String, u64>,
    /// Event log lines dropped.
    pub event_log_dropped_lines: u64,
}

/// A failure, and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Seconds ago.
    pub ago_s: f64,
    /// What failed, and why.
    pub what: String,
}

/// `at` as `2026-11-29T21:02:11.250034Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let mut out = Vec::with_capacity(27);
    crate::event_log::push_timestamp(&mut out, at);
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds from `then` to now, 0 if `then` is ahead.
pub(crate) fn seconds_since(then: SystemTime) -> f64 {
    SystemTime::now()
        .duration_since(then)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The newest of some failures.
pub(crate) fn newest(
    failures: impl IntoIterator<Item = (SystemTime, String)>,
) -> Option<LastError> {
    let (at, what) = failures.into_iter().max_by_key(|(at, _)| *at)?;
    Some(LastError {
        at: rfc3339(at),
        ago_s: seconds_since(at),
        what,
    })
}

/// How far back the rates look.
const WINDOW: Duration = Duration::from_secs(10);

/// Counts sampled once a second, for rates over the last [`WINDOW`]. Taken by a timer on the
/// server's thread, read by the admin handlers on theirs; neither is the serving path.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    samples: Mutex<VecDeque<Sample>>,
}

/// Counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) check_ins: u64,
    pub(crate) whatsats: u64,
}

impl RateWindow {
    /// Keeps `sample`, and forgets those the window no longer needs (all but the newest
    /// that is at least a window old).
    pub(crate) fn sample(&self, sample: Sample) {
        let mut samples = lock(&self.samples);
        samples.push_back(sample);
        while samples
            .get(1)
            .is_some_and(|next| sample.at.duration_since(next.at) >= WINDOW)
        {
            samples.pop_front();
        }
    }

    /// The rates from the oldest sample kept up to `now`'s counts.
    pub(crate) fn rates(&self, now: Sample) -> Rates {
        let oldest = lock(&self.samples).front().copied();
        let Some(oldest) = oldest else {
            return Rates::default();
        };
        let secs = now.at.saturating_duration_since(oldest.at).as_secs_f64();
        if secs < 0.5 {
            return Rates::default();
        }
        let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        Rates {
            window_s: secs,
            check_ins_per_s: per_s(now.check_ins, oldest.check_ins),
            whatsats_per_s: per_s(now.whatsats, oldest.whatsats),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, secs: u64, check_ins: u64, whatsats: u64) -> Sample {
        Sample {
            at: start + Duration::from_secs(secs),
            check_ins,
            whatsats,
        }
    }

    #[test]
    fn rates_are_over_the_last_ten_seconds_of_samples() {
        let start = Instant::now();
        let window = RateWindow::default();
        assert_eq!(window.rates(at(start, 0, 0, 0)), Rates::default());
        for s in 0..=30 {
            // 100 check-ins a second for 20 s, then 10 a second; a WHATSAT every second.
            let check_ins = if s <= 20 {
                100 * s
            } else {
                2000 + 10 * (s - 20)
            };
            window.sample(at(start, s, check_ins, s));
        }
        let rates = window.rates(at(start, 30, 2100, 30));
        assert_eq!(rates.window_s, 10.0);
        assert_eq!(rates.check_ins_per_s, 10.0);
        assert_eq!(rates.whatsats_per_s, 1.0);
        assert!(lock(&window.samples).len() <= 11);
    }

    #[test]
    fn a_young_server_has_rates_over_its_life_so_far() {
        let start = Instant::now();
        let window = RateWindow::default();
        window.sample(at(start, 0, 0, 0));
        window.sample(at(start, 1, 50, 0));
        let rates = window.rates(at(start, 2, 120, 4));
        assert_eq!(rates.window_s, 2.0);
        assert_eq!(rates.check_ins_per_s, 60.0);
        assert_eq!(rates.whatsats_per_s, 2.0);
    }

    #[test]
    fn the_hit_rate_counts_answers_that_cost_no_call() {
        let mut status = Status {
            server: "Hill".into(),
            addr: "127.0.0.1:12000".into(),
            state: "serving".into(),
            reason: None,
            uptime_s: 1.0,
            records: Some(0),
            links: Vec::new(),
            rates: Rates::default(),
            counters: Counters::default(),
            last_error: None,
        };
        assert_eq!(status.places_hit_rate(), None);
        let answers = &mut status.counters.places_answers;
        answers.insert("cache_hit".into(), 6);
        answers.insert("shared_call".into(), 2);
        answers.insert("upstream_call".into(), 2);
        answers.insert("embedded".into(), 100);
        assert_eq!(status.places_hit_rate(), Some(0.8));
    }

    #[test]
    fn the_newest_failure_wins() {
        let now = SystemTime::now();
        let failures = [
            (now - Duration::from_secs(30), "old".to_owned()),
            (now - Duration::from_secs(5), "new".to_owned()),
        ];
        let newest = newest(failures).expect("a failure");
        assert_eq!(newest.what, "new");
        assert!(newest.ago_s >= 5.0 && newest.ago_s < 60.0, "{newest:?}");
        assert_eq!(super::newest([]), None);
    }
}
