//! Who may read an admin listener that is off loopback.
//!
//! On loopback an admin listener is open to the processes of its machine, like the
//! server's own port. Off loopback it needs the herd's secret (the server refuses to start
//! without one), and every request but `GET /health` (which load balancers and
//! orchestrators probe without credentials) must carry it, either way HTTP offers:
//!
//! ```text
//! Authorization: Bearer <secret>            (Prometheus `authorization`, herd status)
//! Authorization: Basic base64(<any>:<secret>)  (a browser's login prompt)
//! ```

/// Whether the `Authorization` header `value` carries `secret`.
pub(crate) fn carries_secret(value: Option<&[u8]>, secret: &[u8]) -> bool {
    let Some(value) = value else { return false };
    if let Some(token) = value.strip_prefix(b"Bearer ") {
        return same(token.trim_ascii(), secret);
    }
    let Some(encoded) = value.strip_prefix(b"Basic ") else {
        return false;
    };
    let Some(decoded) = base64_decode(encoded.trim_ascii()) else {
        return false;
    };
    match decoded.iter().position(|&b| b == b':') {
        Some(colon) => same(&decoded[colon + 1..], secret),
        None => false,
    }
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Standard base64 with padding (RFC 4648), as HTTP Basic credentials are sent.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(
            match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            }
            .into(),
        )
    }
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let chunks = text.len() / 4;
    let mut out = Vec::with_capacity(chunks * 3);
    for (i, chunk) in text.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        // Padding only ends the last chunk, and is at most two.
        if pad > 2 || (pad > 0 && i + 1 < chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(
            base64_decode(b"aGVyZDpzM2NyZXQ=").as_deref(),
            Some(&b"herd:s3cret"[..])
        );
        assert_eq!(base64_decode(b"YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode(b"YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode(b"YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode(b"YW=j"), None);
        assert_eq!(base64_decode(b"YWJ"), None);
        assert_eq!(base64_decode(b"YW!j"), None);
    }

    #[test]
    fn the_secret_is_accepted_as_a_bearer_token_or_a_basic_password() {
        let secret = b"s3cret";
        assert!(carries_secret(Some(b"Bearer s3cret"), secret));
        // Any user name: herd:s3cret and :s3cret.
        assert!(carries_secret(Some(b"Basic aGVyZDpzM2NyZXQ="), secret));
        assert!(carries_secret(Some(b"Basic OnMzY3JldA=="), secret));
        assert!(!carries_secret(None, secret));
        assert!(!carries_secret(Some(b"Bearer s3cre"), secret));
        assert!(!carries_secret(Some(b"Bearer s3cretX"), secret));
        assert!(!carries_secret(Some(b"s3cret"), secret));
        // herd:wrong
        assert!(!carries_secret(Some(b"Basic aGVyZDp3cm9uZw=="), secret));
        // no colon: s3cret alone
        assert!(!carries_secret(Some(b"Basic czNjcmV0"), secret));
    }
}
