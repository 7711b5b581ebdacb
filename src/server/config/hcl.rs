//! Server configuration: walks the HCL syntax tree (see [`super::hcl1`]) into the typed config,
//! so every error can name the file, the line and the fix. Pure.

use std::collections::HashSet;
use std::time::Duration;

use super::hcl1::{self, Attr as Attribute, Block, Body, Item, Value};

use super::listener::parse_listener;
use super::seal::{awskms_from_env, parse_seal};
use super::storage::parse_storage;
use super::{
    DEFAULT_MAX_BACKOFF, Env, LogLevel, ReadCacheConfig, SealConfig, ServerConfig, StorageConfig,
};
use crate::server::physical::{DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE};
use crate::telemetry::LogFormat;

/// A configuration error that names where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}; {fix}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub fix: String,
}

/// One-based line and column of a byte offset.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut end = pos.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count() + 1, |i| before[i..].chars().count());
    (line, column)
}

pub(super) struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, pos: usize, message: String, fix: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, pos);
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message,
            fix: fix.into(),
        }
    }

    pub(super) fn string(&self, attr: &Attribute) -> Result<String, ConfigError> {
        match &attr.value {
            Value::Str(s) => Ok(s.clone()),
            other => Err(self.type_err(attr, "a string", other)),
        }
    }

    /// Vault accepts `true`, `1`, `"true"` and `"1"` for boolean settings.
    pub(super) fn boolean(&self, attr: &Attribute) -> Result<bool, ConfigError> {
        let parsed = match &attr.value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_str() {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            },
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.ok_or_else(|| self.type_err(attr, "a boolean (true, false, 1 or 0)", &attr.value))
    }

    pub(super) fn uint(&self, attr: &Attribute) -> Result<u64, ConfigError> {
        match &attr.value {
            Value::Number(n) | Value::Str(n) => n.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| self.type_err(attr, "a non-negative integer", &attr.value))
    }

    pub(super) fn duration(&self, attr: &Attribute) -> Result<Duration, ConfigError> {
        // As Vault's parseutil.ParseDurationSecond: a bare number (or numeric string) is seconds.
        match &attr.value {
            Value::Str(s) => s
                .trim()
                .parse()
                .ok()
                .map(Duration::from_secs)
                .or_else(|| humantime::parse_duration(s.trim()).ok()),
            Value::Number(n) => n.parse().ok().map(Duration::from_secs),
            _ => None,
        }
        .ok_or_else(|| self.type_err(attr, "a duration such as \"10s\" or \"1m\"", &attr.value))
    }

    pub(super) fn type_err(&self, attr: &Attribute, want: &str, got: &Value) -> ConfigError {
        let kind = got.kind();
        self.err(
            attr.pos,
            format!("{:?} must be {want}, but it is {kind}", attr.key),
            format!("write {} = <{want}>", attr.key),
        )
    }
}

/// Returns the attributes of a block body, rejecting nested blocks and unknown or repeated keys.
pub(super) fn attributes<'b>(
    ctx: &Ctx<'_>,
    body: &'b Body,
    where_: &str,
    known: &[&str],
) -> Result<Vec<&'b Attribute>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in &body.items {
        match s {
            Item::Block(b) => {
                return Err(ctx.err(
                    b.pos,
                    format!("unexpected block {:?} inside {where_}", b.ident),
                    format!(
                        "remove it; {where_} takes only the settings {}",
                        known.join(", ")
                    ),
                ));
            }
            Item::Attr(a) => {
                let key = a.key.as_str();
                if !known.contains(&key) {
                    return Err(ctx.err(
                        a.pos,
                        format!("unknown setting {key:?} in {where_}"),
                        format!("remove it or use one of: {}", known.join(", ")),
                    ));
                }
                if !seen.insert(key) {
                    return Err(ctx.err(
                        a.pos,
                        format!("{key:?} is set twice in {where_}"),
                        "keep only one",
                    ));
                }
                out.push(a);
            }
        }
    }
    Ok(out)
}

pub(super) fn single_label<'b>(
    ctx: &Ctx<'_>,
    block: &'b Block,
    what: &str,
    allowed: &[&str],
) -> Result<&'b str, ConfigError> {
    let fix = format!(
        "write {what} \"TYPE\" {{ ... }} with TYPE one of: {}",
        allowed.join(", ")
    );
    match block.labels.as_slice() {
        [label] => {
            let l = label.as_str();
            if allowed.contains(&l) {
                Ok(l)
            } else {
                Err(ctx.err(block.pos, format!("unsupported {what} type {l:?}"), fix))
            }
        }
        _ => Err(ctx.err(
            block.pos,
            format!("{what} block needs exactly one type label"),
            fix,
        )),
    }
}

const TOP_KEYS: &[&str] = &[
    "api_addr",
    "cluster_addr",
    "cluster_name",
    "log_level",
    "log_format",
    "disable_mlock",
    "ui",
    "cache_size",
    "cache_size_bytes",
    "disable_cache",
];
const TOP_BLOCKS: &[&str] = &["storage", "listener", "seal"];

/// Parses `text` into its syntax tree and the context that locates its errors.
pub(super) fn parse_tree<'a>(file: &'a str, text: &'a str) -> Result<(Ctx<'a>, Body), ConfigError> {
    let body = hcl1::parse(text).map_err(|e| {
        let (line, column) = line_col(text, e.pos);
        let near = text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim();
        ConfigError {
            file: file.to_owned(),
            line,
            column,
            message: format!("HCL syntax error: {}", e.message),
            fix: format!("fix the syntax on line {line}: {near}"),
        }
    })?;
    Ok((Ctx { file, text }, body))
}

pub(super) fn parse(file: &str, text: &str, env: &dyn Env) -> Result<ServerConfig, ConfigError> {
    let (ctx, body) = parse_tree(file, text)?;

    let mut storage: Option<StorageConfig> = None;
    let mut listeners = Vec::new();
    let mut seal: Option<SealConfig> = None;
    let mut cfg = ServerConfig {
        storage: StorageConfig::Inmem,
        listeners: Vec::new(),
        seal: SealConfig::Shamir,
        api_addr: None,
        cluster_addr: None,
        cluster_name: None,
        log_level: None,
        log_format: None,
        read_cache: None,
    };
    let mut cache = ReadCacheConfig::default();
    let mut disable_cache = false;
    let mut seen = HashSet::new();

    for s in &body.items {
        match s {
            Item::Attr(a) => {
                let key = a.key.as_str();
                if !TOP_KEYS.contains(&key) {
                    return Err(ctx.err(
                        a.pos,
                        format!("unknown top-level setting {key:?}"),
                        format!(
                            "remove it; supported settings are {} and the blocks {}",
                            TOP_KEYS.join(", "),
                            TOP_BLOCKS.join(", ")
                        ),
                    ));
                }
                if !seen.insert(key) {
                    return Err(ctx.err(a.pos, format!("{key:?} is set twice"), "keep only one"));
                }
                match key {
                    "api_addr" => cfg.api_addr = Some(ctx.string(a)?),
                    "cluster_addr" => cfg.cluster_addr = Some(ctx.string(a)?),
                    "cluster_name" => cfg.cluster_name = Some(ctx.string(a)?),
                    "log_level" => {
                        let v = ctx.string(a)?;
                        cfg.log_level = Some(LogLevel::parse(&v).ok_or_else(|| {
                            ctx.err(
                                a.pos,
                                format!("unknown log_level {v:?}"),
                                "use one of trace, debug, info, warn, error",
                            )
                        })?);
                    }
                    "log_format" => {
                        let v = ctx.string(a)?;
                        cfg.log_format = Some(match v.as_str() {
                            "standard" | "text" => LogFormat::Text,
                            "json" => LogFormat::Json,
                            _ => {
                                return Err(ctx.err(
                                    a.pos,
                                    format!("unknown log_format {v:?}"),
                                    "use \"standard\" or \"json\"",
                                ));
                            }
                        });
                    }
                    // Vault's semantics: a number of entries, 0 meaning the default.
                    "cache_size" => {
                        let n = usize::try_from(ctx.uint(a)?).unwrap_or(usize::MAX);
                        cache.entries = if n == 0 { DEFAULT_CACHE_SIZE } else { n };
                    }
                    // A Sealkeep extension, with the same rule: 0 means the default.
                    "cache_size_bytes" => {
                        let n = ctx.uint(a)?;
                        cache.bytes = if n == 0 { DEFAULT_CACHE_BYTES } else { n };
                    }
                    "disable_cache" => disable_cache = ctx.boolean(a)?,
                    // Accepted for compatibility with Vault configs; they change nothing here.
                    "disable_mlock" | "ui" => {
                        ctx.boolean(a)?;
                    }
                    _ => unreachable!("filtered by TOP_KEYS"),
                }
            }
            Item::Block(b) => match b.ident.as_str() {
                "storage" => {
                    if storage.is_some() {
                        return Err(ctx.err(
                            b.pos,
                            "more than one storage block".into(),
                            "keep exactly one storage block",
                        ));
                    }
                    storage = Some(parse_storage(&ctx, b, env)?);
                }
                "listener" => listeners.push(parse_listener(&ctx, b)?),
                "seal" => {
                    if seal.is_some() {
                        return Err(ctx.err(
                            b.pos,
                            "more than one seal block".into(),
                            "keep one seal block (seal migration is not supported)",
                        ));
                    }
                    seal = Some(parse_seal(&ctx, b, env)?);
                }
                other => {
                    return Err(ctx.err(
                        b.pos,
                        format!("unknown block {other:?}"),
                        format!("remove it; supported blocks are {}", TOP_BLOCKS.join(", ")),
                    ));
                }
            },
        }
    }

    cfg.storage = storage.ok_or_else(|| {
        ctx.err(
            0,
            "no storage block".into(),
            "add storage \"file\" { path = \"/var/lib/sealkeep/data\" } (or storage \"inmem\" {} for tests)",
        )
    })?;
    if listeners.is_empty() {
        return Err(ctx.err(
            0,
            "no listener block".into(),
            "add listener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = 1 }",
        ));
    }
    cfg.listeners = listeners;
    cfg.seal = match seal {
        Some(s) => s,
        None if env.var("VAULT_SEAL_TYPE").as_deref() == Some("awskms")
            || env.var("SEALKEEP_SEAL_TYPE").as_deref() == Some("awskms") =>
        {
            SealConfig::AwsKms(awskms_from_env(
                &ctx,
                None,
                None,
                None,
                DEFAULT_MAX_BACKOFF,
                env,
            )?)
        }
        None => SealConfig::Shamir,
    };
    cfg.read_cache = (!disable_cache).then_some(cache);
    // Vault's overrides: the environment wins over the file.
    if let Some(v) = env.var("VAULT_API_ADDR") {
        cfg.api_addr = Some(v);
    }
    if let Some(v) = env.var("VAULT_CLUSTER_ADDR") {
        cfg.cluster_addr = Some(v);
    }
    if matches!(cfg.storage, StorageConfig::Raft(_)) {
        raft_addresses(&ctx, &mut cfg)?;
    }
    Ok(cfg)
}

/// Raft needs the addresses other nodes dial: `api_addr` (joins, redirects) and `cluster_addr`
/// (raft RPCs, forwarding). Unset, they default to the first listener's addresses unless it
/// listens on every interface, where no one address is right.
fn raft_addresses(ctx: &Ctx<'_>, cfg: &mut ServerConfig) -> Result<(), ConfigError> {
    let Some(l) = cfg.listeners.first() else {
        return Ok(());
    };
    let scheme = if l.tls.is_some() { "https" } else { "http" };
    if cfg.api_addr.is_none() {
        if l.address.ip().is_unspecified() {
            return Err(ctx.err(
                0,
                format!("storage \"raft\" needs api_addr: the listener listens on {}, which other nodes cannot dial", l.address),
                "set api_addr = \"https://NAME-0.NAME-internal.NS.svc.cluster.local:8200\" (or VAULT_API_ADDR)",
            ));
        }
        cfg.api_addr = Some(format!("{scheme}://{}", l.address));
    }
    if cfg.cluster_addr.is_none() {
        if l.cluster_address.ip().is_unspecified() {
            return Err(ctx.err(
                0,
                format!("storage \"raft\" needs cluster_addr: the cluster port listens on {}, which other nodes cannot dial", l.cluster_address),
                "set cluster_addr = \"https://NAME-0.NAME-internal.NS.svc.cluster.local:8201\" (or VAULT_CLUSTER_ADDR)",
            ));
        }
        cfg.cluster_addr = Some(format!("https://{}", l.cluster_address));
    }
    Ok(())
}
