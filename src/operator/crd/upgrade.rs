//! Operator layer: the upgrade part of the `SecretServer` status (`status.upgrade`), where a
//! raft server's pod-by-pod upgrade records its current step so that an operator restart
//! resumes it. Pure types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The step a raft server's upgrade is in (absent when no upgrade is under way).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    /// The StatefulSet revision the pods are moved to (its `status.updateRevision`).
    pub revision: String,
    /// What the step does: ReplaceStandby, StepDown (move leadership off the outdated leader
    /// with sys/step-down), ReplaceLeader (the former leader) or ReplacePod (the only pod).
    pub step: String,
    /// The pod this step acts on.
    pub pod: String,
    /// The how-many-th pod of the server this step updates (1-based).
    pub index: u32,
    /// How many pods the server has.
    pub of: u32,
    /// When this step began.
    pub since: Time,
    /// When the operator last acted in this step (deleted the pod, called sys/step-down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted_at: Option<Time>,
    /// When the pod this step replaced was first seen an unsealed, caught-up voter (and at
    /// every observation since). The next step waits until it has been one for the autopilot
    /// server stabilization time (spec.raft.autopilot.serverStabilizationTime, default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Time>,
}
