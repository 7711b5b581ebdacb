//! Core layer: Vault's token store. Tokens are stored behind the barrier only as salted
//! HMAC-SHA256 hashes; the token itself never reaches storage or logs. Storage I/O through the
//! barrier.
//!
//! Storage layout (all barrier-encrypted):
//! - [`SALT_PATH`]: the per-server HMAC key.
//! - `sys/token/id/<hash>`: the [`TokenEntry`] of the token whose salted hash is `<hash>`.
//! - `sys/token/accessor/<hash of accessor>`: the token hash, for accessor lookups.
//! - `sys/token/parent/<parent hash>/<child hash>`: the child index used to revoke trees.
//!
//! A token is valid while its entry exists, it has not expired, and every ancestor up the
//! parent chain is valid too, so a child never outlives its parent even when the parent
//! merely expired and was not revoked yet.

mod create;
pub mod fields;
mod lifecycle;
mod lookup;
mod tidy;
pub mod ttl;
mod view;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_plan;
#[cfg(test)]
mod tests_uses;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::barrier::{Barrier, BarrierError};
use super::physical::TxnOp;

pub use create::{CreateOptions, IssueRequest, Issued};
pub use fields::CreateRequest;
pub use tidy::TidyReport;
pub use view::{AuthBlock, LookupData};

/// The per-server salt (encrypted).
pub const SALT_PATH: &str = "sys/token/salt";
/// Token entries by salted hash (encrypted).
pub const ID_PREFIX: &str = "sys/token/id/";
/// Accessor index: salted hash of the accessor -> token hash (encrypted).
pub const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
/// Parent index: `<parent hash>/<child hash>` -> empty (encrypted).
pub const PARENT_PREFIX: &str = "sys/token/parent/";

/// Longest parent chain a token may have; deeper chains are refused at creation and are
/// invalid on lookup.
pub const MAX_DEPTH: usize = 32;
/// Most tokens one revocation walks; descendants beyond it stay unusable (their ancestor is
/// gone) but keep their storage entries.
pub const MAX_REVOKE: usize = 100_000;
/// Longest token or accessor accepted from a client.
const MAX_INPUT_LEN: usize = 256;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Errors of token operations, with Vault's messages where Vault has one.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad client input (400); the message names the field and the fix.
    #[error("{0}")]
    InvalidRequest(String),
    /// `lookup` of a token that does not exist or expired (403, Vault's "bad token").
    #[error("bad token")]
    BadToken,
    /// The token is not (or no longer) valid (400 on renew, Vault's message).
    #[error("token not found")]
    NotFound,
    #[error("child policies must be subset of parent")]
    PoliciesNotSubset,
    #[error("lease is not renewable{0}")]
    NotRenewable(&'static str),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl TokenError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }
}

fn default_path() -> String {
    "auth/token/create".into()
}

/// A token's stored state. Field names follow Vault's token entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Hex HMAC of the token; compared in constant time on lookup.
    pub hash: String,
    pub accessor: String,
    /// Sorted and deduplicated; `["root"]` alone for root tokens.
    pub policies: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Uses left; 0 means unlimited. -1 only in memory: this request was the final use and the
    /// token is already revoked (Vault's `tokenRevocationPending`).
    #[serde(default)]
    pub num_uses: i64,
    /// Unix seconds.
    pub creation_time: u64,
    /// The TTL the token was created with, in seconds; 0 means it never expires.
    pub ttl: u64,
    /// The TTL of the last grant (creation or renewal); 0 means `ttl`.
    #[serde(default)]
    pub lease_ttl: u64,
    /// Unix seconds; 0 means never (or, for entries written before it existed,
    /// `creation_time + ttl`).
    #[serde(default)]
    pub expire_time: u64,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// A cap set by the issuing auth method (Vault's backend max TTL); 0 means none.
    #[serde(default)]
    pub max_ttl: u64,
    /// Periodic tokens renew to this many seconds; 0 means not periodic.
    #[serde(default)]
    pub period: u64,
    #[serde(default)]
    pub renewable: bool,
    /// The parent's hash; `None` for orphans.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default)]
    pub last_renewal_time: Option<u64>,
}

impl TokenEntry {
    /// Unix seconds at which the token stops working; 0 means never.
    pub fn expires_at(&self) -> u64 {
        match (self.expire_time, self.ttl) {
            (0, 0) => 0,
            (0, ttl) => self.creation_time.saturating_add(ttl),
            (t, _) => t,
        }
    }

    pub fn is_expired(&self, now: u64) -> bool {
        let at = self.expires_at();
        at != 0 && now >= at
    }

    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// The TTL of the last grant, which a renewal without an increment repeats.
    pub fn last_ttl(&self) -> u64 {
        if self.lease_ttl == 0 {
            self.ttl
        } else {
            self.lease_ttl
        }
    }
}

/// The token store's salt and write lock; cheap to clone (clones share both).
#[derive(Clone)]
pub struct TokenStore {
    key: Arc<hmac::Key>,
    /// Serializes every read-modify-write of token entries (use counting, renewal,
    /// revocation, creation under a parent), so two requests never both consume a last use
    /// and a child is never created under a parent being revoked.
    writes: Arc<tokio::sync::Mutex<()>>,
    /// Set while a background tidy runs, so requests do not start a second one.
    tidying: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenStore(<salted>)")
    }
}

pub(crate) fn random_string(len: usize) -> Result<String, BarrierError> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| BarrierError::Random)?;
    // 62 * 4 = 248: reject bytes >= 248 to avoid modulo bias.
    let mut out = String::with_capacity(len);
    let mut extra = Zeroizing::new([0u8; 1]);
    for b in bytes.iter() {
        let mut v = *b;
        while v >= 248 {
            aws_lc_rs::rand::fill(&mut *extra).map_err(|_| BarrierError::Random)?;
            v = extra[0];
        }
        out.push(char::from(ALPHABET[usize::from(v % 62)]));
    }
    Ok(out)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, BarrierError> {
    serde_json::to_vec(value).map_err(|e| BarrierError::MalformedKeyring(e.to_string()))
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl TokenStore {
    fn from_salt(salt: &[u8]) -> Self {
        Self {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, salt)),
            writes: Arc::new(tokio::sync::Mutex::new(())),
            tidying: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// A new salt, and the (plaintext) storage operation that persists it.
    pub fn generate() -> Result<(Self, TxnOp), BarrierError> {
        let mut salt = Zeroizing::new(vec![0u8; 32]);
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| BarrierError::Random)?;
        let op = TxnOp::Put {
            key: SALT_PATH.into(),
            value: salt.to_vec(),
        };
        Ok((Self::from_salt(&salt), op))
    }

    pub async fn load(barrier: &Barrier) -> Result<Self, BarrierError> {
        let salt = barrier
            .get(SALT_PATH)
            .await?
            .ok_or(BarrierError::MalformedKeyring(
                "the token salt (sys/token/salt) is missing".into(),
            ))?;
        Ok(Self::from_salt(&salt))
    }

    pub fn hash(&self, token: &str) -> String {
        hex::encode(hmac::sign(&self.key, token.as_bytes()).as_ref())
    }

    fn accessor_path(&self, accessor: &str) -> String {
        format!("{ACCESSOR_PREFIX}{}", self.hash(accessor))
    }

    /// The hash of client input, or `None` when it cannot be a token.
    pub fn input_hash(&self, input: &str) -> Option<String> {
        (!input.is_empty() && input.len() <= MAX_INPUT_LEN).then(|| self.hash(input))
    }

    /// The plaintext storage operations that persist a new entry and its indexes.
    fn entry_ops(&self, entry: &TokenEntry) -> Result<Vec<TxnOp>, BarrierError> {
        let mut ops = vec![
            TxnOp::Put {
                key: format!("{ID_PREFIX}{}", entry.hash),
                value: to_json(entry)?,
            },
            TxnOp::Put {
                key: self.accessor_path(&entry.accessor),
                value: entry.hash.clone().into_bytes(),
            },
        ];
        if let Some(parent) = &entry.parent {
            ops.push(TxnOp::Put {
                key: format!("{PARENT_PREFIX}{parent}/{}", entry.hash),
                value: Vec::new(),
            });
        }
        Ok(ops)
    }

    /// A new root token, its entry, and the (plaintext) storage operations for the entry and
    /// its accessor index.
    pub fn new_root(&self) -> Result<(Zeroizing<String>, TokenEntry, Vec<TxnOp>), BarrierError> {
        let token = Zeroizing::new(format!("hvs.{}", random_string(24)?));
        let entry = TokenEntry {
            hash: self.hash(&token),
            accessor: random_string(24)?,
            policies: vec!["root".into()],
            meta: BTreeMap::new(),
            display_name: "root".into(),
            num_uses: 0,
            creation_time: crate::server::unix_now(),
            ttl: 0,
            lease_ttl: 0,
            expire_time: 0,
            explicit_max_ttl: 0,
            max_ttl: 0,
            period: 0,
            renewable: false,
            parent: None,
            path: "auth/token/root".into(),
            last_renewal_time: None,
        };
        let ops = self.entry_ops(&entry)?;
        Ok((token, entry, ops))
    }

    /// The stored entry for `hash`, whatever its state. Malformed entries are "not found".
    async fn read_entry(
        &self,
        barrier: &Barrier,
        hash: &str,
    ) -> Result<Option<TokenEntry>, BarrierError> {
        if !is_hash(hash) {
            return Ok(None);
        }
        let Some(raw) = barrier.get(&format!("{ID_PREFIX}{hash}")).await? else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<TokenEntry>(&raw) else {
            tracing::warn!(
                hash_prefix = &hash[..8],
                "token entry is malformed; treating it as absent"
            );
            return Ok(None);
        };
        if !bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    async fn write_entry(&self, barrier: &Barrier, entry: &TokenEntry) -> Result<(), BarrierError> {
        barrier
            .put(&format!("{ID_PREFIX}{}", entry.hash), &to_json(entry)?)
            .await
    }
}
