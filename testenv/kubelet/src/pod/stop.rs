//! Stopping a pod: SIGTERM/SIGKILL of its processes, local teardown, and the final API
//! delete with a UID precondition (process and API I/O).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};
use tokio::time::Instant;

use super::{Worker, sandbox};

impl Worker {
    /// SIGTERM every container, SIGKILL after `grace`, and wait until all are gone.
    pub(super) async fn stop_all(&mut self, grace: Duration) {
        for c in &mut self.containers {
            c.request_stop(grace);
        }
        let deadline = Instant::now() + grace + Duration::from_secs(5);
        loop {
            for i in 0..self.containers.len() {
                let log = self.log_path(self.containers[i].name());
                if let Some(t) = self.containers[i].poll_exit(&log) {
                    self.containers[i].finish(t, "Never", Instant::now());
                }
            }
            if self.containers.iter().all(|c| c.running.is_none()) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.persist();
    }

    pub(super) async fn teardown(&mut self) {
        let rec = self.record.take().or_else(|| self.adopted.take());
        if let Some(rec) = rec {
            sandbox::teardown(&self.ctx, &rec).await;
        }
    }

    pub(super) async fn delete_from_api(&self) {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&self.name(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "deleting pod"),
        }
    }
}
