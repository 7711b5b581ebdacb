//! Core (HA): autopilot's server stabilization. A node joins as a learner (it receives the log
//! but does not vote); the leader promotes it to a voter once it has stayed caught up for
//! [`STABILIZATION`] (Vault's `server_stabilization_time`, 10 s), so a node that cannot keep
//! up never weakens the quorum. Raft I/O only (the promotion is a membership change).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::server::physical::RaftBackend;

/// How long a learner must stay caught up before it becomes a voter.
pub const STABILIZATION: Duration = Duration::from_secs(10);
/// Most entries a learner may trail the leader by and still count as caught up (Vault's
/// autopilot `max_trailing_logs` default).
pub const MAX_TRAILING_LOGS: u64 = 1000;

/// The leader's record of when each learner was first seen caught up.
#[derive(Debug, Default)]
pub(super) struct Autopilot {
    caught_up_since: BTreeMap<u64, Instant>,
}

impl Autopilot {
    /// On the leader: promotes each learner that has been caught up for the stabilization
    /// time. Elsewhere: forgets its record (a new leader starts counting afresh).
    pub(super) async fn step(&mut self, raft: &RaftBackend) {
        let Some(progress) = raft.progress() else {
            self.caught_up_since.clear();
            return;
        };
        let learners: Vec<u64> = raft
            .configuration()
            .into_iter()
            .filter(|p| !p.voter)
            .map(|p| p.id)
            .collect();
        self.caught_up_since.retain(|id, _| learners.contains(id));
        let now = Instant::now();
        for id in learners {
            let matched = progress
                .matched
                .iter()
                .find(|(m, _)| *m == id)
                .and_then(|(_, idx)| *idx);
            let caught_up = matched
                .is_some_and(|m| m.saturating_add(MAX_TRAILING_LOGS) >= progress.last_log_index);
            if !caught_up {
                self.caught_up_since.remove(&id);
                continue;
            }
            let since = *self.caught_up_since.entry(id).or_insert(now);
            if now.duration_since(since) < STABILIZATION {
                continue;
            }
            match raft.promote(id).await {
                Ok(()) => {
                    tracing::info!(node = id, "autopilot: promoted a stable learner to voter");
                    self.caught_up_since.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(node = id, error = %e, "autopilot: promotion failed; retrying")
                }
            }
        }
    }
}
