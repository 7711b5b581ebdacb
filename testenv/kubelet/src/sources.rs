//! Which ConfigMaps/Secrets a pod references (pure) and fetching them (API I/O).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{Api, Client};

use crate::env::Sources;

/// Names of the ConfigMaps and Secrets used by env, envFrom and volumes.
pub fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    let Some(spec) = &pod.spec else {
        return (cms, secrets);
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for f in c.env_from.iter().flatten() {
            cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for v in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            cms.extend(v.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(v.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    for v in spec.volumes.iter().flatten() {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(p.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(p.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    cms.retain(|n| !n.is_empty());
    secrets.retain(|n| !n.is_empty());
    (cms, secrets)
}

/// Fetches every referenced object; missing ones are simply absent from the result.
pub async fn fetch(client: &Client, pod: &Pod) -> Result<Sources, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cm_names, secret_names) = referenced(pod);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Sources::default();
    for n in cm_names {
        if let Some(cm) = cms.get_opt(&n).await? {
            out.configmaps.insert(n, cm);
        }
    }
    for n in secret_names {
        if let Some(s) = secrets.get_opt(&n).await? {
            out.secrets.insert(n, s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_env_and_volume_references() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c",
                    "envFrom": [{"configMapRef": {"name": "cm-a"}}, {"secretRef": {"name": "s-a"}}],
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s-b", "key": "k"}}}]}],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "cm-b"}},
                    {"name": "v2", "secret": {"secretName": "s-c"}},
                    {"name": "v3", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}
                ]
            }
        }))
        .expect("pod json");
        let (cms, secrets) = referenced(&pod);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            vec!["cm-a", "cm-b", "kube-root-ca.crt"]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            vec!["s-a", "s-b", "s-c"]
        );
    }
}
