//! Operator layer, step 3 of the pipeline: server-side apply of the built children under one
//! field manager, skipping objects that are unchanged since this process last applied them (a
//! steady state makes no API writes). API I/O. `children` applies a SecretServer's namespaced
//! children, `cluster` its cluster-scoped ones.

pub mod children;
pub mod cluster;
pub mod upgrade;

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "sealkeep-operator";

#[derive(Debug, thiserror::Error)]
#[error("applying {kind} {namespace}/{name}: {source}")]
pub struct ApplyError {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

/// What this process last applied: object key -> (hash of the desired object, resourceVersion
/// the API server returned).
#[derive(Debug, Default)]
pub struct AppliedCache(Mutex<HashMap<String, (u64, String)>>);

impl AppliedCache {
    fn get(&self, key: &str) -> Option<(u64, String)> {
        self.0.lock().ok().and_then(|m| m.get(key).cloned())
    }
    fn put(&self, key: String, v: (u64, String)) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, v);
        }
    }
    /// Forgets every object of one namespace/name prefix (after the owner is gone).
    pub fn forget_prefix(&self, prefix: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|k, _| !k.contains(prefix));
        }
    }
}

fn desired_hash<K: Serialize>(obj: &K) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(obj).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Applies `obj` unless the object in the cluster is exactly what this process last applied.
/// Returns whether a write was made.
pub async fn apply<K>(api: &Api<K>, obj: &K, cache: &AppliedCache) -> Result<bool, ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    apply_known(api, obj, cache, None).await
}

/// [`apply`], with the object's current resourceVersion when the caller already read it
/// (`Some(None)`: it does not exist), which saves a GET.
pub async fn apply_known<K>(
    api: &Api<K>,
    obj: &K,
    cache: &AppliedCache,
    current_rv: Option<Option<String>>,
) -> Result<bool, ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let kind = K::kind(&()).into_owned();
    let err = |source| ApplyError {
        kind: kind.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let key = format!("{kind}/{namespace}/{name}");
    let hash = desired_hash(obj);
    if let Some((h, rv)) = cache.get(&key)
        && h == hash
    {
        let current = match current_rv {
            Some(known) => known,
            None => api
                .get_metadata_opt(&name)
                .await
                .map_err(err)?
                .and_then(|m| m.metadata.resource_version),
        };
        if current.as_deref() == Some(rv.as_str()) {
            return Ok(false);
        }
    }
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(err)?;
    if let Some(rv) = applied.resource_version() {
        cache.put(key, (hash, rv));
    }
    Ok(true)
}

/// Deletes objects with the `selector` labels that are not in `keep` (for example a renamed
/// ServiceAccount): objects this operator owns but no longer wants.
pub async fn prune<K>(
    api: &Api<K>,
    selector: &str,
    keep: &[String],
) -> Result<Vec<String>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let mut removed = Vec::new();
    for o in api
        .list_metadata(&ListParams::default().labels(selector))
        .await?
    {
        let name = o.name_any();
        if !keep.contains(&name) && o.metadata.deletion_timestamp.is_none() {
            api.delete(&name, &DeleteParams::background()).await?;
            removed.push(name);
        }
    }
    Ok(removed)
}
