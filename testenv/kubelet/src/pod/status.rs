//! Pod status from the containers' runtime state (pure), written as a JSON merge patch.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::container::{ContainerRt, Kind, Terminated};

/// The pod phase from its containers (`restartPolicy` is already applied in their states).
pub fn phase(containers: &[ContainerRt], sandbox_ready: bool) -> &'static str {
    let init_failed = containers
        .iter()
        .any(|c| c.kind == Kind::Init && c.terminated.is_some() && !c.completed);
    if init_failed {
        return "Failed";
    }
    let regular: Vec<&ContainerRt> = containers
        .iter()
        .filter(|c| c.kind == Kind::Regular)
        .collect();
    if !sandbox_ready || regular.is_empty() || !init_done(containers) {
        return "Pending";
    }
    let finals: Vec<&Terminated> = regular
        .iter()
        .filter_map(|c| c.terminated.as_ref())
        .collect();
    if finals.len() == regular.len() {
        return if finals.iter().all(|t| t.exit_code == 0) {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if regular
        .iter()
        .any(|c| c.running.is_some() || c.started_before)
    {
        "Running"
    } else {
        "Pending"
    }
}

/// All init containers completed (sidecars: started).
pub fn init_done(containers: &[ContainerRt]) -> bool {
    containers.iter().all(|c| match c.kind {
        Kind::Init => c.completed,
        Kind::Sidecar => c.started(),
        Kind::Regular => true,
    })
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(time),
        finished_at: Some(time(t.finished_at)),
        container_id: Some(format!("pkubelet://{}", t.pid)),
    }
}

/// One entry of `containerStatuses` / `initContainerStatuses`.
pub fn container_status(c: &ContainerRt, waiting_default: &str) -> ContainerStatus {
    let state = if let Some(r) = &c.running {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(r.started_at)),
            }),
            ..Default::default()
        }
    } else if let Some(t) = &c.terminated {
        ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        }
    } else {
        let (reason, message) = c
            .waiting
            .clone()
            .unwrap_or_else(|| (waiting_default.to_string(), String::new()));
        let message = Some(message).filter(|m| !m.is_empty());
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason),
                message,
            }),
            ..Default::default()
        }
    };
    let last_state = c.last_state.as_ref().map(|t| ContainerState {
        terminated: Some(terminated(t)),
        ..Default::default()
    });
    let container_id = c
        .running
        .as_ref()
        .map(|r| r.pid)
        .or(c.terminated.as_ref().map(|t| t.pid));
    ContainerStatus {
        name: c.spec.name.clone(),
        image: c.spec.image.clone().unwrap_or_default(),
        image_id: c.image_id.clone(),
        container_id: container_id.map(|p| format!("pkubelet://{p}")),
        started: Some(c.started()),
        ready: c.ready(),
        restart_count: c.restart_count,
        state: Some(state),
        last_state,
        ..Default::default()
    }
}

/// Condition statuses with their last transition times; kept across ticks.
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    map: BTreeMap<String, (bool, Option<String>, Timestamp)>,
}

impl Conditions {
    /// Seeds transition times from the pod's current status (kubelet restarts keep them).
    pub fn seed(existing: &[PodCondition]) -> Self {
        let mut map = BTreeMap::new();
        for c in existing {
            let t = c
                .last_transition_time
                .as_ref()
                .map_or_else(Timestamp::now, |t| t.0);
            map.insert(c.type_.clone(), (c.status == "True", c.reason.clone(), t));
        }
        Self { map }
    }

    /// Sets a condition; the transition time moves only when the status flips.
    pub fn set(&mut self, type_: &str, status: bool, reason: Option<&str>) {
        let now = Timestamp::now();
        let e = self
            .map
            .entry(type_.to_string())
            .or_insert((status, None, now));
        if e.0 != status {
            *e = (status, None, now);
        }
        e.1 = reason.map(str::to_string);
    }

    pub fn to_vec(&self, order: &[&str], foreign: &[PodCondition]) -> Vec<PodCondition> {
        let mut out: Vec<PodCondition> = order
            .iter()
            .filter_map(|t| self.map.get(*t).map(|v| (*t, v)))
            .map(|(t, (s, reason, ltt))| PodCondition {
                type_: t.to_string(),
                status: if *s { "True" } else { "False" }.into(),
                reason: reason.clone(),
                last_transition_time: Some(time(*ltt)),
                ..Default::default()
            })
            .collect();
        out.extend(
            foreign
                .iter()
                .filter(|c| !order.contains(&c.type_.as_str()))
                .cloned(),
        );
        out
    }
}

/// Condition types this kubelet owns, in display order.
pub const OWN_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Inputs of the status document.
pub struct StatusInput<'a> {
    pub uid: &'a str,
    pub containers: &'a [ContainerRt],
    pub conditions: &'a Conditions,
    pub foreign_conditions: &'a [PodCondition],
    pub phase: &'a str,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    pub message: Option<String>,
}

/// The JSON merge patch for `pods/status` (the UID guards against a recreated namesake).
pub fn patch(inp: &StatusInput<'_>) -> serde_json::Value {
    let initializing = !init_done(inp.containers);
    let regular_default = if initializing {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let statuses = |kinds: &[Kind], default: &str| -> Vec<ContainerStatus> {
        inp.containers
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .map(|c| container_status(c, default))
            .collect()
    };
    let init = statuses(&[Kind::Init, Kind::Sidecar], "PodInitializing");
    let mut status = serde_json::json!({
        "phase": inp.phase,
        "hostIP": inp.host_ip.to_string(),
        "hostIPs": [HostIP { ip: inp.host_ip.to_string() }],
        "startTime": time(inp.start_time),
        "conditions": inp.conditions.to_vec(&OWN_CONDITIONS, inp.foreign_conditions),
        "containerStatuses": statuses(&[Kind::Regular], regular_default),
    });
    if let Some(ip) = inp.pod_ip {
        status["podIP"] = ip.to_string().into();
        status["podIPs"] = serde_json::json!([PodIP { ip: ip.to_string() }]);
    }
    if !init.is_empty() {
        status["initContainerStatuses"] = serde_json::json!(init);
    }
    if let Some(m) = &inp.message {
        status["message"] = m.clone().into();
    }
    serde_json::json!({"metadata": {"uid": inp.uid}, "status": status})
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
