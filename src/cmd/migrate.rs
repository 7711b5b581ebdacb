//! CLI (`sealkeep operator migrate -config FILE`): copies every key of one store into another,
//! offline, as `vault operator migrate` does. Does disk I/O on both stores; prints progress.
//!
//! Steps, in this order so that a refusal writes nothing:
//! 1. open the source: a store a running server holds is refused by its redb lock;
//! 2. open the destination and refuse it unless it is empty (raft: no cluster; file: no key);
//! 3. walk the source (Vault's list semantics, depth first, which is key order), read every
//!    value once to check that it fits one raft entry and to hash the (key, value) pairs;
//! 4. form the destination's one-node cluster (raft) and copy, in transactions of at most one
//!    raft entry ([`MAX_ENTRY_SIZE`]) each;
//! 5. walk the destination and compare the key count and the hash; stop raft cleanly.
//!
//! Values are copied byte for byte: barrier ciphertext is bound to its path, which does not
//! change, and the plaintext seal entries (seal config, wrapped root key) need no key. Keys
//! (storage paths) are printed in errors, values never.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use crate::server::config::{ConfigError, MigrateConfig, StorageConfig};
use crate::server::physical::{
    DB_FILE, FileBackend, MAX_ENTRY_SIZE, NodeInfo, Physical, PhysicalError, RaftBackend,
    RaftTiming, TxnOp,
};

/// Exit codes, as Vault: 1 for a bad file or flag, 2 when the migration itself failed.
pub const EXIT_CONFIG: u8 = 1;
pub const EXIT_FAILED: u8 = 2;

/// The command line of `operator migrate`.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub config: PathBuf,
    /// Copy only keys at or after this one (Vault's `-start`).
    pub start: Option<String>,
    /// Vault's `-reset` (clear the migration lock); Sealkeep keeps none, so it only says so.
    pub reset: bool,
}

/// What a successful migration copied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub keys: u64,
    /// Key and value bytes.
    pub bytes: u64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "storage_source {path} holds no {what}; point storage_source at the path of the server's storage \"{kind}\" block"
    )]
    SourceMissing {
        kind: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error(
        "cannot open storage_source {kind} at {path}: {source}; if a sealkeep server uses this storage, stop the server first (a migration runs offline)"
    )]
    SourceOpen {
        kind: &'static str,
        path: PathBuf,
        source: PhysicalError,
    },
    #[error(
        "cannot open storage_destination {kind} at {path}: {source}; if a sealkeep server uses this storage, stop it, and migrate into a new, empty directory"
    )]
    DestinationOpen {
        kind: &'static str,
        path: PathBuf,
        source: PhysicalError,
    },
    #[error(
        "storage_destination {kind} at {path} is not empty ({what}); migrate only into empty storage: give storage_destination a new, empty directory (or remove {path} if it is left from a failed migration)"
    )]
    DestinationNotEmpty {
        kind: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error(
        "storage key {key:?} holds {bytes} bytes of key and value, more than the {limit} bytes one raft entry may carry; nothing was copied. Delete or shrink that entry through the server before migrating to raft"
    )]
    TooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "reading storage_source failed: {0}; nothing is wrong with the destination yet, fix the source and run the migration again"
    )]
    Read(PhysicalError),
    #[error(
        "{message}; the destination at {path} is INCOMPLETE: remove {path} and run the migration again"
    )]
    Incomplete { path: PathBuf, message: String },
}

impl MigrateError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => EXIT_CONFIG,
            _ => EXIT_FAILED,
        }
    }
}

/// One opened store.
enum Store {
    File(FileBackend),
    Raft(RaftBackend),
}

impl Store {
    fn physical(&self) -> &dyn Physical {
        match self {
            Self::File(f) => f,
            Self::Raft(r) => r,
        }
    }

    /// Stops raft cleanly; a file store closes when dropped.
    async fn close(self) -> Result<(), PhysicalError> {
        match self {
            Self::File(_) => Ok(()),
            Self::Raft(r) => r.shutdown().await,
        }
    }
}

/// Runs the command: prints progress and the outcome; returns the exit code.
pub async fn run(opts: &MigrateOptions) -> u8 {
    match migrate(opts).await {
        Ok(None) => 0,
        Ok(Some(s)) => {
            println!(
                "Success! All of the keys have been migrated: {} keys, {} bytes in {:.1} s (count and SHA-256 of every key and value verified on the destination).",
                s.keys, s.bytes, s.seconds
            );
            0
        }
        Err(e) => {
            eprintln!("Error migrating: {e}");
            e.exit_code()
        }
    }
}

/// The migration; `None` for `-reset`, which migrates nothing.
pub async fn migrate(opts: &MigrateOptions) -> Result<Option<Summary>, MigrateError> {
    let cfg = MigrateConfig::load(&opts.config)?;
    if opts.reset {
        println!(
            "Sealkeep keeps no migration lock in the source storage: the source is locked by its own file lock only while a migration runs, so there is nothing to reset. No migration occurred."
        );
        return Ok(None);
    }
    let started = Instant::now();
    let source = open_source(&cfg.source).await?;
    let result = match open_destination(&cfg).await {
        Ok(destination) => {
            let copied = copy(&source, &destination, &cfg, opts.start.as_deref()).await;
            let closed = destination.close().await;
            match (copied, closed) {
                (Ok(s), Ok(())) => Ok(s),
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(MigrateError::Incomplete {
                    path: store_path(&cfg.destination).to_owned(),
                    message: format!(
                        "every key was copied and verified, but the destination did not stop cleanly: {e}"
                    ),
                }),
            }
        }
        Err(e) => Err(e),
    };
    // The source was only read; a failure to stop it cleanly changes nothing of the result.
    if let Err(e) = source.close().await {
        eprintln!("note: the source raft storage did not stop cleanly: {e}");
    }
    let (keys, bytes) = result?;
    Ok(Some(Summary {
        keys,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

fn store_path(store: &StorageConfig) -> &Path {
    match store {
        StorageConfig::File { path } => path,
        StorageConfig::Raft(r) => &r.path,
        StorageConfig::Inmem => Path::new(""),
    }
}

fn node_name(store: &StorageConfig) -> &str {
    match store {
        StorageConfig::Raft(r) => r.node_id.as_deref().unwrap_or(""),
        _ => "",
    }
}

fn timing(performance_multiplier: u32) -> Result<RaftTiming, PhysicalError> {
    RaftTiming::with_performance_multiplier(performance_multiplier)
}

async fn open_source(cfg: &StorageConfig) -> Result<Store, MigrateError> {
    let kind = cfg.kind();
    let path = store_path(cfg).to_owned();
    let open_err = |source| MigrateError::SourceOpen {
        kind,
        path: path.clone(),
        source,
    };
    match cfg {
        StorageConfig::File { path: dir } => {
            if !dir.join(DB_FILE).is_file() {
                return Err(MigrateError::SourceMissing {
                    kind,
                    path,
                    what: "sealkeep.redb database",
                });
            }
            FileBackend::open(dir).map(Store::File).map_err(open_err)
        }
        StorageConfig::Raft(r) => {
            if !r.path.is_dir() {
                return Err(MigrateError::SourceMissing {
                    kind,
                    path,
                    what: "raft storage (the directory does not exist)",
                });
            }
            let timing = timing(r.performance_multiplier).map_err(open_err)?;
            let node = NodeInfo {
                name: r.node_id.clone().unwrap_or_default(),
                ..NodeInfo::default()
            };
            let raft = RaftBackend::open(&r.path, None, node, timing)
                .await
                .map_err(open_err)?;
            let ready = match raft.is_initialized().await {
                Ok(true) => raft
                    .wait_for_leader(timing.election_max * 3 + Duration::from_secs(10))
                    .await
                    .map(drop),
                Ok(false) => Err(PhysicalError::Io {
                    backend: "raft",
                    path: path.display().to_string(),
                    message: "it holds no raft cluster".into(),
                }),
                Err(e) => Err(e),
            };
            match ready {
                Ok(()) => Ok(Store::Raft(raft)),
                Err(e) => {
                    let _ = raft.shutdown().await;
                    Err(open_err(e))
                }
            }
        }
        StorageConfig::Inmem => Err(MigrateError::SourceMissing {
            kind,
            path,
            what: "data once its server stops (inmem)",
        }),
    }
}

async fn open_destination(cfg: &MigrateConfig) -> Result<Store, MigrateError> {
    let store = &cfg.destination;
    let kind = store.kind();
    let path = store_path(store).to_owned();
    let open_err = |source| MigrateError::DestinationOpen {
        kind,
        path: path.clone(),
        source,
    };
    match store {
        StorageConfig::Raft(r) => {
            let timing = timing(r.performance_multiplier).map_err(open_err)?;
            let node = NodeInfo {
                // Required by the migration file's parser.
                name: node_name(store).to_owned(),
                api_addr: cfg.api_addr.clone().unwrap_or_default(),
                cluster_addr: cfg.cluster_addr.clone(),
            };
            let raft = RaftBackend::open(&r.path, None, node, timing)
                .await
                .map_err(open_err)?;
            match raft.is_initialized().await {
                Ok(false) => Ok(Store::Raft(raft)),
                other => {
                    let _ = raft.shutdown().await;
                    match other {
                        Err(e) => Err(open_err(e)),
                        _ => Err(MigrateError::DestinationNotEmpty {
                            kind,
                            path,
                            what: "it already holds a raft cluster",
                        }),
                    }
                }
            }
        }
        _ => {
            let file = FileBackend::open(&path).map_err(open_err)?;
            match file.list("").await {
                Ok(keys) if keys.is_empty() => Ok(Store::File(file)),
                Ok(_) => Err(MigrateError::DestinationNotEmpty {
                    kind,
                    path,
                    what: "it already holds keys",
                }),
                Err(e) => Err(open_err(e)),
            }
        }
    }
}

/// Every key of `store` at or after `start`, in key order: Vault's depth-first walk of `list`
/// (folders end in `/`), which visits keys in byte order. A folder whose keys all sort before
/// `start` is not listed.
pub(crate) async fn walk(store: &dyn Physical, start: &str) -> Result<Vec<String>, PhysicalError> {
    let mut keys = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(path) = stack.pop() {
        if path.is_empty() || path.ends_with('/') {
            if !path.is_empty() && path.as_str() < start && !start.starts_with(path.as_str()) {
                continue;
            }
            let children = store.list(&path).await?;
            stack.extend(
                children
                    .iter()
                    .rev()
                    .filter(|c| !c.is_empty())
                    .map(|c| format!("{path}{c}")),
            );
        } else if path.as_str() >= start {
            keys.push(path);
        }
    }
    Ok(keys)
}

/// Splits keys with these sizes (key + value bytes) into consecutive batches of at most
/// `limit` bytes each; every size must already be at most `limit`.
pub(crate) fn batches(sizes: &[usize], limit: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut begin, mut bytes) = (0, 0usize);
    for (i, size) in sizes.iter().enumerate() {
        if i > begin && bytes + size > limit {
            out.push(begin..i);
            (begin, bytes) = (i, 0);
        }
        bytes += size;
    }
    if begin < sizes.len() {
        out.push(begin..sizes.len());
    }
    out
}

/// SHA-256 over every (key, value) pair, each length-prefixed, in key order.
struct PairHash {
    ctx: digest::Context,
    keys: u64,
    bytes: u64,
}

impl PairHash {
    fn new() -> Self {
        Self {
            ctx: digest::Context::new(&digest::SHA256),
            keys: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, key: &str, value: &[u8]) {
        for part in [key.as_bytes(), value] {
            self.ctx.update(&(part.len() as u64).to_le_bytes());
            self.ctx.update(part);
        }
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }

    fn finish(self) -> (u64, u64, Vec<u8>) {
        (self.keys, self.bytes, self.ctx.finish().as_ref().to_vec())
    }
}

/// Steps 3 to 5 of the module documentation; returns the keys and bytes copied.
async fn copy(
    source: &Store,
    destination: &Store,
    cfg: &MigrateConfig,
    start: Option<&str>,
) -> Result<(u64, u64), MigrateError> {
    let from = source.physical();
    let to = destination.physical();
    let dest_path = store_path(&cfg.destination).to_owned();
    let incomplete = |message: String| MigrateError::Incomplete {
        path: dest_path.clone(),
        message,
    };

    // 3. Plan: every key, its size and the hash, before anything is written.
    let keys = walk(from, start.unwrap_or(""))
        .await
        .map_err(MigrateError::Read)?;
    let mut hash = PairHash::new();
    let mut present = Vec::with_capacity(keys.len());
    let mut sizes = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(value) = from.get(&key).await.map_err(MigrateError::Read)? else {
            continue;
        };
        let size = key.len() + value.len();
        if size > MAX_ENTRY_SIZE {
            return Err(MigrateError::TooLarge {
                key,
                bytes: size,
                limit: MAX_ENTRY_SIZE,
            });
        }
        hash.add(&key, &value);
        sizes.push(size);
        present.push(key);
    }
    let (total_keys, total_bytes, digest) = hash.finish();
    println!(
        "Migrating {total_keys} keys ({total_bytes} bytes) from {} {} to {} {}",
        cfg.source.kind(),
        store_path(&cfg.source).display(),
        cfg.destination.kind(),
        dest_path.display()
    );

    // 4. Form the cluster, then copy batch by batch.
    if let Store::Raft(raft) = destination {
        raft.initialize_single().await.map_err(|e| {
            incomplete(format!(
                "cannot form the destination's one-node raft cluster: {e}"
            ))
        })?;
        println!(
            "Formed a one-node raft cluster in {} (node {:?}, raft id {}, cluster_addr {})",
            dest_path.display(),
            node_name(&cfg.destination),
            raft.node_id(),
            cfg.cluster_addr
        );
        if cfg.api_addr.is_none() {
            println!(
                "note: no api_addr in the migration file, so the node's membership entry has none; standbys that join later learn where to redirect clients from it: set api_addr in the file before migrating a node others will join"
            );
        }
    }
    let mut copied = 0usize;
    let mut last_report = Instant::now();
    for batch in batches(&sizes, MAX_ENTRY_SIZE) {
        let mut ops = Vec::with_capacity(batch.len());
        for key in &present[batch.clone()] {
            let value = from
                .get(key)
                .await
                .map_err(|e| incomplete(format!("reading storage_source failed: {e}")))?
                .ok_or_else(|| incomplete(format!("storage key {key:?} vanished from storage_source during the migration; is a server running on it?")))?;
            ops.push(TxnOp::Put {
                key: key.clone(),
                value,
            });
        }
        to.transaction(ops)
            .await
            .map_err(|e| incomplete(format!("writing storage_destination failed: {e}")))?;
        copied = batch.end;
        if last_report.elapsed() >= Duration::from_secs(1) {
            println!("copied {copied}/{total_keys} keys");
            last_report = Instant::now();
        }
    }
    println!("copied {copied}/{total_keys} keys; verifying");

    // 5. Verify: the destination holds exactly what was planned.
    let mut check = PairHash::new();
    let dest_keys = walk(to, "")
        .await
        .map_err(|e| incomplete(format!("reading storage_destination back failed: {e}")))?;
    for key in dest_keys {
        let value = to
            .get(&key)
            .await
            .map_err(|e| incomplete(format!("reading storage_destination back failed: {e}")))?
            .unwrap_or_default();
        check.add(&key, &value);
    }
    let (dest_count, dest_bytes, dest_digest) = check.finish();
    if (dest_count, dest_bytes, &dest_digest) != (total_keys, total_bytes, &digest) {
        return Err(incomplete(format!(
            "verification failed: the source has {total_keys} keys ({total_bytes} bytes), the destination {dest_count} keys ({dest_bytes} bytes){}",
            if dest_count == total_keys {
                " with different contents"
            } else {
                ""
            }
        )));
    }
    Ok((total_keys, total_bytes))
}

/// Vault spells long flags with one dash (`-config=FILE`); clap wants two. Rewrites `-config`,
/// `-start` and `-reset` (alone or with `=VALUE`) after `operator migrate`, and nothing else.
pub fn vault_style_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_migrate =
        args.get(1).is_some_and(|a| a == "operator") && args.get(2).is_some_and(|a| a == "migrate");
    if !is_migrate {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut value_next = false;
    for (i, arg) in args.into_iter().enumerate() {
        let text = arg.to_str().unwrap_or("");
        let rewrite = i > 2
            && !value_next
            && ["-config", "-start", "-reset"].iter().any(|f| {
                text.strip_prefix(f)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            });
        value_next =
            !value_next && ["-config", "--config", "-start", "--start", "-c"].contains(&text);
        out.push(if rewrite {
            format!("-{text}").into()
        } else {
            arg
        });
    }
    out
}

#[cfg(test)]
mod tests;
