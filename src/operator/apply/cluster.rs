//! Operator layer, step 3 of the pipeline (apply), cluster-scoped part: the auth-delegator
//! ClusterRoleBinding, which garbage collection cannot remove for a namespaced owner, and the
//! finalizer that guards it. API I/O.

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;

use super::{apply, prune};
use crate::operator::build;
use crate::operator::crd::SecretServer;
use crate::operator::reconcile::{Context, Error, key, kube_err};
use crate::operator::validate::Validated;

/// Finalizer guarding the cluster-scoped objects a SecretServer needs (the auth-delegator
/// ClusterRoleBinding), which garbage collection cannot remove for a namespaced owner.
pub const CLEANUP_FINALIZER: &str = "sealkeep.dev/cluster-cleanup";

fn has_finalizer(ss: &SecretServer) -> bool {
    ss.finalizers().iter().any(|f| f == CLEANUP_FINALIZER)
}

/// Adds or removes the cleanup finalizer (merge patch guarded by resourceVersion).
async fn set_finalizer(
    api: &Api<SecretServer>,
    ss: &SecretServer,
    present: bool,
) -> Result<(), Error> {
    let mut finalizers: Vec<String> = ss
        .finalizers()
        .iter()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(CLEANUP_FINALIZER.to_owned());
    }
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": ss.resource_version(),
    }});
    api.patch(
        &ss.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_err(format!("updating the finalizers of {}", key(ss))))?;
    Ok(())
}

async fn delete_cluster_objects(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let labels = build::rbac::binding_labels(ns, name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    prune(&api, &labels, &[]).await.map_err(kube_err(format!(
        "removing the ClusterRoleBindings of {ns}/{name}"
    )))?;
    ctx.applied.forget_prefix(&format!(":{ns}:{name}:"));
    Ok(())
}

/// A SecretServer being deleted: owned children go with the garbage collector; the
/// cluster-scoped ones need the operator, then the finalizer goes.
pub async fn finalize(
    ctx: &Context,
    api: &Api<SecretServer>,
    ss: &SecretServer,
) -> Result<Action, Error> {
    if has_finalizer(ss) {
        delete_cluster_objects(ctx, &ss.namespace().unwrap_or_default(), &ss.name_any()).await?;
        set_finalizer(api, ss, false).await?;
    }
    Ok(Action::await_change())
}

/// The auth-delegator binding exists exactly while `build::rbac::needs_auth_delegator`
/// (`spec.auth.kubernetes.enabled`, or a raft server with the operator's ServiceAccount), and
/// the finalizer exactly while the binding may exist.
pub async fn sync(
    ctx: &Context,
    api: &Api<SecretServer>,
    ss: &SecretServer,
    v: &Validated,
) -> Result<(), Error> {
    if build::rbac::needs_auth_delegator(v) {
        if !has_finalizer(ss) {
            set_finalizer(api, ss, true).await?;
        }
        let crbs: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
        apply(&crbs, &build::rbac::auth_delegator_binding(v), &ctx.applied).await?;
    } else if has_finalizer(ss) {
        delete_cluster_objects(ctx, &v.namespace, &v.name).await?;
        set_finalizer(api, ss, false).await?;
    }
    Ok(())
}
