//! One container of a pod: its process, restarts with backoff, probes' state (process I/O).

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::time::Instant;

use crate::probe::ProbeState;
use crate::proc;
use crate::state::{ContainerRecord, ProcRecord};

/// Initial restart back-off, its cap, and how long a run resets it.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Where a container comes from in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    Regular,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub pid: i32,
}

/// A live process.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    pub start_ticks: u64,
    pub started_at: Timestamp,
    pub since: Instant,
    /// Present for processes this kubelet started; adopted ones are polled through /proc.
    pub child: Option<Child>,
    /// SIGKILL deadline after a SIGTERM this kubelet sent.
    pub kill_at: Option<Instant>,
    /// Length of the log file when this run started (its output follows).
    pub log_offset: u64,
}

/// Runtime state of one container.
#[derive(Debug)]
pub struct ContainerRt {
    pub spec: Container,
    pub kind: Kind,
    pub image_id: String,
    pub running: Option<Running>,
    pub restart_count: i32,
    pub started_before: bool,
    /// Previous run, shown as `lastState`.
    pub last_state: Option<Terminated>,
    /// Final state: the container will not run again.
    pub terminated: Option<Terminated>,
    /// `(reason, message)` while not running.
    pub waiting: Option<(String, String)>,
    pub next_start: Option<Instant>,
    pub backoff: Duration,
    /// An init container that exited 0.
    pub completed: bool,
    pub readiness: ProbeState,
    pub liveness: ProbeState,
    pub startup: ProbeState,
    /// Environment of the current run (for exec probes).
    pub env: Vec<(String, String)>,
}

impl ContainerRt {
    pub fn new(spec: Container, kind: Kind) -> Self {
        Self {
            readiness: ProbeState::new(spec.readiness_probe.clone()),
            liveness: ProbeState::new(spec.liveness_probe.clone()),
            startup: ProbeState::new(spec.startup_probe.clone()),
            spec,
            kind,
            image_id: String::new(),
            running: None,
            restart_count: 0,
            started_before: false,
            last_state: None,
            terminated: None,
            waiting: None,
            next_start: None,
            backoff: Duration::ZERO,
            completed: false,
            env: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Startup probe passed (or there is none) and the process runs.
    pub fn started(&self) -> bool {
        self.running.is_some() && (self.startup.spec.is_none() || self.startup.result == Some(true))
    }

    /// Ready for traffic (regular containers) or started (sidecars).
    pub fn ready(&self) -> bool {
        self.started() && (self.readiness.spec.is_none() || self.readiness.result == Some(true))
    }

    /// Whether a start may be attempted now.
    pub fn may_start(&self, now: Instant) -> bool {
        self.running.is_none()
            && self.terminated.is_none()
            && !self.completed
            && self.next_start.is_none_or(|t| t <= now)
    }

    /// Takes over a process started earlier (by this or a previous kubelet).
    pub fn adopt(&mut self, rec: &ContainerRecord, pod_policy: &str, now: Instant) {
        self.restart_count = rec.restart_count;
        self.completed = rec.completed;
        self.started_before = rec.started || rec.proc.is_some() || rec.completed;
        self.backoff = Duration::from_secs(rec.backoff_secs).min(BACKOFF_MAX);
        if let Some(code) = rec.final_exit {
            let mut t = unknown_exit(0, None);
            (t.exit_code, t.message) = (code, None);
            t.reason = if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            };
            self.terminated = Some(t);
            return;
        }
        let Some(p) = &rec.proc else {
            if !self.backoff.is_zero() && !self.completed {
                self.next_start = Some(now + self.backoff);
                let msg = format!("back-off restarting failed container={}", self.spec.name);
                self.waiting = Some(("CrashLoopBackOff".into(), msg));
            }
            return;
        };
        let started_at = p.started_at.parse().unwrap_or_else(|_| Timestamp::now());
        if proc::is_alive(p.pid, p.start_ticks) {
            self.running = Some(Running {
                pid: p.pid,
                start_ticks: p.start_ticks,
                started_at,
                since: now,
                child: None,
                kill_at: None,
                log_offset: 0,
            });
            self.arm_probes(now);
        } else if !rec.completed {
            self.finish(unknown_exit(p.pid, Some(started_at)), pod_policy, now);
        }
    }

    /// The record to persist.
    pub fn record(&self) -> ContainerRecord {
        ContainerRecord {
            restart_count: self.restart_count,
            completed: self.completed,
            started: self.started_before,
            backoff_secs: self.backoff.as_secs(),
            final_exit: self.terminated.as_ref().map(|t| t.exit_code),
            proc: self.running.as_ref().map(|r| ProcRecord {
                pid: r.pid,
                start_ticks: r.start_ticks,
                started_at: r.started_at.to_string(),
            }),
        }
    }

    fn arm_probes(&mut self, now: Instant) {
        self.readiness.reset(now);
        self.liveness.reset(now);
        self.startup.reset(now);
    }

    /// Registers a freshly spawned process.
    pub fn started_process(&mut self, s: proc::Spawned, env: Vec<(String, String)>, now: Instant) {
        if self.started_before {
            self.restart_count += 1;
        }
        self.started_before = true;
        self.waiting = None;
        self.next_start = None;
        self.env = env;
        self.running = Some(Running {
            pid: s.pid,
            start_ticks: s.start_ticks,
            started_at: Timestamp::now(),
            since: now,
            child: Some(s.child),
            kill_at: None,
            log_offset: s.log_offset,
        });
        self.arm_probes(now);
    }

    /// A start attempt failed before a process existed; retried later without a restart count.
    pub fn start_failed(&mut self, reason: &str, message: String, now: Instant) {
        self.waiting = Some((reason.into(), message));
        self.next_start = Some(now + BACKOFF_START);
    }

    /// Checks whether the process ended; returns the termination when it did.
    pub fn poll_exit(&mut self, log: &Path) -> Option<Terminated> {
        let r = self.running.as_mut()?;
        if let Some(at) = r.kill_at
            && Instant::now() >= at
        {
            proc::signal_group(r.pid, Signal::SIGKILL);
        }
        let status = match r.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status),
                Ok(None) => return None,
                Err(_) => None,
            },
            None if proc::is_alive(r.pid, r.start_ticks) => return None,
            None => None,
        };
        let mut t = match status {
            None => unknown_exit(r.pid, Some(r.started_at)),
            Some(st) => {
                use std::os::unix::process::ExitStatusExt;
                let (code, signal) = match (st.code(), st.signal()) {
                    (Some(c), _) => (c, None),
                    (None, Some(s)) => (128 + s, Some(s)),
                    (None, None) => (255, None),
                };
                Terminated {
                    exit_code: code,
                    signal,
                    reason: if code == 0 {
                        "Completed".into()
                    } else {
                        "Error".into()
                    },
                    message: None,
                    started_at: Some(r.started_at),
                    finished_at: Timestamp::now(),
                    pid: r.pid,
                }
            }
        };
        if t.exit_code != 0 {
            t.message = log_tail(log, r.log_offset);
        }
        Some(t)
    }

    /// Applies a termination: restart (with backoff) per policy, or final state.
    pub fn finish(&mut self, t: Terminated, pod_policy: &str, now: Instant) {
        let ran = self
            .running
            .take()
            .map(|r| now.saturating_duration_since(r.since));
        self.readiness.disarm();
        self.liveness.disarm();
        self.startup.disarm();
        let ok = t.exit_code == 0;
        let restart = match self.kind {
            Kind::Sidecar => true,
            Kind::Init => !ok && pod_policy != "Never",
            Kind::Regular => pod_policy == "Always" || (pod_policy == "OnFailure" && !ok),
        };
        if self.kind == Kind::Init && ok {
            self.completed = true;
        }
        if !restart {
            self.last_state = None;
            self.terminated = Some(t);
            return;
        }
        if ran.is_some_and(|d| d >= BACKOFF_RESET) {
            self.backoff = Duration::ZERO;
        }
        let delay = self.backoff;
        self.next_start = Some(now + delay);
        self.backoff = if delay.is_zero() {
            BACKOFF_START
        } else {
            (delay * 2).min(BACKOFF_MAX)
        };
        self.waiting = (!delay.is_zero()).then(|| {
            let msg = format!(
                "back-off {}s restarting failed container={}",
                delay.as_secs(),
                self.spec.name
            );
            ("CrashLoopBackOff".to_string(), msg)
        });
        self.last_state = Some(t);
    }

    /// SIGTERMs the process group now and SIGKILLs it after `grace` (checked in `poll_exit`).
    pub fn request_stop(&mut self, grace: Duration) {
        if let Some(r) = self.running.as_mut()
            && r.kill_at.is_none()
        {
            proc::signal_group(r.pid, Signal::SIGTERM);
            r.kill_at = Some(Instant::now() + grace);
        }
    }
}

/// The kubelet's answer when a container's exit status is lost.
fn unknown_exit(pid: i32, started_at: Option<Timestamp>) -> Terminated {
    Terminated {
        exit_code: 137,
        signal: None,
        reason: "ContainerStatusUnknown".into(),
        message: Some("The container could not be located when the pod was terminated".into()),
        started_at,
        finished_at: Timestamp::now(),
        pid,
    }
}

/// Last lines this run wrote to the container log (FallbackToLogsOnError), at most 1 KiB.
fn log_tail(log: &Path, offset: u64) -> Option<String> {
    let data = std::fs::read(log).ok()?;
    let run_start = usize::try_from(offset).unwrap_or(0).min(data.len());
    let start = data.len().saturating_sub(1024).max(run_start);
    let text = String::from_utf8_lossy(&data[start..]);
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    Some(tail.join("\n")).filter(|s| !s.trim().is_empty())
}

/// The containers of a pod in start order: init containers, then regular ones.
pub fn from_pod(pod: &Pod) -> Vec<ContainerRt> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let inits = spec.init_containers.iter().flatten().map(|c| {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            Kind::Sidecar
        } else {
            Kind::Init
        };
        ContainerRt::new(c.clone(), kind)
    });
    inits
        .chain(
            spec.containers
                .iter()
                .map(|c| ContainerRt::new(c.clone(), Kind::Regular)),
        )
        .collect()
}

#[cfg(test)]
#[path = "container_tests.rs"]
mod tests;
