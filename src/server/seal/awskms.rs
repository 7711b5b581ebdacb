//! Seal layer: AWS KMS seal. Does network I/O to KMS (and, through the credential chain, to STS
//! for IRSA web identity). The root key is sent to KMS `Encrypt` and stored as the returned
//! ciphertext blob together with the key ARN; the KMS key itself never leaves KMS.

mod classify;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use zeroize::Zeroizing;

use super::{SealError, SealErrorClass, SealHealth, SealType, WrappedRootKey};
use crate::server::config::AwsKmsConfig;
use crate::telemetry::ServerMetrics;

/// TCP (and TLS) connect timeout of KMS and STS calls.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time to the first byte of a KMS or STS answer (the SDK's `read_timeout`). An endpoint that
/// accepts connections but never answers (a firewall that drops, a missing VPC endpoint) fails
/// after this instead of the attempt timeout.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
/// A KMS call (with the STS call for its credentials) still waiting after this is reported as
/// `Unreachable` in [`AwsKmsSeal::health`] while it goes on.
pub const STALL_AFTER: Duration = Duration::from_secs(3);

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
    /// KMS calls in flight, by a call number: the operation and when it started.
    calls: Mutex<Calls>,
}

#[derive(Debug, Default)]
struct Calls {
    next: u64,
    open: BTreeMap<u64, (&'static str, Instant, SystemTime)>,
}

/// One KMS call in flight; dropping it (on completion or cancellation) ends it.
struct CallGuard<'a> {
    seal: &'a AwsKmsSeal,
    id: u64,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.seal.calls.lock() {
            c.open.remove(&self.id);
        }
    }
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
        // aws-config hands these timeouts to the default credentials chain too, so the STS
        // client of the web-identity (IRSA) provider has the same short connect and first-byte
        // timeouts (tests/server_kms_blackhole.rs checks both).
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(FIRST_BYTE_TIMEOUT)
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
            calls: Mutex::new(Calls::default()),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn kms_endpoint(&self) -> &str {
        &self.kms_endpoint
    }

    /// The last recorded result, or, when a call has waited [`STALL_AFTER`] or longer since,
    /// an `Unreachable` error that says what it waits for and how long. The call goes on and
    /// its own result replaces this one when it arrives.
    pub fn health(&self) -> SealHealth {
        let mut h = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        let oldest = self
            .calls
            .lock()
            .ok()
            .and_then(|c| c.open.values().next().copied());
        if let Some((op, started, started_wall)) = oldest {
            let waited = started.elapsed();
            if waited >= STALL_AFTER {
                let at = started_wall + STALL_AFTER;
                if h.healthy != Some(false) {
                    h.unhealthy_since = Some(at);
                }
                h.healthy = Some(false);
                h.last_error = Some(SealError::new(
                    SealErrorClass::Unreachable,
                    self.stall_message(op, waited),
                ));
                h.last_error_time = Some(at);
            }
        }
        h
    }

    fn stall_message(&self, op: &str, waited: Duration) -> String {
        let sts = match (&self.role_arn, &self.token_file) {
            (Some(role), Some(_)) => format!(
                "; its credentials come from STS {} (AssumeRoleWithWebIdentity for role {role}), which may be the one not answering",
                self.sts_endpoint
            ),
            _ => String::new(),
        };
        format!(
            "no answer from KMS endpoint {} after {} s ({op} on key {:?}, still waiting; the auto-unseal retry goes on){sts}; check network policies, security groups, VPC endpoints, the endpoint settings and the region",
            self.kms_endpoint,
            waited.as_secs(),
            self.key_id
        )
    }

    /// Marks a KMS call in flight until the guard drops.
    fn begin(&self, op: &'static str) -> CallGuard<'_> {
        let id = match self.calls.lock() {
            Ok(mut c) => {
                let id = c.next;
                c.next = c.next.wrapping_add(1);
                c.open.insert(id, (op, Instant::now(), SystemTime::now()));
                id
            }
            Err(_) => u64::MAX,
        };
        CallGuard { seal: self, id }
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
        let call = self.begin("DescribeKey");
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
        // Record the result before the call stops counting as in flight, so no reader sees
        // neither.
        let r = self.finish("DescribeKey", start, r);
        drop(call);
        r
    }

    /// Wraps the root key with `kms:Encrypt`.
    pub async fn wrap(&self, root_key: &[u8]) -> Result<WrappedRootKey, SealError> {
        let start = Instant::now();
        let call = self.begin("Encrypt");
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
        // Record the result before the call stops counting as in flight, so no reader sees
        // neither.
        let r = self.finish("Encrypt", start, r);
        drop(call);
        r
    }

    /// Unwraps the root key with `kms:Decrypt`, using the key ARN recorded when it was wrapped.
    pub async fn unwrap(&self, wrapped: &WrappedRootKey) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let start = Instant::now();
        let call = self.begin("Decrypt");
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
        // Record the result before the call stops counting as in flight, so no reader sees
        // neither.
        let r = self.finish("Decrypt", start, r);
        drop(call);
        r
    }
}
