//! The keys outside the server tables, read from the merged layers.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use config::{Map, Value, ValueKind};

use super::{describe, kind_of, SettingsError};
use crate::places::{ApiKey, CacheSettings, PlacesSettings, Provider, MAX_PRECISION};

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);
/// A day: beyond it a client would rather see an error than wait.
const MAX_TIMEOUT_MS: u64 = 86_400_000;
const DEFAULT_MAX_CONCURRENT: usize = 8;
/// Far more calls than Google's default per-minute quota would let through at once.
const MAX_CONCURRENT: u64 = 4096;
/// A day: places open, close and move; see docs/places.md on Google's terms for caching.
const MAX_TTL_S: u64 = 86_400;
const MAX_ENTRIES: u64 = 10_000_000;
/// 64 GiB: a bound that still means something.
const MAX_CACHE_MB: u64 = 65_536;

/// The merged settings, read key by key so each fault names its key and where it came from.
pub(super) struct Merged<'a> {
    pub(super) path: &'a Path,
    pub(super) root: Map<String, Value>,
    /// Which settings the environment set, and by which variable.
    pub(super) overridden: HashMap<String, String>,
}

impl Merged<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        match key.split_once('.') {
            None => self.root.get(key),
            Some((table, leaf)) => match &self.root.get(table)?.kind {
                ValueKind::Table(table) => table.get(leaf),
                _ => None,
            },
        }
    }

    /// A string setting; empty counts as unset.
    pub(super) fn string(&self, key: &str) -> Result<Option<String>, SettingsError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => match &value.kind {
                ValueKind::Nil => Ok(None),
                ValueKind::String(text) if text.is_empty() => Ok(None),
                ValueKind::String(text) => Ok(Some(text.clone())),
                // Only the kind, never the value: this may be the secret or the API key. (The
                // environment only holds strings, so the file is where it came from.)
                _ => Err(SettingsError::BadValue {
                    path: self.path.into(),
                    key: key.into(),
                    value: format!("({})", kind_of(value)),
                    expected: "a string".into(),
                }),
            },
        }
    }

    /// The value of `key` is wrong: say so, naming the variable if it came from the
    /// environment. Only for values that may be shown (never the secret or the API key).
    fn refuse(&self, key: &str, expected: &str) -> SettingsError {
        let value = self.get(key);
        match (self.overridden.get(key), value.map(|value| &value.kind)) {
            (Some(var), Some(ValueKind::String(text))) => SettingsError::BadEnv {
                path: self.path.into(),
                var: var.clone(),
                value: text.clone(),
                expected: expected.into(),
            },
            _ => SettingsError::BadValue {
                path: self.path.into(),
                key: key.into(),
                value: value.map(describe).unwrap_or_default(),
                expected: expected.into(),
            },
        }
    }

    pub(super) fn places(&self) -> Result<PlacesSettings, SettingsError> {
        let provider = match self.string("places.provider")?.as_deref() {
            None | Some("embedded") => Provider::Embedded,
            Some("google") => Provider::Google,
            Some("google-new") => Provider::GoogleNew,
            Some(_) => {
                return Err(
                    self.refuse("places.provider", r#""embedded", "google" or "google-new""#)
                )
            }
        };
        let base_url = match self.string("places.base_url")? {
            None if provider == Provider::GoogleNew => "https://places.googleapis.com".into(),
            None => "https://maps.googleapis.com".into(),
            Some(url) => self.base_url(&url)?,
        };
        let api_key = self.string("places.api_key")?.map(ApiKey::new);
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
        Ok(PlacesSettings {
            provider,
            base_url,
            api_key,
            timeout: self.timeout()?,
            cache: self.cache()?,
            max_concurrent: self
                .whole("places.max_concurrent", 1..=MAX_CONCURRENT, "")?
                .map_or(DEFAULT_MAX_CONCURRENT, as_usize),
        })
    }

    fn cache(&self) -> Result<CacheSettings, SettingsError> {
        let default = CacheSettings::default();
        Ok(CacheSettings {
            ttl: self
                .whole("places.cache_ttl_s", 0..=MAX_TTL_S, "seconds")?
                .map_or(default.ttl, Duration::from_secs),
            entries: self
                .whole("places.cache_entries", 1..=MAX_ENTRIES, "")?
                .map_or(default.entries, as_usize),
            max_bytes: self
                .whole("places.cache_mb", 1..=MAX_CACHE_MB, "MiB")?
                .map_or(default.max_bytes, |mb| as_usize(mb << 20)),
            precision: self
                .whole(
                    "places.cache_precision",
                    0..=MAX_PRECISION.into(),
                    "decimal places",
                )?
                .and_then(|p| u8::try_from(p).ok())
                .unwrap_or(default.precision),
        })
    }

    /// Scheme and host (a path is allowed, for a proxy), without the trailing `/` that would
    /// double up when the provider appends its own path.
    fn base_url(&self, url: &str) -> Result<String, SettingsError> {
        let trimmed = url.trim_end_matches('/');
        let host = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"));
        let valid = host.is_some_and(|host| {
            !host.is_empty()
                && !host.starts_with('/')
                && !host
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        });
        if valid {
            Ok(trimmed.into())
        } else {
            Err(self.refuse(
                "places.base_url",
                "an http:// or https:// URL, such as \"https://maps.googleapis.com\"",
            ))
        }
    }

    fn timeout(&self) -> Result<Duration, SettingsError> {
        let ms = self.whole("places.timeout_ms", 1..=MAX_TIMEOUT_MS, "milliseconds")?;
        Ok(ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis))
    }

    /// A whole number of `unit` (for the message) within `range`, from an integer in the
    /// file or digits in the environment; `None` when unset or empty.
    fn whole(
        &self,
        key: &str,
        range: RangeInclusive<u64>,
        unit: &str,
    ) -> Result<Option<u64>, SettingsError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let n = match &value.kind {
            ValueKind::I64(n) => u64::try_from(*n).ok(),
            ValueKind::U64(n) => Some(*n),
            ValueKind::String(n) if n.is_empty() => return Ok(None),
            ValueKind::String(n) if n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => {
                let of = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" of {unit}")
                };
                let (min, max) = (range.start(), range.end());
                Err(self.refuse(key, &format!("a whole number{of} from {min} to {max}")))
            }
        }
    }
}

/// Every bound above is far below `usize::MAX` on any platform the herd runs on (64-bit).
fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
