//! Seal layer: protects the barrier's root key. `shamir` wraps it with an unseal key split into
//! shares; `awskms` wraps it with an AWS KMS key (does network I/O). Both store a
//! [`WrappedRootKey`] in plaintext at [`crate::server::core::paths::ROOT_KEY`].

pub mod awskms;
pub mod shamir;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use awskms::AwsKmsSeal;

/// The seal type names Vault uses in `sys/seal-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealType {
    Shamir,
    Awskms,
}

impl SealType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shamir => "shamir",
            Self::Awskms => "awskms",
        }
    }
}

/// The root key as the seal wrapped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedRootKey {
    pub seal_type: SealType,
    /// For `awskms`: the ARN of the KMS key that wrapped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Base64 ciphertext.
    pub ciphertext: String,
}

/// Why a seal operation failed. Stable names: the operator puts them in conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SealErrorClass {
    /// The KMS or STS endpoint could not be reached (connection refused, DNS, timeout).
    Unreachable,
    /// KMS refused the call for these credentials (missing `kms:*` permission).
    AccessDenied,
    /// The KMS key (or alias) does not exist in this account and region.
    KeyNotFound,
    /// The KMS key exists but is disabled or pending deletion.
    KeyDisabled,
    /// KMS could not decrypt the stored root key (wrong key, or the blob was modified).
    InvalidCiphertext,
    /// STS refused `AssumeRoleWithWebIdentity`, or the token file could not be read.
    WebIdentityDenied,
    /// No AWS credentials were found.
    MissingCredentials,
    /// KMS throttled the request.
    Throttled,
    /// The stored root key could not be decoded.
    Corrupt,
    Other,
}

impl SealErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "Unreachable",
            Self::AccessDenied => "AccessDenied",
            Self::KeyNotFound => "KeyNotFound",
            Self::KeyDisabled => "KeyDisabled",
            Self::InvalidCiphertext => "InvalidCiphertext",
            Self::WebIdentityDenied => "WebIdentityDenied",
            Self::MissingCredentials => "MissingCredentials",
            Self::Throttled => "Throttled",
            Self::Corrupt => "Corrupt",
            Self::Other => "Other",
        }
    }
}

/// A seal failure: its class and a message with no secrets in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{}: {message}", class.as_str())]
pub struct SealError {
    pub class: SealErrorClass,
    pub message: String,
}

impl SealError {
    pub fn new(class: SealErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }
}

/// The health of a seal backend, as `sys/seal-backend-status` reports it.
#[derive(Debug, Clone, Default)]
pub struct SealHealth {
    /// `None` until the first check completes.
    pub healthy: Option<bool>,
    pub unhealthy_since: Option<SystemTime>,
    pub last_error: Option<SealError>,
    pub last_error_time: Option<SystemTime>,
    pub last_check: Option<SystemTime>,
}

impl SealHealth {
    pub fn record(&mut self, result: Result<(), &SealError>) {
        let now = SystemTime::now();
        self.last_check = Some(now);
        match result {
            Ok(()) => {
                self.healthy = Some(true);
                self.unhealthy_since = None;
            }
            Err(e) => {
                if self.healthy != Some(false) {
                    self.unhealthy_since = Some(now);
                }
                self.healthy = Some(false);
                self.last_error = Some(e.clone());
                self.last_error_time = Some(now);
            }
        }
    }
}
