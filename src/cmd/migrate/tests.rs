//! Tests of the pure parts of `operator migrate`: the key walk, batching and the flags.

use std::ffi::OsString;

use super::{batches, vault_style_args, walk};
use crate::server::physical::{InmemBackend, Physical};

const KEYS: &[&str] = &[
    "a",
    "a-b",
    "a/x",
    "a/y/z",
    "a0",
    "core/keyring",
    "core/seal-config",
    "logical/0/k",
    "logical/1/k",
    "sys/token/id/abc",
];

async fn store() -> InmemBackend {
    let s = InmemBackend::new();
    // Written out of order: the walk must sort.
    for key in KEYS.iter().rev() {
        s.put(key, key.as_bytes().to_vec()).await.expect("put");
    }
    s
}

#[tokio::test]
async fn walk_visits_every_key_in_byte_order() {
    let s = store().await;
    let keys = walk(&s, "").await.expect("walk");
    let mut sorted: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[tokio::test]
async fn walk_from_start_keeps_keys_at_or_after_it() {
    let s = store().await;
    assert_eq!(
        walk(&s, "core/seal-config").await.expect("walk"),
        [
            "core/seal-config",
            "logical/0/k",
            "logical/1/k",
            "sys/token/id/abc"
        ]
    );
    // A prefix that is no key: everything after it, inside its folder and beyond.
    assert_eq!(
        walk(&s, "a/y").await.expect("walk"),
        [
            "a/y/z",
            "a0",
            "core/keyring",
            "core/seal-config",
            "logical/0/k",
            "logical/1/k",
            "sys/token/id/abc"
        ]
    );
    assert!(walk(&s, "zzz").await.expect("walk").is_empty());
}

#[test]
fn batches_stay_within_the_limit_and_keep_order() {
    assert_eq!(batches(&[], 10), Vec::<std::ops::Range<usize>>::new());
    assert_eq!(batches(&[4, 4, 2, 1, 10, 3], 10), [0..3, 3..4, 4..5, 5..6]);
    let one = |r: std::ops::Range<usize>| vec![(r.start, r.end)];
    let pairs = |v: Vec<std::ops::Range<usize>>| -> Vec<(usize, usize)> {
        v.into_iter().map(|r| (r.start, r.end)).collect()
    };
    assert_eq!(pairs(batches(&[10], 10)), one(0..1));
    assert_eq!(pairs(batches(&[1; 5], 10)), one(0..5));
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn rewrites_vaults_single_dash_flags_after_operator_migrate() {
    assert_eq!(
        vault_style_args(args(&[
            "sealkeep",
            "operator",
            "migrate",
            "-config",
            "m.hcl",
            "-start=logical/",
            "-reset"
        ])),
        args(&[
            "sealkeep",
            "operator",
            "migrate",
            "--config",
            "m.hcl",
            "--start=logical/",
            "--reset"
        ])
    );
    // A value is never rewritten, even one that looks like a flag.
    assert_eq!(
        vault_style_args(args(&[
            "sealkeep", "operator", "migrate", "-start", "-reset"
        ])),
        args(&["sealkeep", "operator", "migrate", "--start", "-reset"])
    );
    // Other commands, and already double-dashed flags, are left alone.
    for line in [
        &["sealkeep", "server", "-config", "s.hcl"][..],
        &["sealkeep", "operator", "migrate", "--config", "m.hcl"][..],
        &["sealkeep", "operator", "-configx"][..],
    ] {
        assert_eq!(vault_style_args(args(line)), args(line));
    }
}
