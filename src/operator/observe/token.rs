//! Operator layer, step 4 of the pipeline (observe), token part: the operator's own
//! least-privilege token on a raft server, which it reads the raft configuration and calls
//! `sys/step-down` with. It logs in with `POST auth/kubernetes/login` (role
//! `sealkeep-operator`, see `operator_auth`) using its projected ServiceAccount token, read
//! from the file for each login, and caches the client token per server in the controller's
//! [`Context`] (no statics) until shortly before it expires; a 403 drops it. Never the root
//! token: a server without the role reports why and how to create it. Network and file I/O;
//! the cache's expiry ([`valid_until`], [`fresh`]) and the choice of pod ([`login_pod`]) are
//! pure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{PodObservation, pod_addr};
use crate::api_client::{Client, ClientError};
use crate::operator::operator_auth::{self, LoginFailure};
use crate::operator::reconcile::Context;
use crate::operator::validate::Validated;

/// The most a token is refreshed ahead of its expiry.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A cached login.
#[derive(Clone)]
struct Cached {
    token: Zeroizing<String>,
    /// `None`: the token does not expire.
    until: Option<Instant>,
}

/// Tokens by SecretServer (`namespace/name/uid`).
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, Cached>>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("servers", &n).finish()
    }
}

/// Until when a token obtained at `obtained` with a lease of `lease_secs` is used: a fifth of
/// its lifetime (at most [`MAX_REFRESH_MARGIN`]) before it expires, so a request never carries
/// a token about to expire. `None` for a token without expiry. Pure.
pub fn valid_until(obtained: Instant, lease_secs: u64) -> Option<Instant> {
    if lease_secs == 0 {
        return None;
    }
    let ttl = Duration::from_secs(lease_secs);
    let margin = (ttl / 5).min(MAX_REFRESH_MARGIN);
    Some(obtained + (ttl - margin))
}

/// Whether a token valid until `until` may still be used at `now`. Pure.
pub fn fresh(until: Option<Instant>, now: Instant) -> bool {
    until.is_none_or(|u| now < u)
}

impl TokenCache {
    /// The cached token for `key` if it is still fresh at `now` (a stale one is dropped).
    pub fn get(&self, key: &str, now: Instant) -> Option<Zeroizing<String>> {
        let mut m = self.0.lock().ok()?;
        match m.get(key) {
            Some(c) if fresh(c.until, now) => Some(c.token.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }
    /// Caches a login made at `obtained` with a lease of `lease_secs`.
    pub fn put(&self, key: String, token: Zeroizing<String>, obtained: Instant, lease_secs: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                key,
                Cached {
                    token,
                    until: valid_until(obtained, lease_secs),
                },
            );
        }
    }
    /// Forgets a server's token (the server refused it with 403).
    pub fn forget(&self, v: &Validated) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&cache_key(v));
        }
    }
}

pub fn cache_key(v: &Validated) -> String {
    format!("{}/{}/{}", v.namespace, v.name, v.owner.uid)
}

/// The pod to log in through: the active one if a pod says so, else any unsealed pod (a
/// standby forwards). Its name and IP. Pure.
pub fn login_pod(pods: &[PodObservation]) -> Option<(&str, &str)> {
    let unsealed = |p: &&PodObservation| {
        p.seal().is_some_and(|s| s.initialized && !s.sealed) && p.pod.ip.is_some()
    };
    let active = pods
        .iter()
        .filter(unsealed)
        .find(|p| p.health().is_some_and(|h| !h.standby && !h.sealed));
    active
        .or_else(|| pods.iter().find(unsealed))
        .and_then(|p| Some((p.pod.name.as_str(), p.pod.ip.as_deref()?)))
}

/// The operator's token for `v`, or why there is none (a sentence for the status).
pub async fn operator_token(
    ctx: &Context,
    v: &Validated,
    pods: &[PodObservation],
    http: &reqwest::Client,
) -> Result<Zeroizing<String>, String> {
    let key = cache_key(v);
    if let Some(t) = ctx.tokens.get(&key, Instant::now()) {
        return Ok(t);
    }
    let Some(id) = &ctx.account else {
        return Err(operator_auth::no_identity(&v.namespace, &v.name));
    };
    let Some((pod, ip)) = login_pod(pods) else {
        return Err(format!(
            "no unsealed pod of {}/{} to log in through",
            v.namespace, v.name
        ));
    };
    let jwt = Zeroizing::new(
        tokio::fs::read_to_string(&id.token_file)
            .await
            .map_err(|e| {
                format!(
                    "reading the operator's projected ServiceAccount token {}: {e}; the chart mounts it (a projected serviceAccountToken with audience {}); outside the chart pass --login-token-file",
                    id.token_file.display(),
                    operator_auth::AUDIENCE
                )
            })?
            .trim()
            .to_owned(),
    );
    let obtained = Instant::now();
    let login = Client::with_http(&pod_addr(v.scheme(), ip), http.clone())
        .kubernetes_login(&operator_auth::login_request(&jwt))
        .await;
    match login {
        Ok(auth) => {
            ctx.tokens.put(
                key,
                auth.client_token.clone(),
                obtained,
                auth.lease_duration,
            );
            tracing::debug!(secretserver = %format!("{}/{}", v.namespace, v.name), pod, lease = auth.lease_duration, "logged in with the operator's role");
            Ok(auth.client_token)
        }
        Err(ClientError::Status { status, body, .. }) => {
            let failure = operator_auth::classify_login(status, &body);
            Err(operator_auth::explain(
                &failure,
                &v.namespace,
                &v.name,
                v.scheme(),
                id,
            ))
        }
        Err(e) => Err(operator_auth::explain(
            &LoginFailure::Other(e.to_string()),
            &v.namespace,
            &v.name,
            v.scheme(),
            id,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_used_until_shortly_before_it_expires() {
        let t0 = Instant::now();
        // The role's 15 minutes: refreshed a minute early.
        let until = valid_until(t0, 900);
        assert_eq!(until, Some(t0 + Duration::from_secs(840)));
        assert!(fresh(until, t0));
        assert!(fresh(until, t0 + Duration::from_secs(839)));
        assert!(!fresh(until, t0 + Duration::from_secs(840)));
        assert!(!fresh(until, t0 + Duration::from_secs(900)));
        // A short lease: a fifth of it early.
        assert_eq!(valid_until(t0, 10), Some(t0 + Duration::from_secs(8)));
        // No expiry.
        assert_eq!(valid_until(t0, 0), None);
        assert!(fresh(None, t0 + Duration::from_secs(10 * 365 * 86400)));
    }

    #[test]
    fn the_cache_drops_a_stale_token_and_keeps_servers_apart() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        cache.put("ns/a/1".into(), Zeroizing::new("tok-a".into()), t0, 900);
        cache.put("ns/b/2".into(), Zeroizing::new("tok-b".into()), t0, 10);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            cache.get("ns/a/1", at(100)).as_deref().map(String::as_str),
            Some("tok-a")
        );
        assert_eq!(
            cache.get("ns/b/2", at(7)).as_deref().map(String::as_str),
            Some("tok-b")
        );
        assert!(
            cache.get("ns/b/2", at(8)).is_none(),
            "refreshed before expiry"
        );
        // Dropped: even an earlier clock no longer finds it.
        assert!(cache.get("ns/b/2", at(1)).is_none());
        assert!(cache.get("ns/a/1", at(840)).is_none());
        assert!(cache.get("ns/c/3", t0).is_none());
        // A fresh login replaces the old one.
        cache.put(
            "ns/a/1".into(),
            Zeroizing::new("tok-a2".into()),
            at(840),
            900,
        );
        assert_eq!(
            cache.get("ns/a/1", at(841)).as_deref().map(String::as_str),
            Some("tok-a2")
        );
    }

    fn obs(name: &str, ip: Option<&str>, sealed: bool, standby: Option<bool>) -> PodObservation {
        use crate::api_client::{Health, SealStatus};
        let seal: SealStatus = serde_json::from_value(serde_json::json!({
            "type": "awskms", "initialized": true, "sealed": sealed, "t": 1, "n": 1, "progress": 0,
        }))
        .expect("seal status");
        let health = standby.map(|standby| {
            serde_json::from_value::<Health>(serde_json::json!({
                "initialized": true, "sealed": sealed, "standby": standby,
            }))
            .expect("health")
        });
        PodObservation {
            pod: super::super::PodView {
                name: name.into(),
                ip: ip.map(Into::into),
                ..Default::default()
            },
            answer: super::super::Answer::Answered {
                seal,
                health,
                backend: None,
            },
        }
    }

    #[test]
    fn the_login_goes_to_the_active_pod_else_any_unsealed_one() {
        let pods = [
            obs("vault-0", Some("10.0.0.1"), true, Some(true)),
            obs("vault-1", Some("10.0.0.2"), false, Some(true)),
            obs("vault-2", Some("10.0.0.3"), false, Some(false)),
        ];
        assert_eq!(login_pod(&pods), Some(("vault-2", "10.0.0.3")));
        assert_eq!(login_pod(&pods[..2]), Some(("vault-1", "10.0.0.2")));
        // Sealed, or unsealed without an IP: nobody to ask.
        let none = [
            obs("vault-0", Some("10.0.0.1"), true, None),
            obs("vault-1", None, false, Some(false)),
        ];
        assert_eq!(login_pod(&none), None);
    }

    #[test]
    fn forget_drops_only_that_servers_token() {
        let v = crate::operator::build::fixtures::awskms_role();
        let cache = TokenCache::default();
        let t0 = Instant::now();
        cache.put(cache_key(&v), Zeroizing::new("t".into()), t0, 900);
        cache.put("other/x/1".into(), Zeroizing::new("u".into()), t0, 900);
        assert_eq!(
            cache_key(&v),
            format!("secrets/vault/{}", crate::operator::build::fixtures::UID)
        );
        cache.forget(&v);
        assert!(cache.get(&cache_key(&v), t0).is_none());
        assert!(cache.get("other/x/1", t0).is_some());
    }
}
