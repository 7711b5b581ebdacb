//! Core layer: ACL policies in Vault's policy language, their evaluation, and the policy store.
//! Parsing ([`parse`]) and matching ([`Acl`]) are pure; the store does storage I/O through the
//! barrier at `sys/policy/<name>`.
//!
//! Evaluation follows Vault: rules for the same pattern are merged across all of a token's
//! policies (capabilities are unioned, and `deny` anywhere leaves only `deny`); an exact pattern
//! wins; otherwise the highest-priority glob or `+` pattern wins. The `root` policy grants
//! everything. `default` applies only when it is listed in the token's policies (the token
//! store adds it at creation unless `no_default_policy` is set). Unknown policy names are
//! ignored.

mod acl;
mod parse;
mod store;

pub use acl::Acl;
pub use parse::{ParseError, ParseErrorKind, PathRule, Policy, parse};
pub use store::{DEFAULT_POLICY, PREFIX, PolicyError, PolicyStore, normalize_name};

/// A capability a policy path rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
    Deny,
    /// Event subscription (Vault 1.16+). Accepted in policies; this server has no events.
    Subscribe,
    /// Snapshot recovery (Vault 1.20+). Accepted in policies; this server has no snapshots.
    Recover,
}

/// The capability names a policy may use, in the order error messages list them.
pub const CAPABILITY_NAMES: &str =
    "create, read, update, patch, delete, list, sudo, deny, subscribe, recover";

impl Capability {
    pub const ALL: [Self; 10] = [
        Self::Create,
        Self::Read,
        Self::Update,
        Self::Patch,
        Self::Delete,
        Self::List,
        Self::Sudo,
        Self::Deny,
        Self::Subscribe,
        Self::Recover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Sudo => "sudo",
            Self::Deny => "deny",
            Self::Subscribe => "subscribe",
            Self::Recover => "recover",
        }
    }

    /// The capability with this exact (lower-case) name, as Vault spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of capabilities. A set holding `deny` holds nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(u16);

impl CapSet {
    pub const DENY: Self = Self(1 << (Capability::Deny as u16));

    /// Adds a capability; adding `deny` discards all others, and nothing is added to a deny.
    pub fn insert(&mut self, cap: Capability) {
        if cap == Capability::Deny {
            *self = Self::DENY;
        } else if !self.is_deny() {
            self.0 |= cap.bit();
        }
    }

    /// Vault's merge of two rules for the same pattern: deny in either wins, else the union.
    pub fn merge(self, other: Self) -> Self {
        if self.is_deny() || other.is_deny() {
            Self::DENY
        } else {
            Self(self.0 | other.0)
        }
    }

    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    pub fn is_deny(self) -> bool {
        self.contains(Capability::Deny)
    }

    /// Names as `sys/capabilities-self` reports them: sorted, and `["deny"]` when the set is a
    /// deny or empty.
    pub fn names(self) -> Vec<&'static str> {
        if self.is_deny() || self.0 == 0 {
            return vec![Capability::Deny.as_str()];
        }
        let mut names: Vec<_> = Capability::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(Capability::as_str)
            .collect();
        names.sort_unstable();
        names
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Self::default();
        for cap in iter {
            set.insert(cap);
        }
        set
    }
}

#[cfg(test)]
mod tests;
