//! Starting containers in order: init containers one by one, sidecars, then the rest
//! (API reads for env sources, process spawning).

use std::path::Path;

use tokio::time::Instant;

use super::Worker;
use super::container::Kind;
use super::sandbox::host_entry;
use crate::env::{Sources, resolve_env};
use crate::expand::expand_with;
use crate::netns::netns_path;
use crate::podinit::InitSpec;
use crate::proc;
use crate::volumes::container_binds;

impl Worker {
    /// Starts every container whose turn it is and whose back-off has elapsed.
    pub(super) async fn start_due(&mut self, now: Instant) {
        let mut sources: Option<Sources> = None;
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            match c.kind {
                Kind::Init => {
                    if c.completed {
                        continue;
                    }
                    if c.may_start(now) {
                        self.start_one(i, &mut sources, now).await;
                    }
                    return;
                }
                Kind::Sidecar => {
                    if c.may_start(now) {
                        self.start_one(i, &mut sources, now).await;
                    }
                    if !self.containers[i].started() {
                        return;
                    }
                }
                Kind::Regular => {
                    if c.may_start(now) {
                        self.start_one(i, &mut sources, now).await;
                    }
                }
            }
        }
    }

    async fn start_one(&mut self, i: usize, sources: &mut Option<Sources>, now: Instant) {
        let name = self.containers[i].spec.name.clone();
        match self.launch(i, sources).await {
            Ok((spawned, env)) => {
                let pid = spawned.pid;
                self.containers[i].started_process(spawned, env, now);
                tracing::info!(pod = %self.name(), container = %name, pid, "container started");
                let note = format!("Started container {name}");
                self.ctx.event(&self.pod, false, "Started", note).await;
            }
            Err((reason, message)) => {
                self.containers[i].start_failed(reason, message.clone(), now);
                self.warn(
                    "Failed",
                    format!("Error: {reason}: container {name}: {message}"),
                )
                .await;
            }
        }
    }

    /// Resolves env, program and mounts, then spawns; `Err((reason, message))` otherwise.
    async fn launch(
        &mut self,
        i: usize,
        sources: &mut Option<Sources>,
    ) -> Result<(proc::Spawned, Vec<(String, String)>), (&'static str, String)> {
        let config_err = "CreateContainerConfigError";
        if sources.is_none() {
            let fetched = crate::sources::fetch(&self.ctx.client, &self.pod).await;
            *sources = Some(
                fetched.map_err(|e| (config_err, format!("fetching configmaps/secrets: {e}")))?,
            );
        }
        let sources = sources
            .as_ref()
            .ok_or((config_err, "no sources".to_string()))?;
        let rec = self
            .record
            .as_ref()
            .ok_or(("ContainerCreating", "no sandbox".to_string()))?;
        let settings = &self.ctx.settings;
        let entry = host_entry(&self.pod, rec.ip);
        let pod_dir = self.pod_dir();
        let home = pod_dir.join("home");
        let base = settings.base_env(&home.to_string_lossy(), &entry.hostname);
        let facts = self.facts();
        let spec = &self.containers[i].spec;
        let env = resolve_env(&self.pod, spec, sources, &facts, &base)
            .map_err(|e| (config_err, e.to_string()))?;
        let command: Vec<String> = spec
            .command
            .iter()
            .flatten()
            .map(|a| expand_with(a, &env))
            .collect();
        let args: Vec<String> = spec
            .args
            .iter()
            .flatten()
            .map(|a| expand_with(a, &env))
            .collect();
        let image = spec.image.clone().unwrap_or_default();
        let program = settings
            .images
            .resolve(&image, &command, &args, |p: &Path| p.is_file())
            .map_err(|e| (e.reason(), e.to_string()))?;
        let mounts = container_binds(settings, &self.pod, spec, &env, &pod_dir)
            .map_err(|e| ("CreateContainerError", e.to_string()))?;
        let init = InitSpec {
            netns: netns_path(&rec.netns),
            hostname: entry.hostname.clone(),
            workdir: spec
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .map(Into::into),
            mounts,
            program: program.path.clone(),
            args: program.args.iter().map(Into::into).collect(),
        };
        let log = self.log_path(&spec.name);
        let spawned = proc::spawn(&settings.self_exe, &init, &env, &log).map_err(|e| {
            (
                "RunContainerError",
                format!("starting {}: {e}", program.path.display()),
            )
        })?;
        self.containers[i].image_id = format!("pkubelet://{}", program.path.display());
        Ok((spawned, env))
    }
}
