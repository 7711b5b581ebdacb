//! Operator layer, build step: the `storage "raft"` block of a raft SecretServer's HCL, and each
//! pod's stable DNS names (the headless Service's per-pod names, never pod IPs) that its
//! `api_addr`, `cluster_addr` and the `retry_join` stanzas use. Pure (no I/O).

use super::{RAFT_DIR, TLS_DIR, quote};
use crate::operator::build::{API_PORT, CLUSTER_PORT};
use crate::operator::crd::MAX_REPLICAS;
use crate::operator::validate::{Raft, Validated};

/// The CA file a joining pod trusts the leader's HTTPS listener with: `ca.crt` of the
/// listener's Secret. When the Secret has none, the file is absent and the server uses the
/// system roots.
pub const LEADER_CA_FILE: &str = "/sealkeep/tls/ca.crt";

/// The DNS name of pod `pod` through the headless Service: `<pod>.<name>-internal`. It resolves
/// in the pods' namespace (the StatefulSet sets each pod's hostname and subdomain), for sealed
/// and uninitialized pods too (`publishNotReadyAddresses`), and does not depend on the
/// cluster's DNS domain.
pub fn pod_host(v: &Validated, pod: &str) -> String {
    format!("{pod}.{}", v.headless_service_name())
}

/// `api_addr` of a pod: its API URL on its DNS name. `pod` may be `$(POD_NAME)`, which the
/// kubelet expands in the container's environment.
pub fn api_addr(v: &Validated, pod: &str) -> String {
    format!("{}://{}:{API_PORT}", v.scheme(), pod_host(v, pod))
}

/// `cluster_addr` of a pod: the cluster port (always mutual TLS) on its DNS name.
pub fn cluster_addr(v: &Validated, pod: &str) -> String {
    format!("https://{}:{CLUSTER_PORT}", pod_host(v, pod))
}

/// The `storage "raft"` block. The node name (`VAULT_RAFT_NODE_ID`) and the addresses
/// (`VAULT_API_ADDR`, `VAULT_CLUSTER_ADDR`) differ per pod, so they come from the pod's
/// environment, not from this file, which every pod shares.
///
/// `retry_join` lists every ordinal a SecretServer may have (up to [`MAX_REPLICAS`]), not only
/// the current replicas: scaling then leaves the configuration, and so the pod template,
/// unchanged, so a scale is never also a rolling upgrade. A name without a pod does not
/// resolve and the joiner tries the next one.
pub fn storage_block(v: &Validated, raft: &Raft) -> Vec<String> {
    let mut lines = vec![
        "storage \"raft\" {".to_owned(),
        format!("  path = {}", quote(RAFT_DIR)),
    ];
    if let Some(n) = raft.performance_multiplier {
        lines.push(format!("  performance_multiplier = {n}"));
    }
    for ordinal in 0..MAX_REPLICAS {
        let pod = format!("{}-{ordinal}", v.name);
        lines.push("  retry_join {".to_owned());
        lines.push(format!(
            "    leader_api_addr = {}",
            quote(&api_addr(v, &pod))
        ));
        if v.tls_secret.is_some() {
            debug_assert!(LEADER_CA_FILE.starts_with(TLS_DIR));
            lines.push(format!(
                "    leader_ca_cert_file = {}",
                quote(LEADER_CA_FILE)
            ));
        }
        lines.push("  }".to_owned());
    }
    lines.push("}".to_owned());
    lines
}

#[cfg(test)]
mod tests;
