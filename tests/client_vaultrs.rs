//! vaultrs, the Rust Vault client, against the real `sealkeep` binary (file storage, Shamir
//! seal): init and unseal, KV v2, tokens, policies, a second mount and a token that a policy
//! limits, all through vaultrs' public API.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde::{Deserialize, Serialize};
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::api::sys::requests::EnableEngineRequest;
use vaultrs::api::token::requests::{CreateOrphanTokenRequest, CreateTokenRequest};
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::sys::ServerStatus;
use vaultrs::{kv2, sys, token};

const APP_READ: &str = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Db {
    user: String,
    pass: String,
}

fn db(pass: &str) -> Db {
    Db {
        user: "u1".into(),
        pass: pass.into(),
    }
}

/// A client for `addr` with `token`; nothing taken from the environment.
fn vault(addr: &str, token: &str) -> VaultClient {
    let settings = VaultClientSettingsBuilder::default()
        .address(addr)
        .token(token)
        .ca_certs(Vec::new())
        .verify(true)
        .timeout(Some(Duration::from_secs(15)))
        .build()
        .expect("vaultrs settings");
    VaultClient::new(settings).expect("vaultrs client")
}

/// The HTTP status of a failed call: vaultrs reports Vault's `{"errors": [...]}` bodies as
/// `APIError`, and any other non-2xx (a 404 whose body carries data) as a REST client error.
fn code(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
}

fn expect_code<T: std::fmt::Debug>(r: Result<T, ClientError>, want: u16, what: &str) {
    match r {
        Err(e) => assert_eq!(code(&e), Some(want), "{what}: {e:?}"),
        Ok(v) => panic!("{what}: expected HTTP {want}, got Ok({v:?})"),
    }
}

/// Vault's refusal: vaultrs' `APIError` with 403 and "permission denied".
fn expect_denied<T: std::fmt::Debug>(r: Result<T, ClientError>, what: &str) {
    match r {
        Err(ClientError::APIError { code: 403, errors }) => assert!(
            errors.iter().any(|m| m.contains("permission denied")),
            "{what}: {errors:?}"
        ),
        other => panic!("{what}: expected APIError 403, got {other:?}"),
    }
}

async fn init_and_unseal(addr: &str) -> String {
    let anon = vault(addr, "");
    let st = sys::status(&anon).await.expect("status");
    assert!(matches!(st, ServerStatus::UNINITIALIZED), "{st:?}");
    let init = sys::start_initialization(&anon, 3, 2, None)
        .await
        .expect("init");
    assert_eq!(init.keys.len(), 3);
    assert!(init.root_token.starts_with("hvs."), "{}", init.root_token);
    let st = sys::status(&anon).await.expect("status");
    assert!(matches!(st, ServerStatus::SEALED), "{st:?}");

    let r = sys::unseal(&anon, Some(init.keys[0].clone()), None, None)
        .await
        .expect("unseal 1");
    assert!(r.sealed);
    assert_eq!((r.progress, r.threshold, r.n_shares), (1, 2, 3));
    let r = sys::unseal(&anon, Some(init.keys[2].clone()), None, None)
        .await
        .expect("unseal 2");
    assert!(!r.sealed, "{r:?}");
    let st = sys::status(&anon).await.expect("status");
    assert!(matches!(st, ServerStatus::OK), "{st:?}");
    init.root_token
}

async fn kv2_flow(root: &VaultClient) {
    let m = kv2::set(root, "secret", "app/db", &db("p1"))
        .await
        .expect("set v1");
    assert_eq!(
        (m.version, m.destroyed, m.deletion_time.as_str()),
        (1, false, "")
    );
    let got: Db = kv2::read(root, "secret", "app/db").await.expect("read");
    assert_eq!(got, db("p1"));

    let m = kv2::set_with_options(
        root,
        "secret",
        "app/db",
        &db("p2"),
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    .expect("set with cas 1");
    assert_eq!(m.version, 2);
    match kv2::set_with_options(
        root,
        "secret",
        "app/db",
        &db("x"),
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    {
        Err(ClientError::APIError { code: 400, errors }) => assert!(
            errors.iter().any(|m| m.contains("check-and-set")),
            "{errors:?}"
        ),
        other => panic!("cas mismatch: expected APIError 400, got {other:?}"),
    }
    let v1: Db = kv2::read_version(root, "secret", "app/db", 1)
        .await
        .expect("read v1");
    assert_eq!(v1, db("p1"));
    expect_code(
        kv2::read_version::<Db>(root, "secret", "app/db", 7).await,
        404,
        "read of a version that never existed",
    );

    kv2::set(root, "secret", "app/sub/one", &db("s"))
        .await
        .expect("set sub");
    let mut keys = kv2::list(root, "secret", "app").await.expect("list");
    keys.sort();
    assert_eq!(keys, ["db", "sub/"]);

    // Soft delete of the latest version, then undelete.
    kv2::delete_latest(root, "secret", "app/db")
        .await
        .expect("delete latest");
    expect_code(
        kv2::read::<Db>(root, "secret", "app/db").await,
        404,
        "read after delete",
    );
    kv2::undelete_versions(root, "secret", "app/db", vec![2])
        .await
        .expect("undelete");
    let got: Db = kv2::read(root, "secret", "app/db").await.expect("read");
    assert_eq!(got, db("p2"));

    // Destroy version 1: gone for good, even after an undelete.
    kv2::destroy_versions(root, "secret", "app/db", vec![1])
        .await
        .expect("destroy");
    kv2::undelete_versions(root, "secret", "app/db", vec![1])
        .await
        .expect("undelete of a destroyed version is a no-op");
    expect_code(
        kv2::read_version::<Db>(root, "secret", "app/db", 1).await,
        404,
        "read of a destroyed version",
    );
    kv2::delete_versions(root, "secret", "app/db", vec![2])
        .await
        .expect("delete v2");
    kv2::undelete_versions(root, "secret", "app/db", vec![2])
        .await
        .expect("undelete v2");

    let meta = kv2::read_metadata(root, "secret", "app/db")
        .await
        .expect("metadata");
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.max_versions, 0);
    assert!(meta.versions["1"].destroyed, "{meta:?}");
    assert!(!meta.versions["2"].destroyed);
    assert_eq!(meta.versions["2"].deletion_time, "");

    kv2::set_metadata(
        root,
        "secret",
        "app/db",
        Some(
            SetSecretMetadataRequest::builder()
                .max_versions(5_u64)
                .custom_metadata(HashMap::from([("owner".to_owned(), "team-a".to_owned())])),
        ),
    )
    .await
    .expect("set metadata");
    let meta = kv2::read_metadata(root, "secret", "app/db")
        .await
        .expect("metadata");
    assert_eq!(meta.max_versions, 5);
    assert_eq!(
        meta.custom_metadata.as_ref().and_then(|m| m.get("owner")),
        Some(&"team-a".to_owned())
    );

    // A key written and then removed with all its versions.
    kv2::set(root, "secret", "app/tmp", &db("t"))
        .await
        .expect("set tmp");
    kv2::delete_metadata(root, "secret", "app/tmp")
        .await
        .expect("delete metadata");
    expect_code(
        kv2::read_metadata(root, "secret", "app/tmp").await,
        404,
        "metadata after delete_metadata",
    );
    expect_code(
        kv2::read::<Db>(root, "secret", "app/tmp").await,
        404,
        "read after delete_metadata",
    );
}

async fn policy_flow(root: &VaultClient) {
    sys::policy::set(root, "app-read", APP_READ)
        .await
        .expect("policy set");
    let p = sys::policy::read(root, "app-read")
        .await
        .expect("policy read");
    assert_eq!((p.name.as_str(), p.rules.as_str()), ("app-read", APP_READ));
    let names = sys::policy::list(root).await.expect("policy list").policies;
    for name in ["app-read", "default", "root"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    expect_code(
        sys::policy::set(
            root,
            "bad",
            "path \"secret/*\" { capabilities = [\"fly\"] }",
        )
        .await,
        400,
        "unknown capability",
    );
}

async fn token_flow(addr: &str, root: &VaultClient) {
    let auth = token::new(
        root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["app-read".to_owned()])
                .ttl("1h"),
        ),
    )
    .await
    .expect("token create");
    let mut policies = auth.policies.clone();
    policies.sort();
    assert_eq!(policies, ["app-read", "default"]);
    assert_eq!((auth.lease_duration, auth.renewable), (3600, true));
    assert!(!auth.orphan);
    let tok = auth.client_token.clone();

    let d = token::lookup(root, &tok).await.expect("lookup");
    assert_eq!(
        (d.id.as_str(), d.accessor.as_str()),
        (tok.as_str(), auth.accessor.as_str())
    );
    assert_eq!(d.creation_ttl, 3600);
    assert!((3500..=3600).contains(&d.ttl), "{}", d.ttl);
    let by_accessor = token::lookup_accessor(root, &auth.accessor)
        .await
        .expect("lookup accessor");
    assert_eq!(by_accessor.accessor, auth.accessor);

    let limited = vault(addr, &tok);
    let me = token::lookup_self(&limited).await.expect("lookup self");
    assert_eq!(me.id, tok);

    let renewed = token::renew(root, &tok, Some("30m")).await.expect("renew");
    assert_eq!(
        (renewed.client_token.as_str(), renewed.lease_duration),
        (tok.as_str(), 1800)
    );
    let renewed = token::renew_self(&limited, Some("45m"))
        .await
        .expect("renew self");
    assert_eq!(renewed.lease_duration, 2700);

    // What the policy allows, and what it refuses. Each refused call has a client (so a
    // connection) of its own: the server closes a keep-alive connection after refusing a request
    // before reading its body (see a_refusal_before_the_body_keeps_the_connection_usable in
    // tests/client_hvac.rs, ignored until the server is fixed).
    let fresh = || vault(addr, &tok);
    let got: Db = kv2::read(&limited, "secret", "app/db")
        .await
        .expect("allowed read");
    assert_eq!(got, db("p2"));
    kv2::set(root, "secret", "other/x", &db("o"))
        .await
        .expect("set other");
    expect_denied(
        kv2::read::<Db>(&fresh(), "secret", "other/x").await,
        "read outside app/",
    );
    expect_denied(
        kv2::set(&fresh(), "secret", "app/db", &db("hacked")).await,
        "write",
    );
    expect_denied(kv2::list(&fresh(), "secret", "app").await, "list");
    expect_denied(
        kv2::read_metadata(&fresh(), "secret", "app/db").await,
        "metadata",
    );
    expect_denied(
        kv2::delete_latest(&fresh(), "secret", "app/db").await,
        "delete",
    );
    expect_denied(
        sys::policy::set(
            &fresh(),
            "app-read",
            "path \"*\" { capabilities = [\"sudo\"] }",
        )
        .await,
        "policy write",
    );
    let got: Db = kv2::read(root, "secret", "app/db").await.expect("read");
    assert_eq!(got, db("p2"), "the refused calls changed nothing");

    token::revoke(root, &tok).await.expect("revoke");
    expect_denied(
        token::lookup_self(&fresh()).await,
        "lookup-self after revoke",
    );
    expect_denied(
        kv2::read::<Db>(&fresh(), "secret", "app/db").await,
        "read after revoke",
    );

    // An orphan, revoked by its accessor.
    let orphan = token::new_orphan(
        root,
        Some(
            CreateOrphanTokenRequest::builder()
                .policies(vec!["default".to_owned()])
                .ttl("10m"),
        ),
    )
    .await
    .expect("create orphan");
    assert!(orphan.orphan);
    token::revoke_accessor(root, &orphan.accessor)
        .await
        .expect("revoke accessor");
    expect_denied(
        token::lookup_self(&vault(addr, &orphan.client_token)).await,
        "orphan after revoke-accessor",
    );
}

async fn mount_flow(root: &VaultClient) {
    sys::mount::enable(
        root,
        "team",
        "kv",
        Some(
            EnableEngineRequest::builder()
                .description("team secrets")
                .options(HashMap::from([("version".to_owned(), "2".to_owned())])),
        ),
    )
    .await
    .expect("enable team/");
    let mounts = sys::mount::list(root).await.expect("list mounts");
    let team = &mounts["team/"];
    assert_eq!(
        (team.mount_type.as_str(), team.description.as_str()),
        ("kv", "team secrets")
    );
    assert_eq!(
        team.options.as_ref().and_then(|o| o.get("version")),
        Some(&"2".to_owned())
    );
    assert_eq!(mounts["secret/"].mount_type, "kv");

    kv2::set(root, "team", "app/db", &db("team"))
        .await
        .expect("set on team/");
    let got: Db = kv2::read(root, "team", "app/db").await.expect("read team/");
    assert_eq!(got, db("team"));
    let got: Db = kv2::read(root, "secret", "app/db")
        .await
        .expect("read secret/");
    assert_eq!(got, db("p2"), "mounts are separate stores");

    sys::mount::disable(root, "team").await.expect("disable");
    let mounts = sys::mount::list(root).await.expect("list mounts");
    assert!(!mounts.contains_key("team/"));
}

#[tokio::test(flavor = "multi_thread")]
async fn vaultrs_drives_init_unseal_kv2_tokens_policies_and_mounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec::plain(dir.path());
    let server = ServerProc::start(&spec);
    let root_token = init_and_unseal(&server.addr).await;
    let mut root = vault(&server.addr, "");
    root.set_token(&root_token);

    kv2_flow(&root).await;
    policy_flow(&root).await;
    token_flow(&server.addr, &root).await;
    mount_flow(&root).await;
}
