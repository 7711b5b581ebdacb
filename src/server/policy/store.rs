//! Core layer: the ACL policy store. Storage I/O through the barrier.
//!
//! Policies live behind the barrier at `sys/policy/<name>` as their raw text, parsed on read.
//! `root` is built in and never stored. `default` is stored with [`DEFAULT_POLICY`] the first
//! time it is needed (read, listed, or in effect for a token), may be updated, and cannot be
//! deleted. Compiled ACLs are cached per policy set in the [`PolicyStore`], a field of the
//! unsealed state (so sealing drops the cache with the keys); every write through it bumps a
//! generation counter that invalidates the cache. That is correct because one server process
//! owns its storage; a write made to storage behind the store's back is not seen until the
//! next write through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::{Acl, Capability, ParseError, parse};
use crate::server::barrier::{Barrier, BarrierError};
use crate::server::token::TokenEntry;

/// Storage prefix of ACL policies (encrypted), one raw policy text per name.
pub const PREFIX: &str = "sys/policy/";

/// The built-in `default` policy: Vault's, reduced to the endpoints this server implements.
pub const DEFAULT_POLICY: &str = r#"# The default policy: what every token may do for itself.

# Read its own properties.
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Renew itself.
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Revoke itself.
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Look up its own capabilities on a path.
path "sys/capabilities-self" {
    capabilities = ["update"]
}
"#;

const MAX_NAME_LEN: usize = 128;
/// Compiled policy sets kept before the cache starts over.
const MAX_CACHED_SETS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "invalid policy name {0:?}: use 1 to {MAX_NAME_LEN} characters from a-z, 0-9, '.', '_' and '-'"
    )]
    InvalidName(String),
    #[error("cannot update \"root\" policy")]
    UpdateRoot,
    #[error("cannot delete \"root\" policy")]
    DeleteRoot,
    #[error("cannot delete default policy")]
    DeleteDefault,
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// Lower-cases a policy name (as Vault does) and checks it.
pub fn normalize_name(name: &str) -> Result<String, PolicyError> {
    let lower = name.to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower.len() <= MAX_NAME_LEN
        && lower != "."
        && lower != ".."
        && lower.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if valid {
        Ok(lower)
    } else {
        Err(PolicyError::InvalidName(name.to_owned()))
    }
}

/// The policy store of one unsealed server: compiled-ACL cache, write lock, generation.
#[derive(Debug)]
pub struct PolicyStore {
    /// Serializes writes, so storing `default` on first use cannot overwrite a concurrent
    /// update.
    writes: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    acls: RwLock<AclCache>,
    root: Arc<Acl>,
}

#[derive(Debug, Default)]
struct AclCache {
    generation: u64,
    acls: HashMap<Vec<String>, Arc<Acl>>,
}

impl Default for PolicyStore {
    fn default() -> Self {
        Self {
            writes: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            acls: RwLock::new(AclCache::default()),
            root: Arc::new(Acl::root()),
        }
    }
}

fn storage_key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

async fn get_text(barrier: &Barrier, name: &str) -> Result<Option<String>, BarrierError> {
    let Some(raw) = barrier.get(&storage_key(name)).await? else {
        return Ok(None);
    };
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| BarrierError::Integrity {
            path: storage_key(name),
        })
}

impl PolicyStore {
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The number of writes seen so far (for tests of cache invalidation).
    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The stored text of `name`; `default` is stored first if it never was.
    async fn load_text(
        &self,
        barrier: &Barrier,
        name: &str,
    ) -> Result<Option<String>, BarrierError> {
        if let Some(text) = get_text(barrier, name).await? {
            return Ok(Some(text));
        }
        if name != "default" {
            return Ok(None);
        }
        let _writes = self.writes.lock().await;
        if let Some(text) = get_text(barrier, name).await? {
            return Ok(Some(text));
        }
        barrier
            .put(&storage_key(name), DEFAULT_POLICY.as_bytes())
            .await?;
        self.bump();
        Ok(Some(DEFAULT_POLICY.to_owned()))
    }

    /// The raw text of a policy; `root` reads as empty text, as in Vault. Invalid names do not
    /// exist.
    pub async fn read(&self, barrier: &Barrier, name: &str) -> Result<Option<String>, PolicyError> {
        let Ok(name) = normalize_name(name) else {
            return Ok(None);
        };
        if name == "root" {
            return Ok(Some(String::new()));
        }
        Ok(self.load_text(barrier, &name).await?)
    }

    /// Parses and stores a policy; returns the normalized name. Invalid text stores nothing.
    pub async fn write(
        &self,
        barrier: &Barrier,
        name: &str,
        text: &str,
    ) -> Result<String, PolicyError> {
        let name = normalize_name(name)?;
        parse(text)?;
        if name == "root" {
            return Err(PolicyError::UpdateRoot);
        }
        let _writes = self.writes.lock().await;
        barrier.put(&storage_key(&name), text.as_bytes()).await?;
        self.bump();
        Ok(name)
    }

    /// Deletes a policy; deleting one that does not exist succeeds, as in Vault.
    pub async fn delete(&self, barrier: &Barrier, name: &str) -> Result<(), PolicyError> {
        let name = normalize_name(name)?;
        match name.as_str() {
            "root" => return Err(PolicyError::DeleteRoot),
            "default" => return Err(PolicyError::DeleteDefault),
            _ => {}
        }
        let _writes = self.writes.lock().await;
        barrier.delete(&storage_key(&name)).await?;
        self.bump();
        Ok(())
    }

    /// Stored policy names, sorted, then `root` (Vault's order).
    pub async fn list(&self, barrier: &Barrier) -> Result<Vec<String>, PolicyError> {
        self.load_text(barrier, "default").await?;
        let mut names: Vec<String> = barrier
            .list(PREFIX)
            .await?
            .into_iter()
            .filter(|k| !k.ends_with('/') && k != "root")
            .collect();
        names.push("root".to_owned());
        Ok(names)
    }

    /// The compiled ACL of a token's policy names, from the cache when nothing changed since it
    /// was built. Unknown and invalid names are ignored; a stored policy that no longer parses is
    /// an integrity error.
    pub async fn acl_for(
        &self,
        barrier: &Barrier,
        policies: &[String],
    ) -> Result<Arc<Acl>, BarrierError> {
        let mut names: Vec<String> = policies.iter().map(|p| p.to_ascii_lowercase()).collect();
        names.sort_unstable();
        names.dedup();
        if names.iter().any(|n| n == "root") {
            return Ok(Arc::clone(&self.root));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(acl) = self.cache_get(&names, generation) {
            return Ok(acl);
        }
        let mut parsed = Vec::with_capacity(names.len());
        for name in &names {
            if normalize_name(name).is_err() {
                continue;
            }
            let Some(text) = self.load_text(barrier, name).await? else {
                continue;
            };
            parsed.push(parse(&text).map_err(|e| {
                tracing::error!(policy = %name, error = %e, "stored policy does not parse");
                BarrierError::Integrity {
                    path: storage_key(name),
                }
            })?);
        }
        let acl = Arc::new(Acl::new(&parsed));
        self.cache_put(names, generation, Arc::clone(&acl));
        Ok(acl)
    }

    fn cache_get(&self, names: &[String], generation: u64) -> Option<Arc<Acl>> {
        let cache = self.acls.read().unwrap_or_else(PoisonError::into_inner);
        if cache.generation != generation {
            return None;
        }
        cache.acls.get(names).cloned()
    }

    fn cache_put(&self, names: Vec<String>, generation: u64, acl: Arc<Acl>) {
        let mut cache = self.acls.write().unwrap_or_else(PoisonError::into_inner);
        // A write since `generation` was read may have changed what was loaded: do not keep it.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if cache.generation != generation || cache.acls.len() >= MAX_CACHED_SETS {
            cache.acls.clear();
            cache.generation = generation;
        }
        cache.acls.insert(names, acl);
    }

    /// Whether `entry`'s policies grant `cap` on `path` (no leading `/v1/`). For `List` the
    /// path is treated as a directory, as Vault does. A stored policy that no longer parses is
    /// an integrity error rather than ignored, so a lost `deny` cannot widen access.
    pub async fn check(
        &self,
        barrier: &Barrier,
        entry: &TokenEntry,
        path: &str,
        cap: Capability,
    ) -> Result<bool, BarrierError> {
        Ok(self
            .acl_for(barrier, &entry.policies)
            .await?
            .allows(path, cap))
    }

    /// The capabilities `entry` has on `path`, as `sys/capabilities-self` reports them.
    pub async fn capabilities(
        &self,
        barrier: &Barrier,
        entry: &TokenEntry,
        path: &str,
    ) -> Result<Vec<&'static str>, BarrierError> {
        Ok(self
            .acl_for(barrier, &entry.policies)
            .await?
            .capabilities(path))
    }
}
