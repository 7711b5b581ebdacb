//! Bound service-account tokens for projected volumes via TokenRequest (API I/O), refreshed
//! at 80% of their lifetime.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

/// Errors of token requests.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("requesting a token for serviceaccount {sa}: {source}")]
    Request { sa: String, source: kube::Error },
    #[error("token request for serviceaccount {0} returned no token")]
    Empty(String),
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// Tokens of one pod, by `<volume>/<path>`.
#[derive(Debug, Default)]
pub struct Tokens {
    map: HashMap<String, Cached>,
}

/// Key of a projected token file.
pub fn key(volume: &str, path: &str) -> String {
    format!("{volume}/{path}")
}

impl Tokens {
    /// Requests (or refreshes, when due) the token for `key`.
    pub async fn ensure(
        &mut self,
        client: &Client,
        pod: &Pod,
        key: &str,
        proj: &ServiceAccountTokenProjection,
    ) -> Result<(), TokenError> {
        if self
            .map
            .get(key)
            .is_some_and(|c| c.refresh_at > Instant::now())
        {
            return Ok(());
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: proj
                    .audience
                    .iter()
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .collect(),
                expiration_seconds: Some(proj.expiration_seconds.unwrap_or(3600).max(600)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let asked = Instant::now();
        let resp: TokenRequest = api
            .create_subresource("token", &sa, &PostParams::default(), &req)
            .await
            .map_err(|source| TokenError::Request {
                sa: sa.clone(),
                source,
            })?;
        let status = resp
            .status
            .filter(|s| !s.token.is_empty())
            .ok_or_else(|| TokenError::Empty(sa.clone()))?;
        let ttl = status
            .expiration_timestamp
            .0
            .duration_since(jiff::Timestamp::now())
            .try_into()
            .unwrap_or(Duration::from_secs(600));
        let refresh_at = asked + refresh_after(ttl);
        self.map.insert(
            key.to_string(),
            Cached {
                token: status.token,
                refresh_at,
            },
        );
        Ok(())
    }

    /// The current token of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(|c| c.token.as_str())
    }

    /// When the next token needs refreshing.
    pub fn next_refresh(&self) -> Option<Instant> {
        self.map.values().map(|c| c.refresh_at).min()
    }
}

/// 80% of the lifetime, at least 10 s.
fn refresh_after(ttl: Duration) -> Duration {
    (ttl.mul_f64(0.8)).max(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_eighty_percent() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(2880)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
        assert_eq!(key("kube-api-access-x", "token"), "kube-api-access-x/token");
    }
}
