//! Server configuration: the `listener "tcp" { ... }` block (address, TLS, Vault's HTTP
//! timeouts, `max_connections`, and Vault's `telemetry { unauthenticated_metrics_access }`
//! sub-block). Pure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::hcl::{Ctx, attributes, single_label};
use super::hcl1::{Block, Body, Item, Value};
use super::{
    ConfigError, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST_SIZE, HttpTimeouts, ListenerConfig,
    TlsConfig,
};

const LISTENER_KEYS: &[&str] = &[
    "address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "max_request_size",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_write_timeout",
    "http_idle_timeout",
    "max_connections",
    "cluster_address",
];
const TELEMETRY_KEYS: &[&str] = &["unauthenticated_metrics_access"];

pub(super) fn parse_listener(ctx: &Ctx<'_>, b: &Block) -> Result<ListenerConfig, ConfigError> {
    single_label(ctx, b, "listener", &["tcp"])?;
    let (settings, telemetry) = split_telemetry(ctx, &b.body)?;
    let attrs = attributes(ctx, &settings, "listener \"tcp\"", LISTENER_KEYS)?;
    let mut cfg = ListenerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 8200)));
    let mut tls_disable = false;
    let mut cluster_address = None;
    let mut cert = None;
    let mut key = None;
    let defaults = HttpTimeouts::default();
    for a in attrs {
        match a.key.as_str() {
            "address" => {
                let v = ctx.string(a)?;
                cfg.address = v.parse().map_err(|_| {
                    ctx.err(
                        a.pos,
                        format!("address {v:?} is not an IP:port"),
                        "write address = \"0.0.0.0:8200\" (an IP address and a port)",
                    )
                })?;
            }
            "cluster_address" => {
                let v = ctx.string(a)?;
                cluster_address = Some(v.parse().map_err(|_| {
                    ctx.err(
                        a.pos,
                        format!("cluster_address {v:?} is not an IP:port"),
                        "write cluster_address = \"0.0.0.0:8201\" (an IP address and a port)",
                    )
                })?);
            }
            "tls_disable" => tls_disable = ctx.boolean(a)?,
            "tls_cert_file" => cert = Some((PathBuf::from(ctx.string(a)?), a.pos)),
            "tls_key_file" => key = Some((PathBuf::from(ctx.string(a)?), a.pos)),
            "max_request_size" => {
                cfg.max_request_size = usize::try_from(ctx.uint(a)?).unwrap_or(usize::MAX);
                if cfg.max_request_size == 0 {
                    cfg.max_request_size = DEFAULT_MAX_REQUEST_SIZE;
                }
            }
            // As Vault: zero (or unset) keeps the default; the write timeout defaults to none.
            "http_read_header_timeout" => {
                cfg.timeouts.read_header =
                    nonzero(ctx.duration(a)?).unwrap_or(defaults.read_header);
            }
            "http_read_timeout" => {
                cfg.timeouts.read = nonzero(ctx.duration(a)?).unwrap_or(defaults.read);
            }
            "http_write_timeout" => cfg.timeouts.write = nonzero(ctx.duration(a)?),
            "http_idle_timeout" => {
                cfg.timeouts.idle = nonzero(ctx.duration(a)?).unwrap_or(defaults.idle);
            }
            "max_connections" => {
                let n = usize::try_from(ctx.uint(a)?).unwrap_or(usize::MAX);
                // Tokio's semaphore holds at most usize::MAX >> 3 permits.
                cfg.max_connections = if n == 0 {
                    DEFAULT_MAX_CONNECTIONS
                } else {
                    n.min(1 << 24)
                };
            }
            _ => unreachable!("filtered by attributes()"),
        }
    }
    if let Some(t) = telemetry {
        for a in attributes(ctx, t, "the listener's telemetry block", TELEMETRY_KEYS)? {
            cfg.unauthenticated_metrics_access = ctx.boolean(a)?;
        }
    }
    cfg.tls = if tls_disable {
        None
    } else {
        match (cert, key) {
            (Some((cert_file, _)), Some((key_file, _))) => Some(TlsConfig {
                cert_file,
                key_file,
            }),
            (Some((_, pos)), None) | (None, Some((_, pos))) => {
                return Err(ctx.err(
                    pos,
                    "TLS needs both tls_cert_file and tls_key_file".into(),
                    "set both, or set tls_disable = 1",
                ));
            }
            (None, None) => {
                return Err(ctx.err(
                    b.pos,
                    "listener \"tcp\" has TLS enabled but no certificate".into(),
                    "set tls_cert_file and tls_key_file, or tls_disable = 1 for plain HTTP",
                ));
            }
        }
    };
    cfg.cluster_address =
        cluster_address.unwrap_or_else(|| super::default_cluster_address(cfg.address));
    Ok(cfg)
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Splits the listener body into its settings and its one `telemetry` block (written
/// `telemetry { ... }` or `telemetry = { ... }`, as HCL1 allows both).
fn split_telemetry<'b>(
    ctx: &Ctx<'_>,
    body: &'b Body,
) -> Result<(Body, Option<&'b Body>), ConfigError> {
    let mut rest = Vec::with_capacity(body.items.len());
    let mut telemetry: Option<&Body> = None;
    for item in &body.items {
        let found = match item {
            Item::Block(b) if b.ident == "telemetry" => {
                if !b.labels.is_empty() {
                    return Err(ctx.err(
                        b.pos,
                        "the listener's telemetry block takes no label".into(),
                        "write telemetry { unauthenticated_metrics_access = true }",
                    ));
                }
                Some((&b.body, b.pos))
            }
            Item::Attr(a) if a.key == "telemetry" => match &a.value {
                Value::Object(o) => Some((o, a.pos)),
                other => return Err(ctx.type_err(a, "a block { ... }", other)),
            },
            _ => None,
        };
        match found {
            Some((_, pos)) if telemetry.is_some() => {
                return Err(ctx.err(
                    pos,
                    "the listener has more than one telemetry block".into(),
                    "keep one telemetry { ... } block per listener",
                ));
            }
            Some((t, _)) => telemetry = Some(t),
            None => rest.push(item.clone()),
        }
    }
    Ok((Body { items: rest }, telemetry))
}
