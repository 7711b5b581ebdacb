//! Core layer: the Kubernetes auth method. A workload logs in with its service-account JWT; the
//! server asks the Kubernetes API (TokenReview) whether the JWT is valid, checks the role's
//! bound service accounts, namespaces and audience, and issues a token with the role's
//! policies. Config and roles live behind the barrier. Storage and network I/O.
//!
//! Storage: `core/auth/kubernetes` (enabled marker), `auth/kubernetes/config`,
//! `auth/kubernetes/role/<name>`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::server::barrier::{Barrier, BarrierError};

pub const ENABLED_PATH: &str = "core/auth/kubernetes";
pub const CONFIG_PATH: &str = "auth/kubernetes/config";
pub const ROLE_PREFIX: &str = "auth/kubernetes/role/";
/// The pod's own service-account files (in-cluster defaults).
pub const LOCAL_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
pub const LOCAL_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

#[derive(Debug, thiserror::Error)]
pub enum K8sAuthError {
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error("{0}")]
    Invalid(String),
    #[error("permission denied")]
    Denied,
    #[error(
        "kubernetes auth is not enabled: enable it with `vault auth enable kubernetes` (POST /v1/sys/auth/kubernetes)"
    )]
    NotEnabled,
    #[error(
        "kubernetes auth is not configured: write auth/kubernetes/config (kubernetes_host), or run the server in a pod"
    )]
    NotConfigured,
    #[error("role {0:?} could not be found")]
    NoRole(String),
    #[error(
        "TokenReview at {host} failed: {detail}; check kubernetes_host, kubernetes_ca_cert and that the reviewer may create tokenreviews (system:auth-delegator)"
    )]
    Review { host: String, detail: String },
    #[error("stored {0} is unreadable")]
    Corrupt(&'static str),
}

/// `auth/kubernetes/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub kubernetes_host: String,
    #[serde(default)]
    pub kubernetes_ca_cert: String,
    /// Kept behind the barrier; never returned by reads.
    #[serde(default)]
    pub token_reviewer_jwt: String,
    #[serde(default)]
    pub disable_local_ca_jwt: bool,
}

/// `auth/kubernetes/role/:name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    #[serde(default)]
    pub audience: String,
    #[serde(default)]
    pub token_policies: Vec<String>,
    /// Seconds; 0 = system default.
    #[serde(default)]
    pub token_ttl: u64,
    #[serde(default)]
    pub token_max_ttl: u64,
}

fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

pub async fn enabled(barrier: &Barrier) -> Result<bool, K8sAuthError> {
    Ok(barrier.get(ENABLED_PATH).await?.is_some())
}

pub async fn enable(barrier: &Barrier) -> Result<bool, K8sAuthError> {
    if enabled(barrier).await? {
        return Ok(false);
    }
    barrier
        .put(ENABLED_PATH, b"{\"type\":\"kubernetes\"}")
        .await?;
    Ok(true)
}

/// Disables the method and removes its config and roles.
pub async fn disable(barrier: &Barrier) -> Result<(), K8sAuthError> {
    for name in barrier.list(ROLE_PREFIX).await? {
        barrier.delete(&format!("{ROLE_PREFIX}{name}")).await?;
    }
    barrier.delete(CONFIG_PATH).await?;
    barrier.delete(ENABLED_PATH).await?;
    Ok(())
}

async fn require_enabled(barrier: &Barrier) -> Result<(), K8sAuthError> {
    if enabled(barrier).await? {
        Ok(())
    } else {
        Err(K8sAuthError::NotEnabled)
    }
}

pub async fn read_config(barrier: &Barrier) -> Result<Option<Config>, K8sAuthError> {
    require_enabled(barrier).await?;
    match barrier.get(CONFIG_PATH).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&Zeroizing::new(raw))
            .map(Some)
            .map_err(|_| K8sAuthError::Corrupt("auth/kubernetes/config")),
    }
}

/// Validates and stores the config. An empty `kubernetes_host` means the in-cluster API
/// server (KUBERNETES_SERVICE_HOST/PORT).
pub async fn write_config(barrier: &Barrier, mut cfg: Config) -> Result<(), K8sAuthError> {
    require_enabled(barrier).await?;
    cfg.kubernetes_host = cfg.kubernetes_host.trim().trim_end_matches('/').to_owned();
    let is_url =
        cfg.kubernetes_host.starts_with("https://") || cfg.kubernetes_host.starts_with("http://");
    if !cfg.kubernetes_host.is_empty() && !is_url {
        return Err(K8sAuthError::Invalid(format!(
            "kubernetes_host {:?} must be a URL such as https://kubernetes.default.svc:443",
            cfg.kubernetes_host
        )));
    }
    if !cfg.kubernetes_ca_cert.is_empty()
        && reqwest::Certificate::from_pem_bundle(cfg.kubernetes_ca_cert.as_bytes()).is_err()
    {
        return Err(K8sAuthError::Invalid(
            "kubernetes_ca_cert is not a PEM certificate".into(),
        ));
    }
    let raw = Zeroizing::new(
        serde_json::to_vec(&cfg).map_err(|_| K8sAuthError::Corrupt("auth/kubernetes/config"))?,
    );
    barrier.put(CONFIG_PATH, &raw).await?;
    Ok(())
}

pub async fn read_role(barrier: &Barrier, name: &str) -> Result<Option<Role>, K8sAuthError> {
    require_enabled(barrier).await?;
    if !valid_role_name(name) {
        return Ok(None);
    }
    match barrier.get(&format!("{ROLE_PREFIX}{name}")).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| K8sAuthError::Corrupt("role")),
    }
}

pub async fn write_role(barrier: &Barrier, name: &str, role: &Role) -> Result<(), K8sAuthError> {
    require_enabled(barrier).await?;
    if !valid_role_name(name) {
        return Err(K8sAuthError::Invalid(format!(
            "role name {name:?} is invalid: use letters, digits, '-', '_', '.' or '@'"
        )));
    }
    if role.bound_service_account_names.is_empty() {
        return Err(K8sAuthError::Invalid(
            "bound_service_account_names is required: list service account names, or [\"*\"]"
                .into(),
        ));
    }
    if role.bound_service_account_namespaces.is_empty() {
        return Err(K8sAuthError::Invalid(
            "bound_service_account_namespaces is required: list namespaces, or [\"*\"]".into(),
        ));
    }
    if role.bound_service_account_names.iter().any(|n| n == "*")
        && role
            .bound_service_account_namespaces
            .iter()
            .any(|n| n == "*")
    {
        return Err(K8sAuthError::Invalid(
            "bound_service_account_names and bound_service_account_namespaces cannot both be \"*\"; bind at least one of them".into(),
        ));
    }
    let raw = serde_json::to_vec(role).map_err(|_| K8sAuthError::Corrupt("role"))?;
    barrier.put(&format!("{ROLE_PREFIX}{name}"), &raw).await?;
    Ok(())
}

pub async fn delete_role(barrier: &Barrier, name: &str) -> Result<(), K8sAuthError> {
    require_enabled(barrier).await?;
    if valid_role_name(name) {
        barrier.delete(&format!("{ROLE_PREFIX}{name}")).await?;
    }
    Ok(())
}

pub async fn list_roles(barrier: &Barrier) -> Result<Vec<String>, K8sAuthError> {
    require_enabled(barrier).await?;
    Ok(barrier.list(ROLE_PREFIX).await?)
}

/// Who the TokenReview says the JWT belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Parses `system:serviceaccount:NS:NAME`.
pub fn parse_username(username: &str) -> Option<(String, String)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':'))
        .then(|| (ns.to_owned(), name.to_owned()))
}

/// Whether `role` admits `sa`. Pure.
pub fn admits(role: &Role, sa: &ServiceAccount) -> bool {
    let matches = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
    matches(&role.bound_service_account_names, &sa.name)
        && matches(&role.bound_service_account_namespaces, &sa.namespace)
}

/// API server URL, CA bundle (PEM) and reviewer JWT.
type Effective = (String, Option<Vec<u8>>, Zeroizing<String>);

/// The effective API server, CA and reviewer JWT: the stored config, completed from the pod's
/// own service account unless `disable_local_ca_jwt`.
fn effective(cfg: &Config, jwt: &str) -> Result<Effective, K8sAuthError> {
    let host = if cfg.kubernetes_host.is_empty() {
        match (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) {
            (Ok(h), Ok(p)) if !h.is_empty() => {
                if h.contains(':') {
                    format!("https://[{h}]:{p}")
                } else {
                    format!("https://{h}:{p}")
                }
            }
            _ => return Err(K8sAuthError::NotConfigured),
        }
    } else {
        cfg.kubernetes_host.clone()
    };
    let ca = if !cfg.kubernetes_ca_cert.is_empty() {
        Some(cfg.kubernetes_ca_cert.as_bytes().to_vec())
    } else if !cfg.disable_local_ca_jwt {
        std::fs::read(LOCAL_CA).ok()
    } else {
        None
    };
    let reviewer = if !cfg.token_reviewer_jwt.is_empty() {
        Zeroizing::new(cfg.token_reviewer_jwt.clone())
    } else if let Some(t) = (!cfg.disable_local_ca_jwt)
        .then(|| std::fs::read_to_string(LOCAL_TOKEN).ok())
        .flatten()
    {
        Zeroizing::new(t.trim().to_owned())
    } else {
        // Vault's fallback: the client's own JWT reviews itself.
        Zeroizing::new(jwt.to_owned())
    };
    Ok((host, ca, reviewer))
}

/// Asks the API server who `jwt` is (TokenReview with the role's audience).
pub async fn review(
    cfg: &Config,
    jwt: &str,
    audience: &str,
) -> Result<ServiceAccount, K8sAuthError> {
    let (host, ca, reviewer) = effective(cfg, jwt)?;
    let err = |detail: String| K8sAuthError::Review {
        host: host.clone(),
        detail,
    };
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .no_proxy();
    if let Some(pem) = &ca {
        for c in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| err(format!("CA: {e}")))? {
            b = b.add_root_certificate(c);
        }
    }
    let client = b.build().map_err(|e| err(e.to_string()))?;
    let mut spec = serde_json::json!({ "token": jwt });
    if !audience.is_empty() {
        spec["audiences"] = serde_json::json!([audience]);
    }
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    });
    let resp = client
        .post(format!("{host}/apis/authentication.k8s.io/v1/tokenreviews"))
        .bearer_auth(reviewer.as_str())
        .json(&body)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| err(format!("HTTP {status}: {e}")))?;
    if !status.is_success() {
        return Err(err(format!(
            "HTTP {status}: {}",
            v["message"].as_str().unwrap_or("no message")
        )));
    }
    if v["status"]["authenticated"] != true {
        tracing::info!(error = %v["status"]["error"], "kubernetes login refused by TokenReview");
        return Err(K8sAuthError::Denied);
    }
    if !audience.is_empty()
        && !v["status"]["audiences"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == audience))
    {
        return Err(K8sAuthError::Denied);
    }
    let username = v["status"]["user"]["username"].as_str().unwrap_or("");
    let (namespace, name) = parse_username(username).ok_or(K8sAuthError::Denied)?;
    Ok(ServiceAccount {
        namespace,
        name,
        uid: v["status"]["user"]["uid"].as_str().unwrap_or("").to_owned(),
    })
}

/// Token metadata of a login, as Vault sets it.
pub fn login_meta(role: &str, sa: &ServiceAccount) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("role".to_owned(), role.to_owned()),
        ("service_account_name".to_owned(), sa.name.clone()),
        ("service_account_namespace".to_owned(), sa.namespace.clone()),
        ("service_account_uid".to_owned(), sa.uid.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_bindings() {
        assert_eq!(
            parse_username("system:serviceaccount:team-a:app"),
            Some(("team-a".into(), "app".into()))
        );
        for bad in [
            "system:serviceaccount:team-a",
            "user:alice",
            "system:serviceaccount::x",
            "system:serviceaccount:a:b:c",
        ] {
            assert_eq!(parse_username(bad), None, "{bad}");
        }
        let role = Role {
            bound_service_account_names: vec!["app".into()],
            bound_service_account_namespaces: vec!["team-a".into()],
            ..Role::default()
        };
        let sa = |ns: &str, n: &str| ServiceAccount {
            namespace: ns.into(),
            name: n.into(),
            uid: String::new(),
        };
        assert!(admits(&role, &sa("team-a", "app")));
        assert!(!admits(&role, &sa("team-b", "app")), "other namespace");
        assert!(!admits(&role, &sa("team-a", "other")), "other account");
        let any_name = Role {
            bound_service_account_names: vec!["*".into()],
            ..role.clone()
        };
        assert!(admits(&any_name, &sa("team-a", "x")));
        assert!(!admits(&any_name, &sa("team-b", "x")));
    }
}
