//! The Node object: registration, Ready heartbeats every 10 s, the node Lease, and NotReady
//! on shutdown (API I/O).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use crate::settings::Settings;

/// Heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
const MANAGER: &str = "sealkeep-pkubelet";

/// Errors of node registration.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

fn node_object(s: &Settings) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": s.node_name,
            "labels": {
                "kubernetes.io/hostname": s.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "node.kubernetes.io/instance-type": "sealkeep-pkubelet",
            }
        },
        "spec": {"podCIDR": pod_cidr(s.node_ip, s.prefix_len)}
    }))
    .unwrap_or_default()
}

/// The pod network in CIDR form (network address, not the node address).
fn pod_cidr(node_ip: std::net::Ipv4Addr, prefix_len: u8) -> String {
    let bits = 32 - u32::from(prefix_len.min(32));
    let mask = u32::MAX.checked_shl(bits).unwrap_or(0);
    format!(
        "{}/{}",
        std::net::Ipv4Addr::from(u32::from(node_ip) & mask),
        prefix_len
    )
}

/// Node status; `since` is when Ready last changed (this kubelet's start or stop).
fn status(s: &Settings, ready: bool, since: Timestamp) -> serde_json::Value {
    let now = Time(Timestamp::now());
    let since = Time(since);
    let capacity = json!({
        "cpu": s.node.cpus.to_string(),
        "memory": format!("{}Ki", s.node.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", s.node.ephemeral_bytes / 1024),
        "pods": "110",
    });
    let cond = |type_: &str, status: bool, reason: &str, message: &str| {
        json!({
            "type": type_, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": since,
        })
    };
    let ready_cond = if ready {
        cond(
            "Ready",
            true,
            "KubeletReady",
            "sealkeep-pkubelet is posting ready status",
        )
    } else {
        cond(
            "Ready",
            false,
            "KubeletNotReady",
            "sealkeep-pkubelet stopped",
        )
    };
    json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [
            {"type": "InternalIP", "address": s.node_ip.to_string()},
            {"type": "Hostname", "address": s.node_name},
        ],
        "nodeInfo": {
            "kubeletVersion": "v1.37.2-pkubelet",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "pkubelet://0.1.0",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH,
            "osImage": "sealkeep process kubelet",
            "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "machineID": "", "systemUUID": "", "bootID": "",
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "conditions": [
            ready_cond,
            cond("MemoryPressure", false, "KubeletHasSufficientMemory", "no memory pressure"),
            cond("DiskPressure", false, "KubeletHasNoDiskPressure", "no disk pressure"),
            cond("PIDPressure", false, "KubeletHasSufficientPID", "no PID pressure"),
        ],
    }})
}

/// Creates the Node if needed and reports it Ready; retries for about a minute.
pub async fn register(client: &Client, s: &Settings) -> Result<(), NodeError> {
    let mut attempt = 0;
    loop {
        match register_once(client, s).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 30 => {
                tracing::warn!(error = %e, "node registration failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn register_once(client: &Client, s: &Settings) -> Result<(), NodeError> {
    let api: Api<Node> = Api::all(client.clone());
    let err = |source| NodeError::Register {
        node: s.node_name.clone(),
        source,
    };
    if api.get_opt(&s.node_name).await.map_err(err)?.is_none() {
        match api.create(&PostParams::default(), &node_object(s)).await {
            Ok(_) => tracing::info!(node = %s.node_name, "node registered"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(err(e)),
        }
    }
    api.patch_status(
        &s.node_name,
        &PatchParams::default(),
        &Patch::Merge(status(s, true, Timestamp::now())),
    )
    .await
    .map_err(err)?;
    Ok(())
}

/// Heartbeats until `shutdown` flips, then marks the node NotReady.
pub async fn heartbeat(client: Client, s: Settings, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let since = Timestamp::now();
    loop {
        if let Err(e) = api
            .patch_status(
                &s.node_name,
                &PatchParams::default(),
                &Patch::Merge(status(&s, true, since)),
            )
            .await
        {
            tracing::warn!(error = %e, "node heartbeat");
        }
        renew_lease(&leases, &s.node_name).await;
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
    if let Err(e) = api
        .patch_status(
            &s.node_name,
            &PatchParams::default(),
            &Patch::Merge(status(&s, false, Timestamp::now())),
        )
        .await
    {
        tracing::warn!(error = %e, "marking node NotReady");
    }
}

async fn renew_lease(leases: &Api<Lease>, node: &str) {
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": MicroTime(Timestamp::now())},
    });
    let pp = PatchParams::apply(MANAGER).force();
    if let Err(e) = leases.patch(node, &pp, &Patch::Apply(&lease)).await {
        tracing::debug!(error = %e, "renewing node lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidr_is_the_network() {
        let ip = std::net::Ipv4Addr::new(198, 18, 0, 1);
        assert_eq!(pod_cidr(ip, 16), "198.18.0.0/16");
        assert_eq!(pod_cidr(ip, 15), "198.18.0.0/15");
        assert_eq!(pod_cidr(ip, 32), "198.18.0.1/32");
    }
}
