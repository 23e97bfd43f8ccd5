//! A check-in as the herd keeps it: the AT line its receiving server produced, and the
//! herd's one order between records.

use std::sync::Arc;

use super::{
    all_digits, fields, format_difference, is_client_id, is_space, IAmAt, Location, ParseError,
    Timestamp,
};

/// A client's check-in as the herd keeps and floods it: the AT line its receiving server
/// produced, plus what is parsed out of that line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    client: Arc<str>,
    time: Timestamp,
    location: Location,
    /// `AT <server> <diff> <client> <coordinates> <time>`, no newline.
    at_line: Arc<str>,
    /// Byte range of the coordinates within `at_line`.
    coordinates: (usize, usize),
    /// A hash of `at_line`, stable across servers and versions: what set reconciliation
    /// sums and compares.
    hash: u64,
}

impl Record {
    /// The record of a check-in received by `server` at `received`.
    pub(crate) fn check_in(server: &str, received: Timestamp, cmd: &IAmAt<'_>) -> Record {
        let mut line = String::with_capacity(
            server.len() + cmd.client.len() + cmd.coordinates.len() + cmd.time_text.len() + 32,
        );
        line.push_str("AT ");
        line.push_str(server);
        line.push(' ');
        format_difference(received.nanos() - cmd.time.nanos(), &mut line);
        line.push(' ');
        line.push_str(cmd.client);
        line.push(' ');
        let start = line.len();
        line.push_str(cmd.coordinates);
        let end = line.len();
        line.push(' ');
        line.push_str(cmd.time_text);
        Record {
            client: Arc::from(cmd.client),
            time: cmd.time,
            location: cmd.location,
            hash: item_hash(&line),
            at_line: Arc::from(line),
            coordinates: (start, end),
        }
    }

    /// Parses an AT line as another server produced it (peers flood AT lines).
    pub(crate) fn parse_at_line(line: &str) -> Result<Record, ParseError> {
        let mut it = fields(line);
        let (Some("AT"), Some(server), Some(diff), Some(client), Some(coords), Some(time), None) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            return Err(ParseError::FieldCount);
        };
        if !is_client_id(server) {
            return Err(ParseError::ServerName);
        }
        let diff_ok = matches!(diff.as_bytes().first(), Some(b'+' | b'-'))
            && matches!(diff[1..].split_once('.'), Some((s, n)) if all_digits(s) && n.len() == 9 && all_digits(n));
        if !diff_ok {
            return Err(ParseError::Difference);
        }
        if !is_client_id(client) {
            return Err(ParseError::ClientId);
        }
        let cmd = IAmAt {
            client,
            coordinates: coords,
            location: Location::parse(coords).ok_or(ParseError::Coordinates)?,
            time_text: time,
            time: Timestamp::parse(time).ok_or(ParseError::Time)?,
        };
        // The stored line is canonical (single spaces) whatever the spacing; a line that is
        // already canonical, as every peer sends it, is kept without rebuilding it.
        let canonical_len =
            "AT ".len() + server.len() + diff.len() + client.len() + coords.len() + time.len() + 4;
        let canonical =
            line.len() == canonical_len && !line.bytes().any(|b| b != b' ' && is_space(b));
        let at_line: Arc<str> = if canonical {
            Arc::from(line)
        } else {
            Arc::from(format!("AT {server} {diff} {client} {coords} {time}"))
        };
        let start = at_line.len() - time.len() - 1 - coords.len();
        Ok(Record {
            client: Arc::from(cmd.client),
            time: cmd.time,
            location: cmd.location,
            coordinates: (start, start + coords.len()),
            hash: item_hash(&at_line),
            at_line,
        })
    }

    pub(crate) fn client(&self) -> &Arc<str> {
        &self.client
    }

    pub(crate) fn time(&self) -> Timestamp {
        self.time
    }

    pub(crate) fn location(&self) -> Location {
        self.location
    }

    pub(crate) fn at_line(&self) -> &str {
        &self.at_line
    }

    /// The AT line, shared rather than copied, for fanning out to several links.
    pub(crate) fn at_line_shared(&self) -> Arc<str> {
        self.at_line.clone()
    }

    /// The coordinates as the client sent them.
    pub(crate) fn coordinates(&self) -> &str {
        &self.at_line[self.coordinates.0..self.coordinates.1]
    }

    /// A hash of the AT line, stable across servers: two records with the same hash are,
    /// but for a 2^-64 chance, the same record.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The herd's total "newer" order: client time first, then the AT line's bytes, so two
    /// different check-ins with the same client time still have one winner everywhere.
    pub(crate) fn newer_than(&self, other: &Record) -> bool {
        (self.time, self.at_line.as_bytes()) > (other.time, other.at_line.as_bytes())
    }
}

/// The hash of an AT line: XXH3, 64 bits, which every server computes alike.
fn item_hash(at_line: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(at_line.as_bytes())
}
