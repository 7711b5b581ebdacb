//! What survives a kubelet crash: one `record.json` per pod directory (file I/O).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading or writing records.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A container process as recorded when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    pub pid: i32,
    /// Start time in clock ticks (`/proc/<pid>/stat` field 22), to detect PID reuse.
    pub start_ticks: u64,
    /// RFC 3339 start time, for `state.running.startedAt`.
    pub started_at: String,
}

/// Per-container state that must survive a restart of the kubelet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub restart_count: i32,
    pub proc: Option<ProcRecord>,
    /// An init container that completed successfully.
    #[serde(default)]
    pub completed: bool,
    /// The container ran at least once (a new process is a restart).
    #[serde(default)]
    pub started: bool,
    /// Current restart back-off in seconds (a crash loop keeps backing off across restarts
    /// of the kubelet).
    #[serde(default)]
    pub backoff_secs: u64,
    /// Exit code of a final run (the container will not run again).
    #[serde(default)]
    pub final_exit: Option<i32>,
}

/// The pod's local resources and its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub veth: String,
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Memory-backed emptyDir mount points (host mounts to undo).
    #[serde(default)]
    pub tmpfs: Vec<PathBuf>,
}

const FILE: &str = "record.json";

impl PodRecord {
    /// Writes the record into `pod_dir` atomically.
    pub fn save(&self, pod_dir: &Path) -> Result<(), StateError> {
        let path = pod_dir.join(FILE);
        let tmp = pod_dir.join("record.json.tmp");
        let data = serde_json::to_vec_pretty(self).map_err(|source| StateError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, data).map_err(|source| StateError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| StateError::Io { path, source })
    }

    /// Reads the record of one pod directory, `None` when there is none.
    pub fn load(pod_dir: &Path) -> Result<Option<Self>, StateError> {
        let path = pod_dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StateError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }
}

/// Every pod directory under `pods_dir` with its record (None when missing or unreadable).
pub fn scan(pods_dir: &Path) -> Vec<(String, Option<PodRecord>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(pods_dir).into_iter().flatten().flatten() {
        let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rec = PodRecord::load(&entry.path()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable pod record");
            None
        });
        out.push((uid, rec));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = PodRecord {
            uid: "u1".into(),
            namespace: "ns".into(),
            name: "p".into(),
            ip: Ipv4Addr::new(198, 18, 1, 1),
            netns: "sk-u1".into(),
            veth: "skv257".into(),
            containers: BTreeMap::new(),
            tmpfs: vec![],
        };
        rec.containers.insert(
            "c".into(),
            ContainerRecord {
                restart_count: 2,
                proc: Some(ProcRecord {
                    pid: 42,
                    start_ticks: 7,
                    started_at: "2026-01-01T00:00:00Z".into(),
                }),
                completed: false,
                started: true,
                backoff_secs: 20,
                final_exit: None,
            },
        );
        let pod_dir = dir.path().join("u1");
        std::fs::create_dir(&pod_dir).expect("mkdir");
        rec.save(&pod_dir).expect("save");
        assert_eq!(PodRecord::load(&pod_dir).expect("load"), Some(rec.clone()));
        let scanned = scan(dir.path());
        assert_eq!(scanned, vec![("u1".to_string(), Some(rec))]);
        assert_eq!(PodRecord::load(dir.path()).expect("none"), None);
    }
}
