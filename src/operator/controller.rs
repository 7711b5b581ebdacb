//! Operator layer: the controller process. Watches SecretServers, the objects they own and
//! their pods; runs `reconcile`; serves `/healthz`, `/readyz` and `/metrics`; optionally holds
//! a Lease so that only one of several replicas reconciles. API and network I/O.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::apply::{AppliedCache, FIELD_MANAGER};
use super::build::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use super::crd::SecretServer;
use super::metrics::OperatorMetrics;
use super::observe;
use super::reconcile::{Context, error_policy, reconcile};

/// Settings of `sealkeep operator`.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Watch these namespaces; empty watches all.
    pub namespaces: Vec<String>,
    pub metrics_addr: SocketAddr,
    pub default_image: Option<String>,
    /// Hold this Lease (in `lease_namespace`) before reconciling.
    pub leader_elect: bool,
    pub lease_name: String,
    pub lease_namespace: Option<String>,
    /// Identity in the Lease and in Events (the pod name).
    pub identity: String,
    /// The ClusterRole a namespace binds to let the operator keep Secrets there.
    pub secrets_role: Option<String>,
    /// The operator's ServiceAccount and projected token file, for its Kubernetes-auth role on
    /// raft servers (`operator_auth`); `None` outside the chart.
    pub account: Option<crate::operator::operator_auth::Identity>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot build a Kubernetes client: {0}; run in a pod with a ServiceAccount, or set KUBECONFIG"
    )]
    Client(#[source] kube::Error),
    #[error(
        "the SecretServer CRD is not usable: {0}; install it with `sealkeep crd | kubectl apply -f -` (or the Helm chart) and check the operator's RBAC"
    )]
    Crd(#[source] kube::Error),
    #[error("cannot listen on --metrics-addr {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election failed: {0}")]
    Lease(String),
    #[error("lost the leader Lease {0}; exiting so that another replica takes over")]
    LostLease(String),
    #[error("cannot build the HTTP client for server pods: {0}")]
    Http(#[source] reqwest::Error),
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<OperatorMetrics>,
    ready: Arc<AtomicBool>,
}

fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move {
                match s.metrics.encode() {
                    Ok(body) => (
                        StatusCode::OK,
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .with_state(state)
}

/// A client from the environment (in-cluster or KUBECONFIG) that counts every API request.
async fn counted_client(metrics: Arc<OperatorMetrics>) -> Result<Client, RunError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| RunError::Client(kube::Error::InferConfig(e)))?;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(RunError::Client)?;
    let count =
        tower::util::MapRequestLayer::new(move |req: axum::http::Request<kube::client::Body>| {
            metrics.api_request(req.method());
            req
        });
    Ok(builder.with_layer(&count).build())
}

/// Runs the operator until `shutdown` resolves.
pub async fn run(
    cfg: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = OperatorMetrics::new();
    let client = counted_client(metrics.clone()).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(cfg.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.metrics_addr,
            source,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, router(http_state))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    for ns in scopes(&cfg) {
        scoped::<SecretServer>(&client, ns)
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map_err(RunError::Crd)?;
    }
    ready.store(true, Ordering::Relaxed);

    let result = if cfg.leader_elect {
        lead_then_run(&cfg, client.clone(), metrics, stop_rx.clone()).await
    } else {
        run_controller(&cfg, client.clone(), metrics, stop_rx.clone()).await
    };
    let mut s = stop_rx;
    // Stop the HTTP server too when the controller ended on its own (lost lease).
    if result.is_err() {
        http.abort();
    } else {
        let _ = s.wait_for(|s| *s).await;
        let _ = http.await;
    }
    result
}

async fn lead_then_run(
    cfg: &OperatorConfig,
    client: Client,
    metrics: Arc<OperatorMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RunError> {
    let ns = cfg
        .lease_namespace
        .clone()
        .or_else(|| cfg.namespaces.first().cloned())
        .unwrap_or_else(|| "default".into());
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &cfg.lease_name)
        .with_namespace(&ns)
        .with_identity(&cfg.identity)
        .with_duration(15)
        .with_grace(5)
        .with_field_manager(FIELD_MANAGER)
        .build()
        .await
        .map_err(|e| RunError::Lease(e.to_string()))?;
    let (mut leader, task) = manager.watch().await;
    tracing::info!(lease = %format!("{ns}/{}", cfg.lease_name), identity = %cfg.identity, "waiting for the leader Lease");
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            r = leader.changed() => if r.is_err() { return Err(RunError::Lease("the lease task stopped".into())) },
            _ = stop.wait_for(|s| *s) => { drop(leader); let _ = task.await; return Ok(()) }
        }
    }
    tracing::info!(identity = %cfg.identity, "acquired the leader Lease");
    let lost = {
        let mut l = leader.clone();
        async move {
            let _ = l.wait_for(|held| !*held).await;
        }
    };
    let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::watch::channel(false);
    let lease_name = format!("{ns}/{}", cfg.lease_name);
    let mut outer_stop = stop.clone();
    let watcher_task = tokio::spawn(async move {
        tokio::select! {
            _ = lost => { let _ = ctl_stop_tx.send(true); true }
            _ = outer_stop.wait_for(|s| *s) => { let _ = ctl_stop_tx.send(true); false }
        }
    });
    let res = run_controller(cfg, client, metrics, ctl_stop_rx).await;
    let lost_lease = watcher_task.await.unwrap_or(false);
    // Release the Lease on a clean shutdown so a standby takes over at once.
    drop(leader);
    if let Ok(Ok(m)) = task.await {
        let _ = m.release().await;
    }
    res?;
    if lost_lease {
        return Err(RunError::LostLease(lease_name));
    }
    Ok(())
}

/// The watch scopes: each namespace of `--namespace`, or `None` (all namespaces).
fn scopes(cfg: &OperatorConfig) -> Vec<Option<&str>> {
    if cfg.namespaces.is_empty() {
        vec![None]
    } else {
        cfg.namespaces.iter().map(|n| Some(n.as_str())).collect()
    }
}

async fn run_controller(
    cfg: &OperatorConfig,
    client: Client,
    metrics: Arc<OperatorMetrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RunError> {
    let reporter = Reporter {
        controller: "sealkeep-operator".into(),
        instance: Some(cfg.identity.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        default_image: cfg.default_image.clone(),
        metrics: metrics.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        http: observe::http_client(None).map_err(RunError::Http)?,
        applied: AppliedCache::default(),
        failures: Default::default(),
        kms: Arc::new(super::initsecret::kms::AwsDataKeys),
        secrets_role: cfg.secrets_role.clone(),
        tokens: Default::default(),
        account: cfg.account.clone(),
    });
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    // One controller per watched namespace (the operator's Roles grant nothing elsewhere), all
    // sharing one context; `None` is one controller over all namespaces.
    let mut stores = Vec::new();
    let mut streams = Vec::new();
    for ns in scopes(cfg) {
        let controller = Controller::new(
            scoped::<SecretServer>(&client, ns),
            watcher::Config::default().any_semantic(),
        );
        stores.push(controller.store());
        let mut stop = stop.clone();
        let stream = controller
            .owns(scoped::<StatefulSet>(&client, ns), owned.clone())
            .owns(scoped::<Service>(&client, ns), owned.clone())
            .owns(scoped::<ConfigMap>(&client, ns), owned.clone())
            .owns(scoped::<ServiceAccount>(&client, ns), owned.clone())
            .owns(scoped::<PodDisruptionBudget>(&client, ns), owned.clone())
            .watches(scoped::<Pod>(&client, ns), owned.clone(), |pod: Pod| {
                let ns = pod.namespace()?;
                let name = pod.labels().get(LABEL_INSTANCE)?.clone();
                Some(ObjectRef::<SecretServer>::new(&name).within(&ns))
            })
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .run(reconcile, error_policy, ctx.clone());
        streams.push(stream.boxed());
    }
    tracing::info!(
        namespaces = %if cfg.namespaces.is_empty() { "<all>".to_owned() } else { cfg.namespaces.join(",") },
        "operator started"
    );
    let stores = Arc::new(stores);
    futures::stream::select_all(streams)
        .for_each(|res| {
            let stores = stores.clone();
            let metrics = metrics.clone();
            async move {
                match res {
                    Ok((obj, _)) => tracing::debug!(secretserver = %obj, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "reconcile loop"),
                }
                metrics.retain_servers(|k| {
                    k.split_once('/').is_some_and(|(ns, n)| {
                        let r = ObjectRef::<SecretServer>::new(n).within(ns);
                        stores.iter().any(|s| s.get(&r).is_some())
                    })
                });
            }
        })
        .await;
    tracing::info!("operator stopped");
    Ok(())
}

/// An `Api` for one namespace, or for all.
fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
