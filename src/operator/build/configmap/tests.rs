use std::path::PathBuf;

use super::*;
use crate::operator::build::fixtures;
use crate::server::config::{
    AwsKmsConfig, DEFAULT_MAX_BACKOFF, Env, SealConfig, ServerConfig, StorageConfig, TlsConfig,
};
use crate::telemetry::LogFormat;

/// An environment with no variables, so the file alone decides (no AWS_REGION override).
struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// Builds the ConfigMap for `v` and parses its HCL with the server's own parser.
fn parsed(v: &Validated) -> (String, ServerConfig) {
    let cm = config_map(v);
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .expect("sealkeep.hcl key")
        .clone();
    let cfg = ServerConfig::parse(CONFIG_KEY, &text, &NoEnv)
        .unwrap_or_else(|e| panic!("generated HCL does not parse: {e}\n{text}"));
    (text, cfg)
}

#[test]
fn unauthenticated_metrics_access_is_the_listener_telemetry_block() {
    let text = hcl(&fixtures::metrics());
    let listener = "listener \"tcp\" {\n  address = \"0.0.0.0:8200\"\n  tls_disable = true\n  telemetry {\n    unauthenticated_metrics_access = true\n  }\n}\n";
    assert!(text.contains(listener), "{text}");
    assert_eq!(text.matches("telemetry").count(), 1, "{text}");
    // The server reads it as the listener's setting.
    assert!(parsed(&fixtures::metrics()).1.listeners[0].unauthenticated_metrics_access);
    assert!(!parsed(&fixtures::shamir()).1.listeners[0].unauthenticated_metrics_access);
    // Default: no telemetry block, so the server asks scrapers for a token.
    for v in [fixtures::shamir(), fixtures::awskms_role(), fixtures::tls()] {
        let text = hcl(&v);
        assert!(!text.contains("telemetry"), "{text}");
        assert!(!text.contains("unauthenticated_metrics_access"), "{text}");
    }
    // The config hash (and so the pod) changes with the setting.
    let mut open = fixtures::shamir();
    open.unauthenticated_metrics_access = true;
    assert_ne!(
        config_hash(&config_map(&open)),
        config_hash(&config_map(&fixtures::shamir()))
    );
}

#[test]
fn config_map_has_one_key_and_child_metadata() {
    let v = fixtures::shamir();
    let cm = config_map(&v);
    assert_eq!(cm.metadata.name.as_deref(), Some("shamir-config"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some(fixtures::NAMESPACE));
    let data = cm.data.expect("data");
    assert_eq!(data.keys().collect::<Vec<_>>(), vec![CONFIG_KEY]);
    assert_eq!(config_path(), "/sealkeep/config/sealkeep.hcl");
}

#[test]
fn awskms_without_endpoint_round_trips_through_the_server_parser() {
    let (_, cfg) = parsed(&fixtures::awskms_role());
    assert_eq!(
        cfg.storage,
        StorageConfig::File {
            path: PathBuf::from("/sealkeep/data")
        }
    );
    assert_eq!(cfg.listeners.len(), 1);
    assert_eq!(
        cfg.listeners[0].address,
        "0.0.0.0:8200".parse().expect("addr")
    );
    assert_eq!(cfg.listeners[0].tls, None);
    assert_eq!(
        cfg.seal,
        SealConfig::AwsKms(AwsKmsConfig {
            region: "eu-west-1".into(),
            kms_key_id: "alias/sealkeep-unseal".into(),
            endpoint: None,
            max_backoff: DEFAULT_MAX_BACKOFF,
        })
    );
    assert_eq!(cfg.cluster_name.as_deref(), Some("secrets/vault"));
    assert_eq!(cfg.log_format, Some(LogFormat::Json));
    assert_eq!(cfg.api_addr, None);
}

#[test]
fn awskms_with_endpoint_and_tls_round_trips() {
    let (_, cfg) = parsed(&fixtures::tls());
    assert_eq!(
        cfg.seal,
        SealConfig::AwsKms(AwsKmsConfig {
            region: "us-east-1".into(),
            kms_key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            endpoint: Some("http://kms.local:4566".into()),
            max_backoff: DEFAULT_MAX_BACKOFF,
        })
    );
    assert_eq!(
        cfg.listeners[0].tls,
        Some(TlsConfig {
            cert_file: "/sealkeep/tls/tls.crt".into(),
            key_file: "/sealkeep/tls/tls.key".into(),
        })
    );
    assert_eq!(
        cfg.listeners[0].address,
        "0.0.0.0:8200".parse().expect("addr")
    );
    assert_eq!(cfg.cluster_name.as_deref(), Some("secrets/tls"));
}

#[test]
fn shamir_round_trips_with_an_explicit_seal_block() {
    let (text, cfg) = parsed(&fixtures::shamir());
    assert!(text.contains("seal \"shamir\" {}"), "{text}");
    assert!(!text.contains("awskms"), "{text}");
    assert_eq!(cfg.seal, SealConfig::Shamir);
    assert_eq!(cfg.listeners[0].tls, None);
    assert_eq!(
        cfg.storage,
        StorageConfig::File {
            path: "/sealkeep/data".into()
        }
    );
}

const HOSTILE_KEY: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  storage:
    type: file
  seal:
    awsKms:
      keyId: 'alias/a"b\c" } seal "shamir" {'
      region: "eu-\"west\"-1\ttab"
      endpoint: "http://kms\nlocal"
"#;

#[test]
fn user_strings_are_escaped_and_parse_back_unchanged() {
    let (text, cfg) = parsed(&fixtures::validated(HOSTILE_KEY));
    assert!(
        text.contains(r#"kms_key_id = "alias/a\"b\\c\" } seal \"shamir\" {""#),
        "{text}"
    );
    assert_eq!(
        cfg.seal,
        SealConfig::AwsKms(AwsKmsConfig {
            region: "eu-\"west\"-1\ttab".into(),
            kms_key_id: r#"alias/a"b\c" } seal "shamir" {"#.into(),
            endpoint: Some("http://kms\nlocal".into()),
            max_backoff: DEFAULT_MAX_BACKOFF,
        })
    );
}

#[test]
fn quote_escapes_backslash_quote_and_control_characters() {
    assert_eq!(quote("plain"), "\"plain\"");
    assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(quote("a\nb\rc\td"), r#""a\nb\rc\td""#);
}

#[test]
fn config_hash_is_stable_and_changes_with_the_config() {
    let v = fixtures::awskms_role();
    let a = config_hash(&config_map(&v));
    assert_eq!(a, config_hash(&config_map(&v)));
    assert_eq!(a.len(), 16);
    assert!(
        a.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let mut other_key = v.clone();
    if let Seal::AwsKms { key_id, .. } = &mut other_key.seal {
        *key_id = "alias/another".into();
    }
    assert_ne!(a, config_hash(&config_map(&other_key)));

    let mut with_tls = v.clone();
    with_tls.tls_secret = Some("cert".into());
    assert_ne!(a, config_hash(&config_map(&with_tls)));

    // Fields outside the config (here the image) do not change the hash.
    let mut other_image = v;
    other_image.image = "registry.example/other:2".into();
    assert_eq!(a, config_hash(&config_map(&other_image)));
}

#[test]
fn config_hash_separates_keys_from_values() {
    let cm = |k: &str, val: &str| ConfigMap {
        data: Some(BTreeMap::from([(k.to_owned(), val.to_owned())])),
        ..ConfigMap::default()
    };
    assert_ne!(config_hash(&cm("ab", "c")), config_hash(&cm("a", "bc")));
    assert_ne!(
        config_hash(&cm("a", "b")),
        config_hash(&ConfigMap::default())
    );
}

#[test]
fn every_child_is_namespaced_and_controlled_by_the_secret_server() {
    for v in [fixtures::awskms_role(), fixtures::shamir(), fixtures::tls()] {
        let c = crate::operator::build::children(&v);
        let hash = config_hash(&c.config_map);
        let annotations = c
            .stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .expect("annotations");
        assert_eq!(
            annotations[crate::operator::build::statefulset::CONFIG_HASH_ANNOTATION],
            hash
        );

        let objects = [
            serde_json::to_value(&c.service_account),
            serde_json::to_value(&c.config_map),
            serde_json::to_value(&c.headless_service),
            serde_json::to_value(&c.client_service),
            serde_json::to_value(&c.stateful_set),
            serde_json::to_value(&c.pod_disruption_budget),
        ];
        let mut kinds = Vec::new();
        for o in objects {
            let o = o.expect("serializes");
            let kind = o["kind"].as_str().expect("kind").to_owned();
            assert!(o["apiVersion"].is_string(), "{kind}");
            let m = &o["metadata"];
            assert_eq!(m["namespace"], fixtures::NAMESPACE, "{kind}");
            assert!(m["name"].as_str().is_some_and(|n| !n.is_empty()), "{kind}");
            assert_eq!(m["labels"]["app.kubernetes.io/instance"], v.name.as_str());
            assert_eq!(
                m["labels"]["app.kubernetes.io/managed-by"],
                "sealkeep-operator"
            );
            let owners = m["ownerReferences"].as_array().expect("ownerReferences");
            assert_eq!(owners.len(), 1, "{kind}");
            let owner = &owners[0];
            assert_eq!(owner["controller"], true, "{kind}");
            assert_eq!(owner["kind"], "SecretServer", "{kind}");
            assert_eq!(owner["apiVersion"], "sealkeep.dev/v1alpha1", "{kind}");
            assert_eq!(owner["name"], v.name.as_str(), "{kind}");
            assert_eq!(owner["uid"], fixtures::UID, "{kind}");
            kinds.push(kind);
        }
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ConfigMap",
                "Service",
                "Service",
                "StatefulSet",
                "PodDisruptionBudget"
            ]
        );
    }
}
