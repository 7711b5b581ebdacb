//! Operator layer: the KMS calls of the init Secret's envelope: `GenerateDataKey` (the operator,
//! at auto-init) and `Decrypt` (`sealkeep init-secret show`, run by a human). Network I/O
//! through the AWS SDK with the caller's own credentials (default chain: env, profile, web
//! identity/IRSA, container and instance roles); errors name the key and the permission.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use super::{CONTEXT_KEY, DataKey};

/// A KMS key and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// Key ID, ARN or `alias/NAME`.
    pub key_id: String,
    pub region: String,
    /// Endpoint override; `None` uses the SDK's (which honours `AWS_ENDPOINT_URL_KMS`).
    pub endpoint: Option<String>,
}

/// What went wrong, for a condition reason or an exit message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsErrorClass {
    AccessDenied,
    KeyNotFound,
    KeyDisabled,
    InvalidCiphertext,
    MissingCredentials,
    Unreachable,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KmsError {
    pub class: KmsErrorClass,
    pub message: String,
}

/// The two KMS operations of the envelope; a trait so that tests need no KMS.
#[async_trait::async_trait]
pub trait DataKeys: Send + Sync {
    /// `GenerateDataKey` (AES_256) under `key`, with the encryption context of `context`.
    async fn generate(&self, key: &KmsKey, context: &str) -> Result<DataKey, KmsError>;
    /// `Decrypt` of a wrapped data key.
    async fn decrypt(
        &self,
        key: &KmsKey,
        wrapped: &[u8],
        context: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;
}

/// AWS KMS through the SDK. Builds a client per call: both calls are rare (once per init).
#[derive(Debug, Default, Clone)]
pub struct AwsDataKeys;

async fn client(key: &KmsKey) -> aws_sdk_kms::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(8))
        .operation_timeout(Duration::from_secs(20))
        .build();
    let sdk = aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(aws_config::Region::new(key.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    let mut conf = aws_sdk_kms::config::Builder::from(&sdk);
    if let Some(endpoint) = &key.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    aws_sdk_kms::Client::from_conf(conf.build())
}

fn encryption_context(context: &str) -> HashMap<String, String> {
    HashMap::from([(CONTEXT_KEY.to_owned(), context.to_owned())])
}

#[async_trait::async_trait]
impl DataKeys for AwsDataKeys {
    async fn generate(&self, key: &KmsKey, context: &str) -> Result<DataKey, KmsError> {
        let out = client(key)
            .await
            .generate_data_key()
            .key_id(&key.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|e| classify("GenerateDataKey", key, e))?;
        let plaintext = Zeroizing::new(
            out.plaintext()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
        );
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        if plaintext.len() != 32 || wrapped.is_empty() {
            return Err(KmsError {
                class: KmsErrorClass::Other,
                message: format!(
                    "KMS GenerateDataKey on key {:?} returned a {}-byte data key and a {}-byte wrapped key; expected 32 and more than 0",
                    key.key_id,
                    plaintext.len(),
                    wrapped.len()
                ),
            });
        }
        Ok(DataKey {
            key_id: out.key_id().unwrap_or(&key.key_id).to_owned(),
            plaintext,
            wrapped,
        })
    }

    async fn decrypt(
        &self,
        key: &KmsKey,
        wrapped: &[u8],
        context: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let out = client(key)
            .await
            .decrypt()
            .key_id(&key.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|e| classify("Decrypt", key, e))?;
        Ok(Zeroizing::new(
            out.plaintext()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
        ))
    }
}

/// The permission an operation needs.
fn permission(op: &str) -> &'static str {
    match op {
        "GenerateDataKey" => "kms:GenerateDataKey",
        _ => "kms:Decrypt",
    }
}

fn endpoint(key: &KmsKey) -> String {
    key.endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_KMS").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", key.region))
}

/// Maps an SDK error to a class and a message naming the key, the permission and the endpoint.
fn classify<E, R>(op: &str, key: &KmsKey, err: SdkError<E, R>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let chain = DisplayErrorContext(&err).to_string();
    let k = &key.key_id;
    let (class, message) = if let SdkError::ServiceError(service) = &err {
        let e = service.err();
        let code = e.code().unwrap_or("Unknown");
        let msg = e.message().unwrap_or("");
        let class = match code {
            "NotFoundException" => KmsErrorClass::KeyNotFound,
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "IncompleteSignature" => KmsErrorClass::AccessDenied,
            "InvalidCiphertextException" | "IncorrectKeyException" => {
                KmsErrorClass::InvalidCiphertext
            }
            "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
                KmsErrorClass::KeyDisabled
            }
            _ => KmsErrorClass::Other,
        };
        let what = match class {
            KmsErrorClass::KeyNotFound => format!(
                "KMS key {k:?} was not found in region {} ({op}); check the key ID and region",
                key.region
            ),
            KmsErrorClass::AccessDenied => format!(
                "KMS denied {op} on key {k:?}: the caller's AWS identity needs {} on this key",
                permission(op)
            ),
            KmsErrorClass::InvalidCiphertext => format!(
                "KMS could not decrypt the wrapped data key with key {k:?}: it was wrapped by another key, for another Secret, or modified"
            ),
            KmsErrorClass::KeyDisabled => {
                format!("KMS key {k:?} is disabled or pending deletion ({op})")
            }
            _ => format!("KMS {op} on key {k:?} failed"),
        };
        // An error without a code (a proxy, or a body the SDK cannot read): show the chain.
        let detail = if e.code().is_none() {
            chain.clone()
        } else {
            format!("{code}: {msg}")
        };
        (class, format!("{what} ({detail})"))
    } else if chain.contains("credentials") || chain.contains("Credentials") {
        (
            KmsErrorClass::MissingCredentials,
            format!(
                "no usable AWS credentials for KMS {op} on key {k:?}: {chain}; give this process an AWS identity (IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, or AWS_PROFILE) allowed {} on the key",
                permission(op)
            ),
        )
    } else if matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) {
        (
            KmsErrorClass::Unreachable,
            format!(
                "KMS endpoint {} is unreachable ({op} on key {k:?}): {chain}; check network access, the endpoint and the region",
                endpoint(key)
            ),
        )
    } else {
        (
            KmsErrorClass::Other,
            format!("KMS {op} on key {k:?} failed: {chain}"),
        )
    };
    KmsError { class, message }
}

/// A KMS for tests: a fixed data key wrapped by reversing it, or a fixed error.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct FakeKms {
    pub fail: Option<KmsError>,
    /// Every (operation, key ID, context) asked.
    pub calls: std::sync::Mutex<Vec<(String, String, String)>>,
}

#[cfg(test)]
impl FakeKms {
    pub(crate) const KEY_ARN: &'static str = "arn:aws:kms:eu-west-1:123456789012:key/fake";

    pub(crate) fn failing(class: KmsErrorClass, message: &str) -> Self {
        Self {
            fail: Some(KmsError {
                class,
                message: message.into(),
            }),
            ..Self::default()
        }
    }

    fn record(&self, op: &str, key: &KmsKey, context: &str) -> Result<(), KmsError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push((op.into(), key.key_id.clone(), context.into()));
        }
        self.fail.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
#[async_trait::async_trait]
impl DataKeys for FakeKms {
    async fn generate(&self, key: &KmsKey, context: &str) -> Result<DataKey, KmsError> {
        self.record("GenerateDataKey", key, context)?;
        let plaintext: Vec<u8> = (100u8..132).collect();
        Ok(DataKey {
            key_id: Self::KEY_ARN.into(),
            wrapped: plaintext.iter().rev().copied().collect(),
            plaintext: Zeroizing::new(plaintext),
        })
    }

    async fn decrypt(
        &self,
        key: &KmsKey,
        wrapped: &[u8],
        context: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.record("Decrypt", key, context)?;
        Ok(Zeroizing::new(wrapped.iter().rev().copied().collect()))
    }
}
