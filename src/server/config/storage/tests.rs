//! Tests of the `storage "raft"` block and the addresses raft needs.

use std::collections::HashMap;

use crate::server::config::{
    ConfigError, DEFAULT_PERFORMANCE_MULTIPLIER, Env, RaftConfig, RetryJoin, ServerConfig,
    StorageConfig,
};

struct FakeEnv(HashMap<&'static str, &'static str>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }
}

fn parse_with(
    text: &str,
    pairs: &[(&'static str, &'static str)],
) -> Result<ServerConfig, ConfigError> {
    ServerConfig::parse("raft.hcl", text, &FakeEnv(pairs.iter().copied().collect()))
}

fn raft(cfg: &ServerConfig) -> &RaftConfig {
    match &cfg.storage {
        StorageConfig::Raft(r) => r,
        other => panic!("expected raft storage, got {other:?}"),
    }
}

const ISSUE_EXAMPLE: &str = r#"
storage "raft" {
  path    = "/var/lib/sealkeep/raft"
  node_id = "vault-0"
  performance_multiplier = 2
  retry_join { leader_api_addr = "https://vault-0.vault-internal.ns.svc.cluster.local:8200" }
  retry_join {
    leader_api_addr = "https://vault-1.vault-internal.ns.svc.cluster.local:8200"
    leader_tls_servername = "vault-1"
    leader_ca_cert_file = "/etc/sealkeep/ca.pem"
  }
}
listener "tcp" { address = "127.0.0.1:8200"  cluster_address = "127.0.0.1:8211"  tls_disable = 1 }
api_addr     = "http://127.0.0.1:8200"
cluster_addr = "https://127.0.0.1:8211"
"#;

#[test]
fn parses_vaults_raft_stanza() {
    let cfg = parse_with(ISSUE_EXAMPLE, &[]).expect("parse");
    assert_eq!(cfg.storage.kind(), "raft");
    let r = raft(&cfg);
    assert_eq!(r.path, std::path::PathBuf::from("/var/lib/sealkeep/raft"));
    assert_eq!(r.node_id.as_deref(), Some("vault-0"));
    assert_eq!(r.performance_multiplier, 2);
    assert_eq!(
        r.retry_join,
        vec![
            RetryJoin {
                leader_api_addr: "https://vault-0.vault-internal.ns.svc.cluster.local:8200".into(),
                leader_tls_servername: None,
                leader_ca_cert_file: None,
            },
            RetryJoin {
                leader_api_addr: "https://vault-1.vault-internal.ns.svc.cluster.local:8200".into(),
                leader_tls_servername: Some("vault-1".into()),
                leader_ca_cert_file: Some("/etc/sealkeep/ca.pem".into()),
            },
        ]
    );
    assert_eq!(
        cfg.listeners[0].cluster_address,
        "127.0.0.1:8211".parse().expect("addr")
    );
    assert_eq!(cfg.cluster_addr.as_deref(), Some("https://127.0.0.1:8211"));
}

#[test]
fn addresses_default_from_the_listener_and_the_environment_wins() {
    let text = "storage \"raft\" { path = \"/r\" }\nlistener \"tcp\" { address = \"127.0.0.1:9200\" tls_disable = 1 }\n";
    let cfg = parse_with(text, &[]).expect("parse");
    assert_eq!(cfg.api_addr.as_deref(), Some("http://127.0.0.1:9200"));
    assert_eq!(
        cfg.listeners[0].cluster_address,
        "127.0.0.1:9201".parse().expect("addr")
    );
    assert_eq!(cfg.cluster_addr.as_deref(), Some("https://127.0.0.1:9201"));
    let r = raft(&cfg);
    assert_eq!(r.performance_multiplier, DEFAULT_PERFORMANCE_MULTIPLIER);
    assert_eq!(r.node_id, None);
    assert!(r.retry_join.is_empty());

    let cfg = parse_with(
        text,
        &[
            ("VAULT_API_ADDR", "http://vault-0.v:8200"),
            ("VAULT_CLUSTER_ADDR", "https://vault-0.v:8201"),
            ("VAULT_RAFT_NODE_ID", "vault-0"),
            ("VAULT_RAFT_PATH", "/data/raft"),
        ],
    )
    .expect("parse");
    assert_eq!(cfg.api_addr.as_deref(), Some("http://vault-0.v:8200"));
    assert_eq!(cfg.cluster_addr.as_deref(), Some("https://vault-0.v:8201"));
    assert_eq!(raft(&cfg).node_id.as_deref(), Some("vault-0"));
    assert_eq!(raft(&cfg).path, std::path::PathBuf::from("/data/raft"));
}

#[test]
fn a_wildcard_listener_needs_explicit_addresses() {
    let text = "storage \"raft\" { path = \"/r\" }\nlistener \"tcp\" { address = \"0.0.0.0:8200\" tls_disable = 1 }\n";
    let e = parse_with(text, &[]).expect_err("api_addr needed");
    assert!(e.message.contains("needs api_addr"), "{e}");
    assert!(e.fix.contains("VAULT_API_ADDR"), "{e}");
    let e = parse_with(text, &[("VAULT_API_ADDR", "http://n0:8200")]).expect_err("cluster_addr");
    assert!(e.message.contains("needs cluster_addr"), "{e}");
    parse_with(
        text,
        &[
            ("VAULT_API_ADDR", "http://n0:8200"),
            ("VAULT_CLUSTER_ADDR", "https://n0:8201"),
        ],
    )
    .expect("both set");
}

fn raft_error(stanza: &str) -> ConfigError {
    let text = format!(
        "storage \"raft\" {{\n{stanza}\n}}\nlistener \"tcp\" {{ address = \"127.0.0.1:8200\" tls_disable = 1 }}\n"
    );
    parse_with(&text, &[]).expect_err("must fail")
}

#[test]
fn bad_raft_settings_name_the_cause_and_the_fix() {
    let e = raft_error("  path = \"/r\"\n  trailing_logs = 10000");
    assert!(
        e.message.contains("unknown setting \"trailing_logs\""),
        "{e}"
    );
    assert_eq!(e.line, 3, "{e}");
    let e = raft_error("  node_id = \"n\"");
    assert!(e.message.contains("needs a path"), "{e}");
    let e = raft_error("  path = \"/r\"\n  performance_multiplier = 11");
    assert!(e.message.contains("above 10"), "{e}");
    let e = raft_error("  path = \"/r\"\n  node_id = \"a b\"");
    assert!(e.message.contains("not a valid node name"), "{e}");
    let e = raft_error("  path = \"/r\"\n  retry_join { auto_join = \"provider=k8s\" }");
    assert!(e.message.contains("auto_join"), "{e}");
    assert!(e.fix.contains("leader_api_addr"), "{e}");
    let e = raft_error("  path = \"/r\"\n  retry_join { leader_api_addr = \"vault-0:8200\" }");
    assert!(e.message.contains("not an http(s) URL"), "{e}");
    let e = raft_error("  path = \"/r\"\n  retry_join { leader_addr = \"http://x:8200\" }");
    assert!(
        e.message
            .contains("unknown setting \"leader_addr\" in retry_join"),
        "{e}"
    );
    let e =
        raft_error("  path = \"/r\"\n  retry_join \"x\" { leader_api_addr = \"http://x:8200\" }");
    assert!(e.message.contains("takes no label"), "{e}");
}

#[test]
fn zero_multiplier_is_the_default_as_in_vault() {
    let text = "storage \"raft\" {\n path = \"/r\"\n performance_multiplier = 0\n}\nlistener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = 1 }\n";
    let cfg = parse_with(text, &[]).expect("parse");
    assert_eq!(
        raft(&cfg).performance_multiplier,
        DEFAULT_PERFORMANCE_MULTIPLIER
    );
}

#[test]
fn a_bad_cluster_address_is_refused() {
    let text = "storage \"file\" { path = \"/d\" }\nlistener \"tcp\" { address = \"127.0.0.1:8200\" cluster_address = \"x:1\" tls_disable = 1 }\n";
    let e = parse_with(text, &[]).expect_err("must fail");
    assert!(
        e.message
            .contains("cluster_address \"x:1\" is not an IP:port"),
        "{e}"
    );
}
