//! `herd.toml` as serde reads it: one struct per table, each refusing keys it does not know.
//!
//! Every value is kept as written (a [`Raw`]) for validation to judge: the `config` crate's
//! own conversions would turn `cache_mb = 1.5` into 2 and `secret = 12345678` into a string.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use config::{Config, ConfigError};
use serde::de::{value::MapAccessDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::error::Fault;

/// The file, or the file with the environment over it: the same keys either way.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct HerdFile {
    pub(super) secret: Option<Raw>,
    pub(super) workers: Option<Raw>,
    pub(super) places: TomlTable<PlacesTable>,
    pub(super) log: TomlTable<LogTable>,
    pub(super) limits: TomlTable<LimitsTable>,
    pub(super) store: TomlTable<StoreTable>,
    pub(super) tls: TomlTable<TlsTable>,
    /// Never from the environment, so not serialized for [`HerdFile::env_keys`].
    #[serde(skip_serializing)]
    pub(super) servers: BTreeMap<String, TomlTable<ServerTable>>,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct PlacesTable {
    pub(super) provider: Option<Raw>,
    pub(super) base_url: Option<Raw>,
    pub(super) api_key: Option<Raw>,
    pub(super) timeout_ms: Option<Raw>,
    pub(super) cache_ttl_s: Option<Raw>,
    pub(super) cache_entries: Option<Raw>,
    pub(super) cache_mb: Option<Raw>,
    pub(super) cache_precision: Option<Raw>,
    pub(super) max_concurrent: Option<Raw>,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LogTable {
    pub(super) dir: Option<Raw>,
    pub(super) heartbeats: Option<Raw>,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LimitsTable {
    pub(super) max_line_bytes: Option<Raw>,
    pub(super) max_connections: Option<Raw>,
    pub(super) max_connections_per_ip: Option<Raw>,
    pub(super) idle_timeout_s: Option<Raw>,
    pub(super) line_timeout_s: Option<Raw>,
    pub(super) reply_window_kb: Option<Raw>,
    pub(super) max_pending: Option<Raw>,
    pub(super) reply_budget_mb: Option<Raw>,
    pub(super) peer_heartbeat_ms: Option<Raw>,
    pub(super) peer_handshake_timeout_ms: Option<Raw>,
    pub(super) peer_queue_mb: Option<Raw>,
    pub(super) max_clock_ahead_s: Option<Raw>,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct StoreTable {
    pub(super) dir: Option<Raw>,
    pub(super) fsync: Option<Raw>,
    pub(super) max_age_s: Option<Raw>,
    pub(super) max_records: Option<Raw>,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TlsTable {
    pub(super) dir: Option<Raw>,
    pub(super) ca: Option<Raw>,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ServerTable {
    pub(super) addr: Option<Raw>,
    pub(super) neighbours: Option<Raw>,
    pub(super) admin: Option<Raw>,
    pub(super) cert: Option<Raw>,
    pub(super) key: Option<Raw>,
}

/// A TOML table of `T`'s keys. (A derived struct would also take a list of values in field
/// order, so `places = ["google"]` would pass for a provider.)
#[derive(Default, Serialize)]
#[serde(transparent)]
pub(super) struct TomlTable<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TomlTable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TomlTableVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for TomlTableVisitor<T> {
            type Value = TomlTable<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TomlTable<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(TomlTable)
            }
        }
        deserializer.deserialize_map(TomlTableVisitor(PhantomData))
    }
}

/// A value as written in the file (or, always a string, in the environment).
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum Raw {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Raw>),
    Table(BTreeMap<String, Raw>),
}

impl Raw {
    /// The value as a message quotes it. Never for the secret or the API key: see `kind`.
    pub(super) fn shown(&self) -> String {
        match self {
            Raw::Text(text) => format!("{text:?}"),
            Raw::Integer(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Bool(b) => b.to_string(),
            Raw::List(_) | Raw::Table(_) => self.kind(),
        }
    }

    /// What sort of value this is, for messages that must not show the value itself.
    pub(super) fn kind(&self) -> String {
        let kind = match self {
            Raw::Text(_) => "a string",
            Raw::Integer(_) => "an integer",
            Raw::Float(_) => "a number",
            Raw::Bool(_) => "a boolean",
            Raw::List(_) => "a list",
            Raw::Table(_) => "a table",
        };
        format!("({kind})")
    }
}

/// A string, `None` if unset or empty. Any other value is refused by its kind alone, as
/// this may be the secret.
pub(super) fn string<'r>(key: &str, raw: &'r Option<Raw>) -> Result<Option<&'r str>, Fault> {
    match raw {
        None => Ok(None),
        Some(Raw::Text(text)) => Ok(Some(text.as_str()).filter(|text| !text.is_empty())),
        Some(other) => Err(Fault::BadValue(key.into(), other.kind(), "a string".into())),
    }
}

/// `raw`, the value of `key`, is not what it should be. Never for a secret.
pub(super) fn bad(key: &str, raw: Option<&Raw>, expected: &str) -> Fault {
    let value = raw.map(Raw::shown).unwrap_or_default();
    Fault::BadValue(key.into(), value, expected.into())
}

impl HerdFile {
    /// `layers` as typed structs. serde itself refuses only an unknown key or a table that is
    /// not a table, since a [`Raw`] takes any value.
    pub(super) fn read(layers: &Config) -> Result<HerdFile, Fault> {
        layers.clone().try_deserialize().map_err(|error| {
            // `config` names the table at fault; serde's message names an unknown key.
            let (table, message) = match error {
                ConfigError::At { error, key, .. } => (key.unwrap_or_default(), error.to_string()),
                other => (String::new(), other.to_string()),
            };
            if let Some(rest) = message.strip_prefix("unknown field `") {
                let field = rest.split('`').next().unwrap_or_default();
                let key = [table.as_str(), field].join(".");
                return Fault::UnknownKey(key.trim_start_matches('.').into());
            }
            // A server's name may hold dots, which `Config::get` would read as a path.
            let (outer, server) = table.split_once('.').unwrap_or((&table, ""));
            let value = match (layers.get::<Raw>(outer), server) {
                (Ok(value), "") => value.shown(),
                (Ok(Raw::Table(servers)), _) => {
                    servers.get(server).map(Raw::shown).unwrap_or_default()
                }
                _ => String::new(),
            };
            let expected = match (outer, server) {
                ("servers", "") => "[servers.NAME] tables".into(),
                ("servers", _) => "a [servers.NAME] table with addr and neighbours".into(),
                _ => format!("a [{table}] table"),
            };
            Fault::BadValue(table, value, expected)
        })
    }

    /// The dotted keys (`places.provider`) the environment may set: every key outside the
    /// server tables, read off the structs so that a new field can be set at once.
    pub(super) fn env_keys() -> Vec<String> {
        // Cannot fail: every key is a string, and every unset value a `null`.
        let Ok(serde_json::Value::Object(top)) = serde_json::to_value(HerdFile::default()) else {
            return Vec::new();
        };
        let keys = top.into_iter().flat_map(|(key, value)| match value {
            serde_json::Value::Object(table) => {
                table.keys().map(|k| format!("{key}.{k}")).collect()
            }
            _ => vec![key],
        });
        keys.collect()
    }
}
