//! Operator layer, step 5 of the pipeline (status), I/O part: writes the status computed by
//! `status` with server-side apply on the status subresource, only when it changed, and
//! publishes the Events its transitions deserve. API I/O.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::apply::FIELD_MANAGER;
use super::crd::{SecretServer, SecretServerStatus};
use super::reconcile::{Context, Error, key, kube_err};
use super::status::{self, Facts, Reason};
use super::validate::ValidationError;

/// Longest Event note the operator publishes (the API server refuses more than 1 KiB).
const MAX_NOTE: usize = 1000;

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// An Event about `ss` (best effort: a failure is logged at debug level).
pub async fn publish(ctx: &Context, ss: &SecretServer, warning: bool, reason: &str, note: String) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(truncate(note, MAX_NOTE)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ss.object_ref(&())).await {
        tracing::debug!(error = %e, "publishing an event failed");
    }
}

/// A spec the operator cannot act on: Ready False and Degraded True with the reason, one
/// Warning Event, then nothing until the spec changes.
pub async fn invalid_spec(
    ctx: &Context,
    api: &Api<SecretServer>,
    ss: &SecretServer,
    e: &ValidationError,
) -> Result<Action, Error> {
    let new = status::invalid(
        ss.status.as_ref(),
        ss.meta().generation,
        &e.to_string(),
        Timestamp::now(),
    );
    if ss.status.as_ref() != Some(&new) {
        write_status(api, ss, &new).await?;
        publish(ctx, ss, true, Reason::InvalidSpec.as_str(), e.to_string()).await;
    }
    Ok(Action::await_change())
}

/// Computes the status from `facts`; writes it and publishes its transitions when it changed.
/// Returns the new status.
pub async fn status(
    ctx: &Context,
    api: &Api<SecretServer>,
    ss: &SecretServer,
    facts: &Facts<'_>,
) -> Result<SecretServerStatus, Error> {
    let new = status::compute(facts, ss.status.as_ref(), Timestamp::now());
    if ss.status.as_ref() != Some(&new) {
        write_status(api, ss, &new).await?;
        for t in status::transitions(ss.status.as_ref(), &new) {
            publish(ctx, ss, t.warning, t.reason.as_str(), t.note).await;
        }
    }
    Ok(new)
}

async fn write_status(
    api: &Api<SecretServer>,
    ss: &SecretServer,
    status: &SecretServerStatus,
) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": "sealkeep.dev/v1alpha1",
        "kind": "SecretServer",
        "status": status,
    });
    api.patch_status(
        &ss.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(kube_err(format!("writing the status of {}", key(ss))))?;
    Ok(())
}
