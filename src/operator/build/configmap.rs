//! Operator layer, build step: the ConfigMap with the server's Vault-style HCL configuration,
//! and its hash (a pod annotation, so a config change rolls the pod). Pure (no I/O).

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use k8s_openapi::api::core::v1::ConfigMap;

use super::{API_PORT, CLUSTER_PORT, meta};
use crate::operator::validate::{Seal, Storage, Validated};

pub mod raft;

/// The key of the HCL file in the ConfigMap.
pub const CONFIG_KEY: &str = "sealkeep.hcl";
/// Where the ConfigMap is mounted in the server container.
pub const CONFIG_DIR: &str = "/sealkeep/config";
/// The data volume's mount: the `storage "file"` directory (raft storage uses [`RAFT_DIR`] on
/// the same volume, so `sealkeep operator migrate` can move a file server in place).
pub const DATA_DIR: &str = "/sealkeep/data";
/// The `storage "raft"` directory, on the data volume.
pub const RAFT_DIR: &str = "/sealkeep/data/raft";
/// Where the TLS Secret is mounted.
pub const TLS_DIR: &str = "/sealkeep/tls";
/// Certificate and key files inside [`TLS_DIR`] (the keys of a `kubernetes.io/tls` Secret).
pub const TLS_CERT_FILE: &str = "/sealkeep/tls/tls.crt";
pub const TLS_KEY_FILE: &str = "/sealkeep/tls/tls.key";

/// The path of the config file in the container (`sealkeep server --config`).
pub fn config_path() -> String {
    format!("{CONFIG_DIR}/{CONFIG_KEY}")
}

/// The ConfigMap `v.config_map_name()` with the single key [`CONFIG_KEY`].
pub fn config_map(v: &Validated) -> ConfigMap {
    ConfigMap {
        metadata: meta(v, v.config_map_name()),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), hcl(v))])),
        ..ConfigMap::default()
    }
}

/// The server's HCL configuration for `v`.
pub fn hcl(v: &Validated) -> String {
    let mut lines = match &v.storage {
        Storage::File => vec![
            "storage \"file\" {".to_owned(),
            format!("  path = {}", quote(DATA_DIR)),
            "}".to_owned(),
        ],
        Storage::Raft(raft) => raft::storage_block(v, raft),
    };
    lines.extend([
        String::new(),
        "listener \"tcp\" {".to_owned(),
        format!("  address = {}", quote(&format!("0.0.0.0:{API_PORT}"))),
    ]);
    if matches!(v.storage, Storage::Raft(_)) {
        lines.push(format!(
            "  cluster_address = {}",
            quote(&format!("0.0.0.0:{CLUSTER_PORT}"))
        ));
    }
    if v.tls_secret.is_some() {
        lines.push(format!("  tls_cert_file = {}", quote(TLS_CERT_FILE)));
        lines.push(format!("  tls_key_file = {}", quote(TLS_KEY_FILE)));
    } else {
        lines.push("  tls_disable = true".to_owned());
    }
    if v.unauthenticated_metrics_access {
        // Vault's listener sub-block: /metrics and /v1/sys/metrics without a token.
        lines.extend([
            "  telemetry {".to_owned(),
            "    unauthenticated_metrics_access = true".to_owned(),
            "  }".to_owned(),
        ]);
    }
    lines.extend(["}".to_owned(), String::new()]);
    match &v.seal {
        Seal::AwsKms {
            key_id,
            region,
            endpoint,
            ..
        } => {
            lines.push("seal \"awskms\" {".to_owned());
            lines.push(format!("  region = {}", quote(region)));
            lines.push(format!("  kms_key_id = {}", quote(key_id)));
            if let Some(endpoint) = endpoint {
                lines.push(format!("  endpoint = {}", quote(endpoint)));
            }
            lines.push("}".to_owned());
        }
        Seal::Shamir => lines.push("seal \"shamir\" {}".to_owned()),
    }
    lines.push(String::new());
    let cluster = format!("{}/{}", v.namespace, v.name);
    lines.push(format!("cluster_name = {}", quote(&cluster)));
    lines.push(format!("log_format = {}", quote("json")));
    lines.push(String::new());
    lines.join("\n")
}

/// An HCL string literal. Values come from users, so backslash and double quote are escaped,
/// and so are the control characters the parser knows (a raw newline would end the string).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Hex SHA-256 (first 16 characters) over the ConfigMap's `data` and `binaryData`, key by key
/// in sorted order. Every key and value is length-prefixed so no two maps hash alike.
pub fn config_hash(cm: &ConfigMap) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    for (k, v) in cm.data.iter().flatten() {
        field(b"data");
        field(k.as_bytes());
        field(v.as_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        field(b"binaryData");
        field(k.as_bytes());
        field(&v.0);
    }
    let mut hex = hex::encode(ctx.finish());
    hex.truncate(16);
    hex
}

#[cfg(test)]
mod tests;
