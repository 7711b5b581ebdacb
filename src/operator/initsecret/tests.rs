use super::*;

const NS: &str = "secrets";
const SECRET: &str = "vault-init";

fn contents() -> InitContents {
    InitContents {
        root_token: Some("hvs.SUPER-SECRET-ROOT-TOKEN".into()),
        keys: vec!["RECOVERY-SHARE-1".into(), "RECOVERY-SHARE-2".into()],
        key_type: KeyType::Recovery,
        threshold: 2,
        root_token_revoked: false,
    }
}

fn data_key() -> DataKey {
    DataKey {
        key_id: "arn:aws:kms:us-east-1:123456789012:key/k-1".into(),
        plaintext: Zeroizing::new((0u8..32).collect()),
        wrapped: b"WRAPPED-BY-KMS".to_vec(),
    }
}

fn sealed() -> BTreeMap<String, ByteString> {
    envelope_data(&contents(), &data_key(), "us-east-1", NS, SECRET).expect("seals")
}

fn envelope(data: &BTreeMap<String, ByteString>) -> Envelope {
    match parse(data).expect("parses") {
        Stored::Envelope(e) => e,
        Stored::Plain(_) => panic!("expected an envelope"),
    }
}

#[test]
fn envelope_round_trips_and_holds_no_secret_in_clear() {
    let data = sealed();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ciphertext",
            "format",
            "key-type",
            "kms-key-id",
            "kms-region",
            "nonce",
            "root-token-revoked",
            "threshold",
            "wrapped-data-key"
        ]
    );
    for (k, v) in &data {
        let text = String::from_utf8_lossy(&v.0);
        assert!(
            !text.contains("SUPER-SECRET") && !text.contains("RECOVERY-SHARE"),
            "{k} holds a secret in clear"
        );
    }
    assert_eq!(data[FORMAT].0, b"awskms-envelope-v1");
    assert_eq!(
        data[KMS_KEY_ID].0,
        b"arn:aws:kms:us-east-1:123456789012:key/k-1"
    );
    assert_eq!(data[WRAPPED_DATA_KEY].0, b"WRAPPED-BY-KMS");
    assert_eq!(data[NONCE].0.len(), 12);
    assert_eq!(data[KEY_TYPE].0, b"recovery");
    assert_eq!(data[THRESHOLD].0, b"2");
    assert_eq!(data[ROOT_TOKEN_REVOKED].0, b"false");
    let env = envelope(&data);
    assert_eq!(env.region, "us-east-1");
    let opened = open(&env, &data_key().plaintext, NS, SECRET).expect("opens");
    assert_eq!(opened, contents());
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let (a, b) = (sealed(), sealed());
    assert_ne!(a[NONCE], b[NONCE]);
    assert_ne!(a[CIPHERTEXT], b[CIPHERTEXT]);
}

#[test]
fn envelope_refuses_a_wrong_key_another_secret_and_tampering() {
    let data = sealed();
    let env = envelope(&data);
    let mut wrong = data_key().plaintext.to_vec();
    wrong[0] ^= 1;
    assert!(matches!(
        open(&env, &wrong, NS, SECRET),
        Err(FormatError::Open { .. })
    ));
    // Copied into another Secret or namespace: the AAD differs.
    assert!(matches!(
        open(&env, &data_key().plaintext, NS, "other-init"),
        Err(FormatError::Open { .. })
    ));
    assert!(matches!(
        open(&env, &data_key().plaintext, "other", SECRET),
        Err(FormatError::Open { .. })
    ));
    // The clear fields are authenticated: flipping one breaks the seal.
    for (key, value) in [
        (THRESHOLD, "1"),
        (KEY_TYPE, "unseal"),
        (ROOT_TOKEN_REVOKED, "true"),
    ] {
        let mut d = data.clone();
        d.insert(key.to_owned(), ByteString(value.as_bytes().to_vec()));
        assert!(
            matches!(
                open(&envelope(&d), &data_key().plaintext, NS, SECRET),
                Err(FormatError::Open { .. })
            ),
            "{key} changed"
        );
    }
    let mut d = data.clone();
    if let Some(c) = d.get_mut(CIPHERTEXT) {
        c.0[0] ^= 0x80;
    }
    assert!(matches!(
        open(&envelope(&d), &data_key().plaintext, NS, SECRET),
        Err(FormatError::Open { .. })
    ));
    let mut d = data.clone();
    d.insert(NONCE.to_owned(), ByteString(vec![0; 11]));
    assert_eq!(
        open(&envelope(&d), &data_key().plaintext, NS, SECRET),
        Err(FormatError::Invalid {
            key: NONCE,
            why: "11 bytes, not 12".into()
        })
    );
}

#[test]
fn data_key_of_the_wrong_length_is_refused() {
    let mut dk = data_key();
    dk.plaintext = Zeroizing::new(vec![1; 16]);
    assert_eq!(
        envelope_data(&contents(), &dk, "us-east-1", NS, SECRET),
        Err(FormatError::DataKeyLength(16))
    );
}

#[test]
fn revoked_envelope_has_no_root_token() {
    let mut c = contents();
    c.root_token = None;
    c.root_token_revoked = true;
    let data = envelope_data(&c, &data_key(), "us-east-1", NS, SECRET).expect("seals");
    assert_eq!(data[ROOT_TOKEN_REVOKED].0, b"true");
    let opened = open(&envelope(&data), &data_key().plaintext, NS, SECRET).expect("opens");
    assert_eq!(opened.root_token, None);
    assert!(opened.root_token_revoked);
    assert_eq!(opened.keys, c.keys);
}

#[test]
fn plain_round_trips_and_reads_secrets_of_older_operators() {
    let mut c = contents();
    c.key_type = KeyType::Unseal;
    let data = plain_data(&c);
    assert_eq!(data[FORMAT].0, b"plain-v1");
    assert_eq!(data[ROOT_TOKEN].0, b"hvs.SUPER-SECRET-ROOT-TOKEN");
    assert_eq!(data[KEYS].0, b"RECOVERY-SHARE-1\nRECOVERY-SHARE-2");
    match parse(&data).expect("parses") {
        Stored::Plain(p) => assert_eq!(p, c),
        Stored::Envelope(_) => panic!("plain"),
    }
    // Written by an operator before the format field existed.
    let mut legacy = data.clone();
    legacy.remove(FORMAT);
    legacy.remove(ROOT_TOKEN_REVOKED);
    match parse(&legacy).expect("parses") {
        Stored::Plain(p) => {
            assert_eq!(p.root_token.as_deref(), Some("hvs.SUPER-SECRET-ROOT-TOKEN"));
            assert!(!p.root_token_revoked);
        }
        Stored::Envelope(_) => panic!("plain"),
    }
}

#[test]
fn parse_errors_name_the_field() {
    assert_eq!(
        parse(&BTreeMap::new()).map(|_| ()),
        Err(FormatError::Missing(KEY_TYPE))
    );
    let mut d = sealed();
    d.remove(WRAPPED_DATA_KEY);
    assert_eq!(
        parse(&d).map(|_| ()),
        Err(FormatError::Missing(WRAPPED_DATA_KEY))
    );
    let mut d = sealed();
    d.insert(FORMAT.into(), ByteString(b"awskms-envelope-v9".to_vec()));
    let e = parse(&d).map(|_| ()).expect_err("unknown");
    assert_eq!(e, FormatError::UnknownFormat("awskms-envelope-v9".into()));
    assert!(e.to_string().contains("at least as new"), "{e}");
    let mut d = sealed();
    d.insert(THRESHOLD.into(), ByteString(b"300".to_vec()));
    assert!(matches!(
        parse(&d),
        Err(FormatError::Invalid { key: THRESHOLD, .. })
    ));
    let mut d = sealed();
    d.insert(KEY_TYPE.into(), ByteString(b"master".to_vec()));
    assert!(matches!(
        parse(&d),
        Err(FormatError::Invalid { key: KEY_TYPE, .. })
    ));
}

#[test]
fn debug_output_hides_secrets() {
    let dbg = format!("{:?} {:?}", contents(), data_key());
    assert!(
        !dbg.contains("SUPER-SECRET") && !dbg.contains("RECOVERY-SHARE"),
        "{dbg}"
    );
    assert!(dbg.contains("redacted") && dbg.contains("key/k-1"), "{dbg}");
}
