//! The peer protocol's lines: handshake, floods and heartbeats. Pure, no I/O.
//!
//! `docs/peer-protocol.md` tells the whole exchange; in short, the dialling server sends
//!
//! ```text
//! HERD-PEER 2 <from> <to>
//! ```
//!
//! and the listening server answers `HERD-WELCOME <to>`, `HERD-REFUSED <reason>`, or, when
//! the herd has a secret, `HERD-CHALLENGE <nonce>` first, to which the dialler answers
//! `HERD-PROOF <hex HMAC-SHA256(secret, "herd-peer-v1\n<from>\n<to>\n<nonce>")>`. After the
//! welcome the dialler reconciles the two stores ([`super::recon`]: `FPS` and `ITEMS` lines,
//! answered with `FPR` and `NEED`), sends the records the listener lacks (`AT ...` lines,
//! as clients see them) and floods (`FLOOD <seen> AT ...`), and `PING`, answered with
//! `PONG`.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::protocol::fields;

pub(crate) const HELLO: &str = "HERD-PEER";
pub(crate) const CHALLENGE: &str = "HERD-CHALLENGE";
pub(crate) const PROOF: &str = "HERD-PROOF";
pub(crate) const WELCOME: &str = "HERD-WELCOME";
pub(crate) const REFUSED: &str = "HERD-REFUSED";
pub(crate) const FLOOD: &str = "FLOOD";
/// Asks the listener for a `PONG`. Writing it tests a link that may be half-open.
pub(crate) const PING: &str = "PING";
/// The listener's answer to `PING`.
pub(crate) const PONG: &str = "PONG";

/// The longest peer line: a record's AT line (whose client fields fit a client's line)
/// with a seen list in front, or a reconciliation line.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// The most names a `FLOOD` line's seen list may hold: more than any herd flooding suits.
const MAX_SEEN: usize = 1024;

/// `FLOOD <seen> <AT line>`: a record, and the servers that already have it or are being
/// sent it (comma-separated), which the receiver need not send it to again.
pub(crate) fn flood_line(seen: &[Arc<str>], at_line: &str) -> String {
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
pub(crate) fn parse_flood(line: &str) -> Option<(Vec<Arc<str>>, &str)> {
    let rest = line.strip_prefix(FLOOD)?.strip_prefix(' ')?;
    let (seen, at_line) = rest.split_once(' ')?;
    let seen: Vec<Arc<str>> = seen
        .split(',')
        .filter(|n| !n.is_empty())
        .map(Arc::from)
        .collect();
    (seen.len() <= MAX_SEEN).then_some((seen, at_line))
}

/// The peer protocol this server speaks. Version 1 synced with a digest of every record;
/// 2 reconciles ranges. A server speaks only its own: one of another version is refused,
/// with both versions named.
pub(crate) const VERSION: u32 = 2;

/// Whether a connection's first line asks to become a peer link.
pub(crate) fn is_hello(line: &[u8]) -> bool {
    line.starts_with(HELLO.as_bytes())
        && line
            .get(HELLO.len())
            .is_some_and(|&b| crate::protocol::is_space(b))
}

/// `HERD-PEER 2 <from> <to>`.
pub(crate) fn hello(from: &str, to: &str) -> String {
    format!("{HELLO} {VERSION} {from} {to}\n")
}

/// A hello line's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello<'a> {
    pub(crate) version: u32,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
}

/// The parts of a hello line of any version, if it is one.
pub(crate) fn parse_hello(line: &str) -> Option<Hello<'_>> {
    match fields(line).collect::<Vec<_>>()[..] {
        [HELLO, version, from, to] => Some(Hello {
            version: version.parse().ok()?,
            from,
            to,
        }),
        _ => None,
    }
}

/// The peer protocol version a refusal says its server speaks, if it says one. A server of
/// version 1 answers a hello it cannot parse with `HERD-REFUSED malformed hello, expected
/// HERD-PEER 1 <from> <to>`; from version 2 on, a hello of another version gets
/// `HERD-REFUSED <from> speaks peer protocol <theirs> and this server <mine>: ...`
/// (`Refusal::Version`).
pub(crate) fn refusal_version(refusal: &str) -> Option<u32> {
    let (_, rest) = refusal
        .split_once(" and this server ")
        .or_else(|| refusal.split_once("expected HERD-PEER "))?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// A fresh 32-byte nonce, hex-encoded.
pub(crate) fn nonce() -> Result<String, getrandom::Error> {
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
pub(crate) fn proof(secret: &[u8], from: &str, to: &str, nonce: &str) -> String {
    hex(&mac(secret, from, to, nonce).finalize().into_bytes())
}

/// Checks a proof in constant time.
pub(crate) fn verify(secret: &[u8], from: &str, to: &str, nonce: &str, proof_hex: &str) -> bool {
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
pub(crate) fn argument<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    match fields(line).collect::<Vec<_>>()[..] {
        [k, v] if k == keyword => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::error::Refusal;

    #[test]
    fn hello_round_trips_with_its_version() {
        let hello_line = hello("Hill", "Smith");
        let parsed = parse_hello(hello_line.trim_end()).unwrap();
        assert_eq!(
            (parsed.version, parsed.from, parsed.to),
            (VERSION, "Hill", "Smith")
        );
        assert_eq!(parse_hello("HERD-PEER 1 Hill Smith").unwrap().version, 1);
        assert_eq!(parse_hello("HERD-PEER x Hill Smith"), None);
        assert_eq!(parse_hello("HERD-PEER 2 Hill"), None);
        assert_eq!(
            refusal_version("HERD-REFUSED malformed hello, expected HERD-PEER 1 <from> <to>"),
            Some(1)
        );
        let newer = "HERD-REFUSED Hill speaks peer protocol 2 and this server 3: run the same \
                     herd version on both";
        assert_eq!(refusal_version(newer), Some(3));
        let ours = format!(
            "HERD-REFUSED {}",
            Refusal::Version {
                from: "Hill".into(),
                theirs: 1
            }
        );
        assert_eq!(refusal_version(&ours), Some(VERSION));
        assert_eq!(refusal_version("HERD-REFUSED wrong secret from Hill"), None);
        assert!(is_hello(b"HERD-PEER 2 a b"));
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
}
