//! The kubelet's atomic volume writer: files live in `..<stamp>/`, `..data` points at the
//! current stamp and each top-level name is a symlink through `..data` (file I/O).
//!
//! Readers of a bind-mounted volume directory therefore see either the old or the new set of
//! files, never a mix, and an update never replaces the directory itself.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// One file of a volume payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path.
pub type Payload = BTreeMap<String, FileData>;

/// Errors of the writer.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("invalid path {0:?} in volume payload")]
    BadPath(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AtomicError {
    let path = path.to_path_buf();
    move |source| AtomicError::Io { path, source }
}

/// A relative path without `..`, absolute parts or a leading `..` name.
fn valid(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with("..")
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Reads what `..data` currently holds (relative path -> data, mode).
fn current(dir: &Path) -> Option<Payload> {
    let root = std::fs::canonicalize(dir.join(DATA)).ok()?;
    let mut out = Payload::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&root).ok()?.to_str()?.to_string();
                let data = std::fs::read(&p).ok()?;
                out.insert(
                    rel,
                    FileData {
                        data,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
    }
    Some(out)
}

/// Makes `dir` hold exactly `payload`; returns whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, AtomicError> {
    if let Some(bad) = payload.keys().find(|k| !valid(k)) {
        return Err(AtomicError::BadPath(bad.clone()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if current(dir).as_ref() == Some(payload) {
        return Ok(false);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let stamp = format!("..{nanos}");
    let stamp_dir = dir.join(&stamp);
    for (rel, file) in payload {
        let p = stamp_dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&p, &file.data).map_err(io(&p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(file.mode)).map_err(io(&p))?;
    }
    std::fs::create_dir_all(&stamp_dir).map_err(io(&stamp_dir))?;
    let old_target = std::fs::read_link(dir.join(DATA)).ok();
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, dir.join(DATA)).map_err(io(dir))?;

    let top: BTreeSet<String> = payload
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA).join(name), &link).map_err(io(&link))?;
        }
    }
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_link = e.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        if !name.starts_with("..") && is_link && !top.contains(&name) {
            std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
        }
    }
    if let Some(old) = old_target.filter(|o| o != Path::new(&stamp)) {
        let old_dir = dir.join(old);
        if old_dir.starts_with(dir) {
            let _ = std::fs::remove_dir_all(old_dir);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileData {
        FileData {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_swaps_and_prunes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("vol");
        let mut p = Payload::new();
        p.insert("token".into(), file("t1", 0o600));
        p.insert("sub/ca.crt".into(), file("ca", 0o644));
        assert!(write(&dir, &p).expect("first write"));
        assert_eq!(
            std::fs::read_to_string(dir.join("token")).expect("token"),
            "t1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/ca.crt")).expect("ca"),
            "ca"
        );
        let mode = std::fs::metadata(dir.join("token"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            !write(&dir, &p).expect("same payload"),
            "no change, no write"
        );

        let mut q = Payload::new();
        q.insert("token".into(), file("t2", 0o600));
        assert!(write(&dir, &q).expect("update"));
        assert_eq!(
            std::fs::read_to_string(dir.join("token")).expect("token"),
            "t2"
        );
        assert!(
            std::fs::symlink_metadata(dir.join("sub")).is_err(),
            "stale top-level link removed"
        );
        let stamps = std::fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..1"))
            .count();
        assert_eq!(stamps, 1, "old stamp dir removed");
    }

    #[test]
    fn rejects_escaping_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", ""] {
            let p = Payload::from([(bad.to_string(), file("x", 0o644))]);
            assert!(
                matches!(write(tmp.path(), &p), Err(AtomicError::BadPath(_))),
                "{bad}"
            );
        }
    }
}
