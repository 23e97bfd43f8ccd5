//! The typed structs -> the settings the actors use, each value checked once, here.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use super::file::{HerdFile, PlacesTable, Raw};
use super::{servers, Secret, Settings, SettingsError};
use crate::places::{ApiKey, CacheSettings, PlacesSettings, Provider, MAX_PRECISION};

const DEFAULT_LOG_DIR: &str = "logs";
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);
const DEFAULT_MAX_CONCURRENT: usize = 8;

/// A key that takes a whole number: the key, its range, and the unit its message names.
struct Whole(&'static str, RangeInclusive<u64>, Option<&'static str>);

/// A day at most: beyond it a client would rather see an error than wait.
const TIMEOUT_MS: Whole = Whole("places.timeout_ms", 1..=86_400_000, Some("milliseconds"));
/// A day at most: places open, close and move; see docs/places.md on Google's terms.
const CACHE_TTL_S: Whole = Whole("places.cache_ttl_s", 0..=86_400, Some("seconds"));
const CACHE_ENTRIES: Whole = Whole("places.cache_entries", 1..=10_000_000, None);
/// 64 GiB at most: a bound that still means something.
const CACHE_MB: Whole = Whole("places.cache_mb", 1..=65_536, Some("MiB"));
const CACHE_PRECISION: Whole = Whole(
    "places.cache_precision",
    0..=MAX_PRECISION as u64,
    Some("decimal places"),
);
/// Far more calls than Google's default per-minute quota would let through at once.
const MAX_CONCURRENT: Whole = Whole("places.max_concurrent", 1..=4096, None);

/// Checks the merged file, table by table; `env` maps each key the environment set to the
/// variable that set it, so that a refusal names what the operator must edit.
pub(super) fn settings(
    path: &Path,
    env: &HashMap<String, String>,
    file: HerdFile,
) -> Result<Settings, SettingsError> {
    let check = Check { path, env };
    let servers = servers::servers(path, file.servers)?;
    Ok(Settings {
        path: path.into(),
        secret: check.string("secret", &file.secret)?.map(Secret::new),
        places: check.places(&file.places.0)?,
        log_dir: check
            .string("log.dir", &file.log.0.dir)?
            .unwrap_or_else(|| DEFAULT_LOG_DIR.into())
            .into(),
        servers,
    })
}

/// Judges one value at a time, by its dotted key.
struct Check<'a> {
    path: &'a Path,
    env: &'a HashMap<String, String>,
}

impl Check<'_> {
    /// A string; empty counts as unset. Another kind is refused by its kind alone, since this
    /// may be the secret or the API key (the environment only holds strings, so the value
    /// came from the file).
    fn string(&self, key: &str, raw: &Option<Raw>) -> Result<Option<String>, SettingsError> {
        match raw {
            None => Ok(None),
            Some(Raw::Text(text)) => Ok(Some(text.clone()).filter(|text| !text.is_empty())),
            Some(other) => Err(SettingsError::BadValue {
                path: self.path.into(),
                key: key.into(),
                value: format!("({})", other.kind()),
                expected: "a string".into(),
            }),
        }
    }

    /// A whole number within range, from an integer in the file or digits in the
    /// environment; `None` when unset or empty.
    fn whole(&self, whole: &Whole, raw: &Option<Raw>) -> Result<Option<u64>, SettingsError> {
        let Whole(key, range, unit) = whole;
        let n = match raw {
            None => return Ok(None),
            Some(Raw::Text(text)) if text.is_empty() => return Ok(None),
            Some(Raw::Text(text)) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
            Some(Raw::Integer(n)) => u64::try_from(*n).ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => {
                let of = unit.map(|unit| format!(" of {unit}")).unwrap_or_default();
                let (min, max) = (range.start(), range.end());
                let expected = format!("a whole number{of} from {min} to {max}");
                Err(self.refuse(key, raw, &expected))
            }
        }
    }

    /// `raw`, the value of `key`, is wrong: say so, naming the variable if it came from the
    /// environment. Only for values that may be shown (never the secret or the API key).
    fn refuse(&self, key: &str, raw: &Option<Raw>, expected: &str) -> SettingsError {
        match (self.env.get(key), raw) {
            (Some(var), Some(Raw::Text(text))) => SettingsError::BadEnv {
                path: self.path.into(),
                var: var.clone(),
                value: text.clone(),
                expected: expected.into(),
            },
            _ => SettingsError::BadValue {
                path: self.path.into(),
                key: key.into(),
                value: raw.as_ref().map(Raw::shown).unwrap_or_default(),
                expected: expected.into(),
            },
        }
    }

    fn places(&self, table: &PlacesTable) -> Result<PlacesSettings, SettingsError> {
        let provider = match self.string("places.provider", &table.provider)?.as_deref() {
            None | Some("embedded") => Provider::Embedded,
            Some("google") => Provider::Google,
            Some("google-new") => Provider::GoogleNew,
            Some(_) => {
                let expected = r#""embedded", "google" or "google-new""#;
                return Err(self.refuse("places.provider", &table.provider, expected));
            }
        };
        let base_url = match self.string("places.base_url", &table.base_url)? {
            None if provider == Provider::GoogleNew => "https://places.googleapis.com".into(),
            None => "https://maps.googleapis.com".into(),
            Some(url) => base_url(&url).ok_or_else(|| {
                let expected =
                    "an http:// or https:// URL, such as \"https://maps.googleapis.com\"";
                self.refuse("places.base_url", &table.base_url, expected)
            })?,
        };
        let api_key = self.string("places.api_key", &table.api_key)?;
        let needs_key = match provider {
            Provider::Embedded => None,
            Provider::Google => Some("google"),
            Provider::GoogleNew => Some("google-new"),
        };
        if let (Some(provider), None) = (needs_key, &api_key) {
            return Err(SettingsError::MissingApiKey {
                path: self.path.into(),
                provider,
            });
        }
        let default = CacheSettings::default();
        let cache = CacheSettings {
            ttl: self
                .whole(&CACHE_TTL_S, &table.cache_ttl_s)?
                .map_or(default.ttl, Duration::from_secs),
            entries: self
                .whole(&CACHE_ENTRIES, &table.cache_entries)?
                .map_or(default.entries, as_usize),
            max_bytes: self
                .whole(&CACHE_MB, &table.cache_mb)?
                .map_or(default.max_bytes, |mb| as_usize(mb << 20)),
            precision: self
                .whole(&CACHE_PRECISION, &table.cache_precision)?
                .and_then(|p| u8::try_from(p).ok())
                .unwrap_or(default.precision),
        };
        Ok(PlacesSettings {
            provider,
            base_url,
            api_key: api_key.map(ApiKey::new),
            timeout: self
                .whole(&TIMEOUT_MS, &table.timeout_ms)?
                .map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            cache,
            max_concurrent: self
                .whole(&MAX_CONCURRENT, &table.max_concurrent)?
                .map_or(DEFAULT_MAX_CONCURRENT, as_usize),
        })
    }
}

/// Scheme and host (a path is allowed, for a proxy), without the trailing `/` that would
/// double up when the provider appends its own path.
fn base_url(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))?;
    let valid = !host.is_empty()
        && !host.starts_with('/')
        && !host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    valid.then(|| trimmed.into())
}

/// Every bound above is far below `usize::MAX` on any platform the herd runs on (64-bit).
fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
