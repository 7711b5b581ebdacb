//! Core layer: the Vault-shaped views of a token entry: the `auth` block of create, login and
//! renew responses, and the `data` of lookups. Pure, no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use zeroize::Zeroize;

use super::TokenEntry;
use super::ttl::rfc3339;

/// Vault's response `auth` block. The client token is zeroized on drop and never printed by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AuthBlock {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    /// `null` when empty, as Vault.
    pub metadata: Option<BTreeMap<String, String>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: &'static str,
    pub orphan: bool,
    pub mfa_requirement: Option<()>,
    pub num_uses: i64,
}

impl std::fmt::Debug for AuthBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBlock")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

impl Drop for AuthBlock {
    fn drop(&mut self) {
        self.client_token.zeroize();
    }
}

fn meta(entry: &TokenEntry) -> Option<BTreeMap<String, String>> {
    (!entry.meta.is_empty()).then(|| entry.meta.clone())
}

impl AuthBlock {
    /// The block for `entry`, granting `lease_duration` seconds. `client_token` is empty when
    /// the caller does not know the token (accessor operations).
    pub fn new(entry: &TokenEntry, client_token: &str, lease_duration: u64) -> Self {
        Self {
            client_token: client_token.to_owned(),
            accessor: entry.accessor.clone(),
            policies: entry.policies.clone(),
            token_policies: entry.policies.clone(),
            metadata: meta(entry),
            lease_duration,
            renewable: entry.renewable,
            entity_id: String::new(),
            token_type: "service",
            orphan: entry.parent.is_none(),
            mfa_requirement: None,
            num_uses: entry.num_uses,
        }
    }
}

/// Vault's token lookup `data`. `Debug` leaves out `id`.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct LookupData {
    pub accessor: String,
    pub creation_time: u64,
    pub creation_ttl: u64,
    pub display_name: String,
    pub entity_id: String,
    pub expire_time: Option<String>,
    pub explicit_max_ttl: u64,
    /// The token itself when the caller gave it; empty for accessor lookups.
    pub id: String,
    pub issue_time: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub num_uses: i64,
    pub orphan: bool,
    pub path: String,
    pub policies: Vec<String>,
    pub renewable: bool,
    /// Seconds left; 0 for tokens that never expire.
    pub ttl: u64,
    #[serde(rename = "type")]
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_renewal_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_renewal: Option<String>,
}

impl std::fmt::Debug for LookupData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupData")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LookupData {
    pub fn new(entry: &TokenEntry, id: &str, now: u64) -> Self {
        let expires = entry.expires_at();
        Self {
            accessor: entry.accessor.clone(),
            creation_time: entry.creation_time,
            creation_ttl: entry.ttl,
            display_name: entry.display_name.clone(),
            entity_id: String::new(),
            expire_time: (expires != 0).then(|| rfc3339(expires)),
            explicit_max_ttl: entry.explicit_max_ttl,
            id: id.to_owned(),
            issue_time: rfc3339(entry.creation_time),
            meta: meta(entry),
            num_uses: entry.num_uses,
            orphan: entry.parent.is_none(),
            path: entry.path.clone(),
            policies: entry.policies.clone(),
            renewable: entry.renewable && expires != 0,
            ttl: if expires == 0 {
                0
            } else {
                expires.saturating_sub(now)
            },
            token_type: "service",
            period: (entry.period != 0).then_some(entry.period),
            last_renewal_time: entry.last_renewal_time,
            last_renewal: entry.last_renewal_time.map(rfc3339),
        }
    }
}

impl Drop for LookupData {
    fn drop(&mut self) {
        self.id.zeroize();
    }
}
