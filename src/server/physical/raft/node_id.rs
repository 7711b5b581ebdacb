//! Physical layer (raft): the node id persisted in `<path>/node-id`. Does disk I/O.
//!
//! As Vault's `node-id` file: a node keeps one raft id for the life of its data directory. The
//! first open writes it (the configured id, else a random one) atomically (temporary file,
//! fsync, rename, fsync of the directory); every later open reads it back and refuses a
//! configured id that differs, because changing a member's id behind raft's back is how a dead
//! twin ends up counted in the quorum.

use std::io::Write;
use std::path::Path;

use crate::server::physical::PhysicalError;

/// The file, inside the storage directory, that holds this node's raft id.
pub const NODE_ID_FILE: &str = "node-id";

fn error(path: &Path, message: String) -> PhysicalError {
    PhysicalError::Io {
        backend: "raft",
        path: path.display().to_string(),
        message,
    }
}

/// Returns this node's persisted id, writing `configured` (or a random id) on first use.
pub(crate) fn load_or_create(dir: &Path, configured: Option<u64>) -> Result<u64, PhysicalError> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: u64 = text.trim().parse().map_err(|e| {
                error(
                    &path,
                    format!("the node id file does not hold a number ({e}); restore it from a backup of this node, or wipe the node's raft directory and join it again"),
                )
            })?;
            match configured {
                Some(id) if id != stored => Err(error(
                    &path,
                    format!(
                        "the configured raft node_id {id} differs from the id {stored} this data directory was created with; remove node_id from the config (or set it to {stored})"
                    ),
                )),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = match configured {
                Some(id) => id,
                // Zero is left out so that a default-initialised id can never be a real one.
                None => random_id(&path)?,
            };
            write_atomically(dir, &path, id)?;
            Ok(id)
        }
        Err(e) => Err(error(
            &path,
            format!(
                "cannot read the node id file: {e}; make the raft storage path readable by this user"
            ),
        )),
    }
}

fn random_id(path: &Path) -> Result<u64, PhysicalError> {
    for _ in 0..8 {
        let mut bytes = [0u8; 8];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| {
            error(
                path,
                "the system random number generator failed, so no node id was chosen; check the host's entropy source".into(),
            )
        })?;
        let id = u64::from_le_bytes(bytes);
        if id != 0 {
            return Ok(id);
        }
    }
    Err(error(
        path,
        "the random number generator returned zero eight times; check the host's entropy source"
            .into(),
    ))
}

fn write_atomically(dir: &Path, path: &Path, id: u64) -> Result<(), PhysicalError> {
    let tmp = dir.join(format!("{NODE_ID_FILE}.tmp"));
    let fail = |e: std::io::Error| {
        error(
            path,
            format!(
                "cannot write the node id file: {e}; make the raft storage path writable by this user"
            ),
        )
    };
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(format!("{id}\n").as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)?;
    Ok(())
}
