use std::path::PathBuf;

use super::*;
use crate::operator::build::configmap::{config_hash, config_map, hcl};
use crate::operator::build::fixtures::validated;
use crate::server::config::{Env, RetryJoin, ServerConfig, StorageConfig};

/// Three replicas of raft with a performance multiplier.
const RAFT3: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  replicas: 3
  raft:
    performanceMultiplier: 2
  seal:
    awsKms:
      keyId: alias/k
      region: eu-west-1
"#;

/// The pod environment the StatefulSet gives pod `pod`, with `$(POD_NAME)` expanded as the
/// kubelet does.
struct PodEnv(Vec<(String, String)>);

impl Env for PodEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn pod_env(v: &Validated, pod: &str) -> PodEnv {
    let sts = crate::operator::build::statefulset::stateful_set(v, "h");
    let c = &sts
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    PodEnv(
        c.env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?.replace("$(POD_NAME)", pod))))
            .collect(),
    )
}

fn parsed(v: &Validated, pod: &str) -> ServerConfig {
    let text = hcl(v);
    ServerConfig::parse("sealkeep.hcl", &text, &pod_env(v, pod))
        .unwrap_or_else(|e| panic!("generated HCL does not parse: {e}\n{text}"))
}

#[test]
fn raft_config_round_trips_with_dns_names_and_every_ordinal() {
    let v = validated(RAFT3);
    let cfg = parsed(&v, "vault-1");
    let StorageConfig::Raft(r) = &cfg.storage else {
        panic!("raft expected: {:?}", cfg.storage)
    };
    assert_eq!(r.path, PathBuf::from("/sealkeep/data/raft"));
    assert_eq!(r.node_id.as_deref(), Some("vault-1"));
    assert_eq!(r.performance_multiplier, 2);
    let joins: Vec<&str> = r
        .retry_join
        .iter()
        .map(|j| j.leader_api_addr.as_str())
        .collect();
    assert_eq!(
        joins,
        [
            "http://vault-0.vault-internal:8200",
            "http://vault-1.vault-internal:8200",
            "http://vault-2.vault-internal:8200",
            "http://vault-3.vault-internal:8200",
            "http://vault-4.vault-internal:8200",
        ]
    );
    assert!(r.retry_join.iter().all(|j| j.leader_ca_cert_file.is_none()));
    // Each pod's own DNS names, never an IP.
    assert_eq!(
        cfg.api_addr.as_deref(),
        Some("http://vault-1.vault-internal:8200")
    );
    assert_eq!(
        cfg.cluster_addr.as_deref(),
        Some("https://vault-1.vault-internal:8201")
    );
    assert_eq!(
        cfg.listeners[0].cluster_address,
        "0.0.0.0:8201".parse().expect("addr")
    );
    assert!(!hcl(&v).contains("POD_IP"));
}

#[test]
fn defaults_leave_the_multiplier_to_the_server() {
    let v = validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: s\nspec:\n  seal:\n    shamir: {}\n",
    );
    let text = hcl(&v);
    assert!(text.starts_with("storage \"raft\" {\n"), "{text}");
    assert!(!text.contains("performance_multiplier"), "{text}");
    let StorageConfig::Raft(r) = parsed(&v, "s-0").storage else {
        panic!("raft expected")
    };
    assert_eq!(
        r.performance_multiplier,
        crate::server::config::DEFAULT_PERFORMANCE_MULTIPLIER
    );
    assert_eq!(r.retry_join.len(), 5);
}

#[test]
fn tls_joins_over_https_trusting_the_listeners_ca() {
    let v = validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: t\nspec:\n  seal:\n    shamir: {}\n  listener:\n    tls:\n      secretName: t-tls\n",
    );
    let cfg = parsed(&v, "t-0");
    let StorageConfig::Raft(r) = &cfg.storage else {
        panic!("raft expected")
    };
    assert_eq!(
        r.retry_join[0],
        RetryJoin {
            leader_api_addr: "https://t-0.t-internal:8200".into(),
            leader_tls_servername: None,
            leader_ca_cert_file: Some(PathBuf::from(LEADER_CA_FILE)),
        }
    );
    assert_eq!(cfg.api_addr.as_deref(), Some("https://t-0.t-internal:8200"));
    assert_eq!(
        cfg.cluster_addr.as_deref(),
        Some("https://t-0.t-internal:8201")
    );
}

#[test]
fn scaling_leaves_the_config_and_its_hash_unchanged() {
    let hash = |replicas: i32| {
        let mut v = validated(RAFT3);
        v.replicas = replicas;
        config_hash(&config_map(&v))
    };
    assert_eq!(hash(1), hash(3));
    assert_eq!(hash(3), hash(5));
}

/// A `file` server renders exactly what it rendered before raft existed: the same text and so
/// the same config hash, so upgrading the operator does not restart it.
#[test]
fn a_file_server_renders_as_before() {
    let v = crate::operator::build::fixtures::shamir();
    let expected = "storage \"file\" {\n  path = \"/sealkeep/data\"\n}\n\nlistener \"tcp\" {\n  address = \"0.0.0.0:8200\"\n  tls_disable = true\n}\n\nseal \"shamir\" {}\n\ncluster_name = \"secrets/shamir\"\nlog_format = \"json\"\n";
    assert_eq!(hcl(&v), expected);
}
