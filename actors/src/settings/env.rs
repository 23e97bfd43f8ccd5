//! The environment's part: which variables set which keys.

use std::collections::HashMap;
use std::sync::LazyLock;

use config::{Environment, Map};

use super::file::HerdFile;

const GOOGLE_KEY_VAR: &str = "GOOGLE_PLACES_API_KEY";

/// Whether the herd reads `var`: a `HERD_*` variable that names a key, matched without
/// regard to case as the `config` crate does, or `GOOGLE_PLACES_API_KEY`.
pub(super) fn is_read(var: &str) -> bool {
    var == GOOGLE_KEY_VAR || herd_var_key(var).is_some()
}

fn herd_var_key(var: &str) -> Option<String> {
    static KEYS: LazyLock<Vec<String>> = LazyLock::new(HerdFile::env_keys);
    let lower = var.to_ascii_lowercase();
    let key = lower.strip_prefix("herd_")?.replace("__", ".");
    KEYS.contains(&key).then_some(key)
}

/// The variables that set a key, as a `config` source to go over the file, and each key
/// they set with the variable that set it, for messages. Empty values are left out: empty
/// means "not set".
pub(super) fn layer(
    env: impl IntoIterator<Item = (String, String)>,
) -> (Environment, HashMap<String, String>) {
    let (mut vars, mut keys) = (Map::new(), HashMap::new());
    let mut google_key = None;
    for (var, value) in env.into_iter().filter(|(_, value)| !value.is_empty()) {
        if var == GOOGLE_KEY_VAR {
            google_key = Some(value);
        } else if let Some(key) = herd_var_key(&var) {
            keys.insert(key, var.clone());
            vars.insert(var, value);
        }
    }
    // `GOOGLE_PLACES_API_KEY` beats the file, but not `HERD_PLACES__API_KEY`.
    if let Some(google_key) = google_key.filter(|_| !keys.contains_key("places.api_key")) {
        keys.insert("places.api_key".into(), GOOGLE_KEY_VAR.into());
        vars.insert("HERD_PLACES__API_KEY".into(), google_key);
    }
    let source = Environment::with_prefix("HERD")
        .prefix_separator("_")
        .separator("__")
        .source(Some(vars));
    (source, keys)
}
