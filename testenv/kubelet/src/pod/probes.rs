//! Running due probes of all containers concurrently and acting on the results (network and
//! process I/O through `crate::probe`).

use futures::future::join_all;
use tokio::time::Instant;

use super::Worker;
use crate::probe::{self, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Startup,
    Liveness,
    Readiness,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::Startup => "Startup",
            Which::Liveness => "Liveness",
            Which::Readiness => "Readiness",
        }
    }
}

impl Worker {
    pub(super) async fn run_probes(&mut self) {
        let now = Instant::now();
        let Some(pod_ip) = self.record.as_ref().map(|r| r.ip) else {
            return;
        };
        let mut jobs = Vec::new();
        for (i, c) in self.containers.iter().enumerate() {
            let Some(r) = &c.running else { continue };
            let started = c.startup.spec.is_none() || c.startup.result == Some(true);
            let candidates = if started {
                [
                    (Which::Liveness, &c.liveness),
                    (Which::Readiness, &c.readiness),
                ]
                .to_vec()
            } else {
                [(Which::Startup, &c.startup)].to_vec()
            };
            for (which, st) in candidates {
                if let (true, Some(spec)) = (st.due(now), st.spec.clone()) {
                    let target = Target {
                        pod_ip,
                        pid: r.pid,
                        env: c.env.clone(),
                    };
                    jobs.push((i, which, spec, target, st.timeout(), c.spec.clone()));
                }
            }
        }
        if jobs.is_empty() {
            return;
        }
        let http = self.ctx.http.clone();
        let results = join_all(
            jobs.into_iter()
                .map(|(i, which, spec, target, timeout, cspec)| {
                    let http = http.clone();
                    async move {
                        (
                            i,
                            which,
                            probe::run(&spec, &cspec, &target, &http, timeout).await,
                        )
                    }
                }),
        )
        .await;
        let done = Instant::now();
        let grace = self.grace();
        for (i, which, res) in results {
            let c = &mut self.containers[i];
            let state = match which {
                Which::Startup => &mut c.startup,
                Which::Liveness => &mut c.liveness,
                Which::Readiness => &mut c.readiness,
            };
            let changed = state.record(res.is_ok(), done);
            let failed = state.result == Some(false);
            let name = c.spec.name.clone();
            if let Err(msg) = &res {
                tracing::debug!(pod = %self.name(), container = %name, probe = which.label(), "{msg}");
            }
            if changed && failed {
                let msg = res.err().unwrap_or_default();
                let note = format!("{} probe failed: {msg}", which.label());
                self.ctx.event(&self.pod, true, "Unhealthy", note).await;
                if which != Which::Readiness {
                    let why = format!(
                        "Container {name} failed {} probe, will be restarted",
                        which.label().to_lowercase()
                    );
                    self.ctx.event(&self.pod, false, "Killing", why).await;
                    self.containers[i].request_stop(grace);
                }
            }
        }
    }
}
