//! Physical layer (raft): snapshot archives for `sys/storage/raft/snapshot`: export the applied
//! key/value state as one versioned, checksummed archive, and restore one through the raft log
//! so every node applies it. Disk I/O (the state machine file) and, for restores, raft.
//!
//! Archive format, version 1 (all of it is what [`RaftSnapshot::encode`] writes):
//! ```text
//! magic    8 bytes   "SKRAFTSN"
//! version  1 byte    1
//! body     postcard  { index: u64, term: u64, kv: [(key: string, value: bytes)] }
//! sha256   32 bytes  SHA-256 of magic, version and body
//! ```
//! `index` and `term` are those of the last entry applied when the snapshot was taken
//! (informational). Values are stored exactly as the state machine holds them: barrier
//! ciphertext, plus the few plaintext seal entries, so an archive is as sensitive as the raft
//! directory and as useless without the seal. The checksum catches truncation and corruption,
//! not tampering (anyone can recompute it); the barrier's authenticated encryption does that.
//!
//! A restore is one raft entry ([`super::types::Request::Restore`]) that replaces the whole
//! table on every node, atomically. It is bounded by [`MAX_RESTORE_SIZE`] (31 MiB): the entry
//! must fit in one append request of the cluster port (64 MiB body limit), beside the ordinary
//! entries batched with it, to reach the followers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::types::{Request, decode, encode};
use super::{RaftBackend, state_machine};
use crate::server::physical::{PhysicalError, check_key};

const MAGIC: &[u8; 8] = b"SKRAFTSN";
/// The archive version this build writes and reads.
pub const SNAPSHOT_VERSION: u8 = 1;
const SHA256_LEN: usize = 32;
/// Most bytes a restore entry may carry (keys and values, plus [`PAIR_OVERHEAD`] per pair).
/// The entry travels to followers inside one append request of the cluster port (64 MiB body
/// limit), possibly batched with up to 31 ordinary entries of up to 1 MiB each
/// (`max_payload_entries` 32, [`super::MAX_ENTRY_SIZE`]): 64 − 31 − 2 MiB of framing headroom.
/// A larger entry could never be replicated, and the followers would stall on it. Not yet
/// covered: two restore entries in one append batch (a follower that was away during two
/// restores); batches sized by bytes rather than by entry count would close that.
pub const MAX_RESTORE_SIZE: usize = 31 * 1024 * 1024;
/// Encoding overhead counted per key/value pair (two length prefixes, at most 5 bytes each).
pub const PAIR_OVERHEAD: usize = 10;

/// The applied key/value state of the cluster at one point of its log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftSnapshot {
    /// Index of the last applied entry when the snapshot was taken.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Every key and its stored value, in key order.
    pub kv: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for RaftSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftSnapshot")
            .field("index", &self.index)
            .field("term", &self.term)
            .field("keys", &self.kv.len())
            .finish()
    }
}

/// Why bytes are not a snapshot archive this build can restore.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error(
        "the snapshot is {len} bytes, too short to be a Sealkeep raft snapshot; send the file saved from GET sys/storage/raft/snapshot, whole"
    )]
    TooShort { len: usize },
    #[error(
        "the body is not a Sealkeep raft snapshot (wrong magic bytes); send the file saved from GET sys/storage/raft/snapshot (a Vault snapshot cannot be restored into Sealkeep)"
    )]
    BadMagic,
    #[error(
        "the snapshot has format version {found}, this server reads version {SNAPSHOT_VERSION}; restore it with a Sealkeep release that wrote it"
    )]
    UnsupportedVersion { found: u8 },
    #[error(
        "the snapshot's SHA-256 checksum does not match its contents; the file is truncated or corrupt, save it again"
    )]
    Checksum,
    #[error(
        "the snapshot's checksum matches but its contents do not decode ({0}); it was written by an incompatible build"
    )]
    Malformed(String),
}

fn sha256(bytes: &[u8]) -> [u8; SHA256_LEN] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; SHA256_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

impl RaftSnapshot {
    /// The stored value of `key`, if the snapshot has it.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.kv
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.kv[i].1.as_slice())
    }

    /// Key and value bytes of all entries, plus [`PAIR_OVERHEAD`] each: what a restore entry
    /// carries, as [`MAX_RESTORE_SIZE`] counts it.
    pub fn bytes(&self) -> usize {
        self.kv
            .iter()
            .map(|(k, v)| k.len() + v.len() + PAIR_OVERHEAD)
            .sum()
    }

    /// The archive (see the module documentation).
    pub fn encode(&self) -> Result<Vec<u8>, PhysicalError> {
        let body = encode(self).map_err(|e| PhysicalError::Io {
            backend: "raft",
            path: "snapshot".into(),
            message: format!("cannot encode the snapshot: {e}"),
        })?;
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + body.len() + SHA256_LEN);
        out.extend_from_slice(MAGIC);
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&body);
        let sum = sha256(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Parses and verifies an archive: magic, version, checksum, then the body. Untrusted
    /// input: every length is checked before it is used.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let header = MAGIC.len() + 1;
        if bytes.len() < header + SHA256_LEN {
            return Err(SnapshotError::TooShort { len: bytes.len() });
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = bytes[MAGIC.len()];
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { found: version });
        }
        let (signed, sum) = bytes.split_at(bytes.len() - SHA256_LEN);
        if sha256(signed) != sum {
            return Err(SnapshotError::Checksum);
        }
        let snap: Self = decode(&signed[header..], "snapshot")
            .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        if !snap.kv.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(SnapshotError::Malformed(
                "keys are not in strictly increasing order".into(),
            ));
        }
        Ok(snap)
    }
}

impl RaftBackend {
    /// The applied state of the cluster, read on the leader after a ReadIndex round (so it
    /// holds every write acknowledged before the call) in one read transaction.
    pub async fn export_snapshot(&self) -> Result<RaftSnapshot, PhysicalError> {
        self.linearize().await?;
        let db = Arc::clone(&self.inner.sm_db);
        let state_machine::AppliedState { index, term, kv } =
            tokio::task::spawn_blocking(move || state_machine::read_all(&db))
                .await
                .map_err(|e| self.err(format!("storage task failed: {e}")))?
                .map_err(|e| self.err(e))?;
        Ok(RaftSnapshot { index, term, kv })
    }

    /// A counter that moves whenever this node's whole key/value table is replaced: a
    /// restore applied from the log, or a raft snapshot installed to catch up. Whoever caches
    /// state derived from storage (a standby's token, mount and policy caches) must reload
    /// when it moves.
    pub fn state_replaced(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.sm_replaced.clone()
    }

    /// Replaces the whole key/value state of every node with `snapshot`'s, through one raft
    /// entry; returns once it is committed and applied here. Only on the leader.
    pub async fn restore_snapshot(&self, snapshot: RaftSnapshot) -> Result<(), PhysicalError> {
        snapshot.check()?;
        let size = snapshot.bytes();
        let n = snapshot.kv.len();
        match self
            .inner
            .raft
            .client_write(Request::Restore(snapshot.kv))
            .await
        {
            Ok(_) => {
                tracing::info!(keys = n, bytes = size, "restored a raft snapshot");
                Ok(())
            }
            Err(e) => Err(self.write_error(e, "the snapshot restore")),
        }
    }
}

impl RaftSnapshot {
    /// Whether every node could apply this snapshot: valid keys, and at most
    /// [`MAX_RESTORE_SIZE`] bytes.
    pub fn check(&self) -> Result<(), PhysicalError> {
        for (key, _) in &self.kv {
            check_key(key)?;
        }
        let size = self.bytes();
        if size > MAX_RESTORE_SIZE {
            return Err(PhysicalError::Io {
                backend: "raft",
                path: "snapshot".into(),
                message: format!(
                    "the snapshot holds {size} bytes of keys and values (counting {PAIR_OVERHEAD} bytes of framing per key); a restore is one raft entry, which must fit in one request of the cluster port (64 MiB limit) beside a batch of ordinary entries, so it may carry at most {MAX_RESTORE_SIZE} bytes (31 MiB); delete data before taking the snapshot"
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RaftSnapshot {
        RaftSnapshot {
            index: 7,
            term: 2,
            kv: vec![("a".into(), b"1".to_vec()), ("b/c".into(), vec![0, 255])],
        }
    }

    #[test]
    fn archive_round_trips_and_lookups_work() {
        let snap = sample();
        let bytes = snap.encode().expect("encode");
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(bytes[8], SNAPSHOT_VERSION);
        let back = RaftSnapshot::decode(&bytes).expect("decode");
        assert_eq!(back, snap);
        assert_eq!(back.get("b/c"), Some(&[0u8, 255][..]));
        assert_eq!(back.get("zzz"), None);
    }

    #[test]
    fn the_restore_bound_leaves_room_for_a_full_append_batch() {
        let batch_of_others = 31 * crate::server::physical::MAX_ENTRY_SIZE;
        assert!(MAX_RESTORE_SIZE + batch_of_others + 1024 * 1024 <= 64 * 1024 * 1024);
        assert_eq!(sample().bytes(), 1 + 1 + 3 + 2 + 2 * PAIR_OVERHEAD);
    }

    #[test]
    fn damaged_archives_are_refused_with_the_reason() {
        let bytes = sample().encode().expect("encode");
        assert_eq!(
            RaftSnapshot::decode(&bytes[..10]),
            Err(SnapshotError::TooShort { len: 10 })
        );
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(RaftSnapshot::decode(&bad), Err(SnapshotError::BadMagic));
        let mut bad = bytes.clone();
        bad[8] = 9;
        assert_eq!(
            RaftSnapshot::decode(&bad),
            Err(SnapshotError::UnsupportedVersion { found: 9 })
        );
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert_eq!(RaftSnapshot::decode(&bad), Err(SnapshotError::Checksum));
        let truncated = &bytes[..bytes.len() - 1];
        assert_eq!(
            RaftSnapshot::decode(truncated),
            Err(SnapshotError::Checksum)
        );
    }
}
