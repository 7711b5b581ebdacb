//! Unit tests of KV v2 metadata, listing and config over the in-memory backend.

use std::collections::BTreeMap;

use serde_json::json;

use super::meta::{MetadataUpdate, validate_custom_metadata};
use super::tests::{MOUNT, obj, setup};
use super::*;
use crate::server::physical::Physical;

fn custom(pairs: &[(&str, Option<&str>)]) -> Option<BTreeMap<String, Option<String>>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect(),
    )
}

#[tokio::test]
async fn metadata_read_write_patch_and_delete() {
    let (b, physical) = setup();
    let kv = b.kv(MOUNT);
    // An empty update creates nothing, as Vault's fast path.
    assert!(
        kv.write_metadata("m", &MetadataUpdate::default())
            .await
            .expect("noop")
            .is_empty()
    );
    assert!(kv.metadata("m").await.expect("meta").is_none());

    let update = MetadataUpdate {
        max_versions: Some(5),
        delete_version_after: Some(12319),
        custom_metadata: custom(&[("owner", Some("ops")), ("team", Some("db"))]),
        ..Default::default()
    };
    kv.write_metadata("m", &update).await.expect("write");
    let info = kv
        .metadata("m")
        .await
        .expect("meta")
        .expect("exists")
        .info();
    assert_eq!(info.current_version, 0);
    assert_eq!(info.max_versions, 5);
    assert_eq!(info.delete_version_after, "3h25m19s");
    assert!(info.versions.is_empty());
    assert_eq!(
        serde_json::to_value(&info.custom_metadata).expect("json"),
        json!({"owner": "ops", "team": "db"})
    );

    kv.write("m", obj(json!({"a": 1})), None)
        .await
        .expect("write");
    let info = kv.metadata("m").await.expect("meta").expect("exists");
    let v = kv.read("m", None).await.expect("read");
    let ReadOutcome::Found { info: vinfo, .. } = v else {
        panic!("readable")
    };
    // The version carries the key's custom metadata and a deletion time from the key's setting.
    assert_eq!(vinfo.custom_metadata, info.custom_metadata);
    assert!(!vinfo.deletion_time.is_empty());

    let patch = MetadataUpdate {
        cas_required: Some(true),
        custom_metadata: custom(&[("team", None), ("env", Some("prod"))]),
        ..Default::default()
    };
    assert_eq!(
        kv.patch_metadata("nope", &patch).await.expect("patch"),
        None
    );
    kv.patch_metadata("m", &patch)
        .await
        .expect("patch")
        .expect("exists");
    let meta = kv.metadata("m").await.expect("meta").expect("exists");
    assert!(meta.cas_required);
    assert_eq!(meta.max_versions, 5);
    assert_eq!(
        serde_json::to_value(&meta.custom_metadata).expect("json"),
        json!({"env": "prod", "owner": "ops"})
    );

    let data_key = version_key(MOUNT, "m", 1);
    assert!(kv.delete_metadata("m").await.expect("delete"));
    assert!(!kv.delete_metadata("m").await.expect("again"));
    assert!(kv.metadata("m").await.expect("meta").is_none());
    assert!(physical.get(&data_key).await.expect("get").is_none());
    assert!(physical.list("").await.expect("list").is_empty());
}

#[tokio::test]
async fn cas_required_false_warns_when_the_mount_requires_it() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    kv.update_config(|c| c.cas_required = true)
        .await
        .expect("config");
    let warnings = kv
        .write_metadata(
            "k",
            &MetadataUpdate {
                cas_required: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("write");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("mandated by backend config"),
        "{warnings:?}"
    );
}

#[test]
fn custom_metadata_limits_are_vaults() {
    let ok: BTreeMap<_, _> = [("k".to_owned(), "v".to_owned())].into();
    assert!(validate_custom_metadata(&ok).is_ok());
    let too_many: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let err = validate_custom_metadata(&too_many).expect_err("65 keys");
    assert!(err.to_string().contains("at most 64 keys"), "{err}");
    let bad: BTreeMap<_, _> = [
        ("k".repeat(129), "v".to_owned()),
        ("e".to_owned(), String::new()),
        ("c".to_owned(), "a\u{7}b".to_owned()),
    ]
    .into();
    let msg = validate_custom_metadata(&bad).expect_err("bad").to_string();
    assert!(msg.contains("length of key"), "{msg}");
    assert!(msg.contains("length of value for key \"e\""), "{msg}");
    assert!(msg.contains("unprintable"), "{msg}");
}

#[tokio::test]
async fn list_shows_keys_and_folders() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    for key in ["app/db", "app/api/token", "app/api", "top"] {
        kv.write(key, obj(json!({"a": 1})), None)
            .await
            .expect("write");
    }
    assert_eq!(kv.list("").await.expect("root"), ["app/", "top"]);
    assert_eq!(kv.list("app").await.expect("app"), ["api", "api/", "db"]);
    assert_eq!(kv.list("app/").await.expect("app/"), ["api", "api/", "db"]);
    assert_eq!(kv.list("app/api/").await.expect("api"), ["token"]);
    assert!(kv.list("nothing/").await.expect("empty").is_empty());
    assert!(matches!(
        kv.list("../").await,
        Err(KvError::InvalidPath { .. })
    ));
    // Destroyed or deleted keys still list until their metadata is deleted (as in Vault).
    kv.delete_latest("top").await.expect("delete");
    assert_eq!(kv.list("").await.expect("root"), ["app/", "top"]);
    kv.delete_metadata("top").await.expect("delete");
    assert_eq!(kv.list("").await.expect("root"), ["app/"]);
}

#[tokio::test]
async fn config_defaults_and_updates() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    assert_eq!(kv.config().await.expect("config"), Config::default());
    kv.update_config(|c| {
        c.max_versions = 7;
        c.delete_version_after = 60;
    })
    .await
    .expect("update");
    let c = kv.config().await.expect("config");
    assert_eq!(
        (c.max_versions, c.cas_required, c.delete_version_after),
        (7, false, 60)
    );
    // Each mount has its own config.
    assert_eq!(
        b.kv("other").config().await.expect("config"),
        Config::default()
    );
}
