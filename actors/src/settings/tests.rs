use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::Fault;
use super::{cores, Secret, ServerSettings, Settings, SettingsError};
use crate::places::Provider;

/// Two servers, the smallest herd with a link, listed on one side only.
pub(super) const TWO: &str = r#"
[servers.Hill]
addr = "127.0.0.1:12000"
neighbours = ["Jaquez"]

[servers.Jaquez]
addr = "127.0.0.1:12001"
"#;

struct Written {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write(text: &str) -> Written {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("herd.toml");
    std::fs::write(&path, text).expect("herd.toml written");
    Written { _dir: dir, path }
}

fn load_at(path: &Path, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::load_with_env(path, env)
}

pub(super) fn loaded(text: &str, env: &[(&str, &str)]) -> Settings {
    let file = write(text);
    load_at(&file.path, env).unwrap_or_else(|e| panic!("refused: {e}"))
}

/// The error, and its message with the temporary path replaced by `herd.toml`.
pub(super) fn refused(text: &str, env: &[(&str, &str)]) -> (SettingsError, String) {
    let file = write(text);
    match load_at(&file.path, env) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => {
            let message = e
                .to_string()
                .replace(&file.path.display().to_string(), "herd.toml");
            (e, message)
        }
    }
}

pub(super) fn with_places(places: &str) -> String {
    with_table("places", places)
}

/// `keys` under `[table]`, in the two-server herd.
pub(super) fn with_table(table: &str, keys: &str) -> String {
    format!("[{table}]\n{keys}\n{TWO}")
}

#[test]
fn defaults_fill_in_everything_but_the_servers() {
    let config = loaded(TWO, &[]);
    assert!(config.secret.is_none());
    assert_eq!(config.places.provider, Provider::Embedded);
    assert_eq!(config.places.base_url, "https://maps.googleapis.com");
    assert!(config.places.api_key.is_none());
    assert_eq!(config.places.timeout, Duration::from_millis(5000));
    assert_eq!(config.log_dir, PathBuf::from("logs"));
}

#[test]
fn links_listed_on_one_side_are_links_on_both() {
    let config = loaded(TWO, &[]);
    let expected = vec![
        ServerSettings {
            name: "Hill".into(),
            addr: "127.0.0.1:12000".parse().expect("an address"),
            neighbours: vec!["Jaquez".into()],
            admin: None,
            cert: None,
            key: None,
        },
        ServerSettings {
            name: "Jaquez".into(),
            addr: "127.0.0.1:12001".parse().expect("an address"),
            neighbours: vec!["Hill".into()],
            admin: None,
            cert: None,
            key: None,
        },
    ];
    assert_eq!(config.servers, expected);
}

#[test]
fn servers_come_sorted_by_name_with_sorted_unique_neighbours() {
    let config = loaded(
        r#"
        [servers.c]
        addr = "127.0.0.1:3"
        neighbours = ["b", "a", "b"]
        [servers.a]
        addr = "127.0.0.1:1"
        neighbours = ["c"]
        [servers.b]
        addr = "127.0.0.1:2"
        "#,
        &[],
    );
    let shape: Vec<(&str, Vec<&str>)> = config
        .servers
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.neighbours.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [("a", vec!["c"]), ("b", vec!["c"]), ("c", vec!["a", "b"])]
    );
}

#[test]
fn server_names_keep_their_case() {
    let config = loaded(TWO, &[]);
    assert_eq!(
        config.server("Hill").map(|s| s.name.as_str()).ok(),
        Some("Hill")
    );
    assert!(config.server("hill").is_err());
}

#[test]
fn asking_for_a_missing_server_lists_the_ones_there_are() {
    let file = write(TWO);
    let config = load_at(&file.path, &[]).expect("loads");
    let message = config.server("Smith").map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "no server named 'Smith' in {} (servers: Hill, Jaquez)",
            file.path.display()
        )
    );
}

#[test]
fn an_empty_secret_is_no_secret() {
    let config = loaded(&format!("secret = \"\"\n{TWO}"), &[]);
    assert!(config.secret.is_none());
}

#[test]
fn the_secret_comes_from_the_file_or_herd_secret() {
    let text = format!("secret = \"from-file\"\n{TWO}");
    let from_file = loaded(&text, &[]);
    assert_eq!(from_file.secret, Some(Secret("from-file".into())));
    let from_env = loaded(&text, &[("HERD_SECRET", "from-env")]);
    assert_eq!(
        from_env.secret.as_ref().map(|s| s.expose()),
        Some("from-env")
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let text = format!("secret = \"hush-secret\"\n{TWO}");
    let config = loaded(&text, &[("GOOGLE_PLACES_API_KEY", "hush-key")]);
    let debug = format!("{config:?}");
    assert!(!debug.contains("hush"), "{debug}");
}

#[test]
fn a_secret_of_the_wrong_type_is_refused_without_showing_it() {
    let (e, message) = refused(&format!("secret = 12345678\n{TWO}"), &[]);
    assert!(matches!(e.fault(), Fault::BadValue { .. }), "{e:?}");
    assert!(!message.contains("12345678"), "{message}");
    assert_eq!(
        message,
        "bad secret (an integer) in herd.toml: expected a string"
    );
}

#[test]
fn the_places_table_is_read() {
    let config = loaded(
        &with_places(
            r#"provider = "google"
            base_url = "http://127.0.0.1:9999/"
            api_key = "file-key"
            timeout_ms = 250"#,
        ),
        &[],
    );
    assert_eq!(config.places.provider, Provider::Google);
    assert_eq!(config.places.base_url, "http://127.0.0.1:9999");
    assert_eq!(
        config.places.api_key.as_ref().map(|k| k.expose()),
        Some("file-key")
    );
    assert_eq!(config.places.timeout, Duration::from_millis(250));
}

#[test]
fn each_google_provider_has_its_own_default_base_url() {
    let key = [("GOOGLE_PLACES_API_KEY", "k")];
    let google = loaded(&with_places(r#"provider = "google""#), &key);
    assert_eq!(google.places.base_url, "https://maps.googleapis.com");
    let new = loaded(&with_places(r#"provider = "google-new""#), &key);
    assert_eq!(new.places.provider, Provider::GoogleNew);
    assert_eq!(new.places.base_url, "https://places.googleapis.com");
}

#[test]
fn the_api_key_comes_from_herd_var_then_google_var_then_file() {
    let text = with_places(r#"api_key = "file""#);
    let key = |env: &[(&str, &str)]| {
        let config = loaded(&text, env);
        config.places.api_key.map(|k| k.expose().to_string())
    };
    let both = [
        ("HERD_PLACES__API_KEY", "herd"),
        ("GOOGLE_PLACES_API_KEY", "google"),
    ];
    assert_eq!(key(&both).as_deref(), Some("herd"));
    assert_eq!(key(&both[1..]).as_deref(), Some("google"));
    assert_eq!(key(&[]).as_deref(), Some("file"));
    let empty_herd = [
        ("HERD_PLACES__API_KEY", ""),
        ("GOOGLE_PLACES_API_KEY", "google"),
    ];
    assert_eq!(key(&empty_herd).as_deref(), Some("google"));
}

#[test]
fn an_empty_api_key_is_no_api_key() {
    let config = loaded(
        &with_places(r#"api_key = """#),
        &[("GOOGLE_PLACES_API_KEY", "")],
    );
    assert!(config.places.api_key.is_none());
}

#[test]
fn google_providers_without_a_key_are_refused_with_how_to_set_one() {
    for provider in ["google", "google-new"] {
        let (e, message) = refused(&with_places(&format!("provider = \"{provider}\"")), &[]);
        assert!(matches!(e.fault(), Fault::MissingApiKey(..)), "{e:?}");
        for hint in [
            "GOOGLE_PLACES_API_KEY",
            "HERD_PLACES__API_KEY",
            "api_key",
            "herd.toml",
        ] {
            assert!(message.contains(hint), "{message}");
        }
        assert!(message.contains(provider), "{message}");
    }
}

#[test]
fn an_unknown_provider_is_refused_naming_it() {
    let (_, message) = refused(&with_places(r#"provider = "bing""#), &[]);
    assert_eq!(
        message,
        r#"bad places.provider "bing" in herd.toml: expected "embedded", "google" or "google-new""#
    );
}

#[test]
fn base_urls_must_be_http_or_https() {
    for url in [
        "ftp://example.com",
        "maps.googleapis.com",
        "https://",
        "https:///x",
        "http://a b",
    ] {
        let (e, message) = refused(&with_places(&format!("base_url = \"{url}\"")), &[]);
        assert!(matches!(e.fault(), Fault::BadValue { .. }), "{url}: {e:?}");
        assert!(message.starts_with("bad places.base_url"), "{message}");
    }
}

#[test]
fn timeouts_must_be_whole_milliseconds_from_1_to_a_day() {
    for bad in ["0", "-5", "1.5", "\"soon\"", "86400001"] {
        let (e, message) = refused(&with_places(&format!("timeout_ms = {bad}")), &[]);
        assert!(matches!(e.fault(), Fault::BadValue { .. }), "{bad}: {e:?}");
        assert!(message.starts_with("bad places.timeout_ms"), "{message}");
    }
}

#[test]
fn the_environment_overrides_every_key_outside_the_servers() {
    let text = format!(
        "secret = \"s\"\n[log]\ndir = \"file-logs\"\n{}",
        with_places(r#"provider = "embedded""#)
    );
    let config = loaded(
        &text,
        &[
            ("HERD_PLACES__PROVIDER", "google-new"),
            ("HERD_PLACES__BASE_URL", "http://127.0.0.1:8000/"),
            ("HERD_PLACES__API_KEY", "k"),
            ("HERD_PLACES__TIMEOUT_MS", "3000"),
            ("HERD_LOG__DIR", "/var/log/herd"),
            ("HERD_SECRET", "t"),
        ],
    );
    assert_eq!(config.places.provider, Provider::GoogleNew);
    assert_eq!(config.places.base_url, "http://127.0.0.1:8000");
    assert_eq!(config.places.timeout, Duration::from_secs(3));
    assert_eq!(config.log_dir, PathBuf::from("/var/log/herd"));
    assert_eq!(config.secret.as_ref().map(|s| s.expose()), Some("t"));
}

#[test]
fn heartbeats_stay_out_of_the_log_unless_a_key_turns_them_on() {
    assert!(!loaded(TWO, &[]).log_heartbeats);
    assert!(loaded(&with_table("log", "heartbeats = true"), &[]).log_heartbeats);
    let env = [("HERD_LOG__HEARTBEATS", "true")];
    assert!(loaded(TWO, &env).log_heartbeats);
    let (_, message) = refused(&with_table("log", "heartbeats = \"yes\""), &[]);
    assert_eq!(
        message,
        "bad log.heartbeats \"yes\" in herd.toml: expected true or false"
    );
}

#[test]
fn environment_names_match_without_regard_to_case() {
    let config = loaded(TWO, &[("herd_log__dir", "lower")]);
    assert_eq!(config.log_dir, PathBuf::from("lower"));
}

#[test]
fn an_empty_variable_leaves_the_file_value() {
    let config = loaded(
        &format!("[log]\ndir = \"kept\"\n{TWO}"),
        &[("HERD_LOG__DIR", "")],
    );
    assert_eq!(config.log_dir, PathBuf::from("kept"));
}

#[test]
fn herd_variables_that_name_no_key_are_ignored() {
    let config = loaded(
        TWO,
        &[
            ("HERD_FOO", "1"),
            ("HERD_PLACES__PROVDER", "google"),
            ("HERD_PLACES", "google"),
            ("HERD_LOG", "x"),
            ("HERD_", "x"),
            ("HERDSECRET", "x"),
        ],
    );
    assert_eq!(config.places.provider, Provider::Embedded);
    assert_eq!(config.log_dir, PathBuf::from("logs"));
    assert!(config.secret.is_none());
}

#[test]
fn the_environment_cannot_touch_the_servers() {
    let config = loaded(
        TWO,
        &[
            ("HERD_SERVERS__HILL__ADDR", "127.0.0.1:1"),
            ("HERD_SERVERS__Hill__ADDR", "127.0.0.1:1"),
            ("HERD_SERVERS__EVE__ADDR", "127.0.0.1:2"),
            ("HERD_SERVERS", "x"),
        ],
    );
    assert_eq!(loaded(TWO, &[]).servers, config.servers);
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let (e, message) = refused(TWO, &[("HERD_PLACES__TIMEOUT_MS", "soon")]);
    assert!(matches!(e.fault(), Fault::BadEnv { .. }), "{e:?}");
    assert_eq!(
        message,
        "bad HERD_PLACES__TIMEOUT_MS=\"soon\" in the environment (loading herd.toml): \
         expected a whole number of milliseconds from 1 to 86400000"
    );
    let (_, message) = refused(TWO, &[("HERD_PLACES__PROVIDER", "bing")]);
    assert!(
        message.starts_with("bad HERD_PLACES__PROVIDER=\"bing\""),
        "{message}"
    );
}

#[test]
fn unknown_keys_are_refused_naming_them() {
    let cases = [
        (format!("secrt = \"x\"\n{TWO}"), "secrt"),
        (with_places(r#"provder = "google""#), "places.provder"),
        (format!("[log]\ndirectory = \"x\"\n{TWO}"), "log.directory"),
        (format!("[misc]\na = 1\n{TWO}"), "misc"),
        (format!("{TWO}\nport = 1\n"), "servers.Jaquez.port"),
    ];
    for (text, key) in cases {
        let (e, message) = refused(&text, &[]);
        assert!(matches!(e.fault(), Fault::UnknownKey(..)), "{key}: {e:?}");
        assert_eq!(message, format!("unknown key '{key}' in herd.toml"));
    }
}

#[test]
fn a_section_that_is_not_a_table_is_refused() {
    let (e, message) = refused(&format!("places = \"google\"\n{TWO}"), &[]);
    assert!(matches!(e.fault(), Fault::BadValue { .. }), "{e:?}");
    assert_eq!(
        message,
        "bad places \"google\" in herd.toml: expected a [places] table"
    );
}

#[test]
fn an_unknown_neighbour_is_refused() {
    let (e, message) = refused(&TWO.replace("[\"Jaquez\"]", "[\"Jaques\"]"), &[]);
    assert!(matches!(e.fault(), Fault::UnknownNeighbour { .. }), "{e:?}");
    assert_eq!(
        message,
        "server 'Hill' lists unknown neighbour 'Jaques' in herd.toml"
    );
}

#[test]
fn neighbour_names_are_case_sensitive() {
    let (e, _) = refused(&TWO.replace("[\"Jaquez\"]", "[\"jaquez\"]"), &[]);
    assert!(matches!(e.fault(), Fault::UnknownNeighbour { .. }), "{e:?}");
}

#[test]
fn a_server_neighbouring_itself_is_refused() {
    let (e, message) = refused(&TWO.replace("[\"Jaquez\"]", "[\"Hill\"]"), &[]);
    assert!(matches!(e.fault(), Fault::SelfNeighbour(..)), "{e:?}");
    assert_eq!(
        message,
        "server 'Hill' lists itself as a neighbour in herd.toml"
    );
}

#[test]
fn a_duplicate_address_is_refused() {
    let (e, message) = refused(&TWO.replace("12001", "12000"), &[]);
    assert!(matches!(e.fault(), Fault::DuplicateAddr { .. }), "{e:?}");
    assert_eq!(
        message,
        "servers 'Hill' and 'Jaquez' have the same addr 127.0.0.1:12000 in herd.toml"
    );
}

#[test]
fn bad_addresses_are_refused_naming_server_and_address() {
    for addr in [
        "\"localhost:12000\"",
        "\"127.0.0.1\"",
        "\"127.0.0.1:0\"",
        "12000",
        "\"\"",
    ] {
        let (e, message) = refused(&TWO.replace("\"127.0.0.1:12001\"", addr), &[]);
        assert!(matches!(e.fault(), Fault::BadAddr { .. }), "{addr}: {e:?}");
        assert!(
            message.starts_with(&format!("server 'Jaquez' has a bad addr {addr:?}"))
                || message.starts_with(&format!("server 'Jaquez' has a bad addr {addr}")),
            "{message}"
        );
    }
}

#[test]
fn ipv6_addresses_are_accepted() {
    let config = loaded(&TWO.replace("127.0.0.1:12001", "[::1]:12001"), &[]);
    let jaquez = config.server("Jaquez").expect("Jaquez");
    assert_eq!(jaquez.addr, "[::1]:12001".parse().expect("an address"));
}

/// `TWO`, with `admin` lines for Hill and Jaquez where given.
fn with_admins(hill: Option<&str>, jaquez: Option<&str>) -> String {
    let admin = |line: &str, admin: Option<&str>| match admin {
        Some(admin) => format!("{line}\nadmin = \"{admin}\""),
        None => line.to_string(),
    };
    TWO.replace(
        "addr = \"127.0.0.1:12000\"",
        &admin("addr = \"127.0.0.1:12000\"", hill),
    )
    .replace(
        "addr = \"127.0.0.1:12001\"",
        &admin("addr = \"127.0.0.1:12001\"", jaquez),
    )
}

#[test]
fn a_server_may_have_an_admin_address() {
    let config = loaded(&with_admins(Some("127.0.0.1:13000"), Some("")), &[]);
    let admin = |name| config.server(name).expect(name).admin;
    assert_eq!(
        admin("Hill"),
        Some("127.0.0.1:13000".parse().expect("an address"))
    );
    assert_eq!(admin("Jaquez"), None);
}

#[test]
fn bad_admin_addresses_are_refused_like_bad_addrs() {
    for admin in ["localhost:13000", "127.0.0.1:0", "127.0.0.1"] {
        let (e, message) = refused(&with_admins(None, Some(admin)), &[]);
        assert!(matches!(e.fault(), Fault::BadAddr(..)), "{admin}: {e:?}");
        assert!(
            message.starts_with(&format!(
                "server 'Jaquez' has a bad admin {admin:?} in herd.toml"
            )),
            "{message}"
        );
    }
}

#[test]
fn an_admin_address_may_not_be_another_listeners() {
    let cases = [
        (
            Some("127.0.0.1:13000"),
            Some("127.0.0.1:13000"),
            "servers 'Hill' and 'Jaquez' have the same admin 127.0.0.1:13000 in herd.toml",
        ),
        (
            Some("127.0.0.1:12001"),
            None,
            "server 'Jaquez' has addr 127.0.0.1:12001, the admin of server 'Hill', in herd.toml",
        ),
        (
            None,
            Some("127.0.0.1:12000"),
            "server 'Jaquez' has admin 127.0.0.1:12000, the addr of server 'Hill', in herd.toml",
        ),
        (
            Some("127.0.0.1:12000"),
            None,
            "server 'Hill' has admin 127.0.0.1:12000, the addr of server 'Hill', in herd.toml",
        ),
    ];
    for (hill, jaquez, expected) in cases {
        let (e, message) = refused(&with_admins(hill, jaquez), &[]);
        assert!(matches!(e.fault(), Fault::DuplicateAddr(..)), "{e:?}");
        assert_eq!(message, expected);
    }
}

#[test]
fn the_environment_cannot_set_an_admin_address() {
    let config = loaded(TWO, &[("HERD_SERVERS__Hill__ADMIN", "127.0.0.1:13000")]);
    assert_eq!(config.server("Hill").expect("Hill").admin, None);
}

#[test]
fn a_server_without_an_address_is_refused() {
    let (e, message) = refused(&TWO.replace("addr = \"127.0.0.1:12001\"", ""), &[]);
    assert!(matches!(e.fault(), Fault::MissingAddr(..)), "{e:?}");
    assert_eq!(message, "server 'Jaquez' has no addr in herd.toml");
}

#[test]
fn neighbours_must_be_a_list_of_names() {
    let (e, message) = refused(&TWO.replace("[\"Jaquez\"]", "\"Jaquez\""), &[]);
    assert!(matches!(e.fault(), Fault::BadValue { .. }), "{e:?}");
    assert_eq!(
        message,
        "bad servers.Hill.neighbours \"Jaquez\" in herd.toml: expected a list of server names"
    );
}

#[test]
fn server_names_unfit_for_replies_or_file_names_are_refused() {
    for name in ["Big Hill", "../Hill", "Hill.", ""] {
        let text = TWO.replace("[servers.Jaquez]", &format!("[servers.{name:?}]"));
        let text = text.replace("[\"Jaquez\"]", "[]");
        let (e, _) = refused(&text, &[]);
        assert!(
            matches!(e.fault(), Fault::BadServerName(..)),
            "{name:?}: {e:?}"
        );
    }
}

#[test]
fn a_file_without_servers_is_refused() {
    for text in ["", "[servers]\n", "servers = 3\n"] {
        let (e, message) = refused(text, &[]);
        assert!(
            matches!(e.fault(), Fault::NoServers | Fault::BadValue { .. }),
            "{text:?}: {e:?}"
        );
        assert!(message.contains("herd.toml"), "{message}");
    }
}

#[test]
fn a_missing_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("nowhere.toml");
    let e = load_at(&path, &[]).map(|_| ()).unwrap_err();
    assert!(matches!(e.fault(), Fault::Read(..)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read {}", path.display())),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_toml_is_refused_naming_it() {
    let (e, message) = refused("[servers.Hill\naddr = 1", &[]);
    assert!(matches!(e.fault(), Fault::Toml(..)), "{e:?}");
    assert!(
        message.starts_with("herd.toml is not valid TOML"),
        "{message}"
    );
}

#[test]
fn a_herd_is_all_loopback_only_if_every_server_is() {
    assert!(loaded(TWO, &[]).is_all_loopback());
    assert!(loaded(&TWO.replace("127.0.0.1:12001", "[::1]:12001"), &[]).is_all_loopback());
    assert!(!loaded(&TWO.replace("127.0.0.1:12001", "10.0.0.2:12001"), &[]).is_all_loopback());
}

/// The herd shipped in the repository: five servers on this machine.
#[test]
fn the_shipped_herd_toml_is_the_five_server_herd() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../herd.toml"));
    let config = load_at(path, &[]).unwrap_or_else(|e| panic!("{e}"));
    let shape: Vec<(&str, String, Vec<&str>)> = config
        .servers
        .iter()
        .map(|s| {
            let neighbours = s.neighbours.iter().map(String::as_str).collect();
            (s.name.as_str(), s.addr.to_string(), neighbours)
        })
        .collect();
    let expected: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "Campbell",
            "127.0.0.1:12003".into(),
            vec!["Singleton", "Smith"],
        ),
        ("Hill", "127.0.0.1:12000".into(), vec!["Jaquez", "Smith"]),
        (
            "Jaquez",
            "127.0.0.1:12001".into(),
            vec!["Hill", "Singleton"],
        ),
        (
            "Singleton",
            "127.0.0.1:12004".into(),
            vec!["Campbell", "Jaquez", "Smith"],
        ),
        (
            "Smith",
            "127.0.0.1:12002".into(),
            vec!["Campbell", "Hill", "Singleton"],
        ),
    ];
    assert_eq!(shape, expected);
    let admins: Vec<String> = config
        .servers
        .iter()
        .map(|s| s.admin.map(|a| a.to_string()).unwrap_or_default())
        .collect();
    let ports = [12103, 12100, 12101, 12104, 12102];
    assert_eq!(admins, ports.map(|p| format!("127.0.0.1:{p}")));
    assert_eq!(config.places.provider, Provider::Embedded);
    assert_eq!(config.log_dir, PathBuf::from("logs"));
    assert!(config.secret.is_none());
}

/// The commented `key = value` lines under `[places]`, `[limits]` and `[store]` in the
/// shipped herd.toml show the defaults: uncommenting them all changes nothing.
#[test]
fn the_shipped_examples_are_the_defaults() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../herd.toml"));
    let text = std::fs::read_to_string(path).expect("the shipped herd.toml");
    let (mut table, mut examples) = ("", 0);
    let mut uncommented = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            table = line;
        }
        let is_key = |key: &str| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let example = line
            .strip_prefix("# ")
            .filter(|rest| rest.split_once(" = ").is_some_and(|(key, _)| is_key(key)))
            .filter(|_| ["[places]", "[limits]", "[store]"].contains(&table));
        examples += usize::from(example.is_some());
        uncommented += example.unwrap_or(line);
        uncommented += "\n";
    }
    assert!(examples >= 20, "{examples} examples");
    let shown =
        |config: &Settings| format!("{:?}", (&config.places, &config.limits, &config.store));
    assert_eq!(
        shown(&loaded(&uncommented, &[])),
        shown(&loaded(&text, &[]))
    );
}

#[test]
fn a_list_where_a_table_belongs_is_refused() {
    let (e, message) = refused(&format!("places = [\"google\"]\n{TWO}"), &[]);
    assert!(matches!(e.fault(), Fault::BadValue { .. }), "{e:?}");
    assert_eq!(
        message,
        "bad places (a list) in herd.toml: expected a [places] table"
    );
}

#[test]
fn of_several_unknown_keys_the_first_in_the_file_is_named() {
    let (_, message) = refused(&format!("zz = 1\nsecrt = 2\nab = 3\n{TWO}"), &[]);
    assert_eq!(message, "unknown key 'zz' in herd.toml");
}

#[test]
fn the_environment_cannot_hide_a_fault_in_the_file() {
    let (_, message) = refused(
        &format!("places = \"google\"\n{TWO}"),
        &[("HERD_PLACES__PROVIDER", "embedded")],
    );
    assert_eq!(
        message,
        "bad places \"google\" in herd.toml: expected a [places] table"
    );
}

#[test]
fn workers_unset_or_0_mean_one_per_core_and_a_number_is_kept() {
    let unset = loaded(TWO, &[]);
    assert!(!unset.workers_set());
    assert_eq!(unset.workers(), cores());
    let zero = loaded(&format!("workers = 0\n{TWO}"), &[]);
    assert!(zero.workers_set());
    assert_eq!(zero.workers(), cores());
    let three = loaded(&format!("workers = 3\n{TWO}"), &[]);
    assert_eq!(three.workers(), 3);
    let from_env = loaded(&format!("workers = 3\n{TWO}"), &[("HERD_WORKERS", "2")]);
    assert_eq!(from_env.workers(), 2);
}

#[test]
fn workers_past_1024_or_not_a_number_are_refused_naming_the_source() {
    let (_, message) = refused(&format!("workers = 1025\n{TWO}"), &[]);
    assert_eq!(
        message,
        "bad workers 1025 in herd.toml: expected a whole number from 0 to 1024"
    );
    let (_, message) = refused(TWO, &[("HERD_WORKERS", "two")]);
    assert_eq!(
        message,
        "bad HERD_WORKERS=\"two\" in the environment (loading herd.toml): \
         expected a whole number from 0 to 1024"
    );
}
