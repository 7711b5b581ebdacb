//! Unit tests of KV v2 merge-patch and subkeys over the in-memory backend.

use serde_json::{Value, json};

use super::data::{merge_patch, subkeys};
use super::tests::{MOUNT, found, obj, setup};
use super::*;

#[tokio::test]
async fn patch_merges_into_a_new_version() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    assert_eq!(
        kv.patch("k", &obj(json!({"a": 1})), None)
            .await
            .expect("patch"),
        PatchOutcome::NotFound
    );
    kv.write(
        "k",
        obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})),
        None,
    )
    .await
    .expect("write");
    let out = kv
        .patch(
            "k",
            &obj(json!({"b": {"c": null, "x": 9}, "e": null, "f": "new"})),
            Some(1),
        )
        .await
        .expect("patch");
    assert!(
        matches!(out, PatchOutcome::Written(ref i) if i.version == 2),
        "{out:?}"
    );
    assert_eq!(
        found(&kv, "k", None).await.0,
        obj(json!({"a": 1, "b": {"d": 3, "x": 9}, "f": "new"}))
    );
    assert!(matches!(
        kv.patch("k", &obj(json!({"a": 2})), Some(1)).await,
        Err(KvError::CasMismatch)
    ));
    kv.delete_latest("k").await.expect("delete");
    assert!(matches!(
        kv.patch("k", &obj(json!({"a": 2})), None)
            .await
            .expect("patch"),
        PatchOutcome::Gone(_)
    ));
}

#[test]
fn merge_patch_follows_rfc7386() {
    let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
    merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
    assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    let mut t = json!({"a": [1, 2]});
    merge_patch(&mut t, &json!({"a": {"b": 1}}));
    assert_eq!(t, json!({"a": {"b": 1}}));
    let mut t = json!({"a": {"b": 1}});
    merge_patch(&mut t, &json!({"a": [3]}));
    assert_eq!(t, json!({"a": [3]}));
}

#[test]
fn subkeys_hide_values_down_to_a_depth() {
    let data = obj(json!({"foo": "abc", "bar": {"baz": {"x": 1}, "e": {}}, "n": [1, 2]}));
    assert_eq!(
        Value::Object(subkeys(&data, 0)),
        json!({"foo": null, "bar": {"baz": {"x": null}, "e": null}, "n": null})
    );
    assert_eq!(
        Value::Object(subkeys(&data, 1)),
        json!({"foo": null, "bar": null, "n": null})
    );
    assert_eq!(
        Value::Object(subkeys(&data, 2)),
        json!({"foo": null, "bar": {"baz": null, "e": null}, "n": null})
    );
}
