//! Core layer: the ACL policy store. Storage I/O through the barrier.
//!
//! Policies live behind the barrier at `sys/policy/<name>` as their raw text, parsed on read.
//! `root` is built in and never stored. `default` is stored with [`DEFAULT_POLICY`] the first
//! time it is needed (read, listed, or in effect for a token), may be updated, and cannot be
//! deleted. Compiled ACLs are cached per policy set in this process; every write here bumps a
//! generation counter that invalidates the cache. That is correct because one server process
//! owns its storage; a write made to storage behind this module's back is not seen until the
//! next write through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock, Weak};

use super::{Acl, ParseError, parse};
use crate::server::barrier::{Barrier, BarrierError, Keyring};

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
/// Compiled policy sets kept per barrier before the cache starts over.
const MAX_CACHED_SETS: usize = 1024;
/// Barriers (keyrings) tracked at once; more only happens in tests.
const MAX_BARRIERS: usize = 16;

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

static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Serializes writes, so storing `default` on first use cannot overwrite a concurrent update.
static WRITES: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));
static ROOT_ACL: LazyLock<Arc<Acl>> = LazyLock::new(|| Arc::new(Acl::root()));
static CACHE: LazyLock<RwLock<Vec<BarrierCache>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Compiled ACLs of one barrier. The weak reference keeps the keyring's allocation alive, so
/// its address cannot be reused by another barrier while this entry exists.
struct BarrierCache {
    keyring: Weak<Keyring>,
    generation: u64,
    acls: HashMap<Vec<String>, Arc<Acl>>,
}

impl BarrierCache {
    fn is_for(&self, barrier: &Barrier) -> bool {
        std::ptr::eq(self.keyring.as_ptr(), Arc::as_ptr(barrier.keyring()))
    }
}

fn storage_key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn bump() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
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

/// The stored text of `name`; `default` is stored first if it never was.
async fn load_text(barrier: &Barrier, name: &str) -> Result<Option<String>, BarrierError> {
    if let Some(text) = get_text(barrier, name).await? {
        return Ok(Some(text));
    }
    if name != "default" {
        return Ok(None);
    }
    let _writes = WRITES.lock().await;
    if let Some(text) = get_text(barrier, name).await? {
        return Ok(Some(text));
    }
    barrier
        .put(&storage_key(name), DEFAULT_POLICY.as_bytes())
        .await?;
    bump();
    Ok(Some(DEFAULT_POLICY.to_owned()))
}

/// The raw text of a policy; `root` reads as empty text, as in Vault. Invalid names do not
/// exist.
pub async fn read(barrier: &Barrier, name: &str) -> Result<Option<String>, PolicyError> {
    let Ok(name) = normalize_name(name) else {
        return Ok(None);
    };
    if name == "root" {
        return Ok(Some(String::new()));
    }
    Ok(load_text(barrier, &name).await?)
}

/// Parses and stores a policy; returns the normalized name. Invalid text stores nothing.
pub async fn write(barrier: &Barrier, name: &str, text: &str) -> Result<String, PolicyError> {
    let name = normalize_name(name)?;
    parse(text)?;
    if name == "root" {
        return Err(PolicyError::UpdateRoot);
    }
    let _writes = WRITES.lock().await;
    barrier.put(&storage_key(&name), text.as_bytes()).await?;
    bump();
    Ok(name)
}

/// Deletes a policy; deleting one that does not exist succeeds, as in Vault.
pub async fn delete(barrier: &Barrier, name: &str) -> Result<(), PolicyError> {
    let name = normalize_name(name)?;
    match name.as_str() {
        "root" => return Err(PolicyError::DeleteRoot),
        "default" => return Err(PolicyError::DeleteDefault),
        _ => {}
    }
    let _writes = WRITES.lock().await;
    barrier.delete(&storage_key(&name)).await?;
    bump();
    Ok(())
}

/// Stored policy names, sorted, then `root` (Vault's order).
pub async fn list(barrier: &Barrier) -> Result<Vec<String>, PolicyError> {
    load_text(barrier, "default").await?;
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
pub async fn acl_for(barrier: &Barrier, policies: &[String]) -> Result<Arc<Acl>, BarrierError> {
    let mut names: Vec<String> = policies.iter().map(|p| p.to_ascii_lowercase()).collect();
    names.sort_unstable();
    names.dedup();
    if names.iter().any(|n| n == "root") {
        return Ok(Arc::clone(&ROOT_ACL));
    }
    let generation = GENERATION.load(Ordering::SeqCst);
    if let Some(acl) = cache_get(barrier, &names, generation) {
        return Ok(acl);
    }
    let mut parsed = Vec::with_capacity(names.len());
    for name in &names {
        if normalize_name(name).is_err() {
            continue;
        }
        let Some(text) = load_text(barrier, name).await? else {
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
    cache_put(barrier, names, generation, Arc::clone(&acl));
    Ok(acl)
}

fn cache_get(barrier: &Barrier, names: &[String], generation: u64) -> Option<Arc<Acl>> {
    let cache = CACHE.read().unwrap_or_else(PoisonError::into_inner);
    cache
        .iter()
        .find(|c| c.is_for(barrier) && c.generation == generation)?
        .acls
        .get(names)
        .cloned()
}

fn cache_put(barrier: &Barrier, names: Vec<String>, generation: u64, acl: Arc<Acl>) {
    let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
    // A write since `generation` was read may have changed what was loaded: do not keep it.
    if GENERATION.load(Ordering::SeqCst) != generation {
        return;
    }
    cache.retain(|c| c.keyring.strong_count() > 0);
    let index = match cache.iter().position(|c| c.is_for(barrier)) {
        Some(i) => i,
        None => {
            if cache.len() >= MAX_BARRIERS {
                cache.remove(0);
            }
            cache.push(BarrierCache {
                keyring: Arc::downgrade(barrier.keyring()),
                generation,
                acls: HashMap::new(),
            });
            cache.len() - 1
        }
    };
    let Some(entry) = cache.get_mut(index) else {
        return;
    };
    if entry.generation != generation || entry.acls.len() >= MAX_CACHED_SETS {
        entry.acls.clear();
        entry.generation = generation;
    }
    entry.acls.insert(names, acl);
}

/// The number of writes seen so far (for tests of cache invalidation).
#[cfg(test)]
pub(super) fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}
