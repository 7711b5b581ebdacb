//! Server configuration: the file of `sealkeep operator migrate`, in Vault's migrator format
//! (`storage_source`, `storage_destination`, `cluster_addr`, plus `api_addr`). Reads the file;
//! otherwise pure.
//!
//! The storage blocks take exactly the settings of the server's `storage` block (the same
//! parser). Environment overrides (`VAULT_RAFT_PATH`, `VAULT_RAFT_NODE_ID`,
//! `VAULT_CLUSTER_ADDR`) are not applied: the file alone says what moves where, so an
//! exported variable meant for a server can never turn the source into the destination.

use std::collections::HashSet;
use std::path::Path;

use super::hcl::{Ctx, parse_tree, single_label};
use super::hcl1::{Block, Item};
use super::storage::parse_storage;
use super::{ConfigError, Env, StorageConfig};

/// The destination raft node's `cluster_addr` when the file sets none (Vault's default port).
pub const DEFAULT_MIGRATE_CLUSTER_ADDR: &str = "https://127.0.0.1:8201";

const TOP_KEYS: &[&str] = &["cluster_addr", "api_addr"];
const TOP_BLOCKS: &[&str] = &["storage_source", "storage_destination"];
const SOURCE_TYPES: &[&str] = &["file", "raft"];
const DESTINATION_TYPES: &[&str] = &["raft", "file"];

/// A parsed migration file: copy every key of `source` into the empty `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateConfig {
    /// `storage_source`: `file` or `raft`.
    pub source: StorageConfig,
    /// `storage_destination`: `raft` or `file`.
    pub destination: StorageConfig,
    /// The address other raft nodes will dial to reach the destination node (its membership
    /// entry); [`DEFAULT_MIGRATE_CLUSTER_ADDR`] when unset.
    pub cluster_addr: String,
    /// The destination node's client API address, recorded in its membership entry.
    pub api_addr: Option<String>,
}

/// No environment: see the module documentation.
struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

impl MigrateConfig {
    /// Reads and validates a migration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the migration file: {e}"),
            fix: "pass an existing, readable file with -config".into(),
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses the text of a migration file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let (ctx, body) = parse_tree(file, text)?;
        let mut source: Option<(StorageConfig, usize)> = None;
        let mut destination: Option<(StorageConfig, usize)> = None;
        let mut cluster_addr = None;
        let mut api_addr = None;
        let mut seen = HashSet::new();
        for item in &body.items {
            match item {
                Item::Attr(a) => {
                    let key = a.key.as_str();
                    if !TOP_KEYS.contains(&key) {
                        return Err(ctx.err(
                            a.pos,
                            format!("unknown setting {key:?} in a migration file"),
                            format!(
                                "remove it; a migration file takes only the settings {} and the blocks {}",
                                TOP_KEYS.join(", "),
                                TOP_BLOCKS.join(", ")
                            ),
                        ));
                    }
                    if !seen.insert(key) {
                        return Err(ctx.err(
                            a.pos,
                            format!("{key:?} is set twice"),
                            "keep only one",
                        ));
                    }
                    let value = ctx.string(a)?;
                    check_addr(&ctx, a.pos, key, &value)?;
                    match key {
                        "cluster_addr" => cluster_addr = Some(value),
                        _ => api_addr = Some(value),
                    }
                }
                Item::Block(b) => match b.ident.as_str() {
                    "storage_source" => {
                        once(&ctx, b, source.is_some())?;
                        source = Some((parse_store(&ctx, b, SOURCE_TYPES)?, b.pos));
                    }
                    "storage_destination" => {
                        once(&ctx, b, destination.is_some())?;
                        destination = Some((parse_store(&ctx, b, DESTINATION_TYPES)?, b.pos));
                    }
                    "storage" => {
                        return Err(ctx.err(
                            b.pos,
                            "a migration file has no storage block".into(),
                            "name the store to copy from storage_source \"file\" { ... } and the store to copy into storage_destination \"raft\" { ... }",
                        ));
                    }
                    other => {
                        return Err(ctx.err(
                            b.pos,
                            format!("unknown block {other:?} in a migration file"),
                            format!("remove it; supported blocks are {}", TOP_BLOCKS.join(", ")),
                        ));
                    }
                },
            }
        }
        let (source, _) = source.ok_or_else(|| {
            ctx.err(
                0,
                "no storage_source block".into(),
                "add storage_source \"file\" { path = \"/var/lib/sealkeep/data\" } naming the store to copy from",
            )
        })?;
        let (destination, destination_pos) = destination.ok_or_else(|| {
            ctx.err(
                0,
                "no storage_destination block".into(),
                "add storage_destination \"raft\" { path = \"/var/lib/sealkeep/raft\" node_id = \"vault-0\" } naming the empty store to copy into",
            )
        })?;
        if store_path(&source) == store_path(&destination) {
            return Err(ctx.err(
                destination_pos,
                format!(
                    "storage_destination has the same path as storage_source ({})",
                    store_path(&source).display()
                ),
                "copy into a new, empty directory: give storage_destination a path of its own",
            ));
        }
        Ok(Self {
            source,
            destination,
            cluster_addr: cluster_addr.unwrap_or_else(|| DEFAULT_MIGRATE_CLUSTER_ADDR.to_owned()),
            api_addr,
        })
    }
}

fn once(ctx: &Ctx<'_>, b: &Block, seen: bool) -> Result<(), ConfigError> {
    if seen {
        return Err(ctx.err(
            b.pos,
            format!("more than one {} block", b.ident),
            format!(
                "keep exactly one {} block: a migration copies one store into one other",
                b.ident
            ),
        ));
    }
    Ok(())
}

/// One `storage_source` or `storage_destination` block, parsed as the server's `storage`.
fn parse_store(ctx: &Ctx<'_>, b: &Block, types: &[&str]) -> Result<StorageConfig, ConfigError> {
    single_label(ctx, b, &b.ident, types)?;
    let store = parse_storage(ctx, b, &NoEnv)?;
    if let StorageConfig::Raft(r) = &store {
        if b.ident == "storage_destination" && r.node_id.is_none() {
            return Err(ctx.err(
                b.pos,
                "storage_destination \"raft\" needs node_id".into(),
                "add node_id = \"vault-0\": the node's name in its cluster (the pod name), which the server that runs on this storage must use too",
            ));
        }
        if !r.retry_join.is_empty() {
            return Err(ctx.err(
                b.pos,
                format!("retry_join has no meaning in {}", b.ident),
                "remove the retry_join stanzas: a migration works on one node's storage, offline; the other nodes join after the server starts on it",
            ));
        }
    }
    Ok(store)
}

/// The directory of a `file` or `raft` store (the types allowed here all have one).
fn store_path(store: &StorageConfig) -> &Path {
    match store {
        StorageConfig::File { path } => path,
        StorageConfig::Raft(r) => &r.path,
        StorageConfig::Inmem => Path::new(""),
    }
}

/// Addresses go into the raft membership entry that other nodes dial: a URL with a host.
fn check_addr(ctx: &Ctx<'_>, pos: usize, key: &str, value: &str) -> Result<(), ConfigError> {
    let host = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or("");
    if host.is_empty() || host.starts_with('/') || host.contains(char::is_whitespace) {
        return Err(ctx.err(
            pos,
            format!("{key} {value:?} is not an http(s) URL with a host"),
            format!("write {key} = \"https://HOST:PORT\" (the address other nodes dial)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
