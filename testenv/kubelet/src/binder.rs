//! Binds unscheduled pods to this node (there is no scheduler) via `pods/binding` (API I/O).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

/// Whether this binder is responsible for the pod.
pub fn wants(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && matches!(
            spec.scheduler_name.as_deref(),
            None | Some("") | Some("default-scheduler")
        )
        && pod.metadata.deletion_timestamp.is_none()
}

async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let _: serde_json::Value = api
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await?;
    tracing::info!(pod = %format!("{ns}/{name}"), node, "bound");
    Ok(())
}

/// Watches unscheduled pods and binds them until `shutdown` flips.
pub async fn run(client: Client, node: String, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields("spec.nodeName=");
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    loop {
        let ev = tokio::select! {
            _ = shutdown.changed() => return,
            ev = stream.next() => match ev { Some(ev) => ev, None => return },
        };
        let pod = match ev {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "unscheduled pod watch");
                continue;
            }
        };
        if !wants(&pod) {
            continue;
        }
        let (client, node) = (client.clone(), node.clone());
        tokio::spawn(async move {
            for attempt in 0..5u32 {
                match bind(&client, &pod, &node).await {
                    Ok(()) => return,
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => return,
                    Err(e) => {
                        tracing::warn!(pod = ?pod.metadata.name, attempt, error = %e, "binding pod");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn binds_only_unscheduled_default_scheduler_pods() {
        assert!(wants(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}})
        )));
        assert!(!wants(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "x"}})
        )));
        assert!(!wants(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "other"}})
        )));
        assert!(!wants(&pod(json!({
            "metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"containers": []}
        }))));
    }
}
