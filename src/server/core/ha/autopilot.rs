//! Core (HA): autopilot's server stabilization. A node joins as a learner (it receives the log
//! but does not vote); the leader promotes it to a voter once it has stayed within
//! `max_trailing_logs` of the leader for `server_stabilization_time` (Vault's autopilot
//! settings, 1000 entries and 10 s by default, `sys/storage/raft/autopilot/configuration`), so
//! a node that cannot keep up never weakens the quorum. Raft I/O only (the promotion is a
//! membership change).

use std::collections::BTreeMap;

use tokio::time::Instant;

use crate::server::core::autopilot::AutopilotConfig;
use crate::server::physical::RaftBackend;

/// The leader's record of when each learner was first seen caught up.
#[derive(Debug, Default)]
pub(super) struct Autopilot {
    caught_up_since: BTreeMap<u64, Instant>,
}

impl Autopilot {
    /// Not the leader (or nothing to promote): a new leader starts counting afresh.
    pub(super) fn forget(&mut self) {
        self.caught_up_since.clear();
    }

    /// On the leader: promotes each learner that has been caught up for the stabilization
    /// time.
    pub(super) async fn step(&mut self, raft: &RaftBackend, config: &AutopilotConfig) {
        let Some(progress) = raft.progress() else {
            self.forget();
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
            let caught_up = matched.is_some_and(|m| {
                m.saturating_add(config.max_trailing_logs) >= progress.last_log_index
            });
            if !caught_up {
                self.caught_up_since.remove(&id);
                continue;
            }
            let since = *self.caught_up_since.entry(id).or_insert(now);
            if now.duration_since(since) < config.server_stabilization_time {
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
