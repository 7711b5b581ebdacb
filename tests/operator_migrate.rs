//! `sealkeep operator migrate` with the real binary: a `file` server's storage (initialized,
//! unsealed, KV v2 secrets written) is copied into a new raft store and compared key by key;
//! a source in use, a destination that already holds a cluster and a value too large for one
//! raft entry are refused, and the refusals leave no cluster behind; `-start` and `-reset`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use sealkeep::server::physical::{
    FileBackend, MAX_ENTRY_SIZE, NodeInfo, Physical, RaftBackend, RaftTiming,
};
use serde_json::json;

fn migrate(args: &[&str]) -> Output {
    let out = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["operator", "migrate"])
        .args(args)
        .output()
        .expect("run sealkeep operator migrate");
    eprintln!(
        "operator migrate {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(dir: &Path, source: &Path, destination: &Path) -> PathBuf {
    let file = dir.join("migrate.hcl");
    std::fs::write(
        &file,
        format!(
            "storage_source \"file\" {{ path = \"{}\" }}\nstorage_destination \"raft\" {{\n  path    = \"{}\"\n  node_id = \"vault-0\"\n}}\ncluster_addr = \"https://127.0.0.1:8201\"\n",
            source.display(),
            destination.display()
        ),
    )
    .expect("write migrate.hcl");
    file
}

/// Every (key, value) of a store, in key order (Vault's list walk).
async fn dump(store: &dyn Physical) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(path) = stack.pop() {
        if path.is_empty() || path.ends_with('/') {
            let children = store.list(&path).await.expect("list");
            stack.extend(children.iter().rev().map(|c| format!("{path}{c}")));
        } else {
            let value = store.get(&path).await.expect("get").expect("listed key");
            out.push((path, value));
        }
    }
    out
}

async fn open_raft(dir: &Path) -> RaftBackend {
    RaftBackend::open(dir, None, NodeInfo::default(), RaftTiming::default())
        .await
        .expect("open the destination raft store")
}

/// The destination's content, read through raft once this node leads its cluster again.
async fn raft_dump(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let raft = open_raft(dir).await;
    assert!(raft.is_initialized().await.expect("initialized?"));
    raft.wait_for_leader(Duration::from_secs(30))
        .await
        .expect("the migrated node leads its one-node cluster");
    let content = dump(&raft).await;
    raft.shutdown().await.expect("shutdown");
    content
}

async fn raft_is_initialized(dir: &Path) -> bool {
    let raft = open_raft(dir).await;
    let initialized = raft.is_initialized().await.expect("initialized?");
    raft.shutdown().await.expect("shutdown");
    initialized
}

#[tokio::test(flavor = "multi_thread")]
async fn migrates_a_file_server_into_raft() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("data");
    let destination = dir.path().join("raft");
    let config = write_config(dir.path(), &source, &destination);

    // A real server on file storage: init, unseal, secrets (some large, so that the copy
    // needs several raft entries).
    let mut server = ServerProc::start(&ServerSpec::plain(dir.path()));
    let addr = server.addr.clone();
    let (status, init) = put(
        &addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 3, "secret_threshold": 2}),
    )
    .await;
    assert_eq!(status, 200, "init: {init}");
    let token = init["root_token"].as_str().expect("root token").to_owned();
    for key in init["keys"].as_array().expect("keys").iter().take(2) {
        let (status, body) = put(&addr, "/v1/sys/unseal", None, &json!({ "key": key })).await;
        assert_eq!(status, 200, "unseal: {body}");
    }
    wait_status(&addr, Duration::from_secs(30), |v| v["sealed"] == false).await;
    for i in 0..40 {
        let value = if i % 10 == 0 {
            "L".repeat(300 * 1024)
        } else {
            format!("value-{i}")
        };
        let (status, body) = put(
            &addr,
            &format!("/v1/secret/data/app/{i}"),
            Some(&token),
            &json!({ "data": { "value": value } }),
        )
        .await;
        assert!((200..300).contains(&status), "write {i}: {status} {body}");
    }

    // The server holds the store: refused, and nothing is created at the destination.
    let out = migrate(&["-config", config.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("stop the server first"),
        "{}",
        stderr(&out)
    );
    assert!(
        !destination.exists(),
        "a refused migration created {destination:?}"
    );

    server.kill();
    let out = migrate(&["-config", config.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Success! All of the keys have been migrated"),
        "{stdout}"
    );

    // Byte for byte the same (key, value) pairs on both sides, seal entries included.
    let expected = {
        let file = FileBackend::open(&source).expect("open the source");
        dump(&file).await
    };
    let keys: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"core/seal-config"), "{keys:?}");
    assert!(keys.contains(&"core/root-key"), "{keys:?}");
    assert!(keys.len() > 40, "{} keys", keys.len());
    let copied = raft_dump(&destination).await;
    assert_eq!(copied.len(), expected.len());
    for (got, want) in copied.iter().zip(&expected) {
        assert_eq!(got.0, want.0);
        assert!(got.1 == want.1, "value of {} differs", want.0);
    }
    assert!(
        stdout.contains(&format!("{} keys", expected.len())),
        "{stdout}"
    );

    // Again: the destination now holds a cluster, and is left as it is.
    let out = migrate(&["--config", config.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("already holds a raft cluster"), "{err}");
    assert!(err.contains(&destination.display().to_string()), "{err}");
    assert_eq!(raft_dump(&destination).await, expected);

    // A raft server on the result: sealed, unsealed with the same keys, every secret there.
    let spec = raft_spec_at(dir.path(), &destination, "vault-0");
    let server = ServerProc::start(&spec);
    let addr = server.addr.clone();
    let status = wait_status(&addr, Duration::from_secs(30), |_| true).await;
    assert_eq!(status["storage_type"], "raft", "{status}");
    assert_eq!(status["initialized"], true, "{status}");
    for key in init["keys"].as_array().expect("keys").iter().take(2) {
        let (status, body) = put(&addr, "/v1/sys/unseal", None, &json!({ "key": key })).await;
        assert_eq!(status, 200, "unseal on raft: {body}");
    }
    wait_status(&addr, Duration::from_secs(30), |v| v["sealed"] == false).await;
    for i in 0..40 {
        let (status, body) = get_auth(&addr, &format!("/v1/secret/data/app/{i}"), &token).await;
        assert_eq!(status, 200, "read {i} on raft: {body}");
        let want = if i % 10 == 0 {
            "L".repeat(300 * 1024)
        } else {
            format!("value-{i}")
        };
        assert!(
            body["data"]["data"]["value"] == want.as_str(),
            "value {i} differs"
        );
    }
    drop(server);
}

/// A file store written directly (no server): fast, and able to hold what a server would
/// refuse to write.
async fn file_store(dir: &Path, entries: &[(&str, Vec<u8>)]) {
    let file = FileBackend::open(dir).expect("open");
    for (key, value) in entries {
        file.put(key, value.clone()).await.expect("put");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_value_larger_than_a_raft_entry_before_writing_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("data");
    let destination = dir.path().join("raft");
    file_store(
        &source,
        &[
            ("a/first", b"1".to_vec()),
            ("m/huge", vec![7u8; MAX_ENTRY_SIZE + 1]),
            ("z/last", b"2".to_vec()),
        ],
    )
    .await;
    let config = write_config(dir.path(), &source, &destination);
    let out = migrate(&["-config", config.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("\"m/huge\""), "{err}");
    assert!(err.contains(&MAX_ENTRY_SIZE.to_string()), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Success"));
    assert!(
        !raft_is_initialized(&destination).await,
        "a refused migration formed a cluster"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_copies_only_later_keys_and_reset_copies_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("data");
    let destination = dir.path().join("raft");
    let entries: Vec<(&str, Vec<u8>)> = ["a/1", "b/1", "b/2", "c"]
        .into_iter()
        .map(|k| (k, k.as_bytes().to_vec()))
        .collect();
    file_store(&source, &entries).await;
    let config = write_config(dir.path(), &source, &destination);
    let config = config.to_str().expect("utf-8 path");

    let out = migrate(&["-config", config, "-reset"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No migration occurred"),
        "reset must say it did nothing"
    );
    assert!(!destination.exists(), "-reset touched the destination");

    let out = migrate(&["-config", config, "-start", "b/2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let copied = raft_dump(&destination).await;
    assert_eq!(
        copied,
        [
            ("b/2".to_owned(), b"b/2".to_vec()),
            ("c".to_owned(), b"c".to_vec())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_source_that_is_not_a_file_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &dir.path().join("nothing"),
        &dir.path().join("raft"),
    );
    let out = migrate(&["-config", config.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds no sealkeep.redb"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("raft").exists());
    assert!(!dir.path().join("nothing").exists());
}
