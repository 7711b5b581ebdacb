//! Contract tests every physical backend must pass.

use super::{Physical, TxnOp};

pub(crate) async fn run(b: &dyn Physical) {
    // Missing keys read as None.
    assert_eq!(b.get("missing").await.expect("get"), None);

    // Put then get; overwrite replaces.
    b.put("foo", b"bar".to_vec()).await.expect("put");
    assert_eq!(b.get("foo").await.expect("get"), Some(b"bar".to_vec()));
    b.put("foo", b"baz".to_vec()).await.expect("put");
    assert_eq!(b.get("foo").await.expect("get"), Some(b"baz".to_vec()));

    // Empty values are values, not absence.
    b.put("empty", Vec::new()).await.expect("put");
    assert_eq!(b.get("empty").await.expect("get"), Some(Vec::new()));

    // Delete is idempotent.
    b.delete("foo").await.expect("delete");
    b.delete("foo").await.expect("delete again");
    assert_eq!(b.get("foo").await.expect("get"), None);

    // List returns immediate children with folders once, sorted.
    for key in ["app/a", "app/b", "app/sub/c", "app/sub/d", "apple", "zed"] {
        b.put(key, key.as_bytes().to_vec()).await.expect("put");
    }
    assert_eq!(b.list("app/").await.expect("list"), vec!["a", "b", "sub/"]);
    assert_eq!(b.list("app/sub/").await.expect("list"), vec!["c", "d"]);
    assert_eq!(
        b.list("nothing/").await.expect("list"),
        Vec::<String>::new()
    );
    assert_eq!(
        b.list("").await.expect("list"),
        vec!["app/", "apple", "empty", "zed"]
    );

    // Transactions apply all operations.
    b.transaction(vec![
        TxnOp::Put {
            key: "t/1".into(),
            value: b"1".to_vec(),
        },
        TxnOp::Put {
            key: "t/2".into(),
            value: b"2".to_vec(),
        },
        TxnOp::Delete { key: "zed".into() },
    ])
    .await
    .expect("txn");
    assert_eq!(b.get("t/1").await.expect("get"), Some(b"1".to_vec()));
    assert_eq!(b.get("t/2").await.expect("get"), Some(b"2".to_vec()));
    assert_eq!(b.get("zed").await.expect("get"), None);

    // A transaction with one invalid key applies nothing.
    let err = b
        .transaction(vec![
            TxnOp::Put {
                key: "t/3".into(),
                value: b"3".to_vec(),
            },
            TxnOp::Put {
                key: String::new(),
                value: b"x".to_vec(),
            },
        ])
        .await;
    assert!(err.is_err(), "empty key must be rejected");
    assert_eq!(b.get("t/3").await.expect("get"), None);

    // Invalid keys are errors, not panics.
    assert!(b.get("/abs").await.is_err());
    assert!(b.put("", b"x".to_vec()).await.is_err());

    // Binary values round-trip exactly.
    let bin: Vec<u8> = (0..=255u8).collect();
    b.put("bin", bin.clone()).await.expect("put");
    assert_eq!(b.get("bin").await.expect("get"), Some(bin));
}
