//! Operator layer, HA step (upgrade) of a raft server: observes raft (`observe::raft`, with the
//! operator's own Kubernetes-auth token from `observe::token`), asks the pure planner
//! (`upgrade::plan`) for the next action given the step recorded in status, and carries it out.
//! A pod is deleted with a precondition on its uid, so a deletion decided on an old observation
//! never hits the pod the StatefulSet controller re-created under the same name;
//! `sys/step-down` is called on the leader with the operator's token. API and network I/O; [`delete_params`] is pure.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};

use crate::api_client::Client;
use crate::operator::crd::SecretServer;
use crate::operator::observe::{self, PodObservation, pod_addr};
use crate::operator::reconcile::{Context, Error, key};
use crate::operator::status::{self, InitState};
use crate::operator::upgrade::{self, Action, Plan};
use crate::operator::validate::{Storage, Validated};

/// What the upgrade step decided and did, for the status.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: Plan,
    pub revision_known: bool,
    pub act_error: Option<String>,
}

/// The upgrade step of a raft server whose storage is initialized; `None` for file servers and
/// before initialization (formation is auto-init's business).
pub async fn run(
    ctx: &Context,
    ss: &SecretServer,
    v: &Validated,
    init: &InitState,
    pods: &[PodObservation],
    update_revision: Option<String>,
) -> Result<Option<Outcome>, Error> {
    if !matches!(v.storage, Storage::Raft(_)) || !matches!(init, InitState::Initialized { .. }) {
        return Ok(None);
    }
    let http = observe::pods::pod_http(ctx, v).await?;
    let token = observe::token::operator_token(ctx, v, pods, &http).await;
    let token_ref = token.as_ref().map(|t| t.as_str()).map_err(String::as_str);
    let raft = observe::raft::observe(pods, v.scheme(), &http, token_ref).await;
    if raft
        .configuration
        .as_ref()
        .is_err_and(|e| e.contains(" 403") || e.contains("permission denied"))
    {
        // A revoked or expired token: log in again next time.
        ctx.tokens.forget(v);
    }
    let revision_known = update_revision.is_some();
    let observed = observe::raft::planner_input(v, update_revision, pods, &raft);
    let prev = status::recorded_upgrade(ss.status.as_ref());
    let plan = upgrade::plan(
        &observed,
        prev.as_ref(),
        status::whole_seconds(Timestamp::now()),
    );
    let mut act_error = None;
    if let Some(action) = &plan.action {
        tracing::info!(secretserver = %key(ss), action = ?action, step = %plan.message, "upgrade step");
        let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
        if let Err(e) = act(&pods_api, pods, action, v.scheme(), &http, token_ref).await {
            tracing::warn!(secretserver = %key(ss), error = %e, "upgrade step failed");
            if e.0.contains(" 403") || e.0.contains("permission denied") {
                ctx.tokens.forget(v);
            }
            act_error = Some(e.to_string());
        }
    }
    Ok(Some(Outcome {
        plan,
        revision_known,
        act_error,
    }))
}

/// Why an action was not carried out: a sentence for the status and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActError(pub String);

/// The delete of pod `uid`: only that pod, never one re-created under its name.
pub fn delete_params(uid: &str) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// Carries out `action` on the pods of one server.
pub async fn act(
    pods_api: &Api<Pod>,
    pods: &[PodObservation],
    action: &Action,
    scheme: &str,
    http: &reqwest::Client,
    token: Result<&str, &str>,
) -> Result<(), ActError> {
    let find = |name: &str| {
        pods.iter()
            .find(|p| p.pod.name == name)
            .ok_or_else(|| ActError(format!("pod {name} was not observed")))
    };
    match action {
        Action::DeletePod(name) => {
            let pod = find(name)?;
            let uid = pod.pod.uid.as_deref().ok_or_else(|| {
                ActError(format!("pod {name} has no uid; not deleting it unguarded"))
            })?;
            match pods_api.delete(name, &delete_params(uid)).await {
                Ok(_) => Ok(()),
                // Gone already, or re-created (uid precondition failed): the next observation
                // sees the new pod.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                Err(e) => Err(ActError(format!(
                    "deleting pod {name} failed: {e}; the operator's Role needs delete on pods"
                ))),
            }
        }
        Action::StepDown(name) => {
            let pod = find(name)?;
            let ip = pod
                .pod
                .ip
                .as_deref()
                .ok_or_else(|| ActError(format!("pod {name} has no IP")))?;
            let token = token
                .map_err(|why| ActError(format!("cannot call sys/step-down on {name}: {why}")))?;
            Client::with_http(&pod_addr(scheme, ip), http.clone())
                .step_down(token)
                .await
                .map_err(|e| ActError(format!("sys/step-down on {name} failed: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_deleted_only_with_its_uid() {
        let p = delete_params("0b9c-uid");
        let pre = p.preconditions.expect("preconditions");
        assert_eq!(pre.uid.as_deref(), Some("0b9c-uid"));
        assert_eq!(pre.resource_version, None);
        assert_eq!(p.grace_period_seconds, None);
    }
}
