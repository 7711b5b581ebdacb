//! Pod conditions and the `pods/status` patch, sent only when it changed (API I/O).

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::Worker;
use super::container::{ContainerRt, Kind};
use super::status::{self, StatusInput};

impl Worker {
    pub(super) async fn push_status(&mut self) {
        let sandbox_ready = self.record.is_some();
        let phase = status::phase(&self.containers, sandbox_ready);
        let regular: Vec<&ContainerRt> = self
            .containers
            .iter()
            .filter(|c| c.kind == Kind::Regular)
            .collect();
        let all_ready = !regular.is_empty() && regular.iter().all(|c| c.ready());
        let init_done = status::init_done(&self.containers);
        let not_ready = match phase {
            "Succeeded" => "PodCompleted",
            "Failed" => "PodFailed",
            _ => "ContainersNotReady",
        };
        let c = &mut self.conditions;
        c.set("PodScheduled", true, None);
        c.set("PodReadyToStartContainers", sandbox_ready, None);
        c.set(
            "Initialized",
            init_done,
            (!init_done).then_some("ContainersNotInitialized"),
        );
        c.set(
            "ContainersReady",
            all_ready,
            (!all_ready).then_some(not_ready),
        );
        c.set("Ready", all_ready, (!all_ready).then_some(not_ready));
        let existing = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let doc = status::patch(&StatusInput {
            uid: &self.uid,
            containers: &self.containers,
            conditions: &self.conditions,
            foreign_conditions: &existing,
            phase,
            pod_ip: self.record.as_ref().map(|r| r.ip),
            host_ip: self.ctx.settings.node_ip,
            start_time: self.start_time,
            message: None,
        });
        let now = tokio::time::Instant::now();
        if self.last_patch.as_ref() == Some(&doc) || self.patch_retry_at.is_some_and(|t| t > now) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        match api
            .patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(&doc))
            .await
        {
            Ok(_) => {
                self.last_patch = Some(doc);
                self.patch_retry_at = None;
            }
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "patching pod status");
                self.patch_retry_at = Some(now + std::time::Duration::from_secs(2));
            }
        }
    }
}
