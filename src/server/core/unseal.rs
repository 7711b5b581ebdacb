//! Core layer: unseal with key shares (`sys/unseal`): Shamir unseal-key shares, or, with awskms
//! after a manual seal, recovery-key shares that authorize a KMS unwrap.

use base64::Engine;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::init::sha256_hex;
use super::{Core, CoreError, SealBackend, SealStatus, State, paths, wrapped_root_key_from};
use crate::server::barrier::{self, KEY_LEN, Key};
use crate::server::seal::shamir;

/// Vault accepts a share as hex or base64.
fn decode_share(key: &str) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    let key = key.trim();
    if let Ok(b) = hex::decode(key) {
        return Ok(Zeroizing::new(b));
    }
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| CoreError::InvalidRequest("'key' must be a valid hex or base64 string".into()))
}

impl Core {
    /// `sys/unseal` with one share (or `reset`). Returns the status after the call.
    pub async fn unseal_share(
        &self,
        key: Option<&str>,
        reset: bool,
    ) -> Result<SealStatus, CoreError> {
        let parts = {
            let mut state = self.state.write().await;
            let sealed = match &mut *state {
                State::Uninitialized => return Err(CoreError::NotInitialized),
                State::Unsealed(_) => {
                    drop(state);
                    return Ok(self.seal_status().await);
                }
                State::Sealed(s) => s,
            };
            if reset {
                sealed.progress = Default::default();
                drop(state);
                return Ok(self.seal_status().await);
            }
            let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
                CoreError::InvalidRequest(
                    "'key' must be specified in request body as JSON, or 'reset' set to true"
                        .into(),
                )
            })?;
            let share = decode_share(key)?;
            let (threshold, shares) = match &sealed.recovery {
                Some(r) => (r.secret_threshold, r.secret_shares),
                None => (
                    sealed.seal_config.secret_threshold,
                    sealed.seal_config.secret_shares,
                ),
            };
            let expected = if shares == 1 { KEY_LEN } else { KEY_LEN + 1 };
            if share.len() != expected {
                return Err(CoreError::InvalidRequest(format!(
                    "unseal key is {} bytes, expected {expected}; pass one whole key share as printed by init",
                    share.len()
                )));
            }
            if sealed.progress.parts.is_empty() {
                sealed.progress.nonce = uuid::Uuid::new_v4().to_string();
            }
            if !sealed
                .progress
                .parts
                .iter()
                .any(|p| bool::from(p.as_slice().ct_eq(share.as_slice())))
            {
                sealed.progress.parts.push(share);
            }
            if sealed.progress.parts.len() < threshold {
                drop(state);
                return Ok(self.seal_status().await);
            }
            // Threshold reached: this attempt is over whatever its outcome.
            std::mem::take(&mut sealed.progress).parts
        };

        let result = self.unseal_with_parts(&parts).await;
        self.metrics.unseal_attempt(
            "shares",
            match &result {
                Ok(()) => "ok",
                Err(CoreError::InvalidKey) => "invalid_key",
                Err(_) => "error",
            },
        );
        result?;
        Ok(self.seal_status().await)
    }

    async fn unseal_with_parts(&self, parts: &[Zeroizing<Vec<u8>>]) -> Result<(), CoreError> {
        let secret = if parts.len() == 1 {
            parts[0].clone()
        } else {
            shamir::combine(parts).map_err(|_| CoreError::InvalidKey)?
        };
        let secret = Key::from_slice(&secret).map_err(|_| CoreError::InvalidKey)?;
        let pending = match &*self.state.read().await {
            State::Sealed(s) => s.join.clone().map(|j| (j, s.seal_config.clone())),
            _ => None,
        };
        if let Some((join, seal_config)) = pending {
            let root_key = self.finish_shamir_join(&join, &secret).await?;
            let unsealed = self.open_barrier(root_key, seal_config, None).await?;
            if self.install_unsealed(unsealed, false).await {
                tracing::info!("joined and unsealed with key shares");
            }
            return Ok(());
        }
        let raw = self
            .local
            .get(paths::ROOT_KEY)
            .await?
            .ok_or(CoreError::Corrupt {
                path: paths::ROOT_KEY,
                reason: "missing".into(),
            })?;
        let wrapped = wrapped_root_key_from(&raw)?;
        let (seal_config, recovery) = match &*self.state.read().await {
            State::Sealed(s) => (s.seal_config.clone(), s.recovery.clone()),
            _ => return Ok(()),
        };
        let root_key = match &self.seal {
            SealBackend::Shamir => {
                let ct = base64::engine::general_purpose::STANDARD
                    .decode(&wrapped.ciphertext)
                    .map_err(|e| CoreError::Corrupt {
                        path: paths::ROOT_KEY,
                        reason: e.to_string(),
                    })?;
                let pt = barrier::open_with_key(&secret, paths::ROOT_KEY, &ct)
                    .map_err(|_| CoreError::InvalidKey)?;
                Key::from_slice(&pt)?
            }
            SealBackend::AwsKms(kms) => {
                let verifier = recovery.as_ref().map(|r| r.verifier.as_str()).unwrap_or("");
                let got = sha256_hex(secret.as_bytes());
                if verifier.is_empty() || !bool::from(got.as_bytes().ct_eq(verifier.as_bytes())) {
                    return Err(CoreError::InvalidKey);
                }
                let pt = kms.unwrap(&wrapped).await?;
                Key::from_slice(&pt)?
            }
        };
        let unsealed = self.open_barrier(root_key, seal_config, recovery).await?;
        if self.install_unsealed(unsealed, false).await {
            tracing::info!("unsealed with key shares");
        }
        Ok(())
    }
}
