use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::server::physical::{FileBackend, InmemBackend};

fn seq_key(start: u8) -> Key {
    let bytes: Vec<u8> = (start..start + 32).collect();
    Key::from_slice(&bytes).expect("32 bytes")
}

/// Generated independently of this code with Python's `cryptography` package:
/// `AESGCM(bytes(range(32))).encrypt(bytes(range(12)), b"sealkeep known answer", b"logical/kat")`
/// prefixed with term 1 (`00000001`), version 2 (`02`) and the nonce.
const KAT_HEX: &str = "0000000102000102030405060708090a0b3467b777ae80a76bad2af9e4c687580ceda5f05182496574c8ed45006bf829b36e479dfe76";

#[test]
fn known_answer_vector_pins_the_on_disk_format() {
    let ring = Keyring::with_fixed_key(seq_key(100), 1, seq_key(0)).expect("keyring");
    let blob = hex::decode(KAT_HEX).expect("hex");
    let pt = ring.decrypt("logical/kat", &blob).expect("decrypt KAT");
    assert_eq!(pt.as_slice(), b"sealkeep known answer");
}

#[test]
fn encrypt_writes_the_documented_header() {
    let ring = Keyring::with_fixed_key(seq_key(100), 7, seq_key(0)).expect("keyring");
    let blob = ring.encrypt("p", b"hello").expect("encrypt");
    assert_eq!(&blob[..4], &7u32.to_be_bytes());
    assert_eq!(blob[4], VERSION);
    assert_eq!(blob.len(), HEADER_LEN + 5 + TAG_LEN);
    assert_eq!(
        ring.decrypt("p", &blob).expect("decrypt").as_slice(),
        b"hello"
    );
}

#[test]
fn nonces_are_random() {
    let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    let a = ring.encrypt("p", b"same").expect("encrypt");
    let b = ring.encrypt("p", b"same").expect("encrypt");
    assert_ne!(a, b, "two encryptions of one value must differ");
    assert_eq!(ring.encryptions(), 2);
}

#[test]
fn every_flipped_byte_is_an_integrity_error() {
    let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    let blob = ring
        .encrypt("secret/a", b"top secret value")
        .expect("encrypt");
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        let err = ring
            .decrypt("secret/a", &bad)
            .expect_err("tampered value must not decrypt");
        match (i, err) {
            (0..=3, BarrierError::UnknownTerm { .. }) => {}
            (4, BarrierError::UnsupportedVersion { version: 3, .. }) => {}
            (5.., BarrierError::Integrity { path }) => assert_eq!(path, "secret/a"),
            (i, e) => panic!("byte {i}: unexpected error {e}"),
        }
    }
}

#[test]
fn moved_value_fails_integrity() {
    let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    let blob = ring.encrypt("secret/a", b"v").expect("encrypt");
    assert!(matches!(
        ring.decrypt("secret/b", &blob),
        Err(BarrierError::Integrity { .. })
    ));
}

#[test]
fn truncated_values_are_rejected_before_slicing() {
    let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    let blob = ring.encrypt("p", b"value").expect("encrypt");
    for len in 0..blob.len() {
        let err = ring
            .decrypt("p", &blob[..len])
            .expect_err("truncated must fail");
        if len < MIN_CIPHERTEXT_LEN {
            assert!(
                matches!(err, BarrierError::TooShort { .. }),
                "len {len}: {err}"
            );
        } else {
            assert!(
                matches!(err, BarrierError::Integrity { .. }),
                "len {len}: {err}"
            );
        }
    }
}

#[test]
fn rotation_adds_a_term_and_old_terms_still_decrypt() {
    let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    let old = ring.encrypt("p", b"old").expect("encrypt");
    let rotated = ring.rotated().expect("rotate");
    assert_eq!(rotated.active_term(), 2);
    let new = rotated.encrypt("p", b"new").expect("encrypt");
    assert_eq!(ciphertext_term("p", &new).expect("term"), 2);
    assert_eq!(rotated.decrypt("p", &old).expect("old").as_slice(), b"old");
    assert!(matches!(
        ring.decrypt("p", &new),
        Err(BarrierError::UnknownTerm { term: 2, .. })
    ));
}

#[test]
fn keyring_round_trips_only_with_the_right_root_key() {
    let root = Key::generate().expect("key");
    let ring = Keyring::new(root.clone())
        .expect("keyring")
        .rotated()
        .expect("rotate");
    let value = ring.encrypt("p", b"v").expect("encrypt");
    let stored = ring.to_ciphertext().expect("serialize");
    let loaded = Keyring::from_ciphertext(root, &stored).expect("load");
    assert_eq!(loaded.active_term(), 2);
    assert_eq!(
        loaded.decrypt("p", &value).expect("decrypt").as_slice(),
        b"v"
    );
    let wrong = Keyring::from_ciphertext(Key::generate().expect("key"), &stored);
    assert!(matches!(wrong, Err(BarrierError::Integrity { .. })));
}

#[test]
fn keys_are_redacted_in_debug_output() {
    let key = seq_key(0);
    assert_eq!(format!("{key:?}"), "Key(<redacted>)");
    let ring = Keyring::new(key).expect("keyring");
    let dbg = format!("{ring:?}");
    assert!(!dbg.contains("0, 1, 2"), "{dbg}");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
        prop_assert!(ring.decrypt("p", &bytes).is_err());
        let _ = Keyring::from_ciphertext(Key::generate().expect("key"), &bytes);
    }

    #[test]
    fn round_trip_any_value(value in proptest::collection::vec(any::<u8>(), 0..2048), path in "[a-z/]{1,40}") {
        let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
        let blob = ring.encrypt(&path, &value).expect("encrypt");
        let back = ring.decrypt(&path, &blob).expect("decrypt");
        prop_assert_eq!(back.as_slice(), value.as_slice());
    }
}

/// The barrier contract, run against every physical backend.
async fn barrier_contract(physical: Arc<dyn Physical>) {
    let barrier = Barrier::new(
        Arc::clone(&physical),
        Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
    );
    barrier
        .put("logical/a", b"plain secret")
        .await
        .expect("put");
    let raw = physical
        .get("logical/a")
        .await
        .expect("raw")
        .expect("present");
    assert!(
        !raw.windows(b"plain secret".len())
            .any(|w| w == b"plain secret"),
        "physical storage must only see ciphertext"
    );
    assert_eq!(
        barrier
            .get("logical/a")
            .await
            .expect("get")
            .expect("present")
            .as_slice(),
        b"plain secret"
    );
    assert!(barrier.get("logical/missing").await.expect("get").is_none());

    // Tampering with any stored byte is an error, never data.
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x80;
        physical.put("logical/a", bad).await.expect("raw put");
        assert!(barrier.get("logical/a").await.is_err(), "byte {i}");
    }
    // Moving a value to another path is an integrity error.
    physical
        .put("logical/b", raw.clone())
        .await
        .expect("raw put");
    assert!(matches!(
        barrier.get("logical/b").await,
        Err(BarrierError::Integrity { .. })
    ));
    // Truncation.
    physical
        .put("logical/a", raw[..raw.len() - 1].to_vec())
        .await
        .expect("raw put");
    assert!(matches!(
        barrier.get("logical/a").await,
        Err(BarrierError::Integrity { .. })
    ));
    physical
        .put("logical/a", raw[..3].to_vec())
        .await
        .expect("raw put");
    assert!(matches!(
        barrier.get("logical/a").await,
        Err(BarrierError::TooShort { .. })
    ));

    barrier
        .transaction(vec![
            TxnOp::Put {
                key: "logical/t1".into(),
                value: b"1".to_vec(),
            },
            TxnOp::Delete {
                key: "logical/b".into(),
            },
        ])
        .await
        .expect("txn");
    assert_eq!(
        barrier
            .get("logical/t1")
            .await
            .expect("get")
            .expect("present")
            .as_slice(),
        b"1"
    );
    assert!(barrier.get("logical/b").await.expect("get").is_none());
    assert_eq!(
        barrier.list("logical/").await.expect("list"),
        vec!["a", "t1"]
    );
    barrier.delete("logical/t1").await.expect("delete");
    assert!(barrier.get("logical/t1").await.expect("get").is_none());
}

#[tokio::test]
async fn barrier_contract_inmem() {
    barrier_contract(Arc::new(InmemBackend::new())).await;
}

#[tokio::test]
async fn barrier_contract_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    barrier_contract(Arc::new(FileBackend::open(dir.path()).expect("open"))).await;
}
