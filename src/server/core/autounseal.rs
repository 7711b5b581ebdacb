//! Core layer: the awskms auto-unseal loop. Checks the key (DescribeKey), and while the server
//! is initialized and sealed, decrypts the stored root key through KMS. Never exits: failures
//! are recorded (class and message) and retried with capped, jittered exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;

use super::{Core, CoreError, State, paths, wrapped_root_key_from};
use crate::server::barrier::Key;
use crate::server::seal::awskms::STALL_AFTER;
use crate::server::seal::{AwsKmsSeal, SealError, SealErrorClass};

/// How often a healthy seal is re-checked.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(30);
const BASE_DELAY: Duration = Duration::from_millis(250);

/// Delay before retry number `failures` (1-based): exponential from 250 ms, capped, with
/// "equal jitter" (half fixed, half random) so many pods do not retry in lockstep.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(cap);
    let half = capped / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

impl Core {
    /// Starts the loop when the seal is awskms.
    pub fn spawn_auto_unseal(
        self: &Arc<Self>,
        cap: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let super::SealBackend::AwsKms(kms) = &self.seal else {
            return None;
        };
        let kms = Arc::clone(kms);
        let core = Arc::clone(self);
        Some(tokio::spawn(async move {
            core.auto_unseal_loop(kms, cap).await
        }))
    }

    async fn auto_unseal_loop(self: Arc<Self>, kms: Arc<AwsKmsSeal>, cap: Duration) {
        let mut failures = 0u32;
        loop {
            let delay = match self.step_reporting_stalls(&kms).await {
                Ok(()) => {
                    failures = 0;
                    HEALTH_INTERVAL
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let d = backoff(failures, cap);
                    tracing::warn!(
                        class = e.class.as_str(),
                        error = %e.message,
                        retry_in_ms = d.as_millis() as u64,
                        "auto-unseal: seal not healthy; staying sealed and retrying"
                    );
                    d
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// [`Self::auto_unseal_step`], logging once when it is still waiting after
    /// [`STALL_AFTER`] (from then on `sys/seal-backend-status` reports it as `Unreachable`).
    /// The step is never abandoned: its own result, when it comes, is the one that counts.
    async fn step_reporting_stalls(&self, kms: &AwsKmsSeal) -> Result<(), SealError> {
        let step = self.auto_unseal_step(kms);
        tokio::pin!(step);
        tokio::select! {
            r = &mut step => return r,
            () = tokio::time::sleep(STALL_AFTER) => {}
        }
        if let Some(e) = kms.health().last_error {
            tracing::warn!(
                class = e.class.as_str(),
                error = %e.message,
                "auto-unseal: KMS has not answered yet; still waiting"
            );
        }
        step.await
    }

    /// One pass: check the key, then unseal if initialized, sealed and not sealed by request.
    pub async fn auto_unseal_step(&self, kms: &AwsKmsSeal) -> Result<(), SealError> {
        let needs_unseal = match &*self.state.read().await {
            State::Sealed(s) => !s.manual,
            State::Uninitialized | State::Unsealed(_) => false,
        };
        if !needs_unseal {
            kms.describe_key().await?;
            return Ok(());
        }
        let result = self.unseal_with_kms(kms).await;
        self.metrics.unseal_attempt(
            "auto",
            match &result {
                Ok(()) => "ok",
                Err(e) => e.class.as_str(),
            },
        );
        if let Err(e) = &result {
            kms.note_error(e);
        }
        result
    }

    async fn unseal_with_kms(&self, kms: &AwsKmsSeal) -> Result<(), SealError> {
        let corrupt = |e: CoreError| SealError::new(SealErrorClass::Corrupt, e.to_string());
        kms.describe_key().await?;
        let raw = self
            .local
            .get(paths::ROOT_KEY)
            .await
            .map_err(|e| SealError::new(SealErrorClass::Other, e.to_string()))?
            .ok_or_else(|| {
                SealError::new(
                    SealErrorClass::Corrupt,
                    format!("{} is missing from storage", paths::ROOT_KEY),
                )
            })?;
        let wrapped = wrapped_root_key_from(&raw).map_err(corrupt)?;
        let pt = kms.unwrap(&wrapped).await?;
        let root_key = Key::from_slice(&pt)
            .map_err(|e| SealError::new(SealErrorClass::Corrupt, e.to_string()))?;
        let (seal_config, recovery) = match &*self.state.read().await {
            State::Sealed(s) => (s.seal_config.clone(), s.recovery.clone()),
            _ => return Ok(()),
        };
        let unsealed = self
            .open_barrier(root_key, seal_config, recovery)
            .await
            .map_err(|e| {
                SealError::new(
                    SealErrorClass::Corrupt,
                    format!("the root key from KMS does not open the keyring: {e}"),
                )
            })?;
        if self.install_unsealed(unsealed, true).await {
            tracing::info!(key = kms.key_id(), "auto-unsealed with AWS KMS");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let cap = Duration::from_secs(10);
        for failures in 1..40 {
            let d = backoff(failures, cap);
            let ceiling = BASE_DELAY
                .saturating_mul(1u32 << (failures - 1).min(16))
                .min(cap);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "failures {failures}: {d:?} vs {ceiling:?}"
            );
        }
        let samples: Vec<_> = (0..20).map(|_| backoff(10, cap)).collect();
        assert!(samples.iter().any(|d| *d != samples[0]), "jitter expected");
    }
}
