//! Operator layer: `reconcile`, the only entry point, runs one pipeline per SecretServer:
//! validate -> build -> apply -> observe (and auto-init) -> status. API and network I/O; each
//! step lives in its own module and the pure ones are unit-tested there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use super::apply::{AppliedCache, ApplyError, FIELD_MANAGER, apply, apply_known, prune};
use super::autoinit::{self, Decision};
use super::build::{self, Children, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use super::crd::{SecretServer, SecretServerStatus};
use super::initsecret::kms::DataKeys;
use super::metrics::OperatorMetrics;
use super::observe::{self, Answer, PodObservation};
use super::status::{self, Facts, InitState};
use super::validate::{self, Validated};

/// Requeue interval while anything is not Ready.
pub const REQUEUE_NOT_READY: Duration = Duration::from_secs(15);
/// Requeue interval of a Ready server (KMS health can change without any pod changing).
pub const REQUEUE_READY: Duration = Duration::from_secs(60);
/// Requeue interval while a pod is starting or awaiting auto-init: a server that starts
/// listening, or that is waiting to be initialized, produces no Kubernetes event.
pub const REQUEUE_STARTING: Duration = Duration::from_secs(2);

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

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

fn key(ss: &SecretServer) -> String {
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

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

async fn publish(ctx: &Context, ss: &SecretServer, warning: bool, reason: &str, note: String) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ss.object_ref(&())).await {
        tracing::debug!(error = %e, "publishing an event failed");
    }
}

async fn run(ss: &SecretServer, ctx: &Context) -> Result<Action, Error> {
    let ns = ss.namespace().unwrap_or_default();
    let ss_api: Api<SecretServer> = Api::namespaced(ctx.client.clone(), &ns);
    if ss.meta().deletion_timestamp.is_some() {
        // Owned children go with the garbage collector; cluster-scoped ones need us.
        if has_finalizer(ss) {
            delete_cluster_objects(ctx, &ns, &ss.name_any()).await?;
            set_finalizer(&ss_api, ss, false).await?;
        }
        return Ok(Action::await_change());
    }
    // 1. validate
    let v = match validate::validate(ss, ctx.default_image.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            let new = invalid_status(ss, &e.to_string(), Timestamp::now());
            if ss.status.as_ref() != Some(&new) {
                write_status(&ss_api, ss, &new).await?;
                publish(ctx, ss, true, "InvalidSpec", e.to_string()).await;
            }
            return Ok(Action::await_change());
        }
    };
    // 2. build, 3. apply
    sync_cluster_objects(ctx, &ss_api, ss, &v).await?;
    let children = build::children(&v);
    let (sts, apply_error) = match apply_children(ctx, &v, &children).await {
        Ok(sts) => (sts, None),
        Err(e) => (None, Some(e)),
    };
    let rolling = sts.as_ref().is_some_and(rolling_out);
    // 4. observe (and auto-init)
    let mut pods = observe_all(ctx, &v).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let init = match init::read_init_secret(&secrets, &v, ctx.secrets_role.as_deref()).await? {
        // Without the Secret an initialized server is still reported as such (its Secret is
        // simply not visible); the refusal matters only where it blocks auto-init.
        Err(forbidden) => match autoinit::decide(&v, &pods, autoinit::SecretState::Absent) {
            Decision::Initialize { .. } | Decision::Report(InitState::Pending) => forbidden,
            Decision::Report(other) => other,
        },
        Ok(secret) => {
            let secret_state = autoinit::secret_state(secret.as_ref(), &v.owner.uid);
            match autoinit::decide(&v, &pods, secret_state.clone()) {
                Decision::Report(s) => s,
                Decision::Initialize { pod, ip } => {
                    let state =
                        init::auto_initialize(ctx, ss, &v, &secrets, secret_state, &pod, &ip)
                            .await?;
                    if matches!(state, InitState::Initialized { .. }) {
                        // See the server as it is now (an auto-unseal server unseals on init).
                        pods = observe_all(ctx, &v).await?;
                    }
                    state
                }
            }
        }
    };
    record_pods(ctx, ss, &pods);
    // 5. status
    let facts = Facts {
        v: &v,
        pods: &pods,
        init,
        rolling,
        apply_error: apply_error.as_ref().map(ToString::to_string),
    };
    let new = status::compute(&facts, ss.status.as_ref(), Timestamp::now());
    if ss.status.as_ref() != Some(&new) {
        write_status(&ss_api, ss, &new).await?;
        for t in status::transitions(ss.status.as_ref(), &new) {
            publish(ctx, ss, t.warning, &t.reason, t.note).await;
        }
    }
    if let Some(e) = apply_error {
        return Err(e);
    }
    Ok(Action::requeue(requeue_after(&new)))
}

/// Applies every child; returns the StatefulSet as it was before (for the rollout state).
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

/// The auth-delegator binding exists exactly while `spec.auth.kubernetes.enabled`, and the
/// finalizer exactly while the binding may exist.
async fn sync_cluster_objects(
    ctx: &Context,
    api: &Api<SecretServer>,
    ss: &SecretServer,
    v: &Validated,
) -> Result<(), Error> {
    if v.kubernetes_auth {
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

/// When to look again: soon while a pod starts or awaits auto-init (no event would tell),
/// every 15 s while anything else is not Ready, every minute when Ready.
fn requeue_after(status: &SecretServerStatus) -> Duration {
    let cond = |t: &str| status.conditions.iter().find(|c| c.type_ == t);
    if cond(status::READY).is_some_and(|c| c.status == "True") {
        return REQUEUE_READY;
    }
    let starting = cond(status::PROGRESSING).is_some_and(|c| {
        c.status == "True" && matches!(c.reason.as_str(), "PodsStarting" | "Initializing")
    }) || cond(status::READY)
        .is_some_and(|c| c.reason == "PodUnreachable" || c.reason == "PodsNotReady");
    if starting {
        REQUEUE_STARTING
    } else {
        REQUEUE_NOT_READY
    }
}

async fn apply_children(
    ctx: &Context,
    v: &Validated,
    c: &Children,
) -> Result<Option<StatefulSet>, Error> {
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
    writes += u32::from(apply_known(&sts_api, &sts, cache, Some(existing_rv)).await?);
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
        return Ok(existing);
    }
    tracing::debug!(namespace = ns, name = %v.name, writes, "applied children");
    // A renamed or user-supplied ServiceAccount leaves ours behind: remove it.
    let selector = format!(
        "{LABEL_INSTANCE}={},{LABEL_MANAGED_BY}={MANAGED_BY}",
        v.name
    );
    let keep: Vec<String> = if v.manage_service_account {
        vec![v.service_account.clone()]
    } else {
        Vec::new()
    };
    match prune(&accounts, &selector, &keep).await {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(namespace = ns, removed = ?removed, "removed ServiceAccounts no longer used");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(namespace = ns, error = %e, "pruning old ServiceAccounts failed"),
    }
    Ok(existing)
}

/// A StatefulSet's volumeClaimTemplates are immutable: keep the existing ones, so that a grown
/// `storage.size` does not make every apply fail ([`resize_claims`] grows the claims instead).
fn keep_claim_templates(desired: &StatefulSet, existing: Option<&StatefulSet>) -> StatefulSet {
    let mut sts = desired.clone();
    if let (Some(spec), Some(old)) = (sts.spec.as_mut(), existing.and_then(|e| e.spec.as_ref())) {
        spec.volume_claim_templates = old.volume_claim_templates.clone();
    }
    sts
}

/// Whether the claims may be smaller than `storage.size`: the StatefulSet's (immutable) claim
/// template asks for less. Saves reading every claim on every reconcile.
fn claims_may_be_small(v: &Validated, existing: Option<&StatefulSet>) -> bool {
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
fn rolling_out(sts: &StatefulSet) -> bool {
    sts.status.as_ref().is_some_and(|s| {
        s.update_revision.is_some() && s.current_revision != s.update_revision
            || s.observed_generation < sts.metadata.generation
    })
}

/// Lists the server's pods and asks each.
async fn observe_all(ctx: &Context, v: &Validated) -> Result<Vec<PodObservation>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let selector = build::selector_labels(v)
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!("listing pods of {}", v.name)))?
        .items;
    list.sort_by_key(|p| p.name_any());
    let views = list.iter().map(observe::pod_view).collect();
    let http = pod_http(ctx, v).await?;
    Ok(observe::observe(views, v.scheme(), &http).await)
}

/// The HTTP client for the server's pods: the shared one, or for TLS listeners one that trusts
/// the CA in the listener's Secret (`ca.crt`, else the certificate itself).
async fn pod_http(ctx: &Context, v: &Validated) -> Result<reqwest::Client, Error> {
    let Some(secret_name) = &v.tls_secret else {
        return Ok(ctx.http.clone());
    };
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &v.namespace)
        .get(secret_name)
        .await
        .map_err(kube_err(format!(
            "reading listener TLS Secret {secret_name}"
        )))?;
    let data = secret.data.unwrap_or_default();
    let pem = data
        .get("ca.crt")
        .or_else(|| data.get("tls.crt"))
        .ok_or_else(|| Error::TlsSecret(secret_name.clone()))?;
    observe::http_client(Some(&pem.0)).map_err(Error::Http)
}

fn record_pods(ctx: &Context, ss: &SecretServer, pods: &[PodObservation]) {
    let mut counts = [0i64; 4];
    for p in pods {
        let i = match &p.answer {
            Answer::Answered { seal, .. } if !seal.initialized => 2,
            Answer::Answered { seal, .. } if seal.sealed => 1,
            Answer::Answered { .. } => 0,
            _ => 3,
        };
        counts[i] += 1;
    }
    ctx.metrics.set_pods(&key(ss), Some(counts));
}

/// Status for a spec the operator cannot act on.
fn invalid_status(ss: &SecretServer, message: &str, now: Timestamp) -> SecretServerStatus {
    let prev = ss.status.clone().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_second(now.as_second()).unwrap_or(now),
    );
    let mut conditions = prev.conditions.clone();
    for (type_, status) in [(status::READY, "False"), (status::DEGRADED, "True")] {
        let keep = conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone());
        conditions.retain(|c| c.type_ != type_);
        conditions.push(Condition {
            last_transition_time: keep.unwrap_or_else(|| now.clone()),
            message: message.to_owned(),
            observed_generation: ss.meta().generation,
            reason: "InvalidSpec".into(),
            status: status.into(),
            type_: type_.into(),
        });
    }
    SecretServerStatus {
        observed_generation: ss.meta().generation,
        reason: Some("InvalidSpec".into()),
        conditions,
        ..prev
    }
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

mod init;

#[cfg(test)]
mod tests;
