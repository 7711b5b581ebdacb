//! Operator layer: auto-initialization. Decides from the observation whether the server needs
//! initializing, and does it through one pod. Under awskms a data key is fetched from KMS
//! first (nothing is created when KMS fails); then the `<name>-init` Secret is created as a
//! pending marker (a lock: `create` fails if it exists), `sys/init` runs, and the Secret
//! receives the root token and key shares, sealed with the data key (see [`super::initsecret`]).
//! With `spec.init.revokeRootToken` the root token is then revoked and the Secret rewritten.
//! API and network I/O; [`decide`], [`secret_state`] and the Secret builders are pure.
//!
//! The Secret is not owned by the SecretServer, so deleting the SecretServer keeps it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use zeroize::Zeroize;

use crate::api_client::{Client, InitRequest, InitResponse};

use super::build::{APP_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY};
use super::initsecret::kms::{DataKeys, KmsError, KmsKey};
use super::initsecret::{self, DataKey, FormatError, InitContents, KeyType};
use super::observe::PodObservation;
use super::operator_auth::setup::{self, RoleSetup};
use super::operator_auth::{self, Identity};
use super::status::{InitFailure, InitState};
use super::validate::{Seal, Storage, Validated};

/// Annotation on the init Secret: `pending` while the keys are not stored yet, then `done`.
pub const INIT_STATE_ANNOTATION: &str = "sealkeep.dev/init-state";
/// Annotation on the init Secret: uid of the SecretServer that created it.
pub const OWNER_UID_ANNOTATION: &str = "sealkeep.dev/secretserver-uid";
/// Label on the init Secret: uid of the SecretServer it was created for. With the annotation
/// above, it tells a pending marker of this operator from a Secret someone else created.
pub const INIT_SECRET_FOR_LABEL: &str = "sealkeep.dev/init-secret-for";

/// The init Secret as the reconciler found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    Absent,
    /// Our pending marker (label and annotation carry this SecretServer's uid).
    Pending,
    Done,
    /// A Secret of that name the operator did not create for this SecretServer; why.
    Foreign(String),
}

/// Classifies the init Secret for the SecretServer with uid `uid`.
pub fn secret_state(s: Option<&Secret>, uid: &str) -> SecretState {
    let Some(s) = s else {
        return SecretState::Absent;
    };
    let annotation = |k: &str| s.metadata.annotations.as_ref().and_then(|a| a.get(k));
    let label = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(INIT_SECRET_FOR_LABEL));
    match annotation(INIT_STATE_ANNOTATION).map(String::as_str) {
        Some("done") => SecretState::Done,
        Some("pending") => match (label, annotation(OWNER_UID_ANNOTATION)) {
            (Some(l), Some(a)) if l == uid && a == uid => SecretState::Pending,
            (Some(l), _) if l != uid => SecretState::Foreign(format!(
                "it is a pending marker for another SecretServer (label {INIT_SECRET_FOR_LABEL}={l}, this one is {uid})"
            )),
            _ => SecretState::Foreign(format!(
                "it is marked pending but lacks the label {INIT_SECRET_FOR_LABEL}={uid} and the annotation {OWNER_UID_ANNOTATION}={uid} the operator sets on the markers it creates"
            )),
        },
        Some(other) => SecretState::Foreign(format!(
            "its annotation {INIT_STATE_ANNOTATION} is {other:?}, not one the operator writes"
        )),
        None => SecretState::Foreign(format!(
            "it has no annotation {INIT_STATE_ANNOTATION}: the operator did not create it"
        )),
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
///
/// A raft server forms its cluster on one pod: the operator initializes ordinal 0 and nothing
/// else; the other ordinals join it by `retry_join` and auto-unseal (see [`decide_raft`]).
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
            SecretState::Absent | SecretState::Foreign(_) => {
                InitState::Initialized { secret: None }
            }
            SecretState::Pending => InitState::KeysLost { secret: name },
            SecretState::Done => InitState::Initialized { secret: Some(name) },
        });
    }
    if matches!(v.storage, Storage::Raft(_)) {
        return decide_raft(v, pods, &answered, secret);
    }
    // Every answering pod is uninitialized.
    if let Some(report) = refuse_uninitialized(v, secret) {
        return Decision::Report(report);
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
    if !every_desired_pod_answered(v, pods, &answered) {
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

/// The name of the pod a raft server is initialized through: ordinal 0.
pub fn forming_pod(v: &Validated) -> String {
    format!("{}-0", v.name)
}

/// [`decide`] for a raft server none of whose answering pods is initialized. Only pod
/// `<name>-0` is ever initialized; the others join it. Pods 1..n that are not initialized are
/// joining (or waiting for ordinal 0 to form the cluster), which is the normal start of a
/// cluster, never a reason to initialize them.
fn decide_raft(
    v: &Validated,
    pods: &[PodObservation],
    answered: &[&PodObservation],
    secret: SecretState,
) -> Decision {
    let first = forming_pod(v);
    let all_answered = every_desired_pod_answered(v, pods, answered);
    // The Secret of an earlier initialization with empty storage on every pod is a conflict;
    // while a pod is silent it may hold the cluster's data (ordinal 0 joins it by retry_join),
    // so there is nothing to conclude yet.
    if matches!(secret, SecretState::Done) && !all_answered {
        return Decision::Report(InitState::AwaitingPods {
            pods: silent_pods(v, pods),
        });
    }
    if let Some(report) = refuse_uninitialized(v, secret) {
        return Decision::Report(report);
    }
    // A pod that reports a cluster id has joined a cluster and waits for its log: the cluster
    // exists, so initializing ordinal 0 would form a second one.
    if answered.iter().any(|p| {
        p.seal()
            .and_then(|s| s.cluster_id.as_deref())
            .is_some_and(|id| !id.is_empty())
    }) {
        return Decision::Report(InitState::Pending);
    }
    let Some(zero) = answered.iter().find(|p| p.pod.name == first) else {
        return Decision::Report(InitState::Pending);
    };
    // With awskms, ordinal 0 wraps the root key with the KMS key: it must have proven the key
    // usable (the joiners prove theirs when they decrypt the join challenge).
    if matches!(v.seal, Seal::AwsKms { .. }) && !zero.backend().is_some_and(|b| b.healthy) {
        return Decision::Report(InitState::Pending);
    }
    // Never race a pod that may hold data: a silent pod may be an initialized member.
    if !all_answered {
        return Decision::Report(InitState::Pending);
    }
    match &zero.pod.ip {
        Some(ip) => Decision::Initialize {
            pod: first,
            ip: ip.clone(),
        },
        None => Decision::Report(InitState::Pending),
    }
}

/// Why an uninitialized server is not initialized whatever the pods say: the Secret of an
/// earlier initialization, a Secret the operator did not create, or `init.auto: false`.
fn refuse_uninitialized(v: &Validated, secret: SecretState) -> Option<InitState> {
    let name = v.init_secret_name();
    match secret {
        SecretState::Done => Some(InitState::Conflict { secret: name }),
        SecretState::Foreign(why) => Some(InitState::Failed {
            reason: InitFailure::SecretForeign,
            message: format!(
                "Secret {name} exists but the operator did not create it for this SecretServer: {why}. The operator writes the root token and keys only into a Secret it created; move that Secret's contents elsewhere and delete it, then the operator initializes the server"
            ),
        }),
        SecretState::Absent | SecretState::Pending if !v.init.auto => Some(InitState::Manual),
        SecretState::Absent | SecretState::Pending => None,
    }
}

/// Every desired pod exists and answered `sys/seal-status`.
fn every_desired_pod_answered(
    v: &Validated,
    pods: &[PodObservation],
    answered: &[&PodObservation],
) -> bool {
    let expected = usize::try_from(v.replicas).unwrap_or(0);
    answered.len() >= expected && pods.len() == answered.len()
}

/// The desired pods that did not answer (absent ones included), by name.
fn silent_pods(v: &Validated, pods: &[PodObservation]) -> Vec<String> {
    (0..v.replicas.max(0))
        .map(|i| format!("{}-{i}", v.name))
        .filter(|name| {
            !pods
                .iter()
                .any(|p| &p.pod.name == name && p.seal().is_some())
        })
        .collect()
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
            (INIT_SECRET_FOR_LABEL.to_owned(), v.owner.uid.clone()),
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

/// What the Secret will hold, from the `sys/init` response.
pub fn contents(v: &Validated, resp: &InitResponse) -> InitContents {
    let (key_type, keys) = match v.seal {
        Seal::Shamir => (KeyType::Unseal, &resp.keys_base64),
        Seal::AwsKms { .. } => (KeyType::Recovery, &resp.recovery_keys_base64),
    };
    InitContents {
        root_token: Some(resp.root_token.clone()),
        keys: keys.clone(),
        key_type,
        threshold: v.init.threshold,
        root_token_revoked: false,
    }
}

/// The Secret holding the init result (format in [`super::initsecret`]): sealed with `dk`
/// under awskms, in clear under Shamir. Pure.
pub fn done_secret(
    v: &Validated,
    c: &InitContents,
    dk: Option<&DataKey>,
) -> Result<Secret, FormatError> {
    let data = match (&v.seal, dk) {
        (Seal::AwsKms { region, .. }, Some(dk)) => {
            initsecret::envelope_data(c, dk, region, &v.namespace, &v.init_secret_name())?
        }
        _ => initsecret::plain_data(c),
    };
    Ok(Secret {
        metadata: secret_meta(v, "done"),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    })
}

/// The KMS key of an awskms seal, as the operator reaches it.
pub fn kms_key(v: &Validated) -> Option<KmsKey> {
    match &v.seal {
        Seal::AwsKms {
            key_id,
            region,
            endpoint,
            ..
        } => Some(KmsKey {
            key_id: key_id.clone(),
            region: region.clone(),
            endpoint: endpoint.clone(),
        }),
        Seal::Shamir => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "cannot get a data key to encrypt the init Secret, so the server was not initialized: {source}. The operator's own AWS identity needs kms:GenerateDataKey on the seal key"
    )]
    DataKey { source: KmsError },
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
        "server initialized, but encrypting its keys for Secret {name} failed: {source}; the root token and key shares are lost"
    )]
    Seal { name: String, source: FormatError },
    #[error(
        "server initialized, but storing its keys in Secret {name} failed: {source}; the root token and key shares are lost"
    )]
    Store { name: String, source: kube::Error },
}

impl InitError {
    /// The condition reason.
    pub fn failure(&self) -> InitFailure {
        match self {
            Self::DataKey { .. } => InitFailure::SecretKms,
            _ => InitFailure::InitFailed,
        }
    }
}

/// What became of the root token after the keys were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    NotRequested,
    Revoked,
    /// Revoking or recording it failed; the message says which (the token stays in the Secret).
    Failed(String),
}

/// A finished auto-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initialized {
    pub secret: String,
    pub revoke: Revoke,
    /// The operator's own Kubernetes-auth role (raft servers), written before any revoke.
    pub operator_role: RoleSetup,
}

/// Replaces the init Secret with bounded retries (the keys exist nowhere else), then zeroizes
/// the data of `s`.
async fn store(secrets: &Api<Secret>, name: &str, mut s: Secret) -> Result<(), kube::Error> {
    let mut last = None;
    for attempt in 0..5u32 {
        match secrets.replace(name, &PostParams::default(), &s).await {
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
    if let Some(data) = s.data.as_mut() {
        data.values_mut().for_each(|b| b.0.zeroize());
    }
    last.map_or(Ok(()), Err)
}

/// Writes the operator's Kubernetes-auth role on a raft server with the root token from
/// `sys/init` (see [`operator_auth::setup`]).
async fn operator_role(
    v: &Validated,
    client: &Client,
    root: Option<&str>,
    operator: Option<&Identity>,
) -> RoleSetup {
    if matches!(v.storage, Storage::File) {
        return RoleSetup::Skipped(
            "file storage: the operator administers no raft cluster there".into(),
        );
    }
    let Some(id) = operator else {
        return RoleSetup::Skipped(operator_auth::no_identity(&v.namespace, &v.name));
    };
    let Some(root) = root else {
        return RoleSetup::Failed("sys/init returned no root token".into());
    };
    match setup::run(client, root, id).await {
        Ok(()) => RoleSetup::Created,
        Err(e) => RoleSetup::Failed(format!(
            "{e}. Until the role exists, upgrades and scaling wait (no root token fallback); create it by hand: {}",
            operator_auth::manual_commands(&v.namespace, &v.name, v.scheme(), id)
        )),
    }
}

/// Initializes through `client` and stores the result; on a raft server then writes the
/// operator's role with the root token (before revoking it, when asked). The keys and the data
/// key exist only in memory between the calls and are zeroized afterwards.
pub async fn initialize(
    secrets: &Api<Secret>,
    v: &Validated,
    secret: SecretState,
    pod: &str,
    client: &Client,
    kms: &dyn DataKeys,
    operator: Option<&Identity>,
) -> Result<Initialized, InitError> {
    let name = v.init_secret_name();
    // The data key first: when KMS fails, nothing is created and nothing is initialized.
    let dk = match kms_key(v) {
        Some(key) => Some(
            kms.generate(&key, &initsecret::context(&v.namespace, &name))
                .await
                .map_err(|source| InitError::DataKey { source })?,
        ),
        None => None,
    };
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
    let mut c = contents(v, &resp);
    drop(resp);
    let done = done_secret(v, &c, dk.as_ref()).map_err(|source| InitError::Seal {
        name: name.clone(),
        source,
    })?;
    store(secrets, &name, done)
        .await
        .map_err(|source| InitError::Store {
            name: name.clone(),
            source,
        })?;
    let operator_role = operator_role(v, client, c.root_token.as_deref(), operator).await;
    if !v.init.revoke_root_token {
        return Ok(Initialized {
            secret: name,
            revoke: Revoke::NotRequested,
            operator_role,
        });
    }
    let token = c.root_token.take().unwrap_or_default();
    let revoked = client.revoke_self(&token).await;
    drop(zeroize::Zeroizing::new(token));
    let revoke = match revoked {
        Err(e) => {
            // Keep the Secret as stored: it still holds the (valid) root token.
            Revoke::Failed(format!(
                "revoking the root token failed: {e}; it is still valid and stored in Secret {name}: revoke it yourself (vault token revoke -self)"
            ))
        }
        Ok(()) => {
            c.root_token_revoked = true;
            let recorded = match done_secret(v, &c, dk.as_ref()) {
                Ok(s) => store(secrets, &name, s).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match recorded {
                Ok(()) => Revoke::Revoked,
                Err(e) => Revoke::Failed(format!(
                    "the root token was revoked, but recording that in Secret {name} failed: {e}; the token it holds no longer works"
                )),
            }
        }
    };
    Ok(Initialized {
        secret: name,
        revoke,
        operator_role,
    })
}

#[cfg(test)]
mod tests;
