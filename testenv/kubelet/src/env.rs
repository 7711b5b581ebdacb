//! Container environment and fieldRef resolution (pure: configMaps/secrets come pre-fetched).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use crate::expand::expand_with;
use crate::resources::{NodeResources, ResourceError, resource_field_value};

/// Errors that keep a container from starting (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("configmap {0:?} not found")]
    ConfigMapMissing(String),
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    #[error("couldn't find key {key} in {kind} {name:?}")]
    KeyMissing {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("unsupported fieldRef {0:?}")]
    UnsupportedField(String),
    #[error("status.podIP is not known yet")]
    NoPodIp,
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

/// ConfigMaps and Secrets of the pod's namespace, by name; absent means not found.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub configmaps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
}

impl Sources {
    /// All entries of a ConfigMap (data and binaryData as lossy text).
    pub fn configmap_entries(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let cm = self.configmaps.get(name)?;
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            out.insert(k.clone(), v.0.clone());
        }
        Some(out)
    }

    /// All entries of a Secret (data, with stringData folded in as the API server does).
    pub fn secret_entries(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self.secrets.get(name)?;
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in s.data.iter().flatten() {
            out.insert(k.clone(), v.0.clone());
        }
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        Some(out)
    }
}

/// Facts about the pod that are not in its object (yet).
#[derive(Debug, Clone, Copy)]
pub struct PodFacts {
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub node: NodeResources,
}

/// Resolves a downward-API field path (`metadata.labels['app']`, `status.podIP`, ...).
pub fn field_ref(pod: &Pod, path: &str, facts: &PodFacts) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = keyed("metadata.labels", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = keyed("metadata.annotations", meta.annotations.as_ref()) {
        return Ok(v);
    }
    let pod_ip = || {
        facts
            .pod_ip
            .map(|ip| ip.to_string())
            .ok_or(EnvError::NoPodIp)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(meta.labels.as_ref()),
        "metadata.annotations" => render_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip()?,
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        other => return Err(EnvError::UnsupportedField(other.into())),
    })
}

/// `key="value"` lines, sorted, as the kubelet writes labels/annotations files.
fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sets `name` in an ordered env list; a later definition replaces the earlier one in place.
fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

/// The container's environment in Kubernetes order: envFrom, then env (with `$(VAR)` expansion
/// against what is defined so far and `base`), then `base` entries that are still undefined.
///
/// `base` holds the service variables (`KUBERNETES_SERVICE_HOST`, ...) and defaults like PATH.
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    facts: &PodFacts,
    base: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (entries, optional, missing) = if let Some(r) = &from.config_map_ref {
            (
                sources.configmap_entries(&r.name),
                r.optional,
                EnvError::ConfigMapMissing(r.name.clone()),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                sources.secret_entries(&r.name),
                r.optional,
                EnvError::SecretMissing(r.name.clone()),
            )
        } else {
            continue;
        };
        let Some(entries) = entries else {
            if optional == Some(true) {
                continue;
            }
            return Err(missing);
        };
        for (k, v) in entries {
            let name = format!("{prefix}{k}");
            if is_env_name(&name) {
                set(&mut env, name, String::from_utf8_lossy(&v).into_owned());
            }
        }
    }
    let all_containers: Vec<Container> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .cloned()
        .collect();
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_ref(pod, &f.field_path, facts)?)
            } else if let Some(r) = &from.resource_field_ref {
                Some(resource_field_value(
                    &all_containers,
                    Some(&container.name),
                    r,
                    facts.node,
                )?)
            } else if let Some(r) = &from.config_map_key_ref {
                key_value(
                    sources.configmap_entries(&r.name),
                    "configmap",
                    &r.name,
                    &r.key,
                    r.optional,
                )?
            } else if let Some(r) = &from.secret_key_ref {
                key_value(
                    sources.secret_entries(&r.name),
                    "secret",
                    &r.name,
                    &r.key,
                    r.optional,
                )?
            } else {
                Some(String::new())
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            let mut ctx = base.to_vec();
            ctx.extend(env.iter().cloned());
            Some(expand_with(&raw, &ctx))
        };
        if let Some(v) = value {
            set(&mut env, var.name.clone(), v);
        }
    }
    for (k, v) in base {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    Ok(env)
}

fn key_value(
    entries: Option<BTreeMap<String, Vec<u8>>>,
    kind: &'static str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, EnvError> {
    let optional = optional == Some(true);
    let Some(entries) = entries else {
        if optional {
            return Ok(None);
        }
        return Err(match kind {
            "secret" => EnvError::SecretMissing(name.into()),
            _ => EnvError::ConfigMapMissing(name.into()),
        });
    };
    match entries.get(key) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional => Ok(None),
        None => Err(EnvError::KeyMissing {
            kind,
            name: name.into(),
            key: key.into(),
        }),
    }
}

/// Kubernetes' C_IDENTIFIER-ish rule for env names (letters, digits, `_`, `-`, `.`; no digit first).
fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
