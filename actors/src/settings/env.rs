//! Which environment variables set which keys.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::error::Fault;
use super::file::HerdFile;

const GOOGLE_KEY_VAR: &str = "GOOGLE_PLACES_API_KEY";

/// Each key the environment sets, with the variable that set it and its value.
pub(super) type EnvKeys = HashMap<String, (String, String)>;

/// The process's variables that set a key; each must be UTF-8.
pub(super) fn process_vars() -> Result<Vec<(String, String)>, Fault> {
    let mut vars = Vec::new();
    for (var, value) in std::env::vars_os() {
        // Every variable we read has an ASCII name; others are not ours to judge.
        let ours = |var: &&str| *var == GOOGLE_KEY_VAR || key_of(var).is_some();
        if let Some(var) = var.to_str().filter(ours) {
            let Ok(value) = value.into_string() else {
                return Err(Fault::EnvNotUnicode(var.into()));
            };
            vars.push((var.into(), value));
        }
    }
    Ok(vars)
}

/// The keys `vars` set. An empty value sets nothing: empty means "not set".
pub(super) fn keys(vars: impl IntoIterator<Item = (String, String)>) -> EnvKeys {
    let (mut keys, mut google_key) = (EnvKeys::new(), None);
    for (var, value) in vars.into_iter().filter(|(_, value)| !value.is_empty()) {
        if var == GOOGLE_KEY_VAR {
            google_key = Some((var, value));
        } else if let Some(key) = key_of(&var) {
            keys.insert(key, (var, value));
        }
    }
    // `GOOGLE_PLACES_API_KEY` beats the file, but not `HERD_PLACES__API_KEY`.
    if let Some(google_key) = google_key {
        keys.entry("places.api_key".into()).or_insert(google_key);
    }
    keys
}

/// The key a `HERD_*` variable sets, matched without regard to case: `HERD_PLACES__API_KEY`
/// sets `places.api_key`. One that names no key (`HERD_SERVERS__*` among them) sets nothing.
fn key_of(var: &str) -> Option<String> {
    static KEYS: LazyLock<Vec<String>> = LazyLock::new(HerdFile::env_keys);
    let key = var
        .to_ascii_lowercase()
        .strip_prefix("herd_")?
        .replace("__", ".");
    KEYS.contains(&key).then_some(key)
}
