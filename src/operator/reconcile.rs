//! Operator layer: `reconcile`, the only entry point, runs one pipeline per SecretServer:
//! validate -> build -> apply -> observe (and auto-init) -> upgrade (raft) -> status. It only sequences the
//! steps; each step's work lives in its own module (`validate`, `build`, `apply`, `observe`,
//! `status` and `report`), and the pure ones are unit-tested there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use super::apply::{self, AppliedCache, ApplyError};
use super::build;
use super::crd::SecretServer;
use super::initsecret::kms::DataKeys;
use super::metrics::OperatorMetrics;
use super::observe;
use super::report::{self, truncate};
use super::status::{self, Facts, UpgradeFacts};
use super::validate;

pub use super::status::{REQUEUE_NOT_READY, REQUEUE_READY, REQUEUE_STARTING};

/// Shared state of the controller.
pub struct Context {
    pub client: kube::Client,
    pub default_image: Option<String>,
    pub metrics: Arc<OperatorMetrics>,
    pub recorder: Recorder,
    /// HTTP client for plain-HTTP pods (shared connection pool).
    pub http: reqwest::Client,
    pub applied: AppliedCache,
    pub failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// KMS data keys for the init Secret of awskms servers (the operator's own credentials).
    pub kms: Arc<dyn DataKeys>,
    /// The ClusterRole with the Secret rules that a namespace binds to opt in (the chart's
    /// `<release>-secrets`), for the InitSecretForbidden message.
    pub secrets_role: Option<String>,
    /// The operator's token per raft server (`observe::token`).
    pub tokens: super::observe::token::TokenCache,
    /// The operator's own ServiceAccount (the subject of its Kubernetes-auth role) and its
    /// projected token file; `None` outside the chart (no token of its own then).
    pub account: Option<super::operator_auth::Identity>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("building the HTTP client for pods: {0}")]
    Http(#[source] reqwest::Error),
    #[error("listener TLS Secret {0} has neither ca.crt nor tls.crt")]
    TlsSecret(String),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Apply(_) => "apply",
            Self::Kube { .. } => "kube",
            Self::Http(_) | Self::TlsSecret(_) => "http",
        }
    }
}

/// Wraps a kube error with what the operator was doing.
pub(crate) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// `namespace/name` of a SecretServer (log fields, metrics labels, backoff bookkeeping).
pub(crate) fn key(ss: &SecretServer) -> String {
    format!("{}/{}", ss.namespace().unwrap_or_default(), ss.name_any())
}

/// The controller's reconcile function.
pub async fn reconcile(ss: Arc<SecretServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let res = run(&ss, &ctx).await;
    let result = match &res {
        Ok(_) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&key(&ss));
            }
            "ok"
        }
        Err(e) => {
            ctx.metrics.error(e.kind());
            "error"
        }
    };
    ctx.metrics.reconciled(result, started.elapsed());
    res
}

/// Transient errors: requeue with exponential backoff (1 s doubling, capped at 5 minutes) and
/// publish a Warning Event.
pub fn error_policy(ss: Arc<SecretServer>, err: &Error, ctx: Arc<Context>) -> Action {
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key(&ss)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    tracing::warn!(secretserver = %key(&ss), error = %err, failures = n, "reconcile failed");
    let ctx2 = ctx.clone();
    let reference = ss.object_ref(&());
    let note = err.to_string();
    tokio::spawn(async move {
        let ev = Event {
            type_: EventType::Warning,
            reason: "ReconcileFailed".into(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx2.recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, "publishing an event failed");
        }
    });
    let secs = 1u64 << n.min(9);
    Action::requeue(Duration::from_secs(secs.min(300)))
}

/// The pipeline. Each line is one step; none does its work here.
async fn run(ss: &SecretServer, ctx: &Context) -> Result<Action, Error> {
    let api: Api<SecretServer> =
        Api::namespaced(ctx.client.clone(), &ss.namespace().unwrap_or_default());
    if ss.meta().deletion_timestamp.is_some() {
        return apply::cluster::finalize(ctx, &api, ss).await;
    }
    // 1. validate
    let v = match validate::validate(ss, ctx.default_image.as_deref()) {
        Ok(v) => v,
        Err(e) => return report::invalid_spec(ctx, &api, ss, &e).await,
    };
    // 2. build
    let children = build::children(&v);
    // 3. apply
    apply::cluster::sync(ctx, &api, ss, &v).await?;
    let applied = apply::children::children(ctx, &v, &children).await;
    // 4. observe (and auto-init)
    let pods = observe::pods::observe_all(ctx, &v).await?;
    let (init, pods) = observe::init::init_state(ctx, ss, &v, pods).await?;
    observe::pods::record(ctx, ss, &pods);
    // 4b. upgrade (raft): observe raft, plan the next step, carry it out
    let upgrade =
        apply::upgrade::run(ctx, ss, &v, &init, &pods, applied.update_revision.clone()).await?;
    // 5. status
    let facts = Facts {
        v: &v,
        pods: &pods,
        init,
        // Under OnDelete (raft) the StatefulSet never finishes a rollout by itself: the
        // upgrade step says whether one is under way.
        rolling: applied.rolling && matches!(v.storage, validate::Storage::File),
        apply_error: applied.error.as_ref().map(ToString::to_string),
        upgrade: upgrade.as_ref().map(|u| UpgradeFacts {
            plan: &u.plan,
            revision_known: u.revision_known,
            act_error: u.act_error.clone(),
        }),
    };
    let new = report::status(ctx, &api, ss, &facts).await?;
    match applied.error {
        Some(e) => Err(e),
        None => Ok(Action::requeue(status::requeue_after(&new))),
    }
}

#[cfg(test)]
mod tests;
