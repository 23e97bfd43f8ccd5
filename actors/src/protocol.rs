//! The client protocol: lines in, typed commands out; records and replies back to bytes.
//!
//! Pure, no I/O. The wire forms (`docs/protocol.md` tells the whole protocol):
//!
//! ```text
//! IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503
//! AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503
//! WHATSAT kiwi.cs.ucla.edu 10 5
//! ? <the invalid line, byte for byte>
//! ```
//!
//! Fields are separated by runs of the six ASCII white-space bytes and nothing else. Every
//! number is checked on its decimal text, so range checks are exact and the time difference
//! is computed in integer nanoseconds: no floating point on the AT path.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a line is not a valid command. The client only ever sees `? <line>`; the kind goes
/// to the event log, so an operator can tell what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("unknown command")]
    UnknownCommand,
    #[error("wrong number of fields")]
    FieldCount,
    #[error("client id has a control or invisible character")]
    ClientId,
    #[error("coordinates are not [+-]D+(.D+)?[+-]D+(.D+)? within +-90, +-180")]
    Coordinates,
    #[error("time is not D+(.D{{1,9}})? within the 64-bit nanosecond range")]
    Time,
    #[error("radius is not D+(.D+)? in 0 < r <= 50")]
    Radius,
    #[error("bound is not an integer in 1..=20")]
    Bound,
    #[error("server name is not a single field")]
    ServerName,
    #[error("time difference is not [+-]D+.DDDDDDDDD")]
    Difference,
}

/// The six bytes that separate fields.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// The white-space separated fields of `s`.
pub fn fields(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_ascii() && is_space(c as u8))
        .filter(|f| !f.is_empty())
}

/// POSIX time in exact nanoseconds, never negative (the grammar has no sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Nanoseconds since the epoch `by` after this time (saturating): the bound past
    /// which a record is dated too far ahead of a clock that read this.
    pub(crate) fn later_by(self, by: std::time::Duration) -> i64 {
        self.0
            .saturating_add(i64::try_from(by.as_nanos()).unwrap_or(i64::MAX))
    }

    /// The time `nanos` nanoseconds after the epoch.
    #[cfg(test)]
    pub(crate) fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the epoch.
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// The current time; a clock before 1970 reads as 0, one past 2262 as the maximum.
    pub fn now() -> Self {
        let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        Timestamp(nanos)
    }

    /// Parses `D+(.D{1,9})?`; `None` past 9223372036.854775807.
    pub fn parse(s: &str) -> Option<Self> {
        let (secs, frac) = match s.split_once('.') {
            Some((secs, frac)) => (secs, frac),
            None => (s, ""),
        };
        if !all_digits(secs) || (s.contains('.') && (frac.is_empty() || frac.len() > 9)) {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs = secs.trim_start_matches('0');
        if secs.len() > 10 {
            return None;
        }
        let secs: i64 = if secs.is_empty() {
            0
        } else {
            secs.parse().ok()?
        };
        let nanos = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        secs.checked_mul(1_000_000_000)?
            .checked_add(nanos)
            .map(Timestamp)
    }
}

/// `[+-]secs.nnnnnnnnn`: a signed nanosecond count in fixed notation.
pub(crate) fn format_difference(nanos: i64, out: &mut String) {
    let sign = if nanos < 0 { '-' } else { '+' };
    let abs = nanos.unsigned_abs();
    let _ = write!(
        out,
        "{sign}{}.{:09}",
        abs / 1_000_000_000,
        abs % 1_000_000_000
    );
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `D+(.D+)?` into its integer and fraction digits.
fn unsigned_decimal(s: &str) -> Option<(&str, &str)> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => {
            if !all_digits(frac) {
                return None;
            }
            (int, frac)
        }
        None => (s, ""),
    };
    all_digits(int).then_some((int, frac))
}

/// Compares the decimal `int.frac` with the integer `limit`, exactly.
fn cmp_decimal(int: &str, frac: &str, limit: u32) -> Ordering {
    let int = int.trim_start_matches('0');
    let limit = limit.to_string();
    int.len()
        .cmp(&limit.len())
        .then_with(|| int.cmp(&limit))
        .then_with(|| {
            if frac.bytes().any(|b| b != b'0') {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
}

/// A client's position: ISO 6709 `+34.068930-118.445127`, range-checked on the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Location {
    pub(crate) lat: f64,
    pub(crate) lng: f64,
    /// Where the longitude's sign starts in the text this was parsed from.
    split: usize,
}

impl Location {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if !matches!(bytes.first(), Some(b'+' | b'-')) {
            return None;
        }
        let split = 1 + bytes[1..].iter().position(|&b| b == b'+' || b == b'-')?;
        let (lat, lng) = s.split_at(split);
        let lat_value = signed_in_range(lat, 90)?;
        let lng_value = signed_in_range(lng, 180)?;
        Some(Location {
            lat: lat_value,
            lng: lng_value,
            split,
        })
    }

    /// `34.068930,-118.445127` from the text this was parsed from: the client's own digits,
    /// without `+` (which a URL query would read as a space).
    pub(crate) fn query_param(&self, text: &str) -> String {
        let (lat, lng) = text.split_at(self.split);
        format!(
            "{},{}",
            lat.trim_start_matches('+'),
            lng.trim_start_matches('+')
        )
    }
}

/// Parses `[+-]D+(.D+)?` within `±limit`.
fn signed_in_range(s: &str, limit: u32) -> Option<f64> {
    let (int, frac) = unsigned_decimal(s.get(1..)?)?;
    if cmp_decimal(int, frac, limit) == Ordering::Greater {
        return None;
    }
    s.parse().ok()
}

/// A WHATSAT radius: `D+(.D+)?` kilometres with 0 < r <= 50.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Radius {
    pub(crate) metres: f64,
    /// The radius in metres as exact decimal text, shifted from the kilometres' digits.
    pub(crate) metres_text: String,
}

impl Radius {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (int, frac) = unsigned_decimal(s)?;
        let positive = int.bytes().chain(frac.bytes()).any(|b| b != b'0');
        if !positive || cmp_decimal(int, frac, 50) == Ordering::Greater {
            return None;
        }
        let shift = frac.len().min(3);
        let mut whole = format!("{int}{}{}", &frac[..shift], "000".get(shift..)?);
        let whole_trimmed = whole.trim_start_matches('0').len();
        whole.drain(..whole.len() - whole_trimmed.max(1));
        let rest = frac[shift..].trim_end_matches('0');
        let metres_text = if rest.is_empty() {
            whole
        } else {
            format!("{whole}.{rest}")
        };
        let metres = metres_text.parse().ok()?;
        Some(Radius {
            metres,
            metres_text,
        })
    }
}

/// A WHATSAT bound: `D+` in 1..=20.
fn parse_bound(s: &str) -> Option<u8> {
    if !all_digits(s) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 2 {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    (1..=20).contains(&n).then_some(n)
}

/// A client id: non-empty, no white space, no control or invisible character.
fn is_client_id(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(is_hidden_or_control)
}

/// Whether `c` is a character no client id may hold besides white space: a control
/// character (C0, DEL, C1), or an invisible format character that reorders or breaks the
/// text around it (the line and paragraph separators, the bidirectional embeddings,
/// overrides and isolates). Such a character shown raw can make a log line or a terminal
/// say something else than what is there; every surface that shows text from outside the
/// server escapes these.
pub fn is_hidden_or_control(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// A valid client command, borrowing its text from the line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command<'a> {
    IAmAt(IAmAt<'a>),
    WhatsAt(WhatsAt<'a>),
}

/// `IAMAT <client> <coordinates> <time>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IAmAt<'a> {
    pub(crate) client: &'a str,
    pub(crate) coordinates: &'a str,
    pub(crate) location: Location,
    pub(crate) time_text: &'a str,
    pub(crate) time: Timestamp,
}

/// `WHATSAT <client> <radius km> <bound>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WhatsAt<'a> {
    pub(crate) client: &'a str,
    pub(crate) radius: Radius,
    pub(crate) bound: u8,
}

/// Parses one line (without its terminator). `Ok(None)` for an empty or all-white-space
/// line, which gets no reply.
pub(crate) fn parse_line(line: &[u8]) -> Result<Option<Command<'_>>, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let mut it = fields(line);
    let Some(name) = it.next() else {
        return Ok(None);
    };
    let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(match name {
            "IAMAT" | "WHATSAT" => ParseError::FieldCount,
            _ => ParseError::UnknownCommand,
        });
    };
    if !matches!(name, "IAMAT" | "WHATSAT") {
        return Err(ParseError::UnknownCommand);
    }
    if !is_client_id(a) {
        return Err(ParseError::ClientId);
    }
    Ok(Some(if name == "IAMAT" {
        Command::IAmAt(IAmAt {
            client: a,
            coordinates: b,
            location: Location::parse(b).ok_or(ParseError::Coordinates)?,
            time_text: c,
            time: Timestamp::parse(c).ok_or(ParseError::Time)?,
        })
    } else {
        Command::WhatsAt(WhatsAt {
            client: a,
            radius: Radius::parse(b).ok_or(ParseError::Radius)?,
            bound: parse_bound(c).ok_or(ParseError::Bound)?,
        })
    }))
}

/// `? <line>\n`: the reply to any invalid line, echoing it byte for byte.
pub(crate) fn invalid_reply(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 3);
    out.extend_from_slice(b"? ");
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

mod record;

pub(crate) use record::Record;

#[cfg(test)]
mod tests;
