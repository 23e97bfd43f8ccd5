//! The `[places]` keys that keep Google's bill down: cache, precision, calls at once.

use std::time::Duration;

use super::error::Fault;
use super::tests::{loaded, refused, with_places, TWO};
use crate::places::CacheSettings;

#[test]
fn the_cost_controls_have_defaults() {
    let config = loaded(TWO, &[]);
    assert_eq!(
        config.places.cache,
        CacheSettings {
            ttl: Duration::from_secs(300),
            entries: 10_000,
            max_bytes: 64 << 20,
            precision: 4,
        }
    );
    assert_eq!(config.places.max_concurrent, 8);
}

#[test]
fn the_cost_controls_are_read_from_the_file() {
    let config = loaded(
        &with_places(
            "cache_ttl_s = 0\ncache_entries = 5\ncache_mb = 2\ncache_precision = 7\n\
             max_concurrent = 1",
        ),
        &[],
    );
    assert_eq!(
        config.places.cache,
        CacheSettings {
            ttl: Duration::ZERO,
            entries: 5,
            max_bytes: 2 << 20,
            precision: 7,
        }
    );
    assert_eq!(config.places.max_concurrent, 1);
}

#[test]
fn the_environment_overrides_the_cost_controls() {
    let config = loaded(
        &with_places("cache_ttl_s = 10\nmax_concurrent = 3"),
        &[
            ("HERD_PLACES__CACHE_TTL_S", "60"),
            ("HERD_PLACES__CACHE_ENTRIES", "100"),
            ("HERD_PLACES__CACHE_MB", "1"),
            ("HERD_PLACES__CACHE_PRECISION", "0"),
            ("HERD_PLACES__MAX_CONCURRENT", "16"),
        ],
    );
    assert_eq!(
        config.places.cache,
        CacheSettings {
            ttl: Duration::from_secs(60),
            entries: 100,
            max_bytes: 1 << 20,
            precision: 0,
        }
    );
    assert_eq!(config.places.max_concurrent, 16);
}

#[test]
fn cost_controls_out_of_range_are_refused_naming_key_and_range() {
    let cases = [
        ("cache_ttl_s", "-1", "of seconds from 0 to 86400"),
        ("cache_ttl_s", "86401", "of seconds from 0 to 86400"),
        ("cache_entries", "0", "from 1 to 10000000"),
        ("cache_mb", "0", "of MiB from 1 to 65536"),
        ("cache_mb", "1.5", "of MiB from 1 to 65536"),
        ("cache_precision", "8", "of decimal places from 0 to 7"),
        ("max_concurrent", "0", "from 1 to 4096"),
        ("max_concurrent", "\"many\"", "from 1 to 4096"),
    ];
    for (key, bad, range) in cases {
        let (e, message) = refused(&with_places(&format!("{key} = {bad}")), &[]);
        assert!(matches!(e.fault(), Fault::BadValue { .. }), "{key}: {e:?}");
        assert!(
            message.starts_with(&format!("bad places.{key} {bad} in herd.toml")),
            "{message}"
        );
        assert!(
            message.ends_with(&format!("expected a whole number {range}")),
            "{message}"
        );
    }
}

#[test]
fn a_bad_cost_control_from_the_environment_names_the_variable() {
    let (e, message) = refused(TWO, &[("HERD_PLACES__MAX_CONCURRENT", "lots")]);
    assert!(matches!(e.fault(), Fault::BadEnv { .. }), "{e:?}");
    assert_eq!(
        message,
        "bad HERD_PLACES__MAX_CONCURRENT=\"lots\" in the environment (loading herd.toml): \
         expected a whole number from 1 to 4096"
    );
}
