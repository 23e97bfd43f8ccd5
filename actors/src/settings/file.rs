//! `herd.toml` as serde reads it: one struct per table, each refusing keys it does not know.
//!
//! Every value is kept as written (a [`Raw`]) for validation to judge: the `config` crate's
//! own conversions would turn `cache_mb = 1.5` into 2 and `secret = 12345678` into a string,
//! where the operator must hear what is wrong with what they wrote.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use config::{Config, ConfigError};
use serde::de::{value::MapAccessDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::SettingsError;

/// The whole file, and the file merged with the environment: the same keys either way.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct HerdFile {
    pub(super) secret: Option<Raw>,
    pub(super) places: Table<PlacesTable>,
    pub(super) log: Table<LogTable>,
    /// Never from the environment, so left out of [`HerdFile::env_keys`].
    #[serde(skip_serializing)]
    pub(super) servers: BTreeMap<String, Table<ServerTable>>,
}

/// `[places]`: see the shipped `herd.toml` for what each key means.
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

/// `[log]`.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LogTable {
    pub(super) dir: Option<Raw>,
}

/// `[servers.NAME]`.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ServerTable {
    pub(super) addr: Option<Raw>,
    pub(super) neighbours: Option<Raw>,
}

/// A TOML table holding `T`'s keys. (serde's derived structs would also take a list of
/// values in field order, so `places = ["google"]` would pass for a provider.)
#[derive(Default, Serialize)]
#[serde(transparent)]
pub(super) struct Table<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for TableVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(TableVisitor(PhantomData))
            .map(Table)
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
    /// The value as a message quotes it: strings quoted, numbers as written, lists and
    /// tables by kind. Never for the secret or the API key.
    pub(super) fn shown(&self) -> String {
        match self {
            Raw::Text(text) => format!("{text:?}"),
            Raw::Integer(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Bool(b) => b.to_string(),
            Raw::List(_) | Raw::Table(_) => format!("({})", self.kind()),
        }
    }

    /// What sort of value this is, for messages that must not show the value itself.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Raw::Text(_) => "a string",
            Raw::Integer(_) => "an integer",
            Raw::Float(_) => "a number",
            Raw::Bool(_) => "a boolean",
            Raw::List(_) => "a list",
            Raw::Table(_) => "a table",
        }
    }
}

impl HerdFile {
    /// `layers` (the file, or the file with the environment over it) as typed structs. What
    /// serde refuses itself is an unknown key or a table that is not a table (every value is
    /// a [`Raw`], which takes anything).
    pub(super) fn read(path: &Path, layers: &Config) -> Result<HerdFile, SettingsError> {
        layers.clone().try_deserialize().map_err(|error| {
            // `config` names the table the fault is in; serde's message names an unknown key.
            let (table, message) = match error {
                ConfigError::At { error, key, .. } => (key.unwrap_or_default(), error.to_string()),
                other => (String::new(), other.to_string()),
            };
            if let Some(rest) = message.strip_prefix("unknown field `") {
                let field = rest.split('`').next().unwrap_or_default();
                return SettingsError::UnknownKey {
                    path: path.into(),
                    key: join(&table, field),
                };
            }
            let value = lookup(layers, &table).map(|value| value.shown());
            SettingsError::BadValue {
                path: path.into(),
                expected: match table.split_once('.') {
                    None if table == "servers" => "[servers.NAME] tables".into(),
                    None => format!("a [{table}] table"),
                    Some(_) => "a [servers.NAME] table with addr and neighbours".into(),
                },
                key: table,
                value: value.unwrap_or_default(),
            }
        })
    }

    /// The dotted keys (`places.provider`) the environment may set: every key outside the
    /// server tables, read off the structs so that a new field can be set at once.
    pub(super) fn env_keys() -> Vec<String> {
        fn leaves(prefix: &str, value: &serde_json::Value, keys: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(table) => table
                    .iter()
                    .for_each(|(key, value)| leaves(&join(prefix, key), value, keys)),
                _ => keys.push(prefix.into()),
            }
        }
        let mut keys = Vec::new();
        // Every value left unset is a `null` leaf; this cannot fail, as every key is a string.
        if let Ok(tree) = serde_json::to_value(HerdFile::default()) {
            leaves("", &tree, &mut keys);
        }
        keys
    }
}

/// The value under `key`: a table or a table in a table (a server's name may hold dots).
fn lookup(layers: &Config, key: &str) -> Option<Raw> {
    let Raw::Table(mut root) = layers.clone().try_deserialize().ok()? else {
        return None;
    };
    match key.split_once('.') {
        None => root.remove(key),
        Some((table, key)) => match root.remove(table)? {
            Raw::Table(mut table) => table.remove(key),
            _ => None,
        },
    }
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.into()
    } else {
        format!("{table}.{key}")
    }
}
