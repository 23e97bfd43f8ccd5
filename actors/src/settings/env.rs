//! The environment's part: which variables set which keys, as `config` crate layers.

use std::collections::HashMap;

use config::{Map, Source, Value};

use super::leaf_keys;

pub(super) const GOOGLE_KEY_VAR: &str = "GOOGLE_PLACES_API_KEY";

/// The setting (`places.provider`) a `HERD_*` variable overrides, matched without regard
/// to case as the `config` crate does; `None` for variables that name no setting.
pub(super) fn herd_var_key(var: &str) -> Option<String> {
    let lower = var.to_ascii_lowercase();
    let key = lower.strip_prefix("herd_")?.replace("__", ".");
    let (table, leaf) = key.rsplit_once('.').unwrap_or(("", &key));
    leaf_keys(table).contains(&leaf).then_some(key)
}

/// The environment, cut down to the variables that set something.
pub(super) struct EnvLayer {
    /// `HERD_*` variables naming a setting, with a value, for the `config` crate.
    pub(super) herd_vars: Map<String, String>,
    /// Which settings the environment set, and by which variable, for messages.
    pub(super) overridden: HashMap<String, String>,
    pub(super) google_key: Option<String>,
}

impl EnvLayer {
    pub(super) fn new(env: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut layer = EnvLayer {
            herd_vars: Map::new(),
            overridden: HashMap::new(),
            google_key: None,
        };
        for (var, value) in env {
            if value.is_empty() {
                continue;
            }
            if var == GOOGLE_KEY_VAR {
                layer.google_key = Some(value);
            } else if let Some(key) = herd_var_key(&var) {
                layer.overridden.insert(key, var.clone());
                layer.herd_vars.insert(var, value);
            }
        }
        layer
    }
}

/// `GOOGLE_PLACES_API_KEY` as a `config` layer between the file and the `HERD_*` variables.
#[derive(Clone)]
pub(super) struct GoogleKeyVar(pub(super) Option<String>);

impl std::fmt::Debug for GoogleKeyVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GoogleKeyVar(<redacted>)")
    }
}

impl Source for GoogleKeyVar {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let origin = GOOGLE_KEY_VAR.to_string();
        Ok(self
            .0
            .iter()
            .map(|key| {
                let value = Value::new(Some(&origin), key.as_str());
                ("places.api_key".to_string(), value)
            })
            .collect())
    }
}
