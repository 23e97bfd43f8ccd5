//! Refused connections, summarised per source: a host that keeps knocking (a misconfigured
//! neighbour redialling, a scanner, a flood past the connection caps) writes its refusal
//! twice a minute (the first whole, then a count), not once per attempt; each attempt's
//! `open` line stays.
//!
//! The first refusal from an address opens a window of [`WINDOW`]: it is written whole, and
//! the ones after it within the window are only counted. When the window is over, the last
//! of them is written whole with the count of the others:
//!
//! ```text
//! note refused peer handshake from 10.0.0.9:50211: wrong secret from Smith
//! note refused peer handshake from 10.0.0.9:50977: wrong secret from Smith, and 318 more from 10.0.0.9 in the last minute
//! ```
//!
//! Pure: the caller says what time it is, so the tests need no clock.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::format::{event, with_reason};

/// How long one written refusal stands for those from the same address after it.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// The most addresses followed at once; refusals from others share one window, so a host
/// with many addresses costs a bounded map, and is still summarised.
const MAX_SOURCES: usize = 4096;

/// Where a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Door {
    /// Past the connection caps of `[limits]`: closed at once.
    Caps,
    /// Asked to be a peer link and failed the handshake.
    PeerHandshake,
}

/// One refusal, as its line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoggedRefusal {
    pub(super) door: Door,
    pub(super) peer: SocketAddr,
    pub(super) why: String,
}

/// A summary line's content: the last refusal of a window, and how many more it stood for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RefusalSummary {
    pub(super) last: LoggedRefusal,
    pub(super) more: u64,
    /// The address they came from; `None`: from addresses past [`MAX_SOURCES`].
    pub(super) from: Option<IpAddr>,
}

/// The windows open now.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    windows: HashMap<(Door, Option<IpAddr>), Window>,
}

/// What [`Refusals::admit`] makes of a refusal.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Write it, after the summary of its address's window that has just ended, if any.
    Write(Option<RefusalSummary>),
    /// Counted: the window's summary will stand for it.
    Counted,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    /// The last refusal counted and not written, and how many were counted.
    last: Option<LoggedRefusal>,
    counted: u64,
}

impl Refusals {
    /// Whether `refusal` is to be written now (the first from its address in a window), with
    /// the summary of the window before it if that is over and not yet swept; or counted
    /// for its window's summary.
    pub(super) fn admit(&mut self, refusal: &LoggedRefusal, now: Instant) -> Verdict {
        let ip = refusal.peer.ip();
        let mut key = (refusal.door, Some(ip));
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_SOURCES {
            key.1 = None;
        }
        if let Some(window) = self.windows.get_mut(&key) {
            if now.saturating_duration_since(window.opened) < WINDOW {
                window.counted += 1;
                window.last = Some(refusal.clone());
                return Verdict::Counted;
            }
        }
        let fresh = Window {
            opened: now,
            last: None,
            counted: 0,
        };
        let before = self.windows.insert(key, fresh);
        Verdict::Write(before.and_then(|mut window| window.summary(key.1)))
    }

    /// Whether `ip` has been refused at a peer handshake within the window: its further
    /// handshake lines are not written, the refusal's summary stands for them.
    pub(super) fn is_refusing(&self, ip: IpAddr) -> bool {
        self.windows.contains_key(&(Door::PeerHandshake, Some(ip)))
    }

    /// The summaries of the windows that are over at `now` (of all of them, when closing),
    /// each window forgotten.
    pub(super) fn due(&mut self, now: Instant, closing: bool) -> Vec<RefusalSummary> {
        let mut due = Vec::new();
        self.windows.retain(|(_, from), window| {
            let over = closing || now.saturating_duration_since(window.opened) >= WINDOW;
            if over {
                due.extend(window.summary(*from).map(|s| (window.opened, s)));
            }
            !over
        });
        // In the order the windows opened, so that the log reads the same every time.
        due.sort_by_key(|(opened, _)| *opened);
        due.into_iter().map(|(_, summary)| summary).collect()
    }
}

impl Window {
    /// The line that stands for what was counted, if anything was.
    fn summary(&mut self, from: Option<IpAddr>) -> Option<RefusalSummary> {
        let last = self.last.take()?;
        Some(RefusalSummary {
            last,
            more: self.counted.saturating_sub(1),
            from,
        })
    }
}

/// A refusal's line: as a connection dropped past the caps, or as a note on a handshake.
pub(super) fn refusal_line(out: &mut Vec<u8>, refusal: &LoggedRefusal) {
    let LoggedRefusal { door, peer, why } = refusal;
    match door {
        Door::Caps => {
            event(out, "dropped", Some(*peer), b"");
            with_reason(out, why);
        }
        Door::PeerHandshake => {
            let text = format!("refused peer handshake from {peer}: {why}");
            event(out, "note", None, text.as_bytes());
        }
    }
}

/// The last refusal of a window, and how many more it stands for.
pub(super) fn summary_line(out: &mut Vec<u8>, summary: &RefusalSummary) {
    refusal_line(out, &summary.last);
    if summary.more > 0 {
        let _ = match summary.from {
            Some(ip) => write!(out, ", and {} more from {ip}", summary.more),
            None => write!(out, ", and {} more from other addresses", summary.more),
        };
        out.extend_from_slice(b" in the last minute");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: Verdict = Verdict::Write(None);

    fn from(addr: &str, why: &str) -> LoggedRefusal {
        LoggedRefusal {
            door: Door::PeerHandshake,
            peer: addr.parse().expect("an address"),
            why: why.into(),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP")
    }

    #[test]
    fn the_first_refusal_is_written_and_the_rest_of_the_minute_summarised() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        assert_eq!(refusals.admit(&from("10.0.0.9:1", "no"), start), WRITE);
        for port in 2..=100u64 {
            let at = start + Duration::from_millis(500 * port);
            let refusal = from(&format!("10.0.0.9:{port}"), "no");
            assert_eq!(refusals.admit(&refusal, at), Verdict::Counted);
        }
        assert!(refusals.is_refusing(ip("10.0.0.9")));
        assert_eq!(refusals.due(start + Duration::from_secs(59), false), []);
        let summary = RefusalSummary {
            last: from("10.0.0.9:100", "no"),
            more: 98,
            from: Some(ip("10.0.0.9")),
        };
        assert_eq!(refusals.due(start + WINDOW, false), [summary]);
        // The window is closed: the next refusal is written whole again.
        assert!(!refusals.is_refusing(ip("10.0.0.9")));
        let next = from("10.0.0.9:101", "no");
        assert_eq!(refusals.admit(&next, start + WINDOW), WRITE);
    }

    #[test]
    fn a_lone_refusal_has_no_summary() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        assert_eq!(refusals.admit(&from("10.0.0.9:1", "x"), start), WRITE);
        assert_eq!(refusals.due(start + WINDOW, false), []);
        assert!(!refusals.is_refusing(ip("10.0.0.9")));
    }

    #[test]
    fn a_window_over_but_not_swept_is_summarised_before_the_next_refusal() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        assert_eq!(refusals.admit(&from("10.0.0.9:1", "x"), start), WRITE);
        let second = from("10.0.0.9:2", "y");
        let at = start + Duration::from_secs(1);
        assert_eq!(refusals.admit(&second, at), Verdict::Counted);
        let summary = RefusalSummary {
            last: second,
            more: 0,
            from: Some(ip("10.0.0.9")),
        };
        let third = from("10.0.0.9:3", "z");
        assert_eq!(
            refusals.admit(&third, start + WINDOW),
            Verdict::Write(Some(summary))
        );
    }

    #[test]
    fn addresses_and_doors_are_summarised_apart() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        let caps = |addr: &str| LoggedRefusal {
            door: Door::Caps,
            ..from(addr, "too many connections")
        };
        assert_eq!(refusals.admit(&from("10.0.0.9:1", "x"), start), WRITE);
        assert_eq!(refusals.admit(&from("10.0.0.8:1", "x"), start), WRITE);
        assert_eq!(refusals.admit(&caps("10.0.0.9:2"), start), WRITE);
        assert_eq!(refusals.admit(&caps("10.0.0.9:3"), start), Verdict::Counted);
        let refusal = from("10.0.0.8:2", "x");
        assert_eq!(refusals.admit(&refusal, start), Verdict::Counted);
        let due = refusals.due(start + Duration::from_secs(1), true);
        let got: Vec<_> = due.iter().map(|s| (s.last.peer, s.more)).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(addr("10.0.0.9:3"), 0)), "{got:?}");
        assert!(got.contains(&(addr("10.0.0.8:2"), 0)), "{got:?}");
        assert!(refusals.windows.is_empty());
    }

    #[test]
    fn past_the_most_addresses_followed_the_rest_share_one_window() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        for i in 0..MAX_SOURCES as u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(refusals.admit(&from(&format!("{ip}:1"), "x"), start), WRITE);
        }
        assert_eq!(refusals.admit(&from("192.0.2.1:1", "x"), start), WRITE);
        let counted = [from("192.0.2.2:1", "x"), from("192.0.2.3:1", "x")];
        for refusal in &counted {
            assert_eq!(refusals.admit(refusal, start), Verdict::Counted);
        }
        let due = refusals.due(start + WINDOW, false);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].from, due[0].more), (None, 1));
        assert_eq!(due[0].last, counted[1]);
    }
}
