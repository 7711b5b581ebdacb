//! Operator layer, step 4 of the pipeline (observe), API part: lists a SecretServer's pods,
//! builds the HTTP client that trusts their listener, asks each pod, and records the pod states
//! in the operator's metrics. API and network I/O.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::{Answer, PodObservation};
use crate::operator::build;
use crate::operator::crd::SecretServer;
use crate::operator::reconcile::{Context, Error, key, kube_err};
use crate::operator::validate::Validated;

/// Lists the server's pods and asks each.
pub async fn observe_all(ctx: &Context, v: &Validated) -> Result<Vec<PodObservation>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let selector = build::selector_labels(v)
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!("listing pods of {}", v.name)))?
        .items;
    list.sort_by_key(|p| p.name_any());
    let views = list.iter().map(super::pod_view).collect();
    let http = pod_http(ctx, v).await?;
    Ok(super::observe(views, v.scheme(), &http).await)
}

/// The HTTP client for the server's pods: the shared one, or for TLS listeners one that trusts
/// the CA in the listener's Secret (`ca.crt`, else the certificate itself).
pub async fn pod_http(ctx: &Context, v: &Validated) -> Result<reqwest::Client, Error> {
    let Some(secret_name) = &v.tls_secret else {
        return Ok(ctx.http.clone());
    };
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &v.namespace)
        .get(secret_name)
        .await
        .map_err(kube_err(format!(
            "reading listener TLS Secret {secret_name}"
        )))?;
    let data = secret.data.unwrap_or_default();
    let pem = data
        .get("ca.crt")
        .or_else(|| data.get("tls.crt"))
        .ok_or_else(|| Error::TlsSecret(secret_name.clone()))?;
    super::http_client(Some(&pem.0)).map_err(Error::Http)
}

/// Counts the pods by state (unsealed, sealed, uninitialized, not answering) for the
/// `sealkeep_operator_server_pods` gauge.
pub fn record(ctx: &Context, ss: &SecretServer, pods: &[PodObservation]) {
    let mut counts = [0i64; 4];
    for p in pods {
        let i = match &p.answer {
            Answer::Answered { seal, .. } if !seal.initialized => 2,
            Answer::Answered { seal, .. } if seal.sealed => 1,
            Answer::Answered { .. } => 0,
            _ => 3,
        };
        counts[i] += 1;
    }
    ctx.metrics.set_pods(&key(ss), Some(counts));
}
