//! Server configuration: the `storage "file" | "inmem" | "raft"` block, with Vault's raft
//! settings (`path`, `node_id`, `performance_multiplier`, `retry_join { ... }` stanzas) and
//! Vault's environment overrides (`VAULT_RAFT_PATH`, `VAULT_RAFT_NODE_ID`). Pure.

use std::path::PathBuf;

use super::hcl::{Ctx, attributes, single_label};
use super::hcl1::{Block, Body, Item, Value};
use super::{ConfigError, Env, RaftConfig, RetryJoin, StorageConfig};

/// The raft settings we accept. Vault's others (`trailing_logs`, `snapshot_threshold`, ...)
/// are refused by name rather than silently ignored.
const RAFT_KEYS: &[&str] = &["path", "node_id", "performance_multiplier"];
const RETRY_JOIN_KEYS: &[&str] = &[
    "leader_api_addr",
    "leader_tls_servername",
    "leader_ca_cert_file",
];
/// Vault's fastest setting; Sealkeep's default (Vault's own default is 5).
pub const DEFAULT_PERFORMANCE_MULTIPLIER: u32 = 1;
/// Vault's largest accepted `performance_multiplier`.
pub const MAX_PERFORMANCE_MULTIPLIER: u32 = 10;

pub(super) fn parse_storage(
    ctx: &Ctx<'_>,
    b: &Block,
    env: &dyn Env,
) -> Result<StorageConfig, ConfigError> {
    match single_label(ctx, b, "storage", &["file", "inmem", "raft"])? {
        "file" => {
            let attrs = attributes(ctx, &b.body, "storage \"file\"", &["path"])?;
            let path = attrs
                .first()
                .map(|a| ctx.string(a))
                .transpose()?
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    ctx.err(
                        b.pos,
                        "storage \"file\" needs a path".into(),
                        "add path = \"/var/lib/sealkeep/data\"",
                    )
                })?;
            Ok(StorageConfig::File {
                path: PathBuf::from(path),
            })
        }
        "raft" => parse_raft(ctx, b, env).map(StorageConfig::Raft),
        _ => {
            attributes(ctx, &b.body, "storage \"inmem\"", &[])?;
            Ok(StorageConfig::Inmem)
        }
    }
}

fn parse_raft(ctx: &Ctx<'_>, b: &Block, env: &dyn Env) -> Result<RaftConfig, ConfigError> {
    let (settings, joins) = split_retry_join(ctx, &b.body)?;
    let attrs = attributes(ctx, &settings, "storage \"raft\"", RAFT_KEYS)?;
    let mut path = None;
    let mut node_id = None;
    let mut multiplier = DEFAULT_PERFORMANCE_MULTIPLIER;
    for a in attrs {
        match a.key.as_str() {
            "path" => path = Some(ctx.string(a)?).filter(|p| !p.is_empty()),
            "node_id" => node_id = Some(ctx.string(a)?).filter(|n| !n.is_empty()),
            "performance_multiplier" => {
                let n = ctx.uint(a)?;
                if n > u64::from(MAX_PERFORMANCE_MULTIPLIER) {
                    return Err(ctx.err(
                        a.pos,
                        format!("performance_multiplier {n} is above {MAX_PERFORMANCE_MULTIPLIER}"),
                        "use 1 (fastest failover, the default) up to 10 (most tolerant of a slow machine)",
                    ));
                }
                // As Vault: 0 means the default.
                multiplier = u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or(DEFAULT_PERFORMANCE_MULTIPLIER);
            }
            _ => unreachable!("filtered by RAFT_KEYS"),
        }
    }
    // Vault's overrides: the environment wins over the file.
    let path = env.var("VAULT_RAFT_PATH").or(path).ok_or_else(|| {
        ctx.err(
            b.pos,
            "storage \"raft\" needs a path".into(),
            "add path = \"/var/lib/sealkeep/raft\" (or set VAULT_RAFT_PATH)",
        )
    })?;
    let node_id = env.var("VAULT_RAFT_NODE_ID").or(node_id);
    if let Some(id) = &node_id {
        check_node_id(ctx, b.pos, id)?;
    }
    let retry_join = joins
        .into_iter()
        .map(|(body, pos)| parse_retry_join(ctx, body, pos))
        .collect::<Result<_, _>>()?;
    Ok(RaftConfig {
        path: PathBuf::from(path),
        node_id,
        performance_multiplier: multiplier,
        retry_join,
    })
}

/// A node name travels in membership entries and log lines: keep it printable and short.
fn check_node_id(ctx: &Ctx<'_>, pos: usize, id: &str) -> Result<(), ConfigError> {
    let ok = id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ctx.err(
            pos,
            format!("raft node_id {id:?} is not a valid node name"),
            "use at most 128 letters, digits, '-', '_' or '.' (the pod name, for example)",
        ))
    }
}

/// The body of each `retry_join` stanza, with its position.
type RetryJoins<'b> = Vec<(&'b Body, usize)>;

/// Separates the `retry_join` stanzas (blocks, or `retry_join = { ... }`) from the settings.
fn split_retry_join<'b>(
    ctx: &Ctx<'_>,
    body: &'b Body,
) -> Result<(Body, RetryJoins<'b>), ConfigError> {
    let mut rest = Vec::with_capacity(body.items.len());
    let mut joins = Vec::new();
    for item in &body.items {
        match item {
            Item::Block(b) if b.ident == "retry_join" => {
                if !b.labels.is_empty() {
                    return Err(ctx.err(
                        b.pos,
                        "a retry_join block takes no label".into(),
                        "write retry_join { leader_api_addr = \"https://NAME-0.NAME-internal:8200\" }",
                    ));
                }
                joins.push((&b.body, b.pos));
            }
            Item::Attr(a) if a.key == "retry_join" => match &a.value {
                Value::Object(o) => joins.push((o, a.pos)),
                other => return Err(ctx.type_err(a, "a block { ... }", other)),
            },
            _ => rest.push(item.clone()),
        }
    }
    Ok((Body { items: rest }, joins))
}

fn parse_retry_join(ctx: &Ctx<'_>, body: &Body, pos: usize) -> Result<RetryJoin, ConfigError> {
    if let Some(Item::Attr(a)) = body
        .items
        .iter()
        .find(|i| matches!(i, Item::Attr(a) if a.key == "auto_join"))
    {
        return Err(ctx.err(
            a.pos,
            "retry_join auto_join (cloud auto-discovery) is not supported".into(),
            "list each node with its own retry_join { leader_api_addr = \"...\" } stanza",
        ));
    }
    let attrs = attributes(ctx, body, "retry_join", RETRY_JOIN_KEYS)?;
    let mut join = RetryJoin {
        leader_api_addr: String::new(),
        leader_tls_servername: None,
        leader_ca_cert_file: None,
    };
    for a in attrs {
        match a.key.as_str() {
            "leader_api_addr" => join.leader_api_addr = ctx.string(a)?,
            "leader_tls_servername" => join.leader_tls_servername = Some(ctx.string(a)?),
            "leader_ca_cert_file" => join.leader_ca_cert_file = Some(PathBuf::from(ctx.string(a)?)),
            _ => unreachable!("filtered by RETRY_JOIN_KEYS"),
        }
    }
    let addr = join.leader_api_addr.as_str();
    let scheme_ok = addr.starts_with("http://") || addr.starts_with("https://");
    if !scheme_ok || addr.len() <= "https://".len() {
        return Err(ctx.err(
            pos,
            format!("retry_join leader_api_addr {addr:?} is not an http(s) URL"),
            "write leader_api_addr = \"https://NAME-0.NAME-internal.NS.svc.cluster.local:8200\"",
        ));
    }
    Ok(join)
}

#[cfg(test)]
mod tests;
