//! Core layer: the parser of Vault's ACL policy language (HCL1, or its JSON form) into path
//! rules. Pure. Every error names the line and column, the cause and the fix.
//!
//! Accepted, as Vault does: `path "PATTERN" { capabilities = [...] }` blocks (also the
//! `path = { "PATTERN" = { ... } }` and JSON forms), the legacy `policy = "read"` shorthand
//! (deny, read, write, sudo), `comment`, `subscribe_event_types` (no effect here), a top-level
//! `name`, templated patterns (`{{identity...}}`, which never match because this server has
//! no identities). Refused, where Vault would accept: the parameter and wrapping constraints
//! (`allowed_parameters`, `denied_parameters`, `required_parameters`, `min_wrapping_ttl`,
//! `max_wrapping_ttl`, `mfa_methods`, `control_group`), because this server does not enforce
//! them and ignoring them would grant more than the policy says; `*` anywhere but at the end
//! and `+` inside a segment (`a/+b`), which Vault takes literally but are almost always typos.

use super::{CAPABILITY_NAMES, CapSet, Capability};
use crate::server::config::hcl1::{self, Attr, Block, Body, Item, Value};

mod json;

/// One `path` block, with its pattern normalized (one leading `/` removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub pattern: String,
    pub caps: CapSet,
    /// The pattern uses identity templating, which never resolves on this server.
    pub templated: bool,
}

/// A parsed policy: its rules in source order (duplicates are merged when an ACL is built).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<PathRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse policy: line {line}, column {column}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("{0}")]
    Syntax(String),
    #[error("unknown capability {0:?}; use one of {CAPABILITY_NAMES}")]
    UnknownCapability(String),
    #[error(
        "invalid policy {0:?}; use one of deny, read, write, sudo, or a capabilities list instead"
    )]
    UnknownLegacyPolicy(String),
    #[error(
        "unknown setting {key:?} in path {pattern:?}; a path block takes capabilities (and the legacy policy, comment)"
    )]
    UnknownPathKey { pattern: String, key: String },
    #[error(
        "{key:?} in path {pattern:?} is not enforced by this server; remove it (ignoring it would grant more than the policy says)"
    )]
    UnsupportedPathKey { pattern: String, key: String },
    #[error(
        "unknown top-level setting {0:?}; a policy holds only path \"PATTERN\" {{ capabilities = [...] }} blocks"
    )]
    UnknownTopLevel(String),
    #[error("invalid path {pattern:?}: {reason}")]
    InvalidPath {
        pattern: String,
        reason: &'static str,
    },
    #[error("{key:?} must be {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{key:?} is set twice in path {pattern:?}; merge the values into one")]
    Duplicate { pattern: String, key: String },
    #[error(
        "a path block needs exactly one quoted pattern, as in path \"secret/data/*\" {{ capabilities = [\"read\"] }}"
    )]
    PathLabel,
}

/// Path-block settings Vault enforces and this server does not.
const UNSUPPORTED_KEYS: [&str; 7] = [
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
];

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

fn err(src: &str, pos: usize, kind: ParseErrorKind) -> ParseError {
    let (line, column) = line_col(src, pos);
    ParseError { line, column, kind }
}

/// Parses a policy document (HCL1, or JSON when it starts with `{`) of at most
/// [`hcl1::MAX_LEN`] bytes and [`hcl1::MAX_DEPTH`] levels of nesting, in either form.
pub fn parse(src: &str) -> Result<Policy, ParseError> {
    if src.len() > hcl1::MAX_LEN {
        let kind = ParseErrorKind::Syntax(hcl1::too_long(src.len()));
        return Err(err(src, hcl1::MAX_LEN, kind));
    }
    let body = if src.trim_start().starts_with('{') {
        json::body(src)?
    } else {
        hcl1::parse(src).map_err(|e| err(src, e.pos, ParseErrorKind::Syntax(e.message)))?
    };
    let mut rules = Vec::new();
    for item in &body.items {
        match item {
            Item::Block(b) if b.ident == "path" => {
                let [label] = b.labels.as_slice() else {
                    return Err(err(src, b.pos, ParseErrorKind::PathLabel));
                };
                rules.push(rule(src, label, &b.body, b.pos)?);
            }
            Item::Attr(a) if a.key == "path" => path_attr(src, &a.value, a.pos, &mut rules)?,
            // Vault accepts a top-level name and ignores it.
            Item::Attr(a) if a.key == "name" => {}
            Item::Attr(Attr { key, pos, .. })
            | Item::Block(Block {
                ident: key, pos, ..
            }) => {
                return Err(err(src, *pos, ParseErrorKind::UnknownTopLevel(key.clone())));
            }
        }
    }
    Ok(Policy { rules })
}

/// `path = { "PATTERN" = { ... } }`, or a list of such objects (the JSON form).
fn path_attr(
    src: &str,
    value: &Value,
    pos: usize,
    rules: &mut Vec<PathRule>,
) -> Result<(), ParseError> {
    match value {
        Value::Object(body) => {
            for item in &body.items {
                match item {
                    Item::Attr(Attr {
                        key,
                        value: Value::Object(inner),
                        pos,
                    }) => rules.push(rule(src, key, inner, *pos)?),
                    Item::Block(b) if b.labels.is_empty() => {
                        rules.push(rule(src, &b.ident, &b.body, b.pos)?);
                    }
                    Item::Attr(a) => {
                        return Err(wrong_type(src, &a.key, a.pos, "a block", &a.value));
                    }
                    Item::Block(b) => return Err(err(src, b.pos, ParseErrorKind::PathLabel)),
                }
            }
            Ok(())
        }
        Value::List(values) => values
            .iter()
            .try_for_each(|v| path_attr(src, v, pos, rules)),
        other => Err(wrong_type(src, "path", pos, "a block", other)),
    }
}

fn wrong_type(
    src: &str,
    key: &str,
    pos: usize,
    expected: &'static str,
    found: &Value,
) -> ParseError {
    err(
        src,
        pos,
        ParseErrorKind::WrongType {
            key: key.to_owned(),
            expected,
            found: found.kind(),
        },
    )
}

/// Checks and normalizes a pattern; the error is the reason, to be wrapped with the position.
pub fn normalize_pattern(raw: &str) -> Result<String, &'static str> {
    let p = raw.strip_prefix('/').unwrap_or(raw);
    if p.is_empty() {
        return Err(
            "the pattern is empty; name a path such as \"secret/data/app\", or \"*\" for every path",
        );
    }
    if p.chars().any(char::is_control) {
        return Err("it contains a control character; remove it");
    }
    // Vault takes these literally, but request paths never have an empty segment, so such a
    // rule could never match: a deny written this way would silently deny nothing.
    if p.starts_with('/') || p.contains("//") {
        return Err(
            "it has an empty segment ('//'), which no request path has, so it could never match; remove the extra '/'",
        );
    }
    if p.contains("+*") {
        return Err(
            "'+*' is forbidden; use \"+\" for one whole segment, or put '*' after literal text",
        );
    }
    if p.find('*').is_some_and(|i| i + 1 != p.len()) {
        return Err(
            "'*' may only be the last character; use \"+\" to match one path segment, as in \"secret/+/config\"",
        );
    }
    if p.split('/').any(|s| s.starts_with('+') && s != "+") {
        return Err("'+' must be a whole path segment, as in \"secret/+/config\"");
    }
    if let Some(open) = p.find("{{")
        && !p[open..].contains("}}")
    {
        return Err("a {{ template is not closed with }}");
    }
    Ok(p.to_owned())
}

fn rule(src: &str, raw: &str, body: &Body, pos: usize) -> Result<PathRule, ParseError> {
    let pattern = normalize_pattern(raw).map_err(|reason| {
        err(
            src,
            pos,
            ParseErrorKind::InvalidPath {
                pattern: raw.to_owned(),
                reason,
            },
        )
    })?;
    let mut caps = CapSet::default();
    let mut seen: Vec<&str> = Vec::new();
    for item in &body.items {
        let (key, pos, value) = match item {
            Item::Attr(a) => (a.key.as_str(), a.pos, Some(&a.value)),
            Item::Block(b) => (b.ident.as_str(), b.pos, None),
        };
        if seen.contains(&key) {
            return Err(err(
                src,
                pos,
                ParseErrorKind::Duplicate {
                    pattern: raw.to_owned(),
                    key: key.to_owned(),
                },
            ));
        }
        seen.push(key);
        match key {
            "capabilities" => {
                let Some(Value::List(values)) = value else {
                    return Err(type_err(src, key, pos, "a list of strings", value));
                };
                for v in values {
                    let Value::Str(name) = v else {
                        return Err(type_err(src, key, pos, "a list of strings", Some(v)));
                    };
                    let cap = Capability::from_name(name).ok_or_else(|| {
                        err(src, pos, ParseErrorKind::UnknownCapability(name.clone()))
                    })?;
                    caps.insert(cap);
                }
            }
            "policy" => {
                let Some(Value::Str(name)) = value else {
                    return Err(type_err(src, key, pos, "a string", value));
                };
                for cap in legacy(name).ok_or_else(|| {
                    err(src, pos, ParseErrorKind::UnknownLegacyPolicy(name.clone()))
                })? {
                    caps.insert(*cap);
                }
            }
            "comment" | "subscribe_event_types" => {}
            k if UNSUPPORTED_KEYS.contains(&k) => {
                return Err(err(
                    src,
                    pos,
                    ParseErrorKind::UnsupportedPathKey {
                        pattern: raw.to_owned(),
                        key: k.to_owned(),
                    },
                ));
            }
            k => {
                return Err(err(
                    src,
                    pos,
                    ParseErrorKind::UnknownPathKey {
                        pattern: raw.to_owned(),
                        key: k.to_owned(),
                    },
                ));
            }
        }
    }
    Ok(PathRule {
        templated: pattern.contains("{{"),
        pattern,
        caps,
    })
}

fn type_err(
    src: &str,
    key: &str,
    pos: usize,
    expected: &'static str,
    found: Option<&Value>,
) -> ParseError {
    err(
        src,
        pos,
        ParseErrorKind::WrongType {
            key: key.to_owned(),
            expected,
            found: found.map_or("a block", Value::kind),
        },
    )
}

/// Vault's mapping of the pre-0.5 `policy = "..."` shorthand.
fn legacy(name: &str) -> Option<&'static [Capability]> {
    use Capability::{Create, Delete, Deny, List, Read, Sudo, Update};
    match name {
        "deny" => Some(&[Deny]),
        "read" => Some(&[Read, List]),
        "write" => Some(&[Create, Read, Update, Delete, List]),
        "sudo" => Some(&[Create, Read, Update, Delete, List, Sudo]),
        _ => None,
    }
}
