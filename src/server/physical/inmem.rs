//! Physical layer: in-memory backend (`storage "inmem"`, dev mode and tests). No I/O.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{Physical, PhysicalError, TxnOp, check_key, fold_children};

#[derive(Debug, Default)]
pub struct InmemBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn poisoned() -> PhysicalError {
        PhysicalError::Io {
            backend: "inmem",
            path: String::new(),
            message: "lock poisoned by an earlier panic".into(),
        }
    }
}

#[async_trait]
impl Physical for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        check_key(key)?;
        let map = self.map.read().map_err(|_| Self::poisoned())?;
        Ok(map.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        check_key(key)?;
        let mut map = self.map.write().map_err(|_| Self::poisoned())?;
        map.insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        check_key(key)?;
        let mut map = self.map.write().map_err(|_| Self::poisoned())?;
        map.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        let map = self.map.read().map_err(|_| Self::poisoned())?;
        let keys = map
            .range(prefix.to_owned()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(fold_children(prefix, keys))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        for op in &ops {
            match op {
                TxnOp::Put { key, .. } | TxnOp::Delete { key } => check_key(key)?,
            }
        }
        let mut map = self.map.write().map_err(|_| Self::poisoned())?;
        for op in ops {
            match op {
                TxnOp::Put { key, value } => {
                    map.insert(key, value);
                }
                TxnOp::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contract() {
        super::super::contract::run(&InmemBackend::new()).await;
    }
}
