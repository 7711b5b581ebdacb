//! Operator layer, step 4 of the pipeline: asks every server pod (by `status.podIP`) for
//! `sys/seal-status`, `sys/health` and `sys/seal-backend-status`, in parallel with short
//! timeouts. Network I/O; the pod summary ([`pod_view`]) is pure.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::api_client::{Client, Health, SealBackendStatus, SealStatus};

use super::build::API_PORT;

/// The label the StatefulSet controller puts on each pod: the revision it was created at.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Per-request timeout when asking a pod.
pub const POD_TIMEOUT: Duration = Duration::from_secs(2);

/// What the Kubernetes API says about one server pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodView {
    pub name: String,
    pub ip: Option<String>,
    pub phase: String,
    /// The pod's Ready condition is True.
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    /// A container waits with this reason (`CrashLoopBackOff`, `ImagePullBackOff`, ...).
    pub waiting_reason: Option<String>,
    pub restarts: i32,
    /// The pod's `controller-revision-hash` label: the StatefulSet revision it was created at.
    pub revision: Option<String>,
    /// The pod's uid (a deletion is guarded by it, so it never hits a re-created pod).
    pub uid: Option<String>,
}

/// Summarizes a pod object. Pure.
pub fn pod_view(pod: &Pod) -> PodView {
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == "server"));
    PodView {
        name: pod.name_any(),
        ip: status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty()),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        waiting_reason: container
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone()),
        restarts: container.map_or(0, |c| c.restart_count),
        revision: pod.labels().get(REVISION_LABEL).cloned(),
        uid: pod.metadata.uid.clone(),
    }
}

/// What a pod's server answered.
// A reconcile holds one of these per pod (one today): boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The server answered `sys/seal-status`; the other two are best effort.
    Answered {
        seal: SealStatus,
        health: Option<Health>,
        backend: Option<SealBackendStatus>,
    },
    /// The pod has no IP yet or is terminating: not asked.
    NotAsked,
    /// The server did not answer `sys/seal-status`: the error, without secrets.
    Unreachable(String),
}

/// One pod: the API's view and the server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodObservation {
    pub pod: PodView,
    pub answer: Answer,
}

impl PodObservation {
    pub fn seal(&self) -> Option<&SealStatus> {
        match &self.answer {
            Answer::Answered { seal, .. } => Some(seal),
            _ => None,
        }
    }
    pub fn backend(&self) -> Option<&SealBackendStatus> {
        match &self.answer {
            Answer::Answered { backend, .. } => backend.as_ref(),
            _ => None,
        }
    }
    pub fn health(&self) -> Option<&Health> {
        match &self.answer {
            Answer::Answered { health, .. } => health.as_ref(),
            _ => None,
        }
    }
}

/// The server's base URL for a pod IP.
pub fn pod_addr(scheme: &str, ip: &str) -> String {
    if ip.contains(':') {
        format!("{scheme}://[{ip}]:{API_PORT}")
    } else {
        format!("{scheme}://{ip}:{API_PORT}")
    }
}

/// Asks every pod in parallel. `http` carries the timeouts and TLS roots.
pub async fn observe(
    pods: Vec<PodView>,
    scheme: &str,
    http: &reqwest::Client,
) -> Vec<PodObservation> {
    join_all(pods.into_iter().map(|pod| async move {
        let answer = match (&pod.ip, pod.terminating) {
            (Some(ip), false) => ask(&Client::with_http(&pod_addr(scheme, ip), http.clone())).await,
            _ => Answer::NotAsked,
        };
        PodObservation { pod, answer }
    }))
    .await
}

async fn ask(client: &Client) -> Answer {
    let (seal, health, backend) = tokio::join!(
        client.seal_status(),
        client.health(),
        client.seal_backend_status()
    );
    match seal {
        Ok(seal) => Answer::Answered {
            seal,
            health: health.ok(),
            backend: backend.ok(),
        },
        Err(e) => Answer::Unreachable(e.to_string()),
    }
}

/// The HTTP client the operator uses for pods: short timeouts, no proxy, and for TLS listeners
/// the certificate authority from the listener's Secret.
pub fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .timeout(POD_TIMEOUT)
        .connect_timeout(POD_TIMEOUT)
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(pem) = ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
}

pub mod init;
pub mod pods;
pub mod raft;
pub mod token;

#[cfg(test)]
mod tests;
