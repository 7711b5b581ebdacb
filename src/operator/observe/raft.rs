//! Operator layer, step 4 of the pipeline (observe), raft part: asks every answering pod of a
//! raft SecretServer for `sys/leader` (unauthenticated) and the leader for
//! `sys/storage/raft/configuration` (with the operator's token), in parallel with short
//! timeouts. Network I/O; turning the answers into the upgrade planner's input
//! ([`planner_input`]) is pure.

use std::time::Duration;

use futures::future::join_all;

use super::{PodObservation, pod_addr};
use crate::api_client::{Client, Leader, RaftConfiguration};
use crate::operator::upgrade::{Member, Membership, Observed, RaftNode};
use crate::operator::validate::{Storage, Validated};
use crate::server::core::autopilot::AutopilotConfig;

/// What the raft endpoints answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftObservation {
    /// Each pod's `sys/leader` answer (`None`: not asked or no answer), by pod name.
    pub leaders: Vec<(String, Option<Leader>)>,
    /// The leader's raft configuration, or why it is unknown.
    pub configuration: Result<RaftConfiguration, String>,
}

impl RaftObservation {
    fn leader_of(&self, pod: &str) -> Option<&Leader> {
        self.leaders
            .iter()
            .find(|(n, _)| n == pod)
            .and_then(|(_, l)| l.as_ref())
    }
}

/// Asks each answering, unsealed pod for `sys/leader`, then the pod that says it leads for the
/// raft configuration with `token` (`Err`: why the operator has no token).
pub async fn observe(
    pods: &[PodObservation],
    scheme: &str,
    http: &reqwest::Client,
    token: Result<&str, &str>,
) -> RaftObservation {
    let leaders: Vec<(String, Option<Leader>)> = join_all(pods.iter().map(|p| async move {
        let unsealed = p.seal().is_some_and(|s| s.initialized && !s.sealed);
        let answer = match (&p.pod.ip, unsealed) {
            (Some(ip), true) => Client::with_http(&pod_addr(scheme, ip), http.clone())
                .leader()
                .await
                .ok(),
            _ => None,
        };
        (p.pod.name.clone(), answer)
    }))
    .await;
    let leader_ip = leaders
        .iter()
        .filter(|(_, l)| l.as_ref().is_some_and(|l| l.is_self))
        .find_map(|(n, _)| pods.iter().find(|p| &p.pod.name == n))
        .and_then(|p| p.pod.ip.clone());
    let configuration = match (leader_ip, token) {
        (_, Err(why)) => Err(why.to_owned()),
        (None, Ok(_)) => Err("no pod says it is the raft leader".to_owned()),
        (Some(ip), Ok(token)) => Client::with_http(&pod_addr(scheme, &ip), http.clone())
            .raft_configuration(token)
            .await
            .map_err(|e| format!("reading sys/storage/raft/configuration: {e}")),
    };
    RaftObservation {
        leaders,
        configuration,
    }
}

/// The pod a `sys/leader` `leader_address` names: the first DNS label of its host
/// (`https://vault-1.vault-internal:8200` is pod `vault-1`; see `build::configmap::raft`).
pub fn pod_of_address(addr: &str) -> Option<String> {
    let rest = addr.split_once("://").map_or(addr, |(_, r)| r);
    let host = rest.split(['/', ':']).next()?;
    let label = host.split('.').next()?;
    (!label.is_empty()).then(|| label.to_owned())
}

/// How many entries a voter may trail the leader and count as caught up: autopilot's
/// `max_trailing_logs` (the spec's, else the server's default).
pub fn max_lag(v: &Validated) -> u64 {
    match &v.storage {
        Storage::Raft(r) => r.autopilot.as_ref().map_or_else(
            || AutopilotConfig::default().max_trailing_logs,
            |a| a.max_trailing_logs,
        ),
        Storage::File => 0,
    }
}

/// How long a replaced pod must have been a healthy voter before the upgrade goes on:
/// autopilot's `server_stabilization_time` (the spec's, else the server's default).
pub fn stabilization(v: &Validated) -> Duration {
    match &v.storage {
        Storage::Raft(r) => r.autopilot.as_ref().map_or_else(
            || AutopilotConfig::default().server_stabilization_time,
            |a| a.server_stabilization_time,
        ),
        Storage::File => Duration::ZERO,
    }
}

/// The upgrade planner's input. Pure.
pub fn planner_input(
    v: &Validated,
    update_revision: Option<String>,
    pods: &[PodObservation],
    raft: &RaftObservation,
) -> Observed {
    let members = pods
        .iter()
        .map(|p| {
            let leader = raft.leader_of(&p.pod.name);
            let unsealed = p.seal().is_some_and(|s| s.initialized && !s.sealed);
            Member {
                name: p.pod.name.clone(),
                revision: p.pod.revision.clone(),
                terminating: p.pod.terminating,
                server: p.seal().map(|_| RaftNode {
                    unsealed,
                    leader: leader.is_some_and(|l| l.is_self),
                    follows: leader.and_then(|l| {
                        if l.is_self {
                            Some(p.pod.name.clone())
                        } else {
                            pod_of_address(&l.leader_address)
                        }
                    }),
                    applied_index: leader.and_then(|l| l.raft_applied_index).unwrap_or(0),
                    committed_index: leader.and_then(|l| l.raft_committed_index).unwrap_or(0),
                }),
            }
        })
        .collect();
    let membership = raft.configuration.as_ref().map_err(Clone::clone).map(|c| {
        let (voters, non_voters) = c.servers.iter().partition::<Vec<_>, _>(|s| s.voter);
        Membership {
            voters: voters.into_iter().map(|s| s.node_id.clone()).collect(),
            non_voters: non_voters.into_iter().map(|s| s.node_id.clone()).collect(),
        }
    });
    Observed {
        name: v.name.clone(),
        replicas: u32::try_from(v.replicas).unwrap_or(0),
        update_revision,
        members,
        membership,
        max_lag: max_lag(v),
        stabilization: stabilization(v),
    }
}

#[cfg(test)]
mod tests;
