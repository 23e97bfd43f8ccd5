//! Who may read an admin listener.
//!
//! On loopback an admin listener is open to the processes of its machine, like the
//! server's own port, but only for requests addressed to it as `localhost` or a loopback
//! address (the `Host` header, any port): a web page open in a browser on the machine could
//! otherwise read it by making its own host name resolve to 127.0.0.1 (DNS rebinding),
//! since the browser then deems the answers the page's own. A request with no `Host` at all
//! (HTTP/1.0) comes from no browser, and is served.
//!
//! Off loopback it needs the herd's secret (the server refuses to start without one), and
//! every request but `GET /health` (which load balancers and orchestrators probe without
//! credentials) must carry it, either way HTTP offers (the scheme's name in any case, as
//! RFC 7235 has it):
//!
//! ```text
//! Authorization: Bearer <secret>            (Prometheus `authorization`, herd status)
//! Authorization: Basic base64(<any>:<secret>)  (a browser's login prompt)
//! ```

use std::net::{IpAddr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Whether the `Host` header `value` names this machine's loopback: `localhost` or a
/// loopback address, with any port or none.
pub(crate) fn is_loopback_host(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let (host, port) = match value.strip_prefix('[') {
        // `[::1]:12100`: an IPv6 address in brackets.
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) => match v6.parse::<Ipv6Addr>() {
                Ok(ip) => (Some(IpAddr::V6(ip)), port),
                Err(_) => return false,
            },
            None => return false,
        },
        None => {
            // `localhost:12100`, `127.0.0.1`: the port, if any, keeps its colon.
            let name = value.rsplit_once(':').map_or(value, |(name, _)| name);
            let port = &value[name.len()..];
            if name.eq_ignore_ascii_case("localhost") {
                (None, port)
            } else {
                match name.parse::<IpAddr>() {
                    Ok(ip @ IpAddr::V4(_)) => (Some(ip), port),
                    _ => return false,
                }
            }
        }
    };
    let port_ok = match port.strip_prefix(':') {
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    };
    port_ok && host.is_none_or(|ip| ip.to_canonical().is_loopback())
}

/// Whether the `Authorization` header `value` carries `secret`.
pub(crate) fn carries_secret(value: Option<&[u8]>, secret: &[u8]) -> bool {
    let Some(value) = value else { return false };
    // `scheme 1*SP credentials`; the scheme's name is case-insensitive (RFC 7235 2.1).
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, credentials) = (&value[..space], value[space..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return same(credentials, secret);
    }
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return false;
    }
    let encoded = credentials;
    // Standard base64 with padding (RFC 4648), as HTTP Basic credentials are sent.
    let Ok(decoded) = STANDARD.decode(encoded) else {
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

    #[test]
    fn the_scheme_is_case_insensitive_and_may_be_followed_by_several_spaces() {
        let secret = b"s3cret";
        for header in [
            &b"bearer s3cret"[..],
            b"BEARER s3cret",
            b"bEaReR   s3cret",
            b"basic aGVyZDpzM2NyZXQ=",
            b"BASIC  aGVyZDpzM2NyZXQ=",
        ] {
            assert!(
                carries_secret(Some(header), secret),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        assert!(!carries_secret(Some(b"bearers3cret"), secret));
        assert!(!carries_secret(Some(b"Token s3cret"), secret));
    }

    #[test]
    fn only_localhost_and_loopback_addresses_are_loopback_hosts() {
        for host in [
            "localhost",
            "LocalHost:12100",
            "127.0.0.1",
            "127.0.0.1:12100",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:12100",
            "[::ffff:127.0.0.1]:12100",
        ] {
            assert!(is_loopback_host(host.as_bytes()), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:12100",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.5:12100",
            "[::2]:12100",
            "[::1",
            "::1",
            "localhost:",
            "localhost:x",
            "127.0.0.1:12100:1",
            "0.0.0.0:12100",
        ] {
            assert!(!is_loopback_host(host.as_bytes()), "{host}");
        }
    }
}
