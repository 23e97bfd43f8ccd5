//! The typed structs -> the settings the actors use, each value checked once, here.
//!
//! A whole-number key ends in its unit (`_bytes`, `_kb`, `_mb`, `_ms`, `_s`), which a refusal
//! names.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env::EnvKeys;
use super::error::Fault;
use super::file::{bad, string, HerdFile, LimitsTable, PlacesTable, Raw, StoreTable, TlsTable};
use super::{servers, Limits, Secret, Settings, StoreSettings, TlsSettings};
use crate::places::{ApiKey, CacheSettings, PlacesSettings, Provider, MAX_PRECISION};

/// A key that takes a whole number: the key, its range and its default.
struct Whole(&'static str, RangeInclusive<u64>, u64);

/// A day at most: beyond it a client would rather see an error than wait.
const TIMEOUT_MS: Whole = Whole("places.timeout_ms", 1..=86_400_000, 5000);
/// A day at most: places open, close and move; see docs/places.md on Google's terms.
const CACHE_TTL_S: Whole = Whole("places.cache_ttl_s", 0..=86_400, 300);
const CACHE_ENTRIES: Whole = Whole("places.cache_entries", 1..=10_000_000, 10_000);
/// 64 GiB at most: a bound that still means something.
const CACHE_MB: Whole = Whole("places.cache_mb", 1..=65_536, 64);
const CACHE_PRECISION: Whole = Whole("places.cache_precision", 0..=MAX_PRECISION as u64, 4);
/// Far more calls than Google's default per-minute quota would let through at once.
const MAX_CONCURRENT: Whole = Whole("places.max_concurrent", 1..=4096, 8);
const MAX_LINE_BYTES: Whole = Whole("limits.max_line_bytes", 256..=32_768, 8192);
const MAX_CONNECTIONS: Whole = Whole("limits.max_connections", 0..=1_000_000, 0);
const MAX_CONNECTIONS_PER_IP: Whole = Whole("limits.max_connections_per_ip", 0..=1_000_000, 0);
const IDLE_TIMEOUT_S: Whole = Whole("limits.idle_timeout_s", 0..=86_400, 300);
const LINE_TIMEOUT_S: Whole = Whole("limits.line_timeout_s", 0..=3_600, 30);
const REPLY_WINDOW_KB: Whole = Whole("limits.reply_window_kb", 1..=65_536, 64);
const MAX_PENDING: Whole = Whole("limits.max_pending", 1..=65_536, 16);
const REPLY_BUDGET_MB: Whole = Whole("limits.reply_budget_mb", 1..=65_536, 64);
const PEER_HEARTBEAT_MS: Whole = Whole("limits.peer_heartbeat_ms", 50..=60_000, 1000);
const PEER_HANDSHAKE_MS: Whole = Whole("limits.peer_handshake_timeout_ms", 50..=60_000, 2000);
const PEER_QUEUE_MB: Whole = Whole("limits.peer_queue_mb", 1..=4096, 16);
/// A year at most; an hour by default: a phone's clock is rarely off by more, and a record
/// from further ahead would win over every later check-in of its client.
const MAX_CLOCK_AHEAD_S: Whole = Whole("limits.max_clock_ahead_s", 1..=31_622_400, 3600);
/// Event-loop threads for client sessions; 0: one per core the process may use.
const WORKERS: Whole = Whole("workers", 0..=1024, 0);
/// Ten years at most.
const MAX_AGE_S: Whole = Whole("store.max_age_s", 0..=315_360_000, 0);
const MAX_RECORDS: Whole = Whole("store.max_records", 0..=1_000_000_000, 0);

/// Checks the merged layers; a value the environment set is refused naming its variable.
pub(super) fn settings(path: &Path, env: &EnvKeys, file: HerdFile) -> Result<Settings, Fault> {
    let settings = || {
        let tls = tls(&file.tls.0)?;
        Ok(Settings {
            path: path.into(),
            servers: servers::servers(&file.servers, tls.as_ref())?,
            secret: string("secret", &file.secret)?.map(|s| Secret(s.into())),
            workers: match &file.workers {
                None => None,
                Some(_) => Some(whole(&WORKERS, &file.workers)?),
            },
            places: places(&file.places.0)?,
            log_dir: string("log.dir", &file.log.0.dir)?.unwrap_or("logs").into(),
            log_heartbeats: boolean("log.heartbeats", &file.log.0.heartbeats)?,
            limits: limits(&file.limits.0)?,
            store: store(&file.store.0)?,
            tls,
        })
    };
    settings().map_err(|fault| match fault {
        Fault::BadValue(key, value, expected) => match env.get(&key) {
            Some((var, value)) => Fault::BadEnv(var.clone(), value.clone(), expected),
            None => Fault::BadValue(key, value, expected),
        },
        other => other,
    })
}

/// A whole number in range (the default if unset or empty): an integer, or digits.
fn whole<T: TryFrom<u64>>(whole: &Whole, raw: &Option<Raw>) -> Result<T, Fault> {
    let Whole(key, range, default) = whole;
    let n = match raw {
        None => Some(*default),
        Some(Raw::Text(text)) if text.is_empty() => Some(*default),
        Some(Raw::Text(text)) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        Some(Raw::Integer(n)) => u64::try_from(*n).ok(),
        Some(_) => None,
    };
    let n = n
        .filter(|n| range.contains(n))
        .and_then(|n| T::try_from(n).ok());
    n.ok_or_else(|| {
        let (min, max) = (range.start(), range.end());
        let expected = format!("a whole number{} from {min} to {max}", unit(key));
        bad(key, raw.as_ref(), &expected)
    })
}

/// The unit a whole-number key is in, as its message names it.
fn unit(key: &str) -> &'static str {
    match key.rsplit('_').next() {
        Some("ms") => " of milliseconds",
        Some("s") => " of seconds",
        Some("bytes") => " of bytes",
        Some("kb") => " of KiB",
        Some("mb") => " of MiB",
        Some("precision") => " of decimal places",
        _ => "",
    }
}

/// `n`, unless it is 0, which turns a limit off.
fn unless_zero<T: Default + PartialEq>(n: T) -> Option<T> {
    (n != T::default()).then_some(n)
}

fn places(table: &PlacesTable) -> Result<PlacesSettings, Fault> {
    let provider = match string("places.provider", &table.provider)? {
        None | Some("embedded") => Provider::Embedded,
        Some("google") => Provider::Google,
        Some("google-new") => Provider::GoogleNew,
        Some(_) => {
            let expected = r#""embedded", "google" or "google-new""#;
            return Err(bad("places.provider", table.provider.as_ref(), expected));
        }
    };
    let base_url = match string("places.base_url", &table.base_url)? {
        None if provider == Provider::GoogleNew => "https://places.googleapis.com".into(),
        None => "https://maps.googleapis.com".into(),
        Some(url) => base_url(url).ok_or_else(|| {
            let expected = "an http:// or https:// URL, such as \"https://maps.googleapis.com\"";
            bad("places.base_url", table.base_url.as_ref(), expected)
        })?,
    };
    let api_key = string("places.api_key", &table.api_key)?.map(ApiKey::new);
    match (provider, &api_key) {
        (Provider::Google, None) => return Err(Fault::MissingApiKey("google")),
        (Provider::GoogleNew, None) => return Err(Fault::MissingApiKey("google-new")),
        _ => {}
    }
    let cache = CacheSettings {
        ttl: Duration::from_secs(whole(&CACHE_TTL_S, &table.cache_ttl_s)?),
        entries: whole(&CACHE_ENTRIES, &table.cache_entries)?,
        max_bytes: whole::<usize>(&CACHE_MB, &table.cache_mb)? << 20,
        precision: whole(&CACHE_PRECISION, &table.cache_precision)?,
    };
    Ok(PlacesSettings {
        provider,
        base_url,
        api_key,
        timeout: Duration::from_millis(whole(&TIMEOUT_MS, &table.timeout_ms)?),
        cache,
        max_concurrent: whole(&MAX_CONCURRENT, &table.max_concurrent)?,
    })
}

pub(super) fn limits(table: &LimitsTable) -> Result<Limits, Fault> {
    Ok(Limits {
        max_line: whole(&MAX_LINE_BYTES, &table.max_line_bytes)?,
        max_connections: unless_zero(whole(&MAX_CONNECTIONS, &table.max_connections)?),
        max_connections_per_ip: unless_zero(whole(
            &MAX_CONNECTIONS_PER_IP,
            &table.max_connections_per_ip,
        )?),
        idle_timeout: unless_zero(whole(&IDLE_TIMEOUT_S, &table.idle_timeout_s)?)
            .map(Duration::from_secs),
        line_timeout: unless_zero(whole(&LINE_TIMEOUT_S, &table.line_timeout_s)?)
            .map(Duration::from_secs),
        reply_window: whole::<usize>(&REPLY_WINDOW_KB, &table.reply_window_kb)? << 10,
        max_pending: whole(&MAX_PENDING, &table.max_pending)?,
        reply_budget: whole::<usize>(&REPLY_BUDGET_MB, &table.reply_budget_mb)? << 20,
        peer_heartbeat: Duration::from_millis(whole(&PEER_HEARTBEAT_MS, &table.peer_heartbeat_ms)?),
        peer_handshake_timeout: Duration::from_millis(whole(
            &PEER_HANDSHAKE_MS,
            &table.peer_handshake_timeout_ms,
        )?),
        peer_queue: whole::<usize>(&PEER_QUEUE_MB, &table.peer_queue_mb)? << 20,
        max_clock_ahead: Duration::from_secs(whole(&MAX_CLOCK_AHEAD_S, &table.max_clock_ahead_s)?),
    })
}

fn store(table: &StoreTable) -> Result<StoreSettings, Fault> {
    let dir = match &table.dir {
        // The one key where empty is not "unset": no directory, so no store on disk.
        Some(Raw::Text(dir)) if dir.is_empty() => None,
        raw => Some(string("store.dir", raw)?.unwrap_or("data").into()),
    };
    let fsync = boolean("store.fsync", &table.fsync)?;
    let max_age = unless_zero(whole(&MAX_AGE_S, &table.max_age_s)?).map(Duration::from_secs);
    Ok(StoreSettings {
        dir,
        fsync,
        max_age,
        max_records: unless_zero(whole(&MAX_RECORDS, &table.max_records)?),
    })
}

/// `true` or `false` (the default if unset or empty); from the environment, as text.
fn boolean(key: &str, raw: &Option<Raw>) -> Result<bool, Fault> {
    match raw.as_ref() {
        None => Ok(false),
        Some(Raw::Bool(on)) => Ok(*on),
        Some(Raw::Text(text)) if text == "true" => Ok(true),
        Some(Raw::Text(text)) if text == "false" || text.is_empty() => Ok(false),
        other => Err(bad(key, other, "true or false")),
    }
}

/// TLS is on when either key is set; the CA is `<dir>/ca.pem` unless set.
fn tls(table: &TlsTable) -> Result<Option<TlsSettings>, Fault> {
    let dir = string("tls.dir", &table.dir)?.map(PathBuf::from);
    let ca = string("tls.ca", &table.ca)?.map(PathBuf::from);
    let ca = ca.or_else(|| Some(dir.as_ref()?.join("ca.pem")));
    Ok(ca.map(|ca| TlsSettings { ca, dir }))
}

/// Scheme and host (a path is allowed, for a proxy), without the trailing `/` that would
/// double up when the provider appends its own path.
fn base_url(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))?;
    let unfit = |b: u8| b.is_ascii_whitespace() || b.is_ascii_control();
    let valid = !host.is_empty() && !host.starts_with('/') && !host.bytes().any(unfit);
    valid.then(|| trimmed.into())
}
