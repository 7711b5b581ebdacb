//! Router tests of snapshot save and restore (the keyring check, bad archives, the reseal
//! after a restore, snapshot-force) and of `sudo` on the root-protected raft endpoints.

use axum::http::StatusCode;
use serde_json::json;

use super::super::TestServer;
use super::{raft_server, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_save_restore_and_bad_archives() {
    let (s, root, unseal_key, _dir) = raft_server().await;
    let policy = |name: &str| format!("/v1/sys/policies/acl/{name}");
    let body = json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"}).to_string();
    let (st, v) = s
        .call("PUT", &policy("before"), Some(&root), Some(&body))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");

    let (st, archive) = raw(
        &s,
        "GET",
        "/v1/sys/storage/raft/snapshot",
        &root,
        Vec::new(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(&archive[..8], b"SKRAFTSN");

    let (st, v) = s
        .call("PUT", &policy("after"), Some(&root), Some(&body))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, _) = s.call("DELETE", &policy("before"), Some(&root), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    // Bad archives are refused with the reason, and nothing changes.
    let mut corrupt = archive.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    for (bytes, needle) in [
        (Vec::new(), "body is empty"),
        (b"hello".to_vec(), "too short"),
        (vec![b'x'; 64], "not a Sealkeep raft snapshot"),
        (corrupt, "checksum"),
    ] {
        for uri in [
            "/v1/sys/storage/raft/snapshot",
            "/v1/sys/storage/raft/snapshot-force",
        ] {
            let (st, out) = raw(&s, "POST", uri, &root, bytes.clone()).await;
            let text = String::from_utf8_lossy(&out);
            assert_eq!(st, StatusCode::BAD_REQUEST, "{uri} {needle}: {text}");
            assert!(text.contains(needle), "{uri}: {text}");
        }
    }
    assert!(!s.core.seal_status().await.sealed);

    // A snapshot of another cluster: refused without force, with Vault's hint.
    let (other, other_root, other_key, _other_dir) = raft_server().await;
    let (st, foreign) = raw(
        &other,
        "GET",
        "/v1/sys/storage/raft/snapshot",
        &other_root,
        Vec::new(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, out) = raw(
        &s,
        "POST",
        "/v1/sys/storage/raft/snapshot",
        &root,
        foreign.clone(),
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("snapshot-force"), "{text}");

    // Our own snapshot: restored, the node seals to reload, and the old state is back.
    let (st, out) = raw(&s, "POST", "/v1/sys/storage/raft/snapshot", &root, archive).await;
    assert_eq!(
        st,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(s.core.seal_status().await.sealed, "sealed to reload");
    let (st, v) = s.unseal(&unseal_key).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s.call("GET", &policy("before"), Some(&root), None).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "the policy deleted after the snapshot is back"
    );
    let (st, _) = s.call("GET", &policy("after"), Some(&root), None).await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "the policy written after the snapshot is gone"
    );

    // snapshot-force takes the other cluster's state; its keys unseal it.
    let (st, out) = raw(
        &s,
        "POST",
        "/v1/sys/storage/raft/snapshot-force",
        &root,
        foreign,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (st, _) = s.unseal(&unseal_key).await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "this cluster's key no longer opens it"
    );
    let (st, v) = s.unseal(&other_key).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["sealed"], false, "{v}");
    let (st, _) = s
        .call(
            "GET",
            "/v1/sys/storage/raft/configuration",
            Some(&other_root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "the other cluster's root token works");
}

/// A token with exactly `policy` (written as policy "p").
async fn token_with(s: &TestServer, root: &str, policy: &str) -> String {
    let body = json!({ "policy": policy }).to_string();
    let (st, v) = s
        .call("PUT", "/v1/sys/policies/acl/p", Some(root), Some(&body))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let body = json!({"policies": ["p"]}).to_string();
    let (st, v) = s
        .call("POST", "/v1/auth/token/create", Some(root), Some(&body))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_protected_endpoints_need_sudo() {
    let (s, root, _, _dir) = raft_server().await;
    let no_sudo = token_with(
        &s,
        &root,
        r#"path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    )
    .await;
    for (method, uri) in [
        ("PUT", "/v1/sys/step-down"),
        ("POST", "/v1/sys/storage/raft/remove-peer"),
        ("GET", "/v1/sys/storage/raft/snapshot"),
        ("POST", "/v1/sys/storage/raft/snapshot"),
        ("POST", "/v1/sys/storage/raft/snapshot-force"),
    ] {
        let (st, v) = s.call(method, uri, Some(&no_sudo), Some("{}")).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri}: {v}");
    }
    // Reads that Vault does not root-protect need no sudo.
    for uri in [
        "/v1/sys/ha-status",
        "/v1/sys/storage/raft/configuration",
        "/v1/sys/storage/raft/autopilot/state",
        "/v1/sys/storage/raft/autopilot/configuration",
    ] {
        let (st, v) = s.call("GET", uri, Some(&no_sudo), None).await;
        assert_eq!(st, StatusCode::OK, "{uri}: {v}");
    }
    let with_sudo = token_with(
        &s,
        &root,
        r#"path "sys/*" { capabilities = ["read", "update", "sudo"] }"#,
    )
    .await;
    let (st, archive) = raw(
        &s,
        "GET",
        "/v1/sys/storage/raft/snapshot",
        &with_sudo,
        Vec::new(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&archive));
}
