//! Core layer: the minimal token store. Tokens are stored behind the barrier only as salted
//! HMAC-SHA256 hashes; the token itself never reaches storage or logs. Storage I/O through the
//! barrier.

use std::sync::Arc;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::barrier::{Barrier, BarrierError};
use super::physical::TxnOp;

/// The per-server salt (encrypted).
pub const SALT_PATH: &str = "sys/token/salt";
/// Token entries by salted hash (encrypted).
pub const ID_PREFIX: &str = "sys/token/id/";

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Hex HMAC of the token; compared in constant time on lookup.
    pub hash: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub display_name: String,
    pub creation_time: u64,
    /// Seconds; 0 means it never expires.
    pub ttl: u64,
}

/// The token store's salt; cheap to clone.
#[derive(Clone)]
pub struct TokenStore {
    key: Arc<hmac::Key>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenStore(<salted>)")
    }
}

fn random_string(len: usize) -> Result<String, BarrierError> {
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

impl TokenStore {
    /// A new salt, and the (plaintext) storage operation that persists it.
    pub fn generate() -> Result<(Self, TxnOp), BarrierError> {
        let mut salt = Zeroizing::new(vec![0u8; 32]);
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| BarrierError::Random)?;
        let store = Self {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &salt)),
        };
        Ok((
            store,
            TxnOp::Put {
                key: SALT_PATH.into(),
                value: salt.to_vec(),
            },
        ))
    }

    pub async fn load(barrier: &Barrier) -> Result<Self, BarrierError> {
        let salt = barrier
            .get(SALT_PATH)
            .await?
            .ok_or(BarrierError::MalformedKeyring(
                "the token salt (sys/token/salt) is missing".into(),
            ))?;
        Ok(Self {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &salt)),
        })
    }

    pub fn hash(&self, token: &str) -> String {
        hex::encode(hmac::sign(&self.key, token.as_bytes()).as_ref())
    }

    /// A new root token, its entry, and the (plaintext) storage operation for the entry.
    pub fn new_root(&self) -> Result<(Zeroizing<String>, TokenEntry, TxnOp), BarrierError> {
        let token = Zeroizing::new(format!("hvs.{}", random_string(24)?));
        let hash = self.hash(&token);
        let entry = TokenEntry {
            hash: hash.clone(),
            accessor: random_string(24)?,
            policies: vec!["root".into()],
            display_name: "root".into(),
            creation_time: crate::server::unix_now(),
            ttl: 0,
        };
        let value = serde_json::to_vec(&entry)
            .map_err(|e| BarrierError::MalformedKeyring(e.to_string()))?;
        Ok((
            token,
            entry,
            TxnOp::Put {
                key: format!("{ID_PREFIX}{hash}"),
                value,
            },
        ))
    }

    /// Finds a live token. Malformed input is simply "not found".
    pub async fn lookup(
        &self,
        barrier: &Barrier,
        token: &str,
    ) -> Result<Option<TokenEntry>, BarrierError> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let hash = self.hash(token);
        let Some(raw) = barrier.get(&format!("{ID_PREFIX}{hash}")).await? else {
            return Ok(None);
        };
        let entry: TokenEntry = match serde_json::from_slice(&raw) {
            Ok(e) => e,
            Err(_) => return Ok(None),
        };
        if !bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        if entry.ttl != 0
            && crate::server::unix_now() >= entry.creation_time.saturating_add(entry.ttl)
        {
            return Ok(None);
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::barrier::{Key, Keyring};
    use crate::server::physical::{InmemBackend, Physical};

    #[tokio::test]
    async fn root_token_is_stored_only_as_a_hash() {
        let physical: Arc<dyn Physical> = Arc::new(InmemBackend::new());
        let barrier = Barrier::new(
            Arc::clone(&physical),
            Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
        );
        let (store, salt_op) = TokenStore::generate().expect("salt");
        let (token, entry, op) = store.new_root().expect("root");
        assert!(
            token.starts_with("hvs.") && token.len() == 28,
            "{}",
            token.as_str()
        );
        barrier.transaction(vec![salt_op, op]).await.expect("store");
        let keys = physical.list(ID_PREFIX).await.expect("list");
        assert_eq!(keys, vec![entry.hash.clone()]);
        assert!(!keys[0].contains(&token[4..]));

        let reloaded = TokenStore::load(&barrier).await.expect("load");
        let found = reloaded.lookup(&barrier, &token).await.expect("lookup");
        assert_eq!(
            found.as_ref().map(|e| e.policies.clone()),
            Some(vec!["root".to_owned()])
        );
        assert_eq!(
            reloaded
                .lookup(&barrier, "hvs.wrong")
                .await
                .expect("lookup"),
            None
        );
        assert_eq!(reloaded.lookup(&barrier, "").await.expect("lookup"), None);
        assert_eq!(
            reloaded
                .lookup(&barrier, &"x".repeat(10_000))
                .await
                .expect("lookup"),
            None
        );
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(1000).expect("random");
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(random_string(24).expect("r"), random_string(24).expect("r"));
    }
}
