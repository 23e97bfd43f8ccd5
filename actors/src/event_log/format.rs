//! An event's line: its RFC 3339 timestamp, its kind, and its text escaped onto one line.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::is_hidden_or_control;

/// Appends an event line's start: timestamp, kind, then `peer` and the escaped `text` if
/// present (no newline: [`EventLog::push`](super::EventLog::push) adds it).
pub(super) fn event(out: &mut Vec<u8>, kind: &str, peer: Option<SocketAddr>, text: &[u8]) {
    push_timestamp(out, SystemTime::now());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    if let Some(peer) = peer {
        // Writing into a `Vec` cannot fail.
        let _ = write!(out, " {peer}");
    }
    if !text.is_empty() {
        out.push(b' ');
        push_escaped(out, text);
    }
}

pub(super) fn with_reason(out: &mut Vec<u8>, reason: &str) {
    out.extend_from_slice(b": ");
    push_escaped(out, reason.as_bytes());
}

pub(super) fn lost_notice(out: &mut Vec<u8>, lost: u64) {
    let text = format!("{lost} events not logged: the log writer fell behind");
    event(out, "note", None, text.as_bytes());
    out.push(b'\n');
}

/// How long [`push_timestamp`]'s stamps are: every line starts with one, so lines compare as
/// bytes on their first `STAMP_LEN` in the order of their instants.
pub(super) const STAMP_LEN: usize = "2026-11-26T05:52:55.123456Z".len();

/// Appends `at` as `2026-11-26T05:52:55.123456Z`. By hand, because it runs for every line a
/// server receives and sends, and the civil date is a few integer operations.
pub(crate) fn push_timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    push_padded(out, year, 4);
    out.push(b'-');
    push_padded(out, month, 2);
    out.push(b'-');
    push_padded(out, day, 2);
    out.push(b'T');
    push_padded(out, in_day / 3600, 2);
    out.push(b':');
    push_padded(out, in_day / 60 % 60, 2);
    out.push(b':');
    push_padded(out, in_day % 60, 2);
    out.push(b'.');
    push_padded(out, u64::from(since_epoch.subsec_micros()), 6);
    out.push(b'Z');
}

/// Year, month (1..=12) and day (1..=31) of the `days`th day after 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let len = digits.len() - start;
    out.resize(out.len() + width.saturating_sub(len), b'0');
    out.extend_from_slice(&digits[start..]);
}

/// Appends `text` so that it stays on one line, shows what it holds, and every byte of it
/// can be recovered: `\\`, `\n`, `\r`, `\t`, `\xNN` for other C0 control bytes, DEL and
/// bytes that are not UTF-8, and `\u{NN}` for the other characters no client id may hold
/// (C1 controls, line and paragraph separators, bidirectional controls: see
/// [`is_hidden_or_control`]), which a terminal or an editor would otherwise act on or hide.
pub(super) fn push_escaped(out: &mut Vec<u8>, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid();
        let bytes = valid.as_bytes();
        let mut plain_from = 0;
        let mut i = 0;
        while i < bytes.len() {
            // Only these bytes can start a character that is escaped: ASCII controls and
            // `\`, and the lead bytes of U+0080..U+00BF and U+2000..U+2FFF (so `i` is at
            // a character's start when it is one of them).
            if !matches!(bytes[i], 0..=0x1f | b'\\' | 0x7f | 0xc2 | 0xe2) {
                i += 1;
                continue;
            }
            let Some(c) = valid[i..].chars().next() else {
                break;
            };
            if c != '\\' && !is_hidden_or_control(c) {
                i += c.len_utf8();
                continue;
            }
            out.extend_from_slice(&bytes[plain_from..i]);
            push_escape(out, c);
            i += c.len_utf8();
            plain_from = i;
        }
        out.extend_from_slice(&bytes[plain_from..]);
        for &byte in chunk.invalid() {
            push_byte_escape(out, byte);
        }
    }
}

/// `text` escaped as the event log escapes what came from outside (see the module doc): for
/// whatever else shows other processes' text, such as `herd status` on a terminal.
pub fn escaped(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    push_escaped(&mut out, text.as_bytes());
    // Every escape is ASCII, and the rest is the valid UTF-8 of `text`.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn push_escape(out: &mut Vec<u8>, c: char) {
    match c {
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        // Writing into a `Vec` cannot fail.
        _ if !c.is_ascii() => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        // An ASCII character is one byte.
        _ => push_byte_escape(out, c as u8),
    }
}

fn push_byte_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 0xf)],
    ]);
}
