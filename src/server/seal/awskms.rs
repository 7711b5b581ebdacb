//! Seal layer: AWS KMS seal. Does network I/O to KMS (and, through the credential chain, to STS
//! for IRSA web identity). The root key is sent to KMS `Encrypt` and stored as the returned
//! ciphertext blob together with the key ARN; the KMS key itself never leaves KMS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine;
use zeroize::Zeroizing;

use super::{SealError, SealErrorClass, SealHealth, SealType, WrappedRootKey};
use crate::server::config::AwsKmsConfig;
use crate::telemetry::ServerMetrics;

/// What `DescribeKey` says about the configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub arn: String,
    pub enabled: bool,
    pub state: String,
}

pub struct AwsKmsSeal {
    client: aws_sdk_kms::Client,
    key_id: String,
    region: String,
    kms_endpoint: String,
    sts_endpoint: String,
    role_arn: Option<String>,
    token_file: Option<String>,
    metrics: Arc<ServerMetrics>,
    health: Mutex<SealHealth>,
}

impl std::fmt::Debug for AwsKmsSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsSeal")
            .field("key_id", &self.key_id)
            .field("region", &self.region)
            .field("kms_endpoint", &self.kms_endpoint)
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl AwsKmsSeal {
    /// Builds the KMS client from aws-config's default chain (env, profile, web identity/IRSA,
    /// container and instance roles). Makes no network calls.
    pub async fn new(cfg: &AwsKmsConfig, metrics: Arc<ServerMetrics>) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(8))
            .operation_timeout(Duration::from_secs(10))
            .build();
        let sdk = aws_config::defaults(BehaviorVersion::v2026_01_12())
            .region(aws_config::Region::new(cfg.region.clone()))
            .timeout_config(timeouts)
            // The auto-unseal loop retries with its own capped backoff.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .load()
            .await;
        let mut kms = aws_sdk_kms::config::Builder::from(&sdk);
        if let Some(endpoint) = &cfg.endpoint {
            kms = kms.endpoint_url(endpoint);
        }
        let kms_endpoint = cfg
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_KMS"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", cfg.region));
        let sts_endpoint = env("AWS_ENDPOINT_URL_STS")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", cfg.region));
        Self {
            client: aws_sdk_kms::Client::from_conf(kms.build()),
            key_id: cfg.kms_key_id.clone(),
            region: cfg.region.clone(),
            kms_endpoint,
            sts_endpoint,
            role_arn: env("AWS_ROLE_ARN"),
            token_file: env("AWS_WEB_IDENTITY_TOKEN_FILE"),
            metrics,
            health: Mutex::new(SealHealth::default()),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn kms_endpoint(&self) -> &str {
        &self.kms_endpoint
    }

    pub fn health(&self) -> SealHealth {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Records a failure found after a successful KMS call (for example a root key that does
    /// not open the keyring), so `sys/seal-backend-status` reports it.
    pub fn note_error(&self, e: &SealError) {
        self.record(Err(e));
    }

    fn record(&self, result: Result<(), &SealError>) {
        if let Ok(mut h) = self.health.lock() {
            h.record(result);
        }
    }

    /// Records metrics and health for one KMS call.
    fn finish<T>(
        &self,
        op: &'static str,
        start: Instant,
        r: Result<T, SealError>,
    ) -> Result<T, SealError> {
        let label = match &r {
            Ok(_) => "ok",
            Err(e) => e.class.as_str(),
        };
        self.metrics.observe_kms(op, label, start.elapsed());
        self.record(r.as_ref().map(|_| ()));
        if let Err(e) = &r {
            tracing::warn!(operation = op, class = e.class.as_str(), error = %e.message, "KMS call failed");
        }
        r
    }

    /// `kms:DescribeKey`: the key exists, is enabled and can encrypt.
    pub async fn describe_key(&self) -> Result<KeyInfo, SealError> {
        let start = Instant::now();
        let r = async {
            let out = self
                .client
                .describe_key()
                .key_id(&self.key_id)
                .send()
                .await
                .map_err(|e| self.classify("DescribeKey", e))?;
            let meta = out.key_metadata().ok_or_else(|| {
                SealError::new(SealErrorClass::Other, "DescribeKey returned no key metadata")
            })?;
            let info = KeyInfo {
                arn: meta.arn().unwrap_or(meta.key_id()).to_owned(),
                enabled: meta.enabled(),
                state: meta
                    .key_state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|| "Unknown".into()),
            };
            if !info.enabled {
                return Err(SealError::new(
                    SealErrorClass::KeyDisabled,
                    format!(
                        "KMS key {} ({}) is in state {}; enable it (aws kms enable-key) or point kms_key_id at an enabled key",
                        self.key_id, info.arn, info.state
                    ),
                ));
            }
            Ok(info)
        }
        .await;
        self.finish("DescribeKey", start, r)
    }

    /// Wraps the root key with `kms:Encrypt`.
    pub async fn wrap(&self, root_key: &[u8]) -> Result<WrappedRootKey, SealError> {
        let start = Instant::now();
        let r = async {
            let out = self
                .client
                .encrypt()
                .key_id(&self.key_id)
                .plaintext(Blob::new(root_key.to_vec()))
                .send()
                .await
                .map_err(|e| self.classify("Encrypt", e))?;
            let blob = out.ciphertext_blob().ok_or_else(|| {
                SealError::new(SealErrorClass::Other, "KMS Encrypt returned no ciphertext")
            })?;
            Ok(WrappedRootKey {
                seal_type: SealType::Awskms,
                key_id: Some(out.key_id().unwrap_or(&self.key_id).to_owned()),
                ciphertext: base64::engine::general_purpose::STANDARD.encode(blob.as_ref()),
            })
        }
        .await;
        self.finish("Encrypt", start, r)
    }

    /// Unwraps the root key with `kms:Decrypt`, using the key ARN recorded when it was wrapped.
    pub async fn unwrap(&self, wrapped: &WrappedRootKey) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let start = Instant::now();
        let r = async {
            let ct = base64::engine::general_purpose::STANDARD
                .decode(&wrapped.ciphertext)
                .map_err(|e| {
                    SealError::new(
                        SealErrorClass::Corrupt,
                        format!("stored root key is not valid base64: {e}; restore core/root-key from a backup"),
                    )
                })?;
            let key_id = wrapped.key_id.as_deref().unwrap_or(&self.key_id);
            let out = self
                .client
                .decrypt()
                .key_id(key_id)
                .ciphertext_blob(Blob::new(ct))
                .send()
                .await
                .map_err(|e| self.classify("Decrypt", e))?;
            let pt = out.plaintext().ok_or_else(|| {
                SealError::new(SealErrorClass::Other, "KMS Decrypt returned no plaintext")
            })?;
            Ok(Zeroizing::new(pt.as_ref().to_vec()))
        }
        .await;
        self.finish("Decrypt", start, r)
    }

    /// Maps an SDK error to a class and a message that names the endpoint, key or role.
    fn classify<E, R>(&self, op: &str, err: SdkError<E, R>) -> SealError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let chain = DisplayErrorContext(&err).to_string();
        if let SdkError::ServiceError(service) = &err {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let msg = e.message().unwrap_or("");
            let class = match code {
                "NotFoundException" => SealErrorClass::KeyNotFound,
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "IncompleteSignature" => SealErrorClass::AccessDenied,
                "InvalidCiphertextException" | "IncorrectKeyException" => {
                    SealErrorClass::InvalidCiphertext
                }
                "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
                    SealErrorClass::KeyDisabled
                }
                "ThrottlingException" | "LimitExceededException" => SealErrorClass::Throttled,
                _ => SealErrorClass::Other,
            };
            let fix = match class {
                SealErrorClass::KeyNotFound => format!(
                    "KMS key {:?} was not found in region {} at {}; check kms_key_id (key ID, ARN or alias/NAME) and the region",
                    self.key_id, self.region, self.kms_endpoint
                ),
                SealErrorClass::AccessDenied => format!(
                    "KMS denied {op} on key {:?}{}; grant kms:Encrypt, kms:Decrypt and kms:DescribeKey on this key",
                    self.key_id,
                    self.role_arn
                        .as_ref()
                        .map(|r| format!(" to role {r}"))
                        .unwrap_or_default()
                ),
                SealErrorClass::InvalidCiphertext => format!(
                    "KMS could not decrypt the stored root key with key {:?}: it was wrapped by another key or modified",
                    self.key_id
                ),
                _ => format!("KMS {op} on key {:?} failed", self.key_id),
            };
            return SealError::new(class, format!("{fix} ({code}: {msg})"));
        }
        // Credential errors (IRSA web identity through STS) surface inside dispatch failures.
        if chain.contains("credentials") || chain.contains("Credentials") {
            return self.classify_credentials(op, &chain);
        }
        match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => SealError::new(
                SealErrorClass::Unreachable,
                format!(
                    "KMS endpoint {} is unreachable ({op}): {chain}; check network access, the endpoint and the region",
                    self.kms_endpoint
                ),
            ),
            _ => SealError::new(SealErrorClass::Other, format!("KMS {op} failed: {chain}")),
        }
    }

    fn classify_credentials(&self, op: &str, chain: &str) -> SealError {
        let Some(token_file) = &self.token_file else {
            return SealError::new(
                SealErrorClass::MissingCredentials,
                format!(
                    "no AWS credentials for KMS {op}: {chain}; set up IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) or another credential source"
                ),
            );
        };
        let role = self.role_arn.as_deref().unwrap_or("<AWS_ROLE_ARN unset>");
        let lower = chain.to_ascii_lowercase();
        if lower.contains("no such file")
            || lower.contains("permission denied")
            || lower.contains("could not read")
        {
            return SealError::new(
                SealErrorClass::WebIdentityDenied,
                format!(
                    "cannot read the web identity token file {token_file}: {chain}; mount the projected token and make it readable (pod securityContext.fsGroup)"
                ),
            );
        }
        let network = [
            "connection refused",
            "tcp connect",
            "dns error",
            "timed out",
            "timeout",
            "io error",
            "connection reset",
        ];
        if network.iter().any(|n| lower.contains(n)) {
            return SealError::new(
                SealErrorClass::Unreachable,
                format!(
                    "STS endpoint {} is unreachable while assuming role {role} with web identity: {chain}",
                    self.sts_endpoint
                ),
            );
        }
        SealError::new(
            SealErrorClass::WebIdentityDenied,
            format!(
                "STS {} refused AssumeRoleWithWebIdentity for role {role}: {chain}; check the role's trust policy (OIDC provider, audience sts.amazonaws.com, service account subject)",
                self.sts_endpoint
            ),
        )
    }
}
