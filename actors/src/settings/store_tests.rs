//! `[store]`: where the records outlive the process.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Fault;
use super::tests::{loaded, refused, with_table, TWO};
use super::StoreSettings;

#[test]
fn the_store_defaults_to_data_in_the_working_directory_kept_for_ever() {
    let config = loaded(TWO, &[]);
    assert_eq!(
        config.store,
        StoreSettings {
            dir: Some(PathBuf::from("data")),
            fsync: false,
            max_age: None,
            max_records: None,
        }
    );
}

#[test]
fn the_store_is_read_from_the_file() {
    let config = loaded(
        &with_table(
            "store",
            "dir = \"/var/lib/herd\"\nfsync = true\nmax_age_s = 3600\nmax_records = 500000",
        ),
        &[],
    );
    assert_eq!(
        config.store,
        StoreSettings {
            dir: Some(PathBuf::from("/var/lib/herd")),
            fsync: true,
            max_age: Some(Duration::from_secs(3600)),
            max_records: Some(500_000),
        }
    );
}

#[test]
fn an_empty_dir_in_the_file_keeps_the_store_in_memory() {
    let config = loaded(&with_table("store", "dir = \"\""), &[]);
    assert_eq!(config.store.dir, None);
}

#[test]
fn the_environment_overrides_the_store() {
    let config = loaded(
        &with_table("store", "dir = \"file-data\"\nfsync = true"),
        &[
            ("HERD_STORE__DIR", "env-data"),
            ("HERD_STORE__FSYNC", "false"),
            ("HERD_STORE__MAX_AGE_S", "60"),
        ],
    );
    assert_eq!(
        config.store,
        StoreSettings {
            dir: Some(PathBuf::from("env-data")),
            fsync: false,
            max_age: Some(Duration::from_secs(60)),
            max_records: None,
        }
    );
    let fsync = loaded(TWO, &[("HERD_STORE__FSYNC", "true")]);
    assert!(fsync.store.fsync);
}

#[test]
fn an_empty_variable_leaves_the_store_on_disk() {
    let config = loaded(
        &with_table("store", "dir = \"kept\""),
        &[("HERD_STORE__DIR", "")],
    );
    assert_eq!(config.store.dir, Some(PathBuf::from("kept")));
}

#[test]
fn fsync_must_be_true_or_false() {
    for bad in ["\"yes\"", "1", "\"TRUE\""] {
        let (e, message) = refused(&with_table("store", &format!("fsync = {bad}")), &[]);
        assert!(matches!(e.fault(), Fault::BadValue(..)), "{bad}: {e:?}");
        assert_eq!(
            message,
            format!("bad store.fsync {bad} in herd.toml: expected true or false")
        );
    }
    let (e, message) = refused(TWO, &[("HERD_STORE__FSYNC", "yes")]);
    assert!(matches!(e.fault(), Fault::BadEnv(..)), "{e:?}");
    assert_eq!(
        message,
        "bad HERD_STORE__FSYNC=\"yes\" in the environment (loading herd.toml): \
         expected true or false"
    );
}

#[test]
fn a_max_age_out_of_range_is_refused_naming_key_and_range() {
    let (e, message) = refused(&with_table("store", "max_age_s = 315360001"), &[]);
    assert!(matches!(e.fault(), Fault::BadValue(..)), "{e:?}");
    assert_eq!(
        message,
        "bad store.max_age_s 315360001 in herd.toml: \
         expected a whole number of seconds from 0 to 315360000"
    );
}

#[test]
fn a_dir_that_is_not_a_string_is_refused() {
    let (_, message) = refused(&with_table("store", "dir = 3"), &[]);
    assert_eq!(
        message,
        "bad store.dir (an integer) in herd.toml: expected a string"
    );
}
