//! The per-pod worker: one task per pod that sets up the sandbox and volumes, runs and
//! restarts containers, probes them, reports status and handles deletion (API/process I/O).

pub mod container;
mod probes;
mod report;
pub mod sandbox;
mod start;
pub mod status;
mod stop;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::env::PodFacts;
use crate::state::PodRecord;
use crate::token::Tokens;
use container::ContainerRt;
use status::Conditions;

/// How often a worker looks at its processes.
const TICK: Duration = Duration::from_millis(500);
/// Upper bound for termination grace periods.
const MAX_GRACE: Duration = Duration::from_secs(60);
/// Grace period cap when the kubelet itself stops (`testenv down` waits 30 s for it).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Periodic re-sync of configMap/secret/downwardAPI volumes.
const VOLUME_RESYNC: Duration = Duration::from_secs(60);

/// What the manager tells a worker.
#[derive(Debug)]
pub enum Msg {
    /// A newer version of the pod object.
    Update(Box<Pod>),
    /// The pod object is gone from the API: stop and clean up.
    Gone,
    /// The kubelet stops: stop the pod and clean up, leave the API object.
    Shutdown,
}

/// One pod's worker.
pub struct Worker {
    ctx: Arc<Ctx>,
    pod: Pod,
    uid: String,
    rx: UnboundedReceiver<Msg>,
    record: Option<PodRecord>,
    adopted: Option<PodRecord>,
    containers: Vec<ContainerRt>,
    tokens: Tokens,
    volumes_ready: bool,
    next_volume_sync: Instant,
    last_warning: Option<String>,
    next_sandbox_try: Instant,
    start_time: Timestamp,
    conditions: Conditions,
    last_patch: Option<serde_json::Value>,
    /// After a failed status patch, the next attempt waits until then.
    patch_retry_at: Option<Instant>,
    /// Succeeded/Failed: nothing starts any more.
    terminal: bool,
}

impl Worker {
    pub fn new(
        ctx: Arc<Ctx>,
        pod: Pod,
        rx: UnboundedReceiver<Msg>,
        adopted: Option<PodRecord>,
    ) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let start_time = status
            .start_time
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0);
        let conditions = Conditions::seed(status.conditions.as_deref().unwrap_or_default());
        // A pod that already finished before this kubelet started is left alone.
        let terminal =
            adopted.is_none() && matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let mut containers = container::from_pod(&pod);
        if adopted.is_none() {
            // A pod this kubelet ran before (its state was cleaned up at shutdown): new
            // processes count as restarts of the ones the API still shows.
            let reported = status.container_statuses.iter().flatten();
            let reported: Vec<_> = reported
                .chain(status.init_container_statuses.iter().flatten())
                .collect();
            for c in &mut containers {
                if let Some(s) = reported
                    .iter()
                    .find(|s| s.name == c.spec.name && s.container_id.is_some())
                {
                    c.restart_count = s.restart_count;
                    c.started_before = true;
                }
            }
        }
        let now = Instant::now();
        Self {
            ctx,
            pod,
            uid,
            rx,
            record: None,
            adopted,
            containers,
            tokens: Tokens::default(),
            volumes_ready: false,
            next_volume_sync: now,
            last_warning: None,
            next_sandbox_try: now,
            start_time,
            conditions,
            last_patch: None,
            patch_retry_at: None,
            terminal,
        }
    }

    fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    fn namespace(&self) -> String {
        self.pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    fn policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn pod_dir(&self) -> PathBuf {
        self.ctx.settings.pod_dir(&self.uid)
    }

    fn log_path(&self, container: &str) -> PathBuf {
        self.pod_dir().join("logs").join(format!("{container}.log"))
    }

    fn facts(&self) -> PodFacts {
        PodFacts {
            pod_ip: self.record.as_ref().map(|r| r.ip),
            host_ip: self.ctx.settings.node_ip,
            node: self.ctx.settings.node,
        }
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(MAX_GRACE)
    }

    /// Runs until the pod is deleted, gone, or the kubelet stops.
    pub async fn run(mut self) {
        let pod_name = format!("{}/{}", self.namespace(), self.name());
        tracing::info!(pod = %pod_name, uid = %self.uid, adopted = self.adopted.is_some(), "pod worker started");
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.stop_all(self.grace()).await;
                self.teardown().await;
                self.delete_from_api().await;
                tracing::info!(pod = %pod_name, "pod terminated and deleted");
                return;
            }
            self.tick().await;
            let msg = match tokio::time::timeout(TICK, self.rx.recv()).await {
                Ok(Some(m)) => Some(m),
                Ok(None) => Some(Msg::Shutdown),
                Err(_) => None,
            };
            match msg {
                Some(Msg::Update(p)) => self.pod = *p,
                Some(Msg::Gone) => {
                    self.stop_all(self.grace().min(Duration::from_secs(10)))
                        .await;
                    self.teardown().await;
                    tracing::info!(pod = %pod_name, "pod gone from the API; cleaned up");
                    return;
                }
                Some(Msg::Shutdown) => {
                    self.stop_all(self.grace().min(SHUTDOWN_GRACE)).await;
                    self.teardown().await;
                    tracing::info!(pod = %pod_name, "pod stopped for kubelet shutdown");
                    return;
                }
                None => {}
            }
        }
    }

    async fn tick(&mut self) {
        if self.terminal && self.record.is_none() {
            return;
        }
        let now = Instant::now();
        if self.record.is_none() {
            if now < self.next_sandbox_try {
                return;
            }
            match sandbox::setup(&self.ctx, &self.pod, self.adopted.clone()).await {
                Ok(rec) => self.adopt_containers(rec, now),
                Err(e) => {
                    self.warn(
                        "FailedCreatePodSandBox",
                        format!("creating pod sandbox: {e}"),
                    )
                    .await;
                    self.next_sandbox_try = now + Duration::from_secs(5);
                    self.push_status().await;
                    return;
                }
            }
        }
        let token_due = self.tokens.next_refresh().is_some_and(|t| t <= now);
        if now >= self.next_volume_sync || token_due {
            self.sync_volumes().await;
        }
        let policy = self.policy();
        for i in 0..self.containers.len() {
            let log = self.log_path(self.containers[i].name());
            if let Some(t) = self.containers[i].poll_exit(&log) {
                let c = &mut self.containers[i];
                tracing::info!(pod = %self.pod.metadata.name.as_deref().unwrap_or_default(), container = %c.spec.name,
                    exit_code = t.exit_code, reason = %t.reason, "container exited");
                c.finish(t, &policy, now);
            }
        }
        if !self.terminal {
            if self.volumes_ready {
                self.start_due(now).await;
            }
            self.run_probes().await;
        }
        let phase = status::phase(&self.containers, true);
        if matches!(phase, "Succeeded" | "Failed") && !self.terminal {
            self.terminal = true;
            let grace = self.grace();
            self.containers
                .iter_mut()
                .for_each(|c| c.request_stop(grace));
        }
        self.push_status().await;
        self.persist();
    }

    fn adopt_containers(&mut self, rec: PodRecord, now: Instant) {
        let policy = self.policy();
        if self.adopted.take().is_some() {
            let status = self.pod.status.clone().unwrap_or_default();
            let reported: Vec<_> = status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
                .collect();
            for c in &mut self.containers {
                if let Some(cr) = rec.containers.get(&c.spec.name) {
                    c.adopt(cr, &policy, now);
                }
                // Keep what the API already shows, so adoption does not flap readiness.
                if let Some(s) = reported.iter().find(|s| s.name == c.spec.name)
                    && c.running.is_some()
                {
                    if s.started == Some(true) && c.startup.spec.is_some() {
                        c.startup.result = Some(true);
                    }
                    if s.ready {
                        c.readiness.result = Some(true);
                    }
                }
            }
        }
        self.record = Some(rec);
        self.persist();
    }

    async fn sync_volumes(&mut self) {
        let now = Instant::now();
        let sources = match crate::sources::fetch(&self.ctx.client, &self.pod).await {
            Ok(s) => s,
            Err(e) => {
                self.warn("FailedMount", format!("fetching configmaps/secrets: {e}"))
                    .await;
                self.next_volume_sync = now + Duration::from_secs(5);
                return;
            }
        };
        let facts = self.facts();
        let res = crate::volumes::sync(
            &self.ctx.client,
            &self.ctx.settings,
            &self.pod,
            &sources,
            &facts,
            &mut self.tokens,
        )
        .await;
        match res {
            Ok(tmpfs) => {
                if let Some(r) = self.record.as_mut() {
                    r.tmpfs = tmpfs;
                }
                self.volumes_ready = true;
                self.next_volume_sync = now + VOLUME_RESYNC;
            }
            Err(e) => {
                self.warn("FailedMount", format!("MountVolume.SetUp failed: {e}"))
                    .await;
                self.next_volume_sync = now + Duration::from_secs(5);
            }
        }
    }

    /// Emits a Warning event unless the same message was the last one.
    async fn warn(&mut self, reason: &str, note: String) {
        if self.last_warning.as_deref() == Some(note.as_str()) {
            return;
        }
        tracing::warn!(pod = %self.name(), reason, "{note}");
        self.ctx.event(&self.pod, true, reason, note.clone()).await;
        self.last_warning = Some(note);
    }

    fn persist(&mut self) {
        let dir = self.pod_dir();
        let Some(rec) = self.record.as_mut() else {
            return;
        };
        let containers = self
            .containers
            .iter()
            .map(|c| (c.spec.name.clone(), c.record()))
            .collect();
        if rec.containers != containers || !dir.join("record.json").exists() {
            rec.containers = containers;
            if let Err(e) = rec.save(&dir) {
                tracing::warn!(error = %e, "saving pod record");
            }
        }
    }
}
