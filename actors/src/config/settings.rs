//! The keys outside the server tables, read from the merged layers.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ::config::{Map, Value, ValueKind};

use super::{describe, kind_of, ConfigError};
use crate::places::{ApiKey, PlacesSettings, Provider};

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// The merged settings, read key by key so each fault names its key and where it came from.
pub(super) struct Settings<'a> {
    pub(super) path: &'a Path,
    pub(super) root: Map<String, Value>,
    /// Which settings the environment set, and by which variable.
    pub(super) overridden: HashMap<String, String>,
}

impl Settings<'_> {
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
    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => match &value.kind {
                ValueKind::Nil => Ok(None),
                ValueKind::String(text) if text.is_empty() => Ok(None),
                ValueKind::String(text) => Ok(Some(text.clone())),
                // Only the kind, never the value: this may be the secret or the API key. (The
                // environment only holds strings, so the file is where it came from.)
                _ => Err(ConfigError::BadValue {
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
    fn refuse(&self, key: &str, expected: &str) -> ConfigError {
        let value = self.get(key);
        match (self.overridden.get(key), value.map(|value| &value.kind)) {
            (Some(var), Some(ValueKind::String(text))) => ConfigError::BadEnv {
                path: self.path.into(),
                var: var.clone(),
                value: text.clone(),
                expected: expected.into(),
            },
            _ => ConfigError::BadValue {
                path: self.path.into(),
                key: key.into(),
                value: value.map(describe).unwrap_or_default(),
                expected: expected.into(),
            },
        }
    }

    pub(super) fn places(&self) -> Result<PlacesSettings, ConfigError> {
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
            return Err(ConfigError::MissingApiKey {
                path: self.path.into(),
                provider,
            });
        }
        Ok(PlacesSettings {
            provider,
            base_url,
            api_key,
            timeout: self.timeout()?,
        })
    }

    /// Scheme and host (a path is allowed, for a proxy), without the trailing `/` that would
    /// double up when the provider appends its own path.
    fn base_url(&self, url: &str) -> Result<String, ConfigError> {
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

    fn timeout(&self) -> Result<Duration, ConfigError> {
        const KEY: &str = "places.timeout_ms";
        let Some(value) = self.get(KEY) else {
            return Ok(DEFAULT_TIMEOUT);
        };
        let ms = match &value.kind {
            ValueKind::I64(ms) => u64::try_from(*ms).ok(),
            ValueKind::U64(ms) => Some(*ms),
            ValueKind::String(ms) if ms.is_empty() => return Ok(DEFAULT_TIMEOUT),
            ValueKind::String(ms) if ms.bytes().all(|b| b.is_ascii_digit()) => ms.parse().ok(),
            _ => None,
        };
        match ms {
            Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(self.refuse(KEY, "a whole number of milliseconds, at least 1")),
        }
    }
}
