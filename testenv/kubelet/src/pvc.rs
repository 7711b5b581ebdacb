//! PersistentVolumeClaim housekeeping (API and file I/O): there is no PV controller and no
//! pvc-protection controller, so this removes the `kubernetes.io/pvc-protection` finalizer
//! of deleted claims no pod uses any more, and deletes the data directory of claims that are gone.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// The finalizer the StorageObjectInUseProtection admission plugin adds.
pub const PROTECTION: &str = "kubernetes.io/pvc-protection";
const PERIOD: Duration = Duration::from_secs(2);

/// Whether a pod that is not finished mounts `claim`.
pub fn in_use(pods: &[Pod], claim: &str) -> bool {
    pods.iter().any(|p| {
        let finished = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
        !finished
            && p.spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == claim)
                })
    })
}

/// `(namespace, claim)` of every data directory under `root` (`root/<ns>/<claim>`).
fn data_dirs(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ns in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let Some(ns_name) = ns.file_name().to_str().map(str::to_string) else {
            continue;
        };
        for claim in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if let Some(c) = claim.file_name().to_str() {
                out.push((ns_name.clone(), c.to_string()));
            }
        }
    }
    out
}

async fn pass(client: &Client, root: &Path) -> Result<(), kube::Error> {
    // Directories first: a directory is only made for a claim that already exists, so any
    // directory seen here has its claim in the list below unless the claim was deleted.
    let dirs = data_dirs(root);
    let all: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let claims = all.list(&ListParams::default()).await?.items;
    for pvc in claims
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_some())
    {
        let finalizers = pvc.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == PROTECTION) {
            continue;
        }
        let (Some(ns), Some(name)) = (
            pvc.metadata.namespace.as_deref(),
            pvc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        if in_use(&pods.list(&ListParams::default()).await?.items, name) {
            continue;
        }
        let rest: Vec<&String> = finalizers.iter().filter(|f| *f != PROTECTION).collect();
        let patch = serde_json::json!({"metadata": {
            "finalizers": rest, "resourceVersion": pvc.metadata.resource_version,
        }});
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(claim = name, namespace = ns, "released deleted claim"),
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let live: HashSet<(String, String)> = claims
        .iter()
        .filter_map(|c| Some((c.metadata.namespace.clone()?, c.metadata.name.clone()?)))
        .collect();
    for (ns, claim) in dirs.into_iter().filter(|d| !live.contains(d)) {
        let dir = root.join(&ns).join(&claim);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => tracing::info!(claim, namespace = ns, "removed data of deleted claim"),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "removing claim data"),
        }
        let _ = std::fs::remove_dir(root.join(&ns));
    }
    Ok(())
}

/// Runs the housekeeping every 2 s until `shutdown` flips.
pub async fn run(client: Client, root: std::path::PathBuf, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = pass(&client, &root).await {
            tracing::warn!(error = %e, "claim housekeeping");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(claim: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase}
        }))
        .expect("pod")
    }

    #[test]
    fn claims_in_use() {
        let pods = vec![pod("data-0", "Running"), pod("data-1", "Succeeded")];
        assert!(in_use(&pods, "data-0"));
        assert!(!in_use(&pods, "data-1"), "finished pods do not hold claims");
        assert!(!in_use(&pods, "data-2"));
    }

    #[test]
    fn lists_data_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("ns1/data-0")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("ns2/data-1")).expect("mkdir");
        let mut d = data_dirs(tmp.path());
        d.sort();
        assert_eq!(
            d,
            vec![
                ("ns1".into(), "data-0".into()),
                ("ns2".into(), "data-1".into())
            ]
        );
        assert!(data_dirs(&tmp.path().join("absent")).is_empty());
    }
}
