//! Tests of the `operator migrate` file parser: Vault's example, defaults, and every refusal
//! with the line and the message it gives.

use std::path::PathBuf;

use crate::server::config::{
    ConfigError, DEFAULT_MIGRATE_CLUSTER_ADDR, DEFAULT_PERFORMANCE_MULTIPLIER, MigrateConfig,
    RaftConfig, StorageConfig,
};

const VAULT_EXAMPLE: &str = r#"
storage_source "file" { path = "/var/lib/sealkeep/data" }
storage_destination "raft" {
  path    = "/var/lib/sealkeep/raft"
  node_id = "vault-0"
}
cluster_addr = "https://vault-0.vault-internal:8201"
api_addr     = "https://vault-0.vault-internal:8200"
"#;

fn parse(text: &str) -> Result<MigrateConfig, ConfigError> {
    MigrateConfig::parse("migrate.hcl", text)
}

/// The error of `text`, checked to name the file and the line.
fn error(text: &str, line: usize) -> ConfigError {
    let e = parse(text).expect_err("the file must be refused");
    assert_eq!(e.file, "migrate.hcl", "{e}");
    assert_eq!(e.line, line, "{e}");
    assert!(!e.fix.is_empty(), "{e}");
    e
}

const FILE_SOURCE: &str = "storage_source \"file\" { path = \"/src\" }\n";
const RAFT_DESTINATION: &str =
    "storage_destination \"raft\" { path = \"/dst\"  node_id = \"n0\" }\n";

#[test]
fn parses_vaults_example() {
    let cfg = parse(VAULT_EXAMPLE).expect("parse");
    assert_eq!(
        cfg,
        MigrateConfig {
            source: StorageConfig::File {
                path: "/var/lib/sealkeep/data".into()
            },
            destination: StorageConfig::Raft(RaftConfig {
                path: "/var/lib/sealkeep/raft".into(),
                node_id: Some("vault-0".into()),
                performance_multiplier: DEFAULT_PERFORMANCE_MULTIPLIER,
                retry_join: vec![],
            }),
            cluster_addr: "https://vault-0.vault-internal:8201".into(),
            api_addr: Some("https://vault-0.vault-internal:8200".into()),
        }
    );
}

#[test]
fn defaults_cluster_addr_and_leaves_api_addr_unset_when_absent() {
    let cfg = parse(&format!("{FILE_SOURCE}{RAFT_DESTINATION}")).expect("parse");
    assert_eq!(cfg.cluster_addr, DEFAULT_MIGRATE_CLUSTER_ADDR);
    assert_eq!(cfg.api_addr, None);
    let StorageConfig::Raft(r) = &cfg.destination else {
        panic!("expected raft, got {:?}", cfg.destination);
    };
    assert_eq!(r.node_id.as_deref(), Some("n0"));
}

#[test]
fn accepts_raft_to_file_and_raft_to_raft() {
    let cfg = parse(
        "storage_source \"raft\" { path = \"/r\" }\nstorage_destination \"file\" { path = \"/f\" }",
    )
    .expect("raft to file");
    assert_eq!(cfg.source.kind(), "raft");
    assert_eq!(
        cfg.destination,
        StorageConfig::File {
            path: PathBuf::from("/f")
        }
    );
    let cfg = parse(
        "storage_source \"raft\" { path = \"/a\" }\nstorage_destination \"raft\" { path = \"/b\" node_id = \"n\" }",
    )
    .expect("raft to raft");
    assert_eq!(cfg.destination.kind(), "raft");
}

#[test]
fn refuses_a_missing_source_or_destination() {
    let e = error(RAFT_DESTINATION, 1);
    assert_eq!(e.message, "no storage_source block");
    assert!(e.fix.contains("storage_source \"file\""), "{e}");
    let e = error(FILE_SOURCE, 1);
    assert_eq!(e.message, "no storage_destination block");
}

#[test]
fn refuses_a_second_source_or_destination() {
    let e = error(&format!("{FILE_SOURCE}{RAFT_DESTINATION}{FILE_SOURCE}"), 3);
    assert_eq!(e.message, "more than one storage_source block");
    let e = error(
        &format!("{FILE_SOURCE}{RAFT_DESTINATION}{RAFT_DESTINATION}"),
        3,
    );
    assert_eq!(e.message, "more than one storage_destination block");
}

#[test]
fn refuses_unsupported_types() {
    let e = error(
        &format!("storage_source \"inmem\" {{}}\n{RAFT_DESTINATION}"),
        1,
    );
    assert_eq!(e.message, "unsupported storage_source type \"inmem\"");
    assert!(e.fix.contains("file, raft"), "{e}");
    let e = error(
        &format!("{FILE_SOURCE}storage_destination \"consul\" {{ path = \"/x\" }}\n"),
        2,
    );
    assert_eq!(e.message, "unsupported storage_destination type \"consul\"");
    let e = error(
        &format!("storage_source {{ path = \"/x\" }}\n{RAFT_DESTINATION}"),
        1,
    );
    assert_eq!(
        e.message,
        "storage_source block needs exactly one type label"
    );
}

#[test]
fn refuses_the_same_path_on_both_sides() {
    let e = error(
        "storage_source \"file\" { path = \"/data/\" }\nstorage_destination \"raft\" { path = \"/data\" node_id = \"n\" }",
        2,
    );
    assert_eq!(
        e.message,
        "storage_destination has the same path as storage_source (/data/)"
    );
    assert!(e.fix.contains("path of its own"), "{e}");
}

#[test]
fn refuses_unknown_settings_and_blocks() {
    let e = error(
        &format!("{FILE_SOURCE}{RAFT_DESTINATION}log_level = \"info\"\n"),
        3,
    );
    assert_eq!(
        e.message,
        "unknown setting \"log_level\" in a migration file"
    );
    assert!(e.fix.contains("cluster_addr, api_addr"), "{e}");
    let e = error(
        &format!("{FILE_SOURCE}{RAFT_DESTINATION}seal \"shamir\" {{}}\n"),
        3,
    );
    assert_eq!(e.message, "unknown block \"seal\" in a migration file");
    let e = error(
        &format!("storage \"file\" {{ path = \"/a\" }}\n{RAFT_DESTINATION}"),
        1,
    );
    assert_eq!(e.message, "a migration file has no storage block");
    assert!(e.fix.contains("storage_source"), "{e}");
    // Inside a block: the server's storage parser, with its own messages.
    let e = error(
        &format!(
            "{FILE_SOURCE}storage_destination \"raft\" {{\n  path = \"/d\"\n  trailing_logs = 10\n}}\n"
        ),
        4,
    );
    assert_eq!(
        e.message,
        "unknown setting \"trailing_logs\" in storage \"raft\""
    );
}

#[test]
fn refuses_a_setting_given_twice() {
    let e = error(
        &format!(
            "{FILE_SOURCE}{RAFT_DESTINATION}cluster_addr = \"https://a:8201\"\ncluster_addr = \"https://b:8201\"\n"
        ),
        4,
    );
    assert_eq!(e.message, "\"cluster_addr\" is set twice");
}

#[test]
fn refuses_bad_addresses() {
    for bad in ["127.0.0.1:8201", "https://", "tcp://x:1", "https:///x"] {
        let e = error(
            &format!("{FILE_SOURCE}{RAFT_DESTINATION}cluster_addr = \"{bad}\"\n"),
            3,
        );
        assert_eq!(
            e.message,
            format!("cluster_addr {bad:?} is not an http(s) URL with a host")
        );
    }
    let e = error(
        &format!("{FILE_SOURCE}{RAFT_DESTINATION}api_addr = 8200\n"),
        3,
    );
    assert!(e.message.contains("must be a string"), "{e}");
}

#[test]
fn refuses_retry_join_and_a_store_without_path() {
    let e = error(
        &format!(
            "{FILE_SOURCE}storage_destination \"raft\" {{\n  path = \"/d\"\n  node_id = \"n\"\n  retry_join {{ leader_api_addr = \"https://a:8200\" }}\n}}\n"
        ),
        2,
    );
    assert_eq!(
        e.message,
        "retry_join has no meaning in storage_destination"
    );
    let e = error(
        &format!("storage_source \"file\" {{}}\n{RAFT_DESTINATION}"),
        1,
    );
    assert_eq!(e.message, "storage \"file\" needs a path");
    let e = error(
        &format!("{FILE_SOURCE}storage_destination \"raft\" {{}}\n"),
        2,
    );
    assert_eq!(e.message, "storage \"raft\" needs a path");
    let e = error(
        &format!("{FILE_SOURCE}storage_destination \"raft\" {{ path = \"/d\" }}\n"),
        2,
    );
    assert_eq!(e.message, "storage_destination \"raft\" needs node_id");
    assert!(e.fix.contains("pod name"), "{e}");
}

#[test]
fn reports_syntax_errors_with_the_line() {
    let e = error(
        &format!("{FILE_SOURCE}storage_destination \"raft\" {{ path = \n"),
        3,
    );
    assert!(e.message.starts_with("HCL syntax error"), "{e}");
}

#[test]
fn load_names_an_unreadable_file() {
    let e = MigrateConfig::load(std::path::Path::new("/nonexistent/migrate.hcl"))
        .expect_err("missing file");
    assert_eq!(e.file, "/nonexistent/migrate.hcl");
    assert!(
        e.message.starts_with("cannot read the migration file"),
        "{e}"
    );
    assert!(e.fix.contains("-config"), "{e}");
}
