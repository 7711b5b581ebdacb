//! Operator layer, step 3 of the pipeline (apply), namespaced part: applies every built child,
//! keeps the StatefulSet's immutable claim templates, grows the data claims, and removes a
//! ServiceAccount the server no longer uses. API I/O; the decisions on the StatefulSet are
//! pure helpers.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::{apply, apply_known, prune};
use crate::operator::build::{self, Children, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use crate::operator::reconcile::{Context, Error, kube_err};
use crate::operator::validate::{self, Validated};

/// What applying the children found.
#[derive(Debug, Default)]
pub struct Applied {
    /// The StatefulSet has not rolled every pod to its current revision yet.
    pub rolling: bool,
    /// The StatefulSet's `status.updateRevision` once its controller has observed the
    /// generation this apply left (`None` before that, or when applying failed): the revision
    /// the upgrade planner moves the pods to.
    pub update_revision: Option<String>,
    /// Applying failed (transient): the status says so, then the reconcile is retried.
    pub error: Option<Error>,
}

/// Applies every child of `v`. A failure is returned inside [`Applied`] so that the pipeline
/// still observes the pods and reports the failure in the status.
pub async fn children(ctx: &Context, v: &Validated, c: &Children) -> Applied {
    match apply_children(ctx, v, c).await {
        Ok((before, after)) => Applied {
            rolling: before.as_ref().is_some_and(rolling_out),
            update_revision: after.as_ref().and_then(update_revision),
            error: None,
        },
        Err(e) => Applied {
            rolling: false,
            update_revision: None,
            error: Some(e),
        },
    }
}

/// Applies every child; returns the StatefulSet as it was before (for the rollout state) and
/// as it is after the apply (read again when the apply wrote it).
async fn apply_children(
    ctx: &Context,
    v: &Validated,
    c: &Children,
) -> Result<(Option<StatefulSet>, Option<StatefulSet>), Error> {
    let client = &ctx.client;
    let ns = v.namespace.as_str();
    let cache = &ctx.applied;
    let mut writes = 0u32;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    if v.manage_service_account {
        writes += u32::from(apply(&accounts, &c.service_account, cache).await?);
    }
    writes += u32::from(
        apply(
            &Api::<ConfigMap>::namespaced(client.clone(), ns),
            &c.config_map,
            cache,
        )
        .await?,
    );
    let services = Api::<Service>::namespaced(client.clone(), ns);
    writes += u32::from(apply(&services, &c.headless_service, cache).await?);
    writes += u32::from(apply(&services, &c.client_service, cache).await?);
    let sts_api = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let existing = sts_api
        .get_opt(&v.name)
        .await
        .map_err(kube_err(format!("reading StatefulSet {}", v.name)))?;
    let sts = keep_claim_templates(&c.stateful_set, existing.as_ref());
    let existing_rv = existing.as_ref().and_then(|e| e.resource_version());
    let sts_written = apply_known(&sts_api, &sts, cache, Some(existing_rv)).await?;
    writes += u32::from(sts_written);
    let after = if sts_written {
        sts_api
            .get_opt(&v.name)
            .await
            .map_err(kube_err(format!("reading StatefulSet {}", v.name)))?
    } else {
        existing.clone()
    };
    writes += u32::from(
        apply(
            &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
            &c.pod_disruption_budget,
            cache,
        )
        .await?,
    );
    if claims_may_be_small(v, existing.as_ref()) {
        writes += resize_claims(ctx, v).await?;
    }
    if writes == 0 {
        // Nothing changed since this process last applied: no renamed ServiceAccount to prune.
        return Ok((existing, after));
    }
    tracing::debug!(namespace = ns, name = %v.name, writes, "applied children");
    prune_service_accounts(&accounts, v).await;
    Ok((existing, after))
}

/// A renamed or user-supplied ServiceAccount leaves ours behind: remove it (best effort).
async fn prune_service_accounts(accounts: &Api<ServiceAccount>, v: &Validated) {
    let selector = format!(
        "{LABEL_INSTANCE}={},{LABEL_MANAGED_BY}={MANAGED_BY}",
        v.name
    );
    let keep: Vec<String> = if v.manage_service_account {
        vec![v.service_account.clone()]
    } else {
        Vec::new()
    };
    match prune(accounts, &selector, &keep).await {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(namespace = %v.namespace, removed = ?removed, "removed ServiceAccounts no longer used");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(namespace = %v.namespace, error = %e, "pruning old ServiceAccounts failed");
        }
    }
}

/// A StatefulSet's volumeClaimTemplates are immutable: keep the existing ones, so that a grown
/// `storage.size` does not make every apply fail ([`resize_claims`] grows the claims instead).
pub fn keep_claim_templates(desired: &StatefulSet, existing: Option<&StatefulSet>) -> StatefulSet {
    let mut sts = desired.clone();
    if let (Some(spec), Some(old)) = (sts.spec.as_mut(), existing.and_then(|e| e.spec.as_ref())) {
        spec.volume_claim_templates = old.volume_claim_templates.clone();
    }
    sts
}

/// Whether the claims may be smaller than `storage.size`: the StatefulSet's (immutable) claim
/// template asks for less. Saves reading every claim on every reconcile.
pub fn claims_may_be_small(v: &Validated, existing: Option<&StatefulSet>) -> bool {
    let template = existing
        .and_then(|e| e.spec.as_ref())
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| validate::quantity_bytes(&q.0));
    match (template, validate::quantity_bytes(&v.storage_size.0)) {
        (Some(have), Some(want)) => have < want,
        _ => false,
    }
}

/// Grows every data claim smaller than `storage.size`. Returns the number of writes.
async fn resize_claims(ctx: &Context, v: &Validated) -> Result<u32, Error> {
    let Some(want) = validate::quantity_bytes(&v.storage_size.0) else {
        return Ok(0);
    };
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &v.namespace);
    let mut writes = 0;
    for i in 0..v.replicas {
        let name = format!("{}-{}-{i}", build::statefulset::DATA_VOLUME, v.name);
        let Some(pvc) = api
            .get_opt(&name)
            .await
            .map_err(kube_err(format!("reading PersistentVolumeClaim {name}")))?
        else {
            continue;
        };
        let have = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| validate::quantity_bytes(&q.0));
        if have.is_some_and(|h| h < want) {
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": v.storage_size.0}}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kube_err(format!(
                    "growing PersistentVolumeClaim {name} to {} (its StorageClass must set allowVolumeExpansion: true)",
                    v.storage_size.0
                )))?;
            tracing::info!(claim = %name, size = %v.storage_size.0, "growing data volume");
            writes += 1;
        }
    }
    Ok(writes)
}

/// Whether the StatefulSet has not rolled every pod to its current revision yet.
pub fn rolling_out(sts: &StatefulSet) -> bool {
    sts.status.as_ref().is_some_and(|s| {
        s.update_revision.is_some() && s.current_revision != s.update_revision
            || s.observed_generation < sts.metadata.generation
    })
}

/// The StatefulSet's `status.updateRevision`, only once its controller has observed the
/// current generation (before that it names the previous template's revision). Pure.
pub fn update_revision(sts: &StatefulSet) -> Option<String> {
    let status = sts.status.as_ref()?;
    let observed = status.observed_generation?;
    if sts.metadata.generation.is_some_and(|g| observed < g) {
        return None;
    }
    status.update_revision.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(generation: i64, observed: Option<i64>, update: &str) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "vault", "generation": generation},
            "status": {
                "replicas": 3,
                "observedGeneration": observed,
                "currentRevision": "vault-old",
                "updateRevision": update,
            },
        }))
        .expect("StatefulSet")
    }

    #[test]
    fn the_update_revision_counts_only_once_the_generation_is_observed() {
        assert_eq!(
            update_revision(&sts(4, Some(4), "vault-new")).as_deref(),
            Some("vault-new")
        );
        // The apply just bumped the generation: the status still names the old template's
        // revision.
        assert_eq!(update_revision(&sts(5, Some(4), "vault-old")), None);
        assert_eq!(update_revision(&sts(1, None, "vault-old")), None);
    }
}
