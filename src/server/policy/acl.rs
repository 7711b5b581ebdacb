//! Core layer: an ACL compiled from a token's policies, and Vault's path matching. Pure.
//!
//! Patterns fall in three kinds, as in Vault's `acl.go`: exact (`secret/data/app`), prefix
//! (`secret/data/*`, only the longest matching prefix takes part), and segment wildcard (any
//! pattern with a whole `+` segment, optionally ending in `*`). An exact match wins outright.
//! Otherwise the candidates are ranked by, in order: the later position of the first `+` or
//! `*`; no trailing `*` over a trailing `*`; fewer `+` segments; the longer pattern; the
//! lexicographically larger pattern. A LIST request is checked against `path/`, and also
//! against `path` so patterns written without the trailing slash match (Vault 1.15+), with a
//! more specific `deny` still winning.

use std::collections::HashMap;

use super::{CapSet, Capability, Policy};

/// A rule whose pattern has a whole `+` segment.
#[derive(Debug, Clone)]
struct WildcardRule {
    /// Byte index of the first `+` in the pattern.
    first_wc: usize,
    is_prefix: bool,
    /// The pattern without its trailing `*`.
    body: String,
    segments: Vec<String>,
    wildcards: usize,
    caps: CapSet,
}

/// The compiled rules of a set of policies.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, CapSet>,
    /// Glob patterns keyed without their trailing `*`.
    prefix: HashMap<String, CapSet>,
    /// Keyed by the full pattern (with its `*`), so identical patterns merge.
    wildcard: HashMap<String, WildcardRule>,
}

/// A matching non-exact rule, with what ranks it.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    first: usize,
    is_prefix: bool,
    wildcards: usize,
    body: &'a str,
    caps: CapSet,
}

impl Candidate<'_> {
    /// Larger is higher priority (Vault's `less` ordering, reversed into a key).
    fn rank(&self) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
        (
            self.first,
            !self.is_prefix,
            std::cmp::Reverse(self.wildcards),
            self.body.len(),
            self.body,
        )
    }
}

fn has_segment_wildcard(pattern: &str) -> bool {
    pattern == "+" || pattern.contains("/+") || pattern.starts_with("+/")
}

impl Acl {
    /// The ACL of the `root` policy: everything, `sudo` included.
    pub fn root() -> Self {
        Self {
            root: true,
            ..Self::default()
        }
    }

    /// Merges the rules of `policies` per identical pattern. Templated rules are skipped: they
    /// only resolve against an identity entity, which tokens here never have.
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut acl = Self::default();
        for rule in policies.into_iter().flat_map(|p| &p.rules) {
            if rule.templated {
                continue;
            }
            let pattern = rule.pattern.as_str();
            if has_segment_wildcard(pattern) {
                let is_prefix = pattern.ends_with('*');
                let body = pattern.strip_suffix('*').unwrap_or(pattern);
                let segments: Vec<String> = body.split('/').map(str::to_owned).collect();
                acl.wildcard
                    .entry(pattern.to_owned())
                    .and_modify(|w| w.caps = w.caps.merge(rule.caps))
                    .or_insert_with(|| WildcardRule {
                        first_wc: pattern.find('+').unwrap_or(0),
                        is_prefix,
                        body: body.to_owned(),
                        wildcards: segments.iter().filter(|s| *s == "+").count(),
                        segments,
                        caps: rule.caps,
                    });
            } else if let Some(prefix) = pattern.strip_suffix('*') {
                let e = acl.prefix.entry(prefix.to_owned()).or_default();
                *e = e.merge(rule.caps);
            } else {
                let e = acl.exact.entry(pattern.to_owned()).or_default();
                *e = e.merge(rule.caps);
            }
        }
        acl
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Whether the ACL grants `cap` on `path`. Asking for `deny` is never granted.
    pub fn allows(&self, path: &str, cap: Capability) -> bool {
        if self.root {
            return cap != Capability::Deny;
        }
        if cap == Capability::Deny {
            return false;
        }
        let caps = if cap == Capability::List && !path.ends_with('/') {
            self.lookup(&format!("{path}/"), true)
        } else {
            self.lookup(path, cap == Capability::List)
        };
        caps.is_some_and(|caps| !caps.is_deny() && caps.contains(cap))
    }

    /// What `sys/capabilities-self` reports for `path` (Vault evaluates it as a LIST).
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        self.lookup(path, true).unwrap_or_default().names()
    }

    /// The capabilities of the winning rule for `path`, if any rule matches. `list` is Vault's
    /// LIST evaluation: an exact rule may also omit the trailing slash, and a path ending in `/`
    /// is matched in both forms.
    fn lookup(&self, path: &str, list: bool) -> Option<CapSet> {
        let path = path.trim_start_matches('/');
        if let Some(caps) = self.exact.get(path) {
            return Some(*caps);
        }
        let trimmed = path.strip_suffix('/');
        if list {
            if let Some(caps) = self.exact.get(trimmed.unwrap_or(path)) {
                return Some(*caps);
            }
            if let Some(trimmed) = trimmed {
                let mut all = self.candidates(trimmed);
                all.extend(self.candidates(path));
                return resolve_list(&all);
            }
        }
        self.candidates(path)
            .into_iter()
            .max_by(|a, b| a.rank().cmp(&b.rank()))
            .map(|c| c.caps)
    }

    /// The longest matching prefix rule and every matching segment-wildcard rule.
    fn candidates<'a>(&'a self, path: &str) -> Vec<Candidate<'a>> {
        let mut out = Vec::new();
        if !self.prefix.is_empty() {
            let longest = (0..=path.len())
                .rev()
                .filter(|end| path.is_char_boundary(*end))
                .find_map(|end| self.prefix.get_key_value(&path[..end]));
            if let Some((key, caps)) = longest {
                out.push(Candidate {
                    first: key.len(),
                    is_prefix: true,
                    wildcards: 0,
                    body: key,
                    caps: *caps,
                });
            }
        }
        if self.wildcard.is_empty() {
            return out;
        }
        let parts: Vec<&str> = path.split('/').collect();
        for rule in self.wildcard.values() {
            if segments_match(rule, &parts) {
                out.push(Candidate {
                    first: rule.first_wc,
                    is_prefix: rule.is_prefix,
                    wildcards: rule.wildcards,
                    body: &rule.body,
                    caps: rule.caps,
                });
            }
        }
        out
    }
}

fn segments_match(rule: &WildcardRule, parts: &[&str]) -> bool {
    let n = rule.segments.len();
    if parts.len() < n || (!rule.is_prefix && parts.len() != n) {
        return false;
    }
    rule.segments
        .iter()
        .zip(parts)
        .enumerate()
        .all(|(i, (seg, part))| {
            seg == "+"
                || seg == part
                || (rule.is_prefix && i + 1 == n && part.starts_with(seg.as_str()))
        })
}

/// Vault's choice among LIST candidates from both path forms: the most specific `deny` wins
/// unless a more specific rule grants `list`; else the most specific `list` grant; else the most
/// specific rule.
fn resolve_list(all: &[Candidate<'_>]) -> Option<CapSet> {
    let best = |pred: &dyn Fn(&Candidate<'_>) -> bool| {
        all.iter()
            .filter(|c| pred(c))
            .max_by(|a, b| a.rank().cmp(&b.rank()))
            .copied()
    };
    let deny = best(&|c| c.caps.is_deny());
    let list = best(&|c| c.caps.contains(Capability::List));
    match (deny, list) {
        (Some(d), Some(l)) if l.rank() < d.rank() => Some(d.caps),
        (Some(d), None) => Some(d.caps),
        (_, Some(l)) => Some(l.caps),
        (None, None) => best(&|_| true).map(|c| c.caps),
    }
}
