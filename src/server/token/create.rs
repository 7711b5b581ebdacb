//! Core layer: creating tokens, as `auth/token/create` does (children inherit or narrow their
//! parent's policies) and as auth methods do at login ([`TokenStore::issue`]). Request parsing
//! and planning are pure; persisting goes through the barrier.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::fields::CreateRequest;
use super::ttl::{self, SYSTEM_TTL, SysTtl, TtlInput};
use super::view::AuthBlock;
use super::{MAX_DEPTH, TokenEntry, TokenError, TokenStore, random_string};
use crate::server::barrier::Barrier;

/// Policies no token may carry (Vault's `nonAssignablePolicies`).
const NON_ASSIGNABLE: &[&str] = &["response-wrapping", "control-group"];

/// How the caller reached the create endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The caller has root or `sudo` on the create path.
    pub sudo: bool,
    /// Called through `create-orphan`.
    pub orphan: bool,
    /// The token's creation path, e.g. `auth/token/create`.
    pub path: String,
}

/// Vault's `policyutil.SanitizePolicies`: trimmed, lowercased, no empties, sorted and
/// deduplicated; `root` alone if present; `default` added when asked.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if out.iter().any(|p| p == "root") {
        return vec!["root".into()];
    }
    if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".into());
    }
    out.sort();
    out.dedup();
    out
}

/// Vault's display name rule: `token`, or `token-<name>` with anything but ASCII letters,
/// digits and `-` replaced by `-`, and one trailing `-` removed.
fn display_name(requested: Option<&str>) -> String {
    match requested {
        None | Some("") => "token".into(),
        Some(name) => {
            let full: String = format!("token-{name}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            full.strip_suffix('-').unwrap_or(&full).to_owned()
        }
    }
}

fn blank_entry(policies: Vec<String>, path: String, now: u64) -> TokenEntry {
    TokenEntry {
        hash: String::new(),
        accessor: String::new(),
        policies,
        meta: BTreeMap::new(),
        display_name: String::new(),
        num_uses: 0,
        creation_time: now,
        ttl: 0,
        lease_ttl: 0,
        expire_time: 0,
        explicit_max_ttl: 0,
        max_ttl: 0,
        period: 0,
        renewable: false,
        parent: None,
        path,
        last_renewal_time: None,
    }
}

/// Decides a child token's entry (without hash and accessor) and the warnings, as Vault's
/// `handleCreateCommon` does without roles.
pub fn plan(
    parent: &TokenEntry,
    req: &CreateRequest,
    opts: &CreateOptions,
    sys: SysTtl,
    now: u64,
) -> Result<(TokenEntry, Vec<String>), TokenError> {
    if parent.num_uses != 0 {
        return Err(TokenError::invalid(
            "restricted use token cannot generate child tokens",
        ));
    }
    if req.num_uses < 0 {
        return Err(TokenError::invalid("number of uses cannot be negative"));
    }
    let requested = req.policies.as_deref().unwrap_or_default();
    let parent_has_default = parent.policies.iter().any(|p| p == "default");
    let (base, add_default) = if requested.is_empty() {
        (sanitize_policies(&parent.policies, false), false)
    } else if !opts.sudo {
        let parent_set = sanitize_policies(&parent.policies, false);
        if !sanitize_policies(requested, false)
            .iter()
            .all(|p| parent_set.contains(p))
        {
            return Err(TokenError::PoliciesNotSubset);
        }
        (
            requested.to_vec(),
            !req.no_default_policy && parent_has_default,
        )
    } else {
        (requested.to_vec(), !req.no_default_policy)
    };
    let mut policies = sanitize_policies(&base, add_default);
    if req.no_default_policy {
        policies.retain(|p| p != "default");
    }
    if let Some(p) = policies
        .iter()
        .find(|p| NON_ASSIGNABLE.contains(&p.as_str()))
    {
        return Err(TokenError::invalid(format!("cannot assign policy {p:?}")));
    }
    let is_root = policies.iter().any(|p| p == "root");
    if is_root && !parent.is_root() {
        return Err(TokenError::invalid(
            "root tokens may not be created without parent token being root",
        ));
    }

    let mut entry = blank_entry(policies, opts.path.clone(), now);
    entry.parent = if req.no_parent {
        if !opts.sudo {
            return Err(TokenError::invalid(
                "root or sudo privileges required to create orphan token; use auth/token/create-orphan instead",
            ));
        }
        None
    } else if opts.orphan {
        None
    } else {
        Some(parent.hash.clone())
    };
    let explicit_max_ttl = req.explicit_max_ttl.unwrap_or(0);
    let period = req.period.unwrap_or(0);
    if period > 0 && !opts.sudo {
        return Err(TokenError::invalid(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let requested_ttl = req.ttl.unwrap_or(0);
    let mut warnings = Vec::new();
    let mut granted = requested_ttl;
    if period > 0 || requested_ttl > 0 || !is_root {
        let input = TtlInput {
            ttl: requested_ttl,
            period,
            explicit_max_ttl,
            start: now,
            ..TtlInput::default()
        };
        let (t, w) = ttl::calculate(sys, input, now)?;
        granted = t;
        warnings = w;
    }
    if granted == 0 && explicit_max_ttl > 0 {
        granted = explicit_max_ttl;
    }
    let mut renewable = req.renewable.unwrap_or(true);
    if granted == 0 {
        if parent.expires_at() != 0 {
            return Err(TokenError::invalid(
                "expiring root tokens cannot create non-expiring root tokens; give a ttl",
            ));
        }
        renewable = false;
    }
    entry.meta = req.meta.clone();
    entry.display_name = display_name(req.display_name.as_deref());
    entry.num_uses = req.num_uses;
    entry.ttl = granted;
    entry.lease_ttl = granted;
    entry.expire_time = if granted == 0 {
        0
    } else {
        now.saturating_add(granted)
    };
    entry.explicit_max_ttl = explicit_max_ttl;
    entry.period = period;
    entry.renewable = renewable;
    Ok((entry, warnings))
}

/// A newly created token. `Debug` never shows the token.
pub struct Issued {
    pub token: Zeroizing<String>,
    pub entry: TokenEntry,
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("accessor", &self.entry.accessor)
            .field("policies", &self.entry.policies)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// Vault's `auth` block for this token.
    pub fn auth(&self) -> AuthBlock {
        AuthBlock::new(&self.entry, &self.token, self.entry.ttl)
    }
}

/// A token for an auth method's login (for example Kubernetes): always an orphan, like
/// Vault's login tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The role's policies; `default` is added unless `no_default_policy`. `root` is refused.
    pub policies: Vec<String>,
    pub no_default_policy: bool,
    /// Seconds; 0 means the system default (768h).
    pub ttl: u64,
    /// The auth method's cap in seconds (Vault's `token_max_ttl`); 0 means the system max.
    pub max_ttl: u64,
    pub explicit_max_ttl: u64,
    /// Seconds; 0 means not periodic.
    pub period: u64,
    /// 0 means unlimited.
    pub num_uses: u32,
    pub renewable: bool,
    /// Shown in lookups and audit, e.g. `kubernetes-default-app`.
    pub display_name: String,
    pub meta: BTreeMap<String, String>,
    /// The login path, e.g. `auth/kubernetes/login`.
    pub path: String,
}

impl IssueRequest {
    /// A renewable token with the system TTLs, for `path` and `display_name`.
    pub fn new(path: impl Into<String>, display_name: impl Into<String>) -> Self {
        Self {
            policies: Vec::new(),
            no_default_policy: false,
            ttl: 0,
            max_ttl: 0,
            explicit_max_ttl: 0,
            period: 0,
            num_uses: 0,
            renewable: true,
            display_name: display_name.into(),
            meta: BTreeMap::new(),
            path: path.into(),
        }
    }
}

impl TokenStore {
    async fn persist_new(
        &self,
        barrier: &Barrier,
        mut entry: TokenEntry,
        warnings: Vec<String>,
        now: u64,
    ) -> Result<Issued, TokenError> {
        let token = Zeroizing::new(format!("hvs.{}", random_string(24)?));
        entry.hash = self.hash(&token);
        entry.accessor = random_string(24)?;
        let _guard = self.writes.lock().await;
        if let Some(parent) = &entry.parent {
            // Re-checked under the write lock: a parent revoked meanwhile gets no children.
            let depth = match self.live(barrier, parent, now).await? {
                Some(p) => self.chain_depth(barrier, &p, now).await?,
                None => None,
            };
            match depth {
                None => {
                    return Err(TokenError::invalid(
                        "parent token lookup failed: no parent found",
                    ));
                }
                Some(d) if d + 1 > MAX_DEPTH => {
                    return Err(TokenError::invalid(format!(
                        "tokens nest at most {MAX_DEPTH} levels deep; create an orphan token with auth/token/create-orphan instead"
                    )));
                }
                Some(_) => {}
            }
        }
        barrier.transaction(self.entry_ops(&entry)?).await?;
        Ok(Issued {
            token,
            entry,
            warnings,
        })
    }

    /// `auth/token/create`: a token created by `parent` (the caller's entry).
    pub async fn create(
        &self,
        barrier: &Barrier,
        parent: &TokenEntry,
        req: &CreateRequest,
        opts: &CreateOptions,
    ) -> Result<Issued, TokenError> {
        let now = crate::server::unix_now();
        let (entry, warnings) = plan(parent, req, opts, SYSTEM_TTL, now)?;
        self.persist_new(barrier, entry, warnings, now).await
    }

    /// A login token for an auth method; [`Issued::auth`] is the response's `auth` block.
    pub async fn issue(&self, barrier: &Barrier, req: &IssueRequest) -> Result<Issued, TokenError> {
        let now = crate::server::unix_now();
        let mut policies = sanitize_policies(&req.policies, !req.no_default_policy);
        if req.no_default_policy {
            policies.retain(|p| p != "default");
        }
        if policies.iter().any(|p| p == "root") {
            return Err(TokenError::invalid(
                "auth methods cannot create root tokens",
            ));
        }
        if let Some(p) = policies
            .iter()
            .find(|p| NON_ASSIGNABLE.contains(&p.as_str()))
        {
            return Err(TokenError::invalid(format!("cannot assign policy {p:?}")));
        }
        let input = TtlInput {
            ttl: req.ttl,
            period: req.period,
            max_ttl: req.max_ttl,
            explicit_max_ttl: req.explicit_max_ttl,
            start: now,
            ..TtlInput::default()
        };
        let (granted, warnings) = ttl::calculate(SYSTEM_TTL, input, now)?;
        let mut entry = blank_entry(policies, req.path.clone(), now);
        entry.meta = req.meta.clone();
        entry.display_name = req.display_name.clone();
        entry.num_uses = i64::from(req.num_uses);
        entry.ttl = granted;
        entry.lease_ttl = granted;
        entry.expire_time = now.saturating_add(granted);
        entry.explicit_max_ttl = req.explicit_max_ttl;
        entry.max_ttl = req.max_ttl;
        entry.period = req.period;
        entry.renewable = req.renewable;
        self.persist_new(barrier, entry, warnings, now).await
    }
}
