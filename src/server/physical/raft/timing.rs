//! Physical layer (raft): election and heartbeat timing, and the openraft `Config` built from
//! it. Pure: no I/O.
//!
//! Vault's `performance_multiplier` semantics: 1 is the fastest setting and every interval
//! scales linearly with it. At 1: heartbeat 100 ms, election timeout randomised in
//! 400-800 ms. Pre-vote is on, so a node that was partitioned or paused cannot depose a
//! healthy leader by inflating its term when it comes back.
//!
//! Why 0.4-0.8 s and not Vault's 1-2 s: openraft's leader lease is `election_timeout_max`, and
//! a follower calls an election only once the lease *plus* a random election timeout have
//! passed since it last heard from the leader, so a failover takes `election_timeout_max` plus
//! one election timeout. Measured on this 2-core machine (3 nodes, SIGKILL of the leader, first
//! acknowledged write through a survivor): 3.4-4.0 s with 1-2 s (debug build); p50 1.82 s,
//! p99 2.06 s over 20 kills with 0.5-1 s (`cargo bench --bench ha`). At 0.4-0.8 s a follower
//! still waits at least 1.2 s of silence (twelve heartbeats) before it calls an election.

use std::time::Duration;

use crate::server::physical::PhysicalError;

/// The largest `performance_multiplier` accepted (Vault's limit).
pub const MAX_PERFORMANCE_MULTIPLIER: u32 = 10;

/// Raft timing of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// The election timeout is drawn from `election_min..election_max` on every reset.
    pub election_min: Duration,
    pub election_max: Duration,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(400),
            election_max: Duration::from_millis(800),
        }
    }
}

impl RaftTiming {
    /// The timing for Vault's `performance_multiplier` (1 = fastest, up to 10).
    pub fn with_performance_multiplier(multiplier: u32) -> Result<Self, PhysicalError> {
        if !(1..=MAX_PERFORMANCE_MULTIPLIER).contains(&multiplier) {
            return Err(PhysicalError::Io {
                backend: "raft",
                path: "performance_multiplier".into(),
                message: format!(
                    "{multiplier} is out of range; set storage \"raft\" performance_multiplier to 1 (fastest) through {MAX_PERFORMANCE_MULTIPLIER}"
                ),
            });
        }
        let base = Self::default();
        Ok(Self {
            heartbeat: base.heartbeat * multiplier,
            election_min: base.election_min * multiplier,
            election_max: base.election_max * multiplier,
        })
    }

    /// The openraft configuration of this timing, validated.
    pub(crate) fn config(&self) -> Result<openraft::Config, PhysicalError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "sealkeep".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_min),
            election_timeout_max: ms(self.election_max),
            // A loaded 2-core node must not abort a snapshot transfer of a few MiB.
            install_snapshot_timeout: 10_000,
            // At most 32 entries of at most 1 MiB (MAX_ENTRY_SIZE) per append RPC: a batch
            // stays well inside the cluster port's 64 MiB body limit.
            max_payload_entries: 32,
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        config.validate().map_err(|e| PhysicalError::Io {
            backend: "raft",
            path: "storage \"raft\" timing".into(),
            message: format!(
                "{e}; the election timeout must be longer than the heartbeat and its minimum below its maximum"
            ),
        })
    }
}
