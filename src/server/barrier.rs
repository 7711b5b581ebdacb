//! Barrier layer: AES-256-GCM encryption of everything stored through it. No I/O of its own; it
//! wraps a [`Physical`] backend. Only this module ever holds data-encryption keys.
//!
//! Ciphertext format (version 2, as Vault's `AESGCMVersion2`):
//! `[term: u32 big-endian][version: u8 = 2][nonce: 12 bytes][ciphertext || tag: 16 bytes]`,
//! with the storage path as associated data, so a value moved to another path fails to decrypt.
//! The keyring itself is stored at [`KEYRING_PATH`] encrypted with the root key under term 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::physical::{Physical, PhysicalError, TxnOp};

/// Storage path of the keyring, encrypted with the root key (term 0).
pub const KEYRING_PATH: &str = "core/keyring";
/// The only ciphertext version this barrier writes and reads.
pub const VERSION: u8 = 2;
/// Term reserved for the root key (encrypts only the keyring).
pub const ROOT_TERM: u32 = 0;
pub const KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 4 + 1 + NONCE_LEN;
/// Smallest well-formed ciphertext: header plus tag (an empty plaintext).
pub const MIN_CIPHERTEXT_LEN: usize = HEADER_LEN + TAG_LEN;

#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error(
        "integrity check failed for {path:?}: the stored value was modified, truncated or moved from another path"
    )]
    Integrity { path: String },
    #[error(
        "stored value at {path:?} is {len} bytes, shorter than the minimum {MIN_CIPHERTEXT_LEN}"
    )]
    TooShort { path: String, len: usize },
    #[error("stored value at {path:?} has unsupported ciphertext version {version}")]
    UnsupportedVersion { path: String, version: u8 },
    #[error(
        "stored value at {path:?} was encrypted with key term {term}, which is not in the keyring"
    )]
    UnknownTerm { path: String, term: u32 },
    #[error("keyring is malformed: {0}")]
    MalformedKeyring(String),
    #[error("invalid key length {0}; expected {KEY_LEN}")]
    KeyLength(usize),
    #[error("system random number generator failed")]
    Random,
    #[error(transparent)]
    Physical(#[from] PhysicalError),
}

/// A 256-bit key that is wiped from memory when dropped.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    pub fn generate() -> Result<Self, BarrierError> {
        let mut k = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| BarrierError::Random)?;
        Ok(Self(k))
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, BarrierError> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| BarrierError::KeyLength(bytes.len()))?;
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// An AES-256-GCM cipher bound to one key term.
struct TermCipher {
    term: u32,
    key: Key,
    aead: LessSafeKey,
    install_time: u64,
}

impl TermCipher {
    fn new(term: u32, key: Key, install_time: u64) -> Result<Self, BarrierError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.as_bytes())
            .map_err(|_| BarrierError::KeyLength(KEY_LEN))?;
        Ok(Self {
            term,
            key,
            aead: LessSafeKey::new(unbound),
            install_time,
        })
    }

    fn seal(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| BarrierError::Random)?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&self.term.to_be_bytes());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(path.as_bytes()),
                &mut out[HEADER_LEN..],
            )
            .map_err(|_| BarrierError::Integrity { path: path.into() })?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let (header, body) = split_checked(path, blob)?;
        let nonce = Nonce::try_assume_unique_for_key(&header.nonce)
            .map_err(|_| BarrierError::Integrity { path: path.into() })?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .aead
            .open_in_place(nonce, Aad::from(path.as_bytes()), &mut buf)
            .map_err(|_| BarrierError::Integrity { path: path.into() })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

struct Header {
    term: u32,
    nonce: [u8; NONCE_LEN],
}

/// Parses the header after checking the length, so no slice can go out of bounds.
fn split_checked<'a>(path: &str, blob: &'a [u8]) -> Result<(Header, &'a [u8]), BarrierError> {
    if blob.len() < MIN_CIPHERTEXT_LEN {
        return Err(BarrierError::TooShort {
            path: path.into(),
            len: blob.len(),
        });
    }
    let (term_bytes, rest) = blob.split_at(4);
    let (version, rest) = rest.split_at(1);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    if version[0] != VERSION {
        return Err(BarrierError::UnsupportedVersion {
            path: path.into(),
            version: version[0],
        });
    }
    let mut term = [0u8; 4];
    term.copy_from_slice(term_bytes);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    Ok((
        Header {
            term: u32::from_be_bytes(term),
            nonce: n,
        },
        body,
    ))
}

/// Reads the term of a ciphertext without decrypting it.
pub fn ciphertext_term(path: &str, blob: &[u8]) -> Result<u32, BarrierError> {
    split_checked(path, blob).map(|(h, _)| h.term)
}

/// Serialized keyring; lives only in zeroized buffers.
#[derive(Serialize, Deserialize)]
struct KeyringRecord {
    active_term: u32,
    keys: Vec<KeyRecord>,
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    term: u32,
    /// Base64 of the 32-byte key.
    value: String,
    install_time: u64,
}

impl Drop for KeyRecord {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

/// The set of data-encryption keys, one per term. Rotation adds a term; older terms still
/// decrypt. Immutable once built: rotation produces a new keyring.
pub struct Keyring {
    root: TermCipher,
    terms: BTreeMap<u32, TermCipher>,
    active: u32,
    encryptions: AtomicU64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active_term", &self.active)
            .field("terms", &self.terms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A fresh keyring with term 1, as Vault's `initialKeyTerm`.
    pub fn new(root_key: Key) -> Result<Self, BarrierError> {
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            TermCipher::new(1, Key::generate()?, crate::server::unix_now())?,
        );
        Ok(Self {
            root: TermCipher::new(ROOT_TERM, root_key, 0)?,
            terms,
            active: 1,
            encryptions: AtomicU64::new(0),
        })
    }

    /// Returns a new keyring with one more term, which becomes active.
    pub fn rotated(&self) -> Result<Self, BarrierError> {
        let next = self.active + 1;
        let mut terms = BTreeMap::new();
        for (t, c) in &self.terms {
            terms.insert(*t, TermCipher::new(*t, c.key.clone(), c.install_time)?);
        }
        terms.insert(
            next,
            TermCipher::new(next, Key::generate()?, crate::server::unix_now())?,
        );
        Ok(Self {
            root: TermCipher::new(ROOT_TERM, self.root.key.clone(), 0)?,
            terms,
            active: next,
            encryptions: AtomicU64::new(0),
        })
    }

    pub fn active_term(&self) -> u32 {
        self.active
    }

    pub fn install_time(&self) -> u64 {
        self.terms.get(&self.active).map_or(0, |c| c.install_time)
    }

    /// Encryptions with the active term since this keyring was loaded.
    pub fn encryptions(&self) -> u64 {
        self.encryptions.load(Ordering::Relaxed)
    }

    pub fn encrypt(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let cipher = self
            .terms
            .get(&self.active)
            .ok_or(BarrierError::UnknownTerm {
                path: path.into(),
                term: self.active,
            })?;
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        cipher.seal(path, plaintext)
    }

    pub fn decrypt(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let term = ciphertext_term(path, blob)?;
        let cipher = self.terms.get(&term).ok_or(BarrierError::UnknownTerm {
            path: path.into(),
            term,
        })?;
        cipher.open(path, blob)
    }

    /// The keyring encrypted with the root key, ready to store at [`KEYRING_PATH`].
    pub fn to_ciphertext(&self) -> Result<Vec<u8>, BarrierError> {
        let record = KeyringRecord {
            active_term: self.active,
            keys: self
                .terms
                .values()
                .map(|c| KeyRecord {
                    term: c.term,
                    value: b64(c.key.as_bytes()),
                    install_time: c.install_time,
                })
                .collect(),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&record)
                .map_err(|e| BarrierError::MalformedKeyring(e.to_string()))?,
        );
        self.root.seal(KEYRING_PATH, &json)
    }

    /// Encrypts `plaintext` under the root key (a Shamir cluster's join challenge and cluster
    /// CA: only holders of the unseal keys can recover the root key to open them).
    pub fn seal_with_root(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        self.root.seal(path, plaintext)
    }

    /// Decrypts a newer stored keyring (after a rotation elsewhere in the cluster) with this
    /// keyring's root key.
    pub fn reopen(&self, blob: &[u8]) -> Result<Self, BarrierError> {
        Self::from_ciphertext(self.root.key.clone(), blob)
    }

    /// Whether `blob` (a stored `core/keyring`, from a snapshot for example) was encrypted
    /// under this keyring's root key: authenticated decryption with the root key succeeds.
    /// Nothing of the decrypted keyring is kept.
    pub fn root_key_opens(&self, blob: &[u8]) -> bool {
        ciphertext_term(KEYRING_PATH, blob).is_ok_and(|t| t == ROOT_TERM)
            && self.root.open(KEYRING_PATH, blob).is_ok()
    }

    /// Decrypts a stored keyring with the root key. A wrong root key is an integrity error.
    pub fn from_ciphertext(root_key: Key, blob: &[u8]) -> Result<Self, BarrierError> {
        let root = TermCipher::new(ROOT_TERM, root_key, 0)?;
        let term = ciphertext_term(KEYRING_PATH, blob)?;
        if term != ROOT_TERM {
            return Err(BarrierError::MalformedKeyring(format!(
                "keyring is under term {term}, expected the root term {ROOT_TERM}"
            )));
        }
        let json = root.open(KEYRING_PATH, blob)?;
        let record: KeyringRecord = serde_json::from_slice(&json)
            .map_err(|e| BarrierError::MalformedKeyring(e.to_string()))?;
        let mut terms = BTreeMap::new();
        for k in &record.keys {
            let raw = Zeroizing::new(
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &k.value)
                    .map_err(|e| BarrierError::MalformedKeyring(e.to_string()))?,
            );
            terms.insert(
                k.term,
                TermCipher::new(k.term, Key::from_slice(&raw)?, k.install_time)?,
            );
        }
        if !terms.contains_key(&record.active_term) {
            return Err(BarrierError::MalformedKeyring(format!(
                "active term {} has no key",
                record.active_term
            )));
        }
        Ok(Self {
            root,
            terms,
            active: record.active_term,
            encryptions: AtomicU64::new(0),
        })
    }
}

/// Encrypts `plaintext` directly under `key` (term 0) with `path` as associated data. Used to
/// wrap the root key with the Shamir unseal key.
pub fn seal_with_key(key: &Key, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
    TermCipher::new(ROOT_TERM, key.clone(), 0)?.seal(path, plaintext)
}

/// Reverses [`seal_with_key`]; a wrong key is an integrity error.
pub fn open_with_key(
    key: &Key,
    path: &str,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
    TermCipher::new(ROOT_TERM, key.clone(), 0)?.open(path, blob)
}

fn b64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

/// An unsealed barrier: the keyring paired with the physical backend it protects. Clones share
/// one keyring slot, so a rotation is seen by every holder at once (Vault's barrier keeps its
/// keyring behind one lock the same way).
#[derive(Clone)]
pub struct Barrier {
    physical: Arc<dyn Physical>,
    keyring: Arc<std::sync::RwLock<Arc<Keyring>>>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl Barrier {
    pub fn new(physical: Arc<dyn Physical>, keyring: Arc<Keyring>) -> Self {
        Self {
            physical,
            keyring: Arc::new(std::sync::RwLock::new(keyring)),
        }
    }

    /// The current keyring (a snapshot: a rotation after this call is not seen by it).
    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(
            &self
                .keyring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Adds a keyring term, persists the keyring at [`KEYRING_PATH`] and makes it current.
    /// The caller serializes rotations; writes racing one use either term, and both decrypt.
    pub async fn rotate(&self) -> Result<Arc<Keyring>, BarrierError> {
        let next = Arc::new(self.keyring().rotated()?);
        self.physical
            .put(KEYRING_PATH, next.to_ciphertext()?)
            .await?;
        *self
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&next);
        Ok(next)
    }

    pub async fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, BarrierError> {
        match self.physical.get(path).await? {
            Some(blob) => Ok(Some(self.keyring().decrypt(path, &blob)?)),
            None => Ok(None),
        }
    }

    pub async fn put(&self, path: &str, plaintext: &[u8]) -> Result<(), BarrierError> {
        let blob = self.keyring().encrypt(path, plaintext)?;
        Ok(self.physical.put(path, blob).await?)
    }

    pub async fn delete(&self, path: &str) -> Result<(), BarrierError> {
        Ok(self.physical.delete(path).await?)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        Ok(self.physical.list(prefix).await?)
    }

    /// Encrypts every put and applies the batch atomically.
    pub async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), BarrierError> {
        let keyring = self.keyring();
        let mut sealed = Vec::with_capacity(ops.len());
        for op in ops {
            sealed.push(match op {
                TxnOp::Put { key, value } => {
                    let value = keyring.encrypt(&key, &value)?;
                    TxnOp::Put { key, value }
                }
                del @ TxnOp::Delete { .. } => del,
            });
        }
        Ok(self.physical.transaction(sealed).await?)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Keyring {
    /// A keyring whose active term is `term` with a fixed key, for known-answer tests.
    pub(crate) fn with_fixed_key(root: Key, term: u32, key: Key) -> Result<Self, BarrierError> {
        let mut terms = BTreeMap::new();
        terms.insert(term, TermCipher::new(term, key, 0)?);
        Ok(Self {
            root: TermCipher::new(ROOT_TERM, root, 0)?,
            terms,
            active: term,
            encryptions: AtomicU64::new(0),
        })
    }
}
