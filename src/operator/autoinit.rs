//! Operator layer: auto-initialization. Decides from the observation whether the server needs
//! initializing, and does it through one pod: the `<name>-init` Secret is created first as a
//! pending marker (a lock: `create` fails if it exists), then `sys/init` runs, then the Secret
//! receives the root token and key shares. API and network I/O; [`decide`] is pure.
//!
//! The Secret is not owned by the SecretServer, so deleting the SecretServer keeps it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use zeroize::Zeroize;

use crate::api_client::{Client, InitRequest, InitResponse};

use super::build::{APP_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY};
use super::observe::PodObservation;
use super::status::InitState;
use super::validate::{Seal, Validated};

/// Annotation on the init Secret: `pending` while the keys are not stored yet, then `done`.
pub const INIT_STATE_ANNOTATION: &str = "sealkeep.dev/init-state";
/// Annotation on the init Secret: uid of the SecretServer that created it.
pub const OWNER_UID_ANNOTATION: &str = "sealkeep.dev/secretserver-uid";

/// The init Secret as the reconciler found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    Absent,
    Pending,
    Done,
}

pub fn secret_state(s: Option<&Secret>) -> SecretState {
    match s {
        None => SecretState::Absent,
        Some(s) => match s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(INIT_STATE_ANNOTATION))
            .map(String::as_str)
        {
            Some("pending") => SecretState::Pending,
            _ => SecretState::Done,
        },
    }
}

/// What to do about initialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do; report this state.
    Report(InitState),
    /// Initialize now, through this pod.
    Initialize { pod: String, ip: String },
}

/// Pure decision from the observation and the init Secret.
pub fn decide(v: &Validated, pods: &[PodObservation], secret: SecretState) -> Decision {
    let name = v.init_secret_name();
    let answered: Vec<&PodObservation> = pods.iter().filter(|p| p.seal().is_some()).collect();
    if answered.is_empty() {
        return Decision::Report(InitState::Unknown);
    }
    if answered
        .iter()
        .any(|p| p.seal().is_some_and(|s| s.initialized))
    {
        return Decision::Report(match secret {
            SecretState::Absent => InitState::Initialized { secret: None },
            SecretState::Pending => InitState::KeysLost { secret: name },
            SecretState::Done => InitState::Initialized { secret: Some(name) },
        });
    }
    // Every answering pod is uninitialized.
    if secret == SecretState::Done {
        return Decision::Report(InitState::Conflict { secret: name });
    }
    if !v.init.auto {
        return Decision::Report(InitState::Manual);
    }
    // With awskms, init wraps the root key with the KMS key: wait until every pod has proven
    // the key usable. A server that has not finished its first check yet reports unhealthy
    // with no error; initializing then would create the marker Secret and fail on a key that
    // is missing or unreachable.
    if matches!(v.seal, Seal::AwsKms { .. })
        && !answered
            .iter()
            .all(|p| p.backend().is_some_and(|b| b.healthy))
    {
        return Decision::Report(InitState::Pending);
    }
    // Only when every desired pod answered: never race a pod that may hold data.
    let expected = usize::try_from(v.replicas).unwrap_or(0);
    if answered.len() < expected || pods.len() != answered.len() {
        return Decision::Report(InitState::Pending);
    }
    match answered
        .first()
        .and_then(|p| p.pod.ip.clone().map(|ip| (p.pod.name.clone(), ip)))
    {
        Some((pod, ip)) => Decision::Initialize { pod, ip },
        None => Decision::Report(InitState::Pending),
    }
}

/// The `sys/init` request for the seal.
pub fn init_request(v: &Validated) -> InitRequest {
    match v.seal {
        Seal::Shamir => InitRequest::Shamir {
            shares: v.init.shares,
            threshold: v.init.threshold,
        },
        Seal::AwsKms { .. } => InitRequest::Recovery {
            shares: v.init.shares,
            threshold: v.init.threshold,
        },
    }
}

fn secret_meta(v: &Validated, state: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(v.init_secret_name()),
        namespace: Some(v.namespace.clone()),
        labels: Some(BTreeMap::from([
            (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
            (LABEL_INSTANCE.to_owned(), v.name.clone()),
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        ])),
        annotations: Some(BTreeMap::from([
            (INIT_STATE_ANNOTATION.to_owned(), state.to_owned()),
            (OWNER_UID_ANNOTATION.to_owned(), v.owner.uid.clone()),
        ])),
        ..ObjectMeta::default()
    }
}

/// The pending marker: an empty Secret. Pure.
pub fn pending_secret(v: &Validated) -> Secret {
    Secret {
        metadata: secret_meta(v, "pending"),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The Secret holding the init result. Pure. Keys: `root-token`, `keys` (base64 shares, one
/// per line), `key-type` (`unseal` for Shamir, `recovery` for auto-unseal), `threshold`.
pub fn done_secret(v: &Validated, resp: &InitResponse) -> Secret {
    let (kind, keys) = match v.seal {
        Seal::Shamir => ("unseal", &resp.keys_base64),
        Seal::AwsKms { .. } => ("recovery", &resp.recovery_keys_base64),
    };
    let data = BTreeMap::from([
        (
            "root-token".to_owned(),
            ByteString(resp.root_token.as_bytes().to_vec()),
        ),
        ("keys".to_owned(), ByteString(keys.join("\n").into_bytes())),
        ("key-type".to_owned(), ByteString(kind.as_bytes().to_vec())),
        (
            "threshold".to_owned(),
            ByteString(v.init.threshold.to_string().into_bytes()),
        ),
    ]);
    Secret {
        metadata: secret_meta(v, "done"),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot create the pending init Secret {name}: {source}")]
    CreateMarker { name: String, source: kube::Error },
    #[error("Secret {name} appeared while initializing; another operator replica is initializing")]
    Raced { name: String },
    #[error("sys/init through pod {pod} failed: {source}")]
    Init {
        pod: String,
        source: crate::api_client::ClientError,
    },
    #[error(
        "server initialized, but storing its keys in Secret {name} failed: {source}; the root token and key shares are lost"
    )]
    Store { name: String, source: kube::Error },
}

/// Initializes through `addr` and stores the result. The keys exist only in memory between the
/// two API calls and are zeroized afterwards.
pub async fn initialize(
    secrets: &Api<Secret>,
    v: &Validated,
    secret: SecretState,
    pod: &str,
    client: &Client,
) -> Result<String, InitError> {
    let name = v.init_secret_name();
    if secret == SecretState::Absent {
        match secrets
            .create(&PostParams::default(), &pending_secret(v))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => return Err(InitError::Raced { name }),
            Err(source) => return Err(InitError::CreateMarker { name, source }),
        }
    }
    let resp = client
        .init(init_request(v))
        .await
        .map_err(|source| InitError::Init {
            pod: pod.to_owned(),
            source,
        })?;
    let mut done = done_secret(v, &resp);
    drop(resp);
    // Bounded retries: the keys exist nowhere else.
    let mut last = None;
    for attempt in 0..5u32 {
        match secrets.replace(&name, &PostParams::default(), &done).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => {
                tracing::warn!(secret = %name, attempt, error = %e, "storing init keys failed; retrying");
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    if let Some(data) = done.data.as_mut() {
        data.values_mut().for_each(|b| b.0.zeroize());
    }
    match last {
        None => Ok(name),
        Some(source) => Err(InitError::Store { name, source }),
    }
}

#[cfg(test)]
mod tests;
