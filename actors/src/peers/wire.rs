//! The peer protocol's lines: handshake, records and digests. Pure, no I/O.
//!
//! `docs/peer-protocol.md` tells the whole exchange; in short, the dialling server sends
//!
//! ```text
//! HERD-PEER 1 <from> <to>
//! ```
//!
//! and the listening server answers `HERD-WELCOME <to>`, `HERD-REFUSED <reason>`, or, when
//! the herd has a secret, `HERD-CHALLENGE <nonce>` first, to which the dialler answers
//! `HERD-PROOF <hex HMAC-SHA256(secret, "herd-peer-v1\n<from>\n<to>\n<nonce>")>`. After the
//! welcome the dialler sends `SYNC`, records from a sync (`AT ...` lines, as clients see
//! them) and floods (`FLOOD <seen> AT ...`); the listener answers `SYNC` with
//! `DIGEST <client> <nanos> <hash>` lines and `DIGEST-END`.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::protocol::{fields, Record};

pub const HELLO: &str = "HERD-PEER";
pub const CHALLENGE: &str = "HERD-CHALLENGE";
pub const PROOF: &str = "HERD-PROOF";
pub const WELCOME: &str = "HERD-WELCOME";
pub const REFUSED: &str = "HERD-REFUSED";
pub const SYNC: &str = "SYNC";
pub const DIGEST: &str = "DIGEST";
pub const DIGEST_END: &str = "DIGEST-END";
pub const FLOOD: &str = "FLOOD";
/// Says nothing; the listener ignores it. Writing it tests a link that may be half-open.
pub const PING: &str = "PING";

/// The most names a `FLOOD` line's seen list may hold: more than any herd flooding suits.
const MAX_SEEN: usize = 1024;

/// `FLOOD <seen> <AT line>`: a record, and the servers that already have it or are being
/// sent it (comma-separated), which the receiver need not send it to again.
pub fn flood_line(seen: &[Arc<str>], at_line: &str) -> String {
    let mut line = String::with_capacity(at_line.len() + seen.len() * 10 + 8);
    line.push_str(FLOOD);
    line.push(' ');
    for (i, name) in seen.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(name);
    }
    line.push(' ');
    line.push_str(at_line);
    line
}

/// The seen list and the AT line of a `FLOOD` line.
pub fn parse_flood(line: &str) -> Option<(Vec<Arc<str>>, &str)> {
    let rest = line.strip_prefix(FLOOD)?.strip_prefix(' ')?;
    let (seen, at_line) = rest.split_once(' ')?;
    let seen: Vec<Arc<str>> = seen
        .split(',')
        .filter(|n| !n.is_empty())
        .map(Arc::from)
        .collect();
    (seen.len() <= MAX_SEEN).then_some((seen, at_line))
}

/// The protocol version this server speaks.
const VERSION: &str = "1";

/// Whether a connection's first line asks to become a peer link.
pub fn is_hello(line: &[u8]) -> bool {
    line.starts_with(HELLO.as_bytes())
        && line
            .get(HELLO.len())
            .is_some_and(|&b| crate::protocol::is_space(b))
}

/// `HERD-PEER 1 <from> <to>`.
pub fn hello(from: &str, to: &str) -> String {
    format!("{HELLO} {VERSION} {from} {to}\n")
}

/// The `(from, to)` of a hello line, if it is one of this version.
pub fn parse_hello(line: &str) -> Option<(&str, &str)> {
    match fields(line).collect::<Vec<_>>()[..] {
        [HELLO, VERSION, from, to] => Some((from, to)),
        _ => None,
    }
}

/// A fresh 32-byte nonce, hex-encoded.
pub fn nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

fn mac(secret: &[u8], from: &str, to: &str, nonce: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(format!("herd-peer-v1\n{from}\n{to}\n{nonce}").as_bytes());
    mac
}

/// The dialler's proof that it holds the secret, for this hello and nonce.
pub fn proof(secret: &[u8], from: &str, to: &str, nonce: &str) -> String {
    hex(&mac(secret, from, to, nonce).finalize().into_bytes())
}

/// Checks a proof in constant time.
pub fn verify(secret: &[u8], from: &str, to: &str, nonce: &str, proof_hex: &str) -> bool {
    match unhex(proof_hex) {
        Some(tag) => mac(secret, from, to, nonce).verify_slice(&tag).is_ok(),
        None => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The second field of a `KEYWORD value` line, if the keyword matches.
pub fn argument<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    match fields(line).collect::<Vec<_>>()[..] {
        [k, v] if k == keyword => Some(v),
        _ => None,
    }
}

/// A record's version as a digest carries it: its client time and a hash of its AT line,
/// so two servers can tell whether they hold the same record without sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub nanos: i64,
    pub hash: u64,
}

impl Version {
    pub fn of(record: &Record) -> Version {
        Version {
            nanos: record.time().nanos(),
            hash: fnv1a(record.at_line().as_bytes()),
        }
    }

    /// Whether a server holding `self` should send its record to one holding `theirs`:
    /// theirs is older, or as old but a different record (the receiver's "newer" rule then
    /// picks the same winner both sides would).
    pub fn should_send_over(self, theirs: Option<Version>) -> bool {
        match theirs {
            None => true,
            Some(t) => self.nanos > t.nanos || (self.nanos == t.nanos && self.hash != t.hash),
        }
    }
}

/// FNV-1a, 64 bits: stable across processes, unlike std's randomly keyed hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `DIGEST <client> <nanos> <hash>\n`.
pub fn digest_line(client: &str, v: Version, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{DIGEST} {client} {} {:016x}", v.nanos, v.hash);
}

/// The client and version of a digest line.
pub fn parse_digest_line(line: &str) -> Option<(&str, Version)> {
    match fields(line).collect::<Vec<_>>()[..] {
        [DIGEST, client, nanos, hash] => Some((
            client,
            Version {
                nanos: nanos.parse().ok()?,
                hash: u64::from_str_radix(hash, 16).ok()?,
            },
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_line, Command, Timestamp};

    fn record(server: &str, line: &str) -> Record {
        match parse_line(line.as_bytes()) {
            Ok(Some(Command::IAmAt(c))) => Record::check_in(server, Timestamp::from_nanos(5), &c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hello_round_trips_and_needs_this_version() {
        assert_eq!(
            parse_hello(hello("Hill", "Smith").trim_end()),
            Some(("Hill", "Smith"))
        );
        assert_eq!(parse_hello("HERD-PEER 2 Hill Smith"), None);
        assert_eq!(parse_hello("HERD-PEER 1 Hill"), None);
        assert!(is_hello(b"HERD-PEER 1 a b"));
        assert!(!is_hello(b"HERD-PEERS 1 a b"));
        assert!(!is_hello(b"IAMAT a +1+1 1"));
    }

    #[test]
    fn proofs_verify_only_with_the_same_secret_names_and_nonce() {
        let n = nonce().unwrap();
        assert_eq!(n.len(), 64);
        assert_ne!(n, nonce().unwrap());
        let p = proof(b"s3cret", "Hill", "Smith", &n);
        assert!(verify(b"s3cret", "Hill", "Smith", &n, &p));
        assert!(!verify(b"wrong", "Hill", "Smith", &n, &p));
        assert!(!verify(b"s3cret", "Jaquez", "Smith", &n, &p));
        assert!(!verify(b"s3cret", "Hill", "Smith", &nonce().unwrap(), &p));
        assert!(!verify(b"s3cret", "Hill", "Smith", &n, "zz"));
        assert!(!verify(b"s3cret", "Hill", "Smith", &n, ""));
    }

    #[test]
    fn flood_lines_round_trip() {
        let seen: Vec<Arc<str>> = vec!["Hill".into(), "Smith".into()];
        let line = flood_line(&seen, "AT Hill +0.000000001 a +1+1 1");
        assert_eq!(line, "FLOOD Hill,Smith AT Hill +0.000000001 a +1+1 1");
        assert_eq!(
            parse_flood(&line),
            Some((seen, "AT Hill +0.000000001 a +1+1 1"))
        );
        assert_eq!(parse_flood("FLOOD"), None);
        assert_eq!(parse_flood("AT Hill +0.000000001 a +1+1 1"), None);
        let many = format!("FLOOD {} AT x", vec!["n"; 2000].join(","));
        assert_eq!(parse_flood(&many), None);
    }

    #[test]
    fn digest_lines_round_trip() {
        let r = record("Hill", "IAMAT kiwi +1+1 10.5");
        let v = Version::of(&r);
        let mut line = String::new();
        digest_line("kiwi", v, &mut line);
        assert_eq!(parse_digest_line(line.trim_end()), Some(("kiwi", v)));
        assert_eq!(parse_digest_line("DIGEST kiwi x 00"), None);
    }

    #[test]
    fn versions_send_what_the_other_side_lacks_or_holds_older() {
        let old = Version::of(&record("Hill", "IAMAT kiwi +1+1 10"));
        let new = Version::of(&record("Hill", "IAMAT kiwi +1+1 11"));
        let rival = Version::of(&record("Smith", "IAMAT kiwi +1+1 11"));
        assert!(new.should_send_over(None));
        assert!(new.should_send_over(Some(old)));
        assert!(!old.should_send_over(Some(new)));
        assert!(!new.should_send_over(Some(new)));
        assert!(new.should_send_over(Some(rival)) && rival.should_send_over(Some(new)));
    }
}
