//! Operator layer: the format of the init Secret (`<name>-init`), in clear (Shamir) or as an
//! AWS KMS envelope (awskms). Pure: encodes, seals with a data key already in hand, parses and
//! opens; the KMS calls live in [`kms`]. Used by auto-init and by `sealkeep init-secret show`.
//!
//! Format `awskms-envelope-v1` (Secret `data` keys; every value is raw bytes):
//! - `format`: `awskms-envelope-v1`
//! - `kms-key-id`: ARN of the KMS key that wrapped the data key; `kms-region`: its region
//! - `wrapped-data-key`: the `CiphertextBlob` of `GenerateDataKey` (AES_256), encryption
//!   context `{"sealkeep.dev/init-secret": "<namespace>/<secret name>"}`
//! - `nonce` (12 bytes) and `ciphertext` (AES-256-GCM, tag appended) of the JSON
//!   `{"root_token": "..." | null, "keys": ["<base64 share>", ...]}`; the associated data binds
//!   the format, the Secret's namespace and name and the clear fields below
//! - `key-type` (`unseal` or `recovery`), `threshold`, `root-token-revoked` (`true`/`false`):
//!   in clear so that `kubectl get` tells what the Secret is, and authenticated by the AAD.
//!
//! Format `plain-v1` (Shamir seal: there is no KMS key to encrypt with) holds `root-token`,
//! `keys` (one base64 share per line), `key-type`, `threshold` and `root-token-revoked` in clear.
//! A Secret without `format` is a `plain-v1` Secret written by an operator before 0.2.

pub mod kms;

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use k8s_openapi::ByteString;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub const FORMAT: &str = "format";
pub const FORMAT_PLAIN: &str = "plain-v1";
pub const FORMAT_ENVELOPE: &str = "awskms-envelope-v1";
pub const ROOT_TOKEN: &str = "root-token";
pub const KEYS: &str = "keys";
pub const KEY_TYPE: &str = "key-type";
pub const THRESHOLD: &str = "threshold";
pub const ROOT_TOKEN_REVOKED: &str = "root-token-revoked";
pub const KMS_KEY_ID: &str = "kms-key-id";
pub const KMS_REGION: &str = "kms-region";
pub const WRAPPED_DATA_KEY: &str = "wrapped-data-key";
pub const NONCE: &str = "nonce";
pub const CIPHERTEXT: &str = "ciphertext";
/// Key of the KMS encryption context of the data key.
pub const CONTEXT_KEY: &str = "sealkeep.dev/init-secret";

/// Unseal shares (Shamir) or recovery shares (auto-unseal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Unseal,
    Recovery,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unseal => "unseal",
            Self::Recovery => "recovery",
        }
    }
}

/// What the init Secret holds. Zeroized on drop; `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct InitContents {
    /// `None` once the operator revoked it (`spec.init.revokeRootToken`).
    pub root_token: Option<String>,
    /// Base64 key shares.
    pub keys: Vec<String>,
    #[zeroize(skip)]
    pub key_type: KeyType,
    #[zeroize(skip)]
    pub threshold: u8,
    #[zeroize(skip)]
    pub root_token_revoked: bool,
}

impl std::fmt::Debug for InitContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitContents")
            .field(
                "root_token",
                &self.root_token.as_ref().map(|_| "<redacted>"),
            )
            .field("keys", &self.keys.len())
            .field("key_type", &self.key_type)
            .field("threshold", &self.threshold)
            .field("root_token_revoked", &self.root_token_revoked)
            .finish()
    }
}

/// A plaintext data key from `GenerateDataKey` and its wrapped form. Zeroized on drop.
pub struct DataKey {
    /// ARN of the KMS key (what `GenerateDataKey` answered).
    pub key_id: String,
    pub plaintext: Zeroizing<Vec<u8>>,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The sealed parts of an `awskms-envelope-v1` Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub key_id: String,
    pub region: String,
    pub wrapped_key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub key_type: KeyType,
    pub threshold: u8,
    pub root_token_revoked: bool,
}

/// A parsed init Secret.
#[derive(Debug)]
pub enum Stored {
    Plain(InitContents),
    Envelope(Envelope),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "the init Secret has no data key {0:?}; it was not written by the Sealkeep operator, or it is still pending"
    )]
    Missing(&'static str),
    #[error("the init Secret's {key:?} is invalid: {why}")]
    Invalid { key: &'static str, why: String },
    #[error(
        "the init Secret's format {0:?} is unknown; use a sealkeep binary at least as new as the operator that wrote it"
    )]
    UnknownFormat(String),
    #[error("the data key from KMS is {0} bytes, not 32")]
    DataKeyLength(usize),
    #[error("no random nonce: the system random generator failed")]
    Random,
    #[error(
        "the ciphertext of the init Secret does not open with the data key: it was modified, or moved from another Secret (AAD {aad:?})"
    )]
    Open { aad: String },
}

/// The KMS encryption context value (and part of the AAD): `<namespace>/<secret name>`.
pub fn context(namespace: &str, secret: &str) -> String {
    format!("{namespace}/{secret}")
}

fn aad(context: &str, key_type: KeyType, threshold: u8, revoked: bool) -> String {
    format!(
        "sealkeep.dev/init-secret\0{FORMAT_ENVELOPE}\0{context}\0{}\0{threshold}\0{revoked}",
        key_type.as_str()
    )
}

#[derive(Serialize, Deserialize)]
struct Payload {
    root_token: Option<String>,
    keys: Vec<String>,
}

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

fn clear_fields(c: &InitContents, format: &str) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (FORMAT.to_owned(), bytes(format)),
        (KEY_TYPE.to_owned(), bytes(c.key_type.as_str())),
        (THRESHOLD.to_owned(), bytes(&c.threshold.to_string())),
        (
            ROOT_TOKEN_REVOKED.to_owned(),
            bytes(if c.root_token_revoked {
                "true"
            } else {
                "false"
            }),
        ),
    ])
}

/// `plain-v1` data. The caller zeroizes the returned values after use.
pub fn plain_data(c: &InitContents) -> BTreeMap<String, ByteString> {
    let mut data = clear_fields(c, FORMAT_PLAIN);
    data.insert(
        ROOT_TOKEN.to_owned(),
        bytes(c.root_token.as_deref().unwrap_or("")),
    );
    data.insert(KEYS.to_owned(), ByteString(c.keys.join("\n").into_bytes()));
    data
}

/// `awskms-envelope-v1` data: `c` sealed with `dk` for the Secret `namespace/secret`.
pub fn envelope_data(
    c: &InitContents,
    dk: &DataKey,
    region: &str,
    namespace: &str,
    secret: &str,
) -> Result<BTreeMap<String, ByteString>, FormatError> {
    let key = aead_key(&dk.plaintext)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| FormatError::Random)?;
    let payload = Payload {
        root_token: c.root_token.clone(),
        keys: c.keys.clone(),
    };
    let mut buf =
        Zeroizing::new(
            serde_json::to_vec(&payload).map_err(|e| FormatError::Invalid {
                key: CIPHERTEXT,
                why: e.to_string(),
            })?,
        );
    let mut payload = payload;
    payload.root_token.zeroize();
    payload.keys.zeroize();
    let ad = aad(
        &context(namespace, secret),
        c.key_type,
        c.threshold,
        c.root_token_revoked,
    );
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(ad.as_bytes()),
        &mut *buf,
    )
    .map_err(|_| FormatError::Open { aad: ad })?;
    let mut data = clear_fields(c, FORMAT_ENVELOPE);
    data.insert(KMS_KEY_ID.to_owned(), bytes(&dk.key_id));
    data.insert(KMS_REGION.to_owned(), bytes(region));
    data.insert(WRAPPED_DATA_KEY.to_owned(), ByteString(dk.wrapped.clone()));
    data.insert(NONCE.to_owned(), ByteString(nonce.to_vec()));
    data.insert(CIPHERTEXT.to_owned(), ByteString(buf.to_vec()));
    Ok(data)
}

fn aead_key(plaintext: &[u8]) -> Result<LessSafeKey, FormatError> {
    if plaintext.len() != 32 {
        return Err(FormatError::DataKeyLength(plaintext.len()));
    }
    let unbound = UnboundKey::new(&AES_256_GCM, plaintext)
        .map_err(|_| FormatError::DataKeyLength(plaintext.len()))?;
    Ok(LessSafeKey::new(unbound))
}

fn field<'a>(
    data: &'a BTreeMap<String, ByteString>,
    key: &'static str,
) -> Result<&'a [u8], FormatError> {
    data.get(key)
        .map(|b| b.0.as_slice())
        .ok_or(FormatError::Missing(key))
}

fn text<'a>(
    data: &'a BTreeMap<String, ByteString>,
    key: &'static str,
) -> Result<&'a str, FormatError> {
    std::str::from_utf8(field(data, key)?).map_err(|_| FormatError::Invalid {
        key,
        why: "not UTF-8".into(),
    })
}

fn common(data: &BTreeMap<String, ByteString>) -> Result<(KeyType, u8, bool), FormatError> {
    let key_type = match text(data, KEY_TYPE)? {
        "unseal" => KeyType::Unseal,
        "recovery" => KeyType::Recovery,
        other => {
            return Err(FormatError::Invalid {
                key: KEY_TYPE,
                why: format!("{other:?} is neither unseal nor recovery"),
            });
        }
    };
    let threshold =
        text(data, THRESHOLD)?
            .trim()
            .parse::<u8>()
            .map_err(|e| FormatError::Invalid {
                key: THRESHOLD,
                why: e.to_string(),
            })?;
    // Absent in Secrets of older operators: never revoked.
    let revoked = data
        .get(ROOT_TOKEN_REVOKED)
        .is_some_and(|b| b.0.as_slice() == b"true");
    Ok((key_type, threshold, revoked))
}

/// Parses the `data` of an init Secret.
pub fn parse(data: &BTreeMap<String, ByteString>) -> Result<Stored, FormatError> {
    let format = match data.get(FORMAT) {
        None => FORMAT_PLAIN,
        Some(_) => text(data, FORMAT)?,
    };
    let (key_type, threshold, root_token_revoked) = common(data)?;
    match format {
        FORMAT_PLAIN => {
            let token = text(data, ROOT_TOKEN)?;
            Ok(Stored::Plain(InitContents {
                root_token: (!token.is_empty()).then(|| token.to_owned()),
                keys: text(data, KEYS)?
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                key_type,
                threshold,
                root_token_revoked,
            }))
        }
        FORMAT_ENVELOPE => Ok(Stored::Envelope(Envelope {
            key_id: text(data, KMS_KEY_ID)?.to_owned(),
            region: text(data, KMS_REGION)?.to_owned(),
            wrapped_key: field(data, WRAPPED_DATA_KEY)?.to_vec(),
            nonce: field(data, NONCE)?.to_vec(),
            ciphertext: field(data, CIPHERTEXT)?.to_vec(),
            key_type,
            threshold,
            root_token_revoked,
        })),
        other => Err(FormatError::UnknownFormat(other.to_owned())),
    }
}

/// Opens an envelope with the plaintext data key (from KMS `Decrypt`).
pub fn open(
    env: &Envelope,
    plaintext_key: &[u8],
    namespace: &str,
    secret: &str,
) -> Result<InitContents, FormatError> {
    let key = aead_key(plaintext_key)?;
    let nonce: [u8; NONCE_LEN] =
        env.nonce
            .as_slice()
            .try_into()
            .map_err(|_| FormatError::Invalid {
                key: NONCE,
                why: format!("{} bytes, not {NONCE_LEN}", env.nonce.len()),
            })?;
    let ad = aad(
        &context(namespace, secret),
        env.key_type,
        env.threshold,
        env.root_token_revoked,
    );
    let mut buf = Zeroizing::new(env.ciphertext.clone());
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(ad.as_bytes()),
            &mut buf,
        )
        .map_err(|_| FormatError::Open { aad: ad.clone() })?;
    let mut payload: Payload = serde_json::from_slice(plain).map_err(|e| FormatError::Invalid {
        key: CIPHERTEXT,
        why: e.to_string(),
    })?;
    let contents = InitContents {
        root_token: payload.root_token.take(),
        keys: std::mem::take(&mut payload.keys),
        key_type: env.key_type,
        threshold: env.threshold,
        root_token_revoked: env.root_token_revoked,
    };
    Ok(contents)
}

#[cfg(test)]
mod tests;
