//! Range-based set reconciliation: how two neighbours find the records on which they differ
//! by comparing fingerprints of ranges, in O(d log n) bytes for d differences among n
//! records. The types and their lines here; what a store answers is in `store::recon`.
//!
//! Every client has a key, a 64-bit hash of its id, so the key space is the same on every
//! server and a client's record always lands in the same range. A [`Range`] is the keys
//! that share a prefix of `depth` hex digits (nibbles); the root holds every key, and each
//! range has 16 children. A range's [`Summary`] is the count of records in it and the sum
//! of their hashes (of each AT line), so two servers holding the same records in a range
//! have the same summary, and a summary is updated in O(1) as a record arrives.
//!
//! The dialler drives, the listener answers, one line for each line:
//!
//! ```text
//! FPS <range> <summaries>      dialler: my summaries of the 16 children of <range>
//! FPR <range> <a0> .. <a15>    listener: for each child, = (same), i<hashes> (my records'
//!                              hashes there: I hold few), or f<summaries> (my summaries of
//!                              its 16 children: I hold many)
//! ITEMS <range> <hashes>       dialler: the hashes of my records in <range> (I hold few)
//! NEED <range> <hashes>        listener: which of those I lack
//! ```
//!
//! and the dialler sends, as plain `AT` lines, each record it holds that the listener lacks
//! or holds otherwise. Summaries and hashes are base64url (no padding); a summary is the
//! count as a LEB128 varint then the sum's low 48 bits, a hash its low 48 bits, 6 bytes
//! little-endian each; `-` is the root range and an empty list. Two equal stores agree in
//! one line each way: `FPS -` and an `FPR -` of 16 `=`.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Children of each range.
pub(crate) const FANOUT: usize = 16;

/// The deepest range: all 16 nibbles of a key.
pub(crate) const MAX_DEPTH: u8 = 16;

/// A side holding at most this many records in a range lists their hashes rather than
/// split the range further: about what 16 children's summaries would cost.
pub(crate) const FEW: u64 = 16;

/// Bits of each hash and sum that go on the wire: a false match between two different
/// ranges or records has a chance of 2^-48.
const WIRE_BITS: u32 = 48;
const WIRE_MASK: u64 = (1 << WIRE_BITS) - 1;
const HASH_BYTES: usize = (WIRE_BITS / 8) as usize;

/// A client's place in the key space: XXH3 of its id.
pub(crate) fn key_of(client: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(client.as_bytes())
}

/// A hash as it is compared: the bits that go on the wire.
pub(crate) fn wire_hash(hash: u64) -> u64 {
    hash & WIRE_MASK
}

/// The keys whose first `depth` nibbles are `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Range {
    depth: u8,
    prefix: u64,
}

impl Range {
    /// Every key.
    pub(crate) const ROOT: Range = Range {
        depth: 0,
        prefix: 0,
    };

    pub(crate) fn depth(self) -> u8 {
        self.depth
    }

    /// The range's `i`th child (`i < 16`), one nibble deeper; `None` at the deepest level.
    pub(crate) fn child(self, i: usize) -> Option<Range> {
        (self.depth < MAX_DEPTH).then(|| Range {
            depth: self.depth + 1,
            prefix: (self.prefix << 4) | (i as u64 & 0xf),
        })
    }

    /// The range's 16 children; empty at the deepest level.
    pub(crate) fn children(self) -> impl Iterator<Item = Range> {
        (0..FANOUT).filter_map(move |i| self.child(i))
    }

    /// Whether `key` is in the range.
    pub(crate) fn contains(self, key: u64) -> bool {
        self.depth == 0 || key >> (64 - 4 * u32::from(self.depth)) == self.prefix
    }

    /// The range's first `nibbles` nibbles as a number, if it is that deep: which bucket of
    /// a table cut into 16^`nibbles` buckets it lies in.
    pub(crate) fn top(self, nibbles: u8) -> Option<u64> {
        (self.depth >= nibbles).then(|| self.prefix >> (4 * u32::from(self.depth - nibbles)))
    }

    /// The buckets (of a table cut into 16^`nibbles`) the range covers, if it is no
    /// deeper than that.
    pub(crate) fn buckets(self, nibbles: u8) -> Option<std::ops::Range<u64>> {
        let spread = 4 * u32::from(nibbles.checked_sub(self.depth)?);
        Some(self.prefix << spread..(self.prefix + 1) << spread)
    }

    fn write(self, out: &mut String) {
        use std::fmt::Write as _;
        if self.depth == 0 {
            out.push('-');
        } else {
            let width = usize::from(self.depth);
            let _ = write!(out, "{:0width$x}", self.prefix);
        }
    }

    fn parse(text: &str) -> Option<Range> {
        if text == "-" {
            return Some(Range::ROOT);
        }
        let depth = u8::try_from(text.len()).ok()?;
        if depth == 0 || depth > MAX_DEPTH || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let prefix = u64::from_str_radix(text, 16).ok()?;
        Some(Range { depth, prefix })
    }
}

/// What a server holds in a range: how many records, and the sum of their hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) sum: u64,
}

impl Summary {
    pub(crate) fn add(&mut self, hash: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(hash);
    }

    pub(crate) fn remove(&mut self, hash: u64) {
        self.count = self.count.saturating_sub(1);
        self.sum = self.sum.wrapping_sub(hash);
    }

    pub(crate) fn merge(&mut self, other: Summary) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// Whether two servers hold the same records here, as far as the wire can tell.
    pub(crate) fn matches(self, other: Summary) -> bool {
        self.count == other.count && wire_hash(self.sum) == wire_hash(other.sum)
    }
}

/// The dialler's side of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    /// My summaries of the children of `range`.
    Children { range: Range, mine: Vec<Summary> },
    /// The hashes of my records in `range`.
    Items { range: Range, mine: Vec<u64> },
}

/// The listener's answer to one [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// To [`Query::Children`]: for each child, what the listener holds there.
    Children { range: Range, children: Vec<Child> },
    /// To [`Query::Items`]: the hashes of the dialler's records that the listener lacks.
    Need { range: Range, hashes: Vec<u64> },
}

/// The listener's answer for one child range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Child {
    /// The same records as the dialler.
    Same,
    /// Different, and few: the hashes of the listener's records there.
    Items(Vec<u64>),
    /// Different, and many: the listener's summaries of the child's own children.
    Split(Vec<Summary>),
}

/// What a dialler does next with one answer: the queries it asks, and the records (AT lines)
/// it sends because the listener lacks them or holds them otherwise.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Next {
    pub(crate) queries: Vec<Query>,
    pub(crate) records: Vec<Arc<str>>,
}

pub(crate) const FPS: &str = "FPS";
pub(crate) const FPR: &str = "FPR";
pub(crate) const ITEMS: &str = "ITEMS";
pub(crate) const NEED: &str = "NEED";

impl Query {
    /// The query's line, without a newline.
    pub(crate) fn line(&self) -> String {
        let mut out = String::new();
        match self {
            Query::Children { range, mine } => {
                out.push_str(FPS);
                out.push(' ');
                range.write(&mut out);
                out.push(' ');
                write_summaries(mine, &mut out);
            }
            Query::Items { range, mine } => {
                out.push_str(ITEMS);
                out.push(' ');
                range.write(&mut out);
                out.push(' ');
                write_hashes(mine, &mut out);
            }
        }
        out
    }

    /// Whether `line` looks like a query (its keyword), parsed or not.
    pub(crate) fn is_query(line: &[u8]) -> bool {
        [FPS, ITEMS].iter().any(|k| {
            line.strip_prefix(k.as_bytes())
                .is_some_and(|r| r.starts_with(b" "))
        })
    }

    /// A query line, if `line` is one.
    pub(crate) fn parse(line: &str) -> Option<Query> {
        let mut fields = line.split(' ');
        // Every peer line is asked first whether it is a query: the keyword settles it.
        let kind = fields.next().filter(|k| [FPS, ITEMS].contains(k))?;
        let (range, list) = (fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let range = Range::parse(range)?;
        match kind {
            FPS => Some(Query::Children {
                range,
                mine: parse_summaries(list)?,
            }),
            ITEMS => Some(Query::Items {
                range,
                mine: parse_hashes(list)?,
            }),
            _ => None,
        }
    }
}

impl Answer {
    /// The answer's line, without a newline.
    pub(crate) fn line(&self) -> String {
        let mut out = String::new();
        match self {
            Answer::Children { range, children } => {
                out.push_str(FPR);
                out.push(' ');
                range.write(&mut out);
                for child in children {
                    out.push(' ');
                    match child {
                        Child::Same => out.push('='),
                        Child::Items(hashes) => {
                            out.push('i');
                            if !hashes.is_empty() {
                                write_hashes(hashes, &mut out);
                            }
                        }
                        Child::Split(summaries) => {
                            out.push('f');
                            write_summaries(summaries, &mut out);
                        }
                    }
                }
            }
            Answer::Need { range, hashes } => {
                out.push_str(NEED);
                out.push(' ');
                range.write(&mut out);
                out.push(' ');
                write_hashes(hashes, &mut out);
            }
        }
        out
    }

    /// An answer line, if `line` is one.
    pub(crate) fn parse(line: &str) -> Option<Answer> {
        let mut fields = line.split(' ');
        let kind = fields.next()?;
        let range = Range::parse(fields.next()?)?;
        match kind {
            FPR => {
                let children = fields
                    .map(|field| match field.split_at_checked(1)? {
                        ("=", "") => Some(Child::Same),
                        ("i", "") => Some(Child::Items(Vec::new())),
                        ("i", list) => parse_hashes(list).map(Child::Items),
                        ("f", list) => parse_summaries(list).map(Child::Split),
                        _ => None,
                    })
                    .collect::<Option<Vec<Child>>>()?;
                (children.len() == FANOUT).then_some(Answer::Children { range, children })
            }
            NEED => {
                let hashes = parse_hashes(fields.next()?)?;
                fields
                    .next()
                    .is_none()
                    .then_some(Answer::Need { range, hashes })
            }
            _ => None,
        }
    }
}

fn write_hashes(hashes: &[u64], out: &mut String) {
    if hashes.is_empty() {
        out.push('-');
        return;
    }
    let mut bytes = Vec::with_capacity(hashes.len() * HASH_BYTES);
    for hash in hashes {
        bytes.extend_from_slice(&wire_hash(*hash).to_le_bytes()[..HASH_BYTES]);
    }
    URL_SAFE_NO_PAD.encode_string(&bytes, out);
}

fn parse_hashes(text: &str) -> Option<Vec<u64>> {
    if text == "-" {
        return Some(Vec::new());
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(HASH_BYTES) {
        return None;
    }
    Some(bytes.chunks_exact(HASH_BYTES).map(read_hash).collect())
}

fn read_hash(bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(le)
}

fn write_summaries(summaries: &[Summary], out: &mut String) {
    let mut bytes = Vec::with_capacity(summaries.len() * (HASH_BYTES + 3));
    for s in summaries {
        let mut count = s.count;
        loop {
            let low = (count & 0x7f) as u8;
            count >>= 7;
            if count == 0 {
                bytes.push(low);
                break;
            }
            bytes.push(low | 0x80);
        }
        bytes.extend_from_slice(&wire_hash(s.sum).to_le_bytes()[..HASH_BYTES]);
    }
    URL_SAFE_NO_PAD.encode_string(&bytes, out);
}

/// Exactly 16 summaries, or `None`.
fn parse_summaries(text: &str) -> Option<Vec<Summary>> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let mut rest = &bytes[..];
    let mut summaries = Vec::with_capacity(FANOUT);
    while !rest.is_empty() {
        let mut count: u64 = 0;
        let mut shift = 0;
        loop {
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            if shift > 63 {
                return None;
            }
            count |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (sum, tail) = rest.split_at_checked(HASH_BYTES)?;
        rest = tail;
        summaries.push(Summary {
            count,
            sum: read_hash(sum),
        });
    }
    (summaries.len() == FANOUT).then_some(summaries)
}

#[cfg(test)]
mod tests;
