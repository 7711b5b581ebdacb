use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use zeroize::Zeroizing;

use super::*;
use crate::operator::initsecret::kms::{FakeKms, KmsErrorClass};
use crate::operator::initsecret::{DataKey, KeyType};

fn contents(revoked: bool) -> InitContents {
    InitContents {
        root_token: (!revoked).then(|| "hvs.ROOT".to_owned()),
        keys: vec!["SHARE-1".into(), "SHARE-2".into(), "SHARE-3".into()],
        key_type: KeyType::Recovery,
        threshold: 2,
        root_token_revoked: revoked,
    }
}

fn secret(state: &str, data: BTreeMap<String, k8s_openapi::ByteString>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("vault-init".into()),
            annotations: Some(BTreeMap::from([(
                INIT_STATE_ANNOTATION.to_owned(),
                state.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    }
}

/// An envelope sealed with the data key [`FakeKms`] hands out.
fn envelope_secret(c: &InitContents) -> Secret {
    let plaintext: Vec<u8> = (100u8..132).collect();
    let dk = DataKey {
        key_id: FakeKms::KEY_ARN.into(),
        wrapped: plaintext.iter().rev().copied().collect(),
        plaintext: Zeroizing::new(plaintext),
    };
    let data = initsecret::envelope_data(c, &dk, "eu-west-1", "demo", "vault-init").expect("seal");
    secret("done", data)
}

#[tokio::test]
async fn envelope_is_decrypted_with_the_stored_key_and_context() {
    let kms = FakeKms::default();
    let opts = ShowOptions {
        region: None,
        kms_endpoint: Some("http://kms.local".into()),
    };
    let (c, source) = reveal(&envelope_secret(&contents(false)), "demo", &kms, &opts)
        .await
        .expect("reveals");
    assert_eq!(c, contents(false));
    assert_eq!(
        source,
        Source::Envelope {
            key_id: FakeKms::KEY_ARN.into()
        }
    );
    let calls = kms.calls.lock().expect("calls").clone();
    assert_eq!(
        calls,
        [(
            "Decrypt".to_owned(),
            FakeKms::KEY_ARN.to_owned(),
            "demo/vault-init".to_owned()
        )]
    );
}

#[tokio::test]
async fn kms_access_denied_names_the_key_and_the_secret() {
    let kms = FakeKms::failing(
        KmsErrorClass::AccessDenied,
        "KMS denied Decrypt on key \"arn:aws:kms:eu-west-1:123456789012:key/fake\": the caller's AWS identity needs kms:Decrypt on this key",
    );
    let e = reveal(
        &envelope_secret(&contents(false)),
        "demo",
        &kms,
        &ShowOptions::default(),
    )
    .await
    .expect_err("denied");
    let msg = e.to_string();
    assert!(
        msg.contains("demo/vault-init") && msg.contains("key/fake") && msg.contains("kms:Decrypt"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_secret_moved_to_another_namespace_does_not_open() {
    let e = reveal(
        &envelope_secret(&contents(false)),
        "elsewhere",
        &FakeKms::default(),
        &ShowOptions::default(),
    )
    .await
    .expect_err("AAD differs");
    assert!(
        matches!(
            e,
            ShowError::Format {
                source: FormatError::Open { .. },
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn plain_secret_needs_no_kms_and_pending_is_refused() {
    let kms = FakeKms::failing(KmsErrorClass::Unreachable, "not called");
    let s = secret("done", initsecret::plain_data(&contents(false)));
    let (c, source) = reveal(&s, "demo", &kms, &ShowOptions::default())
        .await
        .expect("plain");
    assert_eq!(source, Source::Plain);
    assert_eq!(c.root_token.as_deref(), Some("hvs.ROOT"));
    let pending = secret("pending", BTreeMap::new());
    let e = reveal(&pending, "demo", &kms, &ShowOptions::default())
        .await
        .expect_err("pending");
    assert!(e.to_string().contains("still pending"), "{e}");
    assert!(kms.calls.lock().expect("calls").is_empty());
}

#[test]
fn render_prints_token_and_keys() {
    let out = render(
        "demo/vault-init",
        &contents(false),
        &Source::Envelope {
            key_id: "arn:k".into(),
        },
        None,
    )
    .expect("render");
    assert_eq!(
        out,
        "Secret        demo/vault-init\n\
         Stored        awskms-envelope-v1, data key of KMS key arn:k\n\
         Key Type      recovery\n\
         Threshold     2 of 3\n\
         Root Token    hvs.ROOT\n\
         Key 1         SHARE-1\n\
         Key 2         SHARE-2\n\
         Key 3         SHARE-3\n"
    );
    let token = render(
        "x",
        &contents(false),
        &Source::Plain,
        Some(Field::RootToken),
    );
    assert_eq!(token.expect("token"), "hvs.ROOT\n");
    let keys = render("x", &contents(false), &Source::Plain, Some(Field::Keys));
    assert_eq!(keys.expect("keys"), "SHARE-1\nSHARE-2\nSHARE-3\n");
}

#[test]
fn revoked_root_token_is_reported_not_printed() {
    let out = render("demo/vault-init", &contents(true), &Source::Plain, None).expect("render");
    assert!(
        out.contains("Root Token    revoked after initialization"),
        "{out}"
    );
    let e = render(
        "demo/vault-init",
        &contents(true),
        &Source::Plain,
        Some(Field::RootToken),
    )
    .expect_err("revoked");
    assert!(e.to_string().contains("generate-root"), "{e}");
}
