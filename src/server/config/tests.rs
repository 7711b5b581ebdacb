use std::collections::HashMap;

use super::*;

#[derive(Default)]
struct FakeEnv(HashMap<&'static str, &'static str>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }
}

fn env(pairs: &[(&'static str, &'static str)]) -> FakeEnv {
    FakeEnv(pairs.iter().copied().collect())
}

const ISSUE_EXAMPLE: &str = r#"
storage "file" { path = "/var/lib/sealkeep/data" }
listener "tcp" { address = "127.0.0.1:8200"  tls_disable = 1 }
api_addr = "http://127.0.0.1:8200"
seal "awskms" {
  region     = "us-east-1"
  kms_key_id = "alias/my-vault-unseal-key"
  endpoint   = "http://127.0.0.1:5000"   # optional
}
"#;

#[test]
fn parses_the_vault_style_example() {
    let cfg = ServerConfig::parse("f.hcl", ISSUE_EXAMPLE, &env(&[])).expect("parse");
    assert_eq!(
        cfg.storage,
        StorageConfig::File {
            path: "/var/lib/sealkeep/data".into()
        }
    );
    assert_eq!(cfg.listeners.len(), 1);
    assert_eq!(
        cfg.listeners[0].address,
        "127.0.0.1:8200".parse().expect("addr")
    );
    assert_eq!(cfg.listeners[0].tls, None);
    assert_eq!(cfg.api_addr.as_deref(), Some("http://127.0.0.1:8200"));
    assert_eq!(
        cfg.seal,
        SealConfig::AwsKms(AwsKmsConfig {
            region: "us-east-1".into(),
            kms_key_id: "alias/my-vault-unseal-key".into(),
            endpoint: Some("http://127.0.0.1:5000".into()),
            max_backoff: DEFAULT_MAX_BACKOFF,
        })
    );
}

#[test]
fn no_seal_is_shamir_and_inmem_tls_and_extras_parse() {
    let text = r#"
storage "inmem" {}
listener "tcp" {
  address       = "0.0.0.0:8300"
  tls_cert_file = "/tls/tls.crt"
  tls_key_file  = "/tls/tls.key"
}
cluster_name  = "prod"
log_level     = "debug"
disable_mlock = true
ui            = "true"
"#;
    let cfg = ServerConfig::parse("f.hcl", text, &env(&[])).expect("parse");
    assert_eq!(cfg.seal, SealConfig::Shamir);
    assert_eq!(cfg.storage, StorageConfig::Inmem);
    assert_eq!(
        cfg.listeners[0].tls,
        Some(TlsConfig {
            cert_file: "/tls/tls.crt".into(),
            key_file: "/tls/tls.key".into()
        })
    );
    assert_eq!(cfg.cluster_name.as_deref(), Some("prod"));
    assert_eq!(cfg.log_level, Some(LogLevel::Debug));
}

#[test]
fn environment_overrides_key_region_and_endpoint() {
    let e = env(&[
        ("SEALKEEP_AWSKMS_SEAL_KEY_ID", "alias/from-env"),
        ("VAULT_AWSKMS_SEAL_KEY_ID", "alias/vault-env"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_KMS_ENDPOINT", "http://127.0.0.1:9999"),
    ]);
    let cfg = ServerConfig::parse("f.hcl", ISSUE_EXAMPLE, &e).expect("parse");
    let SealConfig::AwsKms(kms) = cfg.seal else {
        panic!("awskms expected")
    };
    assert_eq!(kms.kms_key_id, "alias/from-env");
    assert_eq!(kms.region, "eu-west-1");
    assert_eq!(kms.endpoint.as_deref(), Some("http://127.0.0.1:9999"));

    let vault_only = env(&[("VAULT_AWSKMS_SEAL_KEY_ID", "alias/vault-env")]);
    let cfg = ServerConfig::parse("f.hcl", ISSUE_EXAMPLE, &vault_only).expect("parse");
    let SealConfig::AwsKms(kms) = cfg.seal else {
        panic!("awskms expected")
    };
    assert_eq!(kms.kms_key_id, "alias/vault-env");
}

#[test]
fn seal_type_from_environment_without_stanza() {
    let text = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n";
    let e = env(&[
        ("VAULT_SEAL_TYPE", "awskms"),
        ("VAULT_AWSKMS_SEAL_KEY_ID", "k"),
    ]);
    let cfg = ServerConfig::parse("f.hcl", text, &e).expect("parse");
    assert!(
        matches!(cfg.seal, SealConfig::AwsKms(ref k) if k.kms_key_id == "k" && k.region == "us-east-1")
    );
}

fn error_of(text: &str) -> ConfigError {
    ServerConfig::parse("conf/server.hcl", text, &env(&[])).expect_err("must fail")
}

#[test]
fn unknown_key_names_file_line_and_fix() {
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n  adress = \"x\"\n}\n",
    );
    assert_eq!((e.file.as_str(), e.line), ("conf/server.hcl", 4));
    assert!(e.message.contains("unknown setting \"adress\""), "{e}");
    assert!(e.fix.contains("address"), "{e}");
    assert!(e.to_string().starts_with("conf/server.hcl:4:3: "), "{e}");
}

#[test]
fn unknown_block_and_wrong_label() {
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\nservice_registration \"kubernetes\" {}\n",
    );
    assert_eq!(e.line, 3);
    assert!(e.message.contains("unknown block"), "{e}");
    let e = error_of("storage \"consul\" {}\nlistener \"tcp\" { tls_disable = 1 }\n");
    assert_eq!(e.line, 1);
    assert!(
        e.message.contains("unsupported storage type \"consul\""),
        "{e}"
    );
    assert!(e.fix.contains("file, inmem"), "{e}");
}

#[test]
fn wrong_types_are_named() {
    let e = error_of("storage \"file\" { path = 42 }\nlistener \"tcp\" { tls_disable = 1 }\n");
    assert_eq!(e.line, 1);
    assert!(
        e.message
            .contains("\"path\" must be a string, but it is a number"),
        "{e}"
    );
    let e = error_of("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = \"maybe\" }\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("must be a boolean"), "{e}");
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n address = \"localhost\"\n tls_disable = 1 }\n",
    );
    assert_eq!(e.line, 3);
    assert!(e.message.contains("not an IP:port"), "{e}");
}

#[test]
fn missing_required_fields() {
    let e = error_of("listener \"tcp\" { tls_disable = 1 }\n");
    assert!(e.message.contains("no storage block"), "{e}");
    let e = error_of("storage \"inmem\" {}\n");
    assert!(e.message.contains("no listener block"), "{e}");
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\nseal \"awskms\" {\n  region = \"us-east-1\"\n}\n",
    );
    assert_eq!(e.line, 3);
    assert!(e.message.contains("no kms_key_id"), "{e}");
    assert!(e.fix.contains("SEALKEEP_AWSKMS_SEAL_KEY_ID"), "{e}");
    let e = error_of("storage \"inmem\" {}\nlistener \"tcp\" {}\n");
    assert!(e.message.contains("TLS enabled but no certificate"), "{e}");
    let e = error_of("storage \"file\" {}\nlistener \"tcp\" { tls_disable = 1 }\n");
    assert!(e.message.contains("needs a path"), "{e}");
}

#[test]
fn syntax_errors_have_a_location() {
    let e = error_of("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = \n");
    assert!(e.line >= 2, "{e}");
    assert!(e.message.contains("syntax"), "{e}");
}

#[test]
fn duplicates_are_rejected() {
    let e = error_of(
        "storage \"inmem\" {}\nstorage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\n",
    );
    assert_eq!(e.line, 2);
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\napi_addr = \"a\"\napi_addr = \"b\"\n",
    );
    assert_eq!(e.line, 4);
}

#[test]
fn read_cache_follows_vaults_cache_size_and_disable_cache() {
    use crate::server::physical::{DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE};
    let cache = |entries, bytes| Some(ReadCacheConfig { entries, bytes });
    let base = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n";
    let cfg = ServerConfig::parse("f.hcl", base, &env(&[])).expect("parse");
    assert_eq!(
        cfg.read_cache,
        cache(DEFAULT_CACHE_SIZE, DEFAULT_CACHE_BYTES)
    );
    let sized = format!("{base}cache_size = \"5000\"\ncache_size_bytes = 1048576\n");
    let cfg = ServerConfig::parse("f.hcl", &sized, &env(&[])).expect("parse");
    assert_eq!(cfg.read_cache, cache(5000, 1_048_576));
    let zero = format!("{base}cache_size = 0\ncache_size_bytes = 0\n");
    let cfg = ServerConfig::parse("f.hcl", &zero, &env(&[])).expect("parse");
    assert_eq!(
        cfg.read_cache,
        cache(DEFAULT_CACHE_SIZE, DEFAULT_CACHE_BYTES),
        "0 means the default, as in Vault"
    );
    let off = format!("{base}cache_size = 5000\ndisable_cache = true\n");
    let cfg = ServerConfig::parse("f.hcl", &off, &env(&[])).expect("parse");
    assert_eq!(cfg.read_cache, None);
    let bad = error_of(&format!("{base}cache_size = \"lots\"\n"));
    assert!(
        bad.message
            .contains("\"cache_size\" must be a non-negative integer"),
        "{}",
        bad.message
    );
    assert_eq!(bad.line, 3);
    let bad = error_of(&format!("{base}\ncache_size_bytes = \"64MiB\"\n"));
    assert_eq!((bad.line, bad.column), (4, 1), "{bad}");
    assert!(bad.message.contains("cache_size_bytes"), "{bad}");
}

fn listener_of(body: &str) -> ListenerConfig {
    let text = format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n{body}\n}}\n");
    let mut cfg = ServerConfig::parse("f.hcl", &text, &env(&[])).expect("parse");
    cfg.listeners.remove(0)
}

#[test]
fn listener_timeouts_default_to_vaults_and_parse_as_vault_does() {
    let l = listener_of("tls_disable = 1");
    assert_eq!(
        l.timeouts,
        HttpTimeouts {
            read_header: Duration::from_secs(10),
            read: Duration::from_secs(30),
            write: None,
            idle: Duration::from_secs(300),
        }
    );
    assert_eq!(l.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert!(!l.unauthenticated_metrics_access);
    // Duration strings, integer seconds and numeric strings (Vault's ParseDurationSecond).
    let l = listener_of(
        "tls_disable = 1\nhttp_read_header_timeout = \"2s\"\nhttp_read_timeout = 7\n\
         http_write_timeout = \"90\"\nhttp_idle_timeout = \"1m30s\"\nmax_connections = 12",
    );
    assert_eq!(
        l.timeouts,
        HttpTimeouts {
            read_header: Duration::from_secs(2),
            read: Duration::from_secs(7),
            write: Some(Duration::from_secs(90)),
            idle: Duration::from_secs(90),
        }
    );
    assert_eq!(l.max_connections, 12);
    // Zero keeps Vault's default (and means "no limit" for the write timeout).
    let l = listener_of(
        "tls_disable = 1\nhttp_read_header_timeout = 0\nhttp_idle_timeout = \"0s\"\n\
         http_write_timeout = 0\nmax_connections = 0",
    );
    assert_eq!(l.timeouts, HttpTimeouts::default());
    assert_eq!(l.max_connections, DEFAULT_MAX_CONNECTIONS);
}

#[test]
fn listener_timeout_errors_name_the_line_and_the_fix() {
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n  http_idle_timeout = \"soon\"\n}\n",
    );
    assert_eq!((e.line, e.column), (4, 3), "{e}");
    assert!(e.message.contains("http_idle_timeout"), "{e}");
    assert!(e.fix.contains("duration"), "{e}");
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n  http_timeout = \"5s\"\n}\n",
    );
    assert_eq!(e.line, 4, "{e}");
    assert!(
        e.message.contains("unknown setting \"http_timeout\""),
        "{e}"
    );
    assert!(e.fix.contains("http_read_header_timeout"), "{e}");
}

#[test]
fn listener_telemetry_block_is_vaults_syntax() {
    let l = listener_of("tls_disable = 1\ntelemetry {\n  unauthenticated_metrics_access = true\n}");
    assert!(l.unauthenticated_metrics_access);
    let l =
        listener_of("tls_disable = 1\ntelemetry = { unauthenticated_metrics_access = \"true\" }");
    assert!(l.unauthenticated_metrics_access);
    let l = listener_of("tls_disable = 1\ntelemetry { unauthenticated_metrics_access = false }");
    assert!(!l.unauthenticated_metrics_access);
    // Vault's one-line style, as the unseal benchmark writes it.
    let l = listener_of("tls_disable = 1 telemetry { unauthenticated_metrics_access = true }");
    assert!(l.unauthenticated_metrics_access);
    let l = listener_of("tls_disable = 1\ntelemetry {}");
    assert!(!l.unauthenticated_metrics_access);

    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n  telemetry {\n    unauthenticated_metrics = true\n  }\n}\n",
    );
    assert_eq!(e.line, 5, "{e}");
    assert!(e.fix.contains("unauthenticated_metrics_access"), "{e}");
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n  telemetry { unauthenticated_metrics_access = \"maybe\" }\n}\n",
    );
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("boolean"), "{e}");
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n  telemetry {}\n  telemetry {}\n}\n",
    );
    assert_eq!(e.line, 5, "{e}");
    // A top-level telemetry block is not this one (and not supported).
    let e = error_of(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\ntelemetry { unauthenticated_metrics_access = true }\n",
    );
    assert_eq!(e.line, 3, "{e}");
}
