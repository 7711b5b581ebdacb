//! Physical layer (raft): the openraft type configuration, the replicated log payload and the
//! on-disk encoding of openraft's types. Pure: no I/O.
//!
//! Everything openraft-specific that the rest of the module shares is named here, so the
//! storage, network and backend files use these aliases instead of spelling openraft's generics.
//!
//! Encoding: postcard (compact, positional). openraft keeps its serde layouts positional-format
//! compatible across versions (see its `SnapshotMeta` and `LeaderId` notes), which is what a
//! positional format needs. The payload's own layout ([`WireOp`]) is ours and must only ever
//! gain variants at the end.

use std::fmt;
use std::io;

use serde::de::DeserializeOwned;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::server::physical::TxnOp;

openraft::declare_raft_types!(
    /// The openraft type configuration of Sealkeep's integrated storage.
    pub(crate) TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
);

pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// Snapshots are held in memory as one serialised buffer (see `state_machine`).
pub(crate) type SnapshotData = io::Cursor<Vec<u8>>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// What the cluster knows about a member node (stored in every membership log entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// A stable, human-readable name (the pod name), used to recognise a rejoining node.
    pub name: String,
    /// The node's client API address (`api_addr`), where standbys redirect clients.
    pub api_addr: String,
    /// The node's cluster address (`cluster_addr`), where peers send raft RPCs.
    pub cluster_addr: String,
}

/// One replicated log payload, applied atomically by every node's state machine.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// The operations of one `put`, `delete` or `transaction`.
    Ops(Vec<TxnOp>),
    /// A snapshot restore (`sys/storage/raft/snapshot`): the whole key/value table is replaced
    /// by these pairs (see `snapshot_io`).
    Restore(Vec<(String, Vec<u8>)>),
}

// Display and Debug show only the shape: values are ciphertext or seal material and keys are
// paths, neither belongs in a log line.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ops(ops) => write!(f, "request({} ops, {} bytes)", ops.len(), self.bytes()),
            Self::Restore(kv) => write!(f, "restore({} keys, {} bytes)", kv.len(), self.bytes()),
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Request {
    /// Key and value bytes of all operations.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Self::Ops(ops) => ops
                .iter()
                .map(|op| match op {
                    TxnOp::Put { key, value } => key.len() + value.len(),
                    TxnOp::Delete { key } => key.len(),
                })
                .sum(),
            Self::Restore(kv) => kv.iter().map(|(k, v)| k.len() + v.len()).sum(),
        }
    }
}

/// The serialised form of one operation (borrowed when writing).
#[derive(Serialize)]
enum WireOpRef<'a> {
    Put {
        key: &'a str,
        // As bytes (one copy), not as a sequence of u8 (one call per byte); postcard writes
        // both the same way, so entries written either way decode either way.
        #[serde(with = "serde_bytes")]
        value: &'a [u8],
    },
    Delete {
        key: &'a str,
    },
    /// Only ever the single element of a [`Request::Restore`].
    Restore {
        kv: &'a [(String, Vec<u8>)],
    },
}

/// The serialised form of one operation (owned when reading). Variants are only ever added at
/// the end: entries written before a variant existed still decode.
#[derive(Deserialize)]
enum WireOp {
    Put {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    Restore {
        kv: Vec<(String, Vec<u8>)>,
    },
}

// A request is a sequence of wire operations: `Ops` as one element per operation (the layout
// of every entry written before restores existed), `Restore` as exactly one `Restore` element.
impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Ops(ops) => {
                let mut seq = serializer.serialize_seq(Some(ops.len()))?;
                for op in ops {
                    let wire = match op {
                        TxnOp::Put { key, value } => WireOpRef::Put { key, value },
                        TxnOp::Delete { key } => WireOpRef::Delete { key },
                    };
                    seq.serialize_element(&wire)?;
                }
                seq.end()
            }
            Self::Restore(kv) => {
                let mut seq = serializer.serialize_seq(Some(1))?;
                seq.serialize_element(&WireOpRef::Restore { kv })?;
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut wire = Vec::<WireOp>::deserialize(deserializer)?;
        if wire.len() == 1
            && matches!(wire[0], WireOp::Restore { .. })
            && let Some(WireOp::Restore { kv }) = wire.pop()
        {
            return Ok(Self::Restore(kv));
        }
        let ops = wire
            .into_iter()
            .map(|op| match op {
                WireOp::Put { key, value } => Ok(TxnOp::Put { key, value }),
                WireOp::Delete { key } => Ok(TxnOp::Delete { key }),
                WireOp::Restore { .. } => Err(serde::de::Error::custom(
                    "a restore must be the only operation of its log entry",
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::Ops(ops))
    }
}

/// The state machine's answer to an applied [`Request`]: nothing beyond "applied".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Response {}

/// Serialises `value` for storage or the wire.
pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Deserialises `bytes` written by [`encode`]; `what` names the record in the error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot decode the stored {what}: {e}; the raft data is corrupt or from an incompatible version"),
        )
    })
}

/// An `io::Error` for any failure of redb or a storage thread.
pub(crate) fn io_err(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout entries had when values were written as a sequence of u8.
    #[derive(Serialize)]
    enum SeqWireOp {
        Put { key: String, value: Vec<u8> },
        Delete { key: String },
    }

    #[test]
    fn values_written_as_bytes_keep_the_layout_of_values_written_as_sequences() {
        let value: Vec<u8> = (0..=255).cycle().take(1500).collect();
        let request = Request::Ops(vec![
            TxnOp::Put {
                key: "logical/abc".into(),
                value: value.clone(),
            },
            TxnOp::Delete { key: "k".into() },
        ]);
        let as_seq = postcard::to_allocvec(&vec![
            SeqWireOp::Put {
                key: "logical/abc".into(),
                value,
            },
            SeqWireOp::Delete { key: "k".into() },
        ])
        .expect("encode");
        let as_bytes = encode(&request).expect("encode");
        assert_eq!(as_bytes, as_seq, "the stored layout of an entry changed");
        let decoded: Request = decode(&as_seq, "entry").expect("an older entry decodes");
        assert!(decoded == request);
    }
}
