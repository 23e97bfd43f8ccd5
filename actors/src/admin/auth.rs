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

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Whether the `Authorization` header `value` carries `secret`.
pub(crate) fn carries_secret(value: Option<&[u8]>, secret: &[u8]) -> bool {
    let Some(value) = value else { return false };
    if let Some(token) = value.strip_prefix(b"Bearer ") {
        return same(token.trim_ascii(), secret);
    }
    let Some(encoded) = value.strip_prefix(b"Basic ") else {
        return false;
    };
    // Standard base64 with padding (RFC 4648), as HTTP Basic credentials are sent.
    let Ok(decoded) = STANDARD.decode(encoded.trim_ascii()) else {
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

#[cfg(test)]
mod tests {
    use super::*;

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
