//! Core layer: `sys/init`. Generates the root key and keyring, wraps the root key with the seal
//! (with a KMS round trip before anything is stored), and writes everything in one transaction.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    ClusterInfo, Core, CoreError, Progress, RecoveryConfigRecord, SealBackend, SealConfigRecord,
    SealedState, State, Unsealed, paths,
};
use crate::server::barrier::{self, Barrier, KEYRING_PATH, Key, Keyring};
use crate::server::cluster::ClusterTls;
use crate::server::physical::TxnOp;
use crate::server::seal::{SealError, SealErrorClass, SealType, WrappedRootKey, shamir};
use crate::server::token::TokenStore;

/// Vault's init request. Unknown fields are ignored, as Vault does.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct InitRequest {
    pub secret_shares: Option<usize>,
    pub secret_threshold: Option<usize>,
    pub stored_shares: Option<usize>,
    pub pgp_keys: Option<Vec<String>>,
    pub recovery_shares: Option<usize>,
    pub recovery_threshold: Option<usize>,
    pub recovery_pgp_keys: Option<Vec<String>>,
    pub root_token_pgp_key: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InitResponse {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery_keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery_keys_base64: Vec<String>,
    pub root_token: String,
}

impl Drop for InitResponse {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.keys.zeroize();
        self.keys_base64.zeroize();
        self.recovery_keys.zeroize();
        self.recovery_keys_base64.zeroize();
        self.root_token.zeroize();
    }
}

/// Default recovery split when the request gives none (the `vault operator init` defaults).
const DEFAULT_RECOVERY: (usize, usize) = (5, 3);

fn nonzero(v: Option<usize>) -> bool {
    v.is_some_and(|v| v != 0)
}

/// Vault's `validateInitParameters`: reject the other seal type's parameters.
fn validate(req: &InitRequest, seal: SealType) -> Result<(), CoreError> {
    if req.pgp_keys.as_ref().is_some_and(|k| !k.is_empty())
        || req
            .recovery_pgp_keys
            .as_ref()
            .is_some_and(|k| !k.is_empty())
        || req
            .root_token_pgp_key
            .as_ref()
            .is_some_and(|k| !k.is_empty())
    {
        return Err(CoreError::InvalidRequest(
            "PGP encryption of keys is not supported by Sealkeep; omit pgp_keys, recovery_pgp_keys and root_token_pgp_key".into(),
        ));
    }
    let mut barrier_flags = Vec::new();
    if nonzero(req.secret_shares) {
        barrier_flags.push("secret_shares");
    }
    if nonzero(req.secret_threshold) {
        barrier_flags.push("secret_threshold");
    }
    if nonzero(req.stored_shares) {
        barrier_flags.push("stored_shares");
    }
    let mut recovery_flags = Vec::new();
    if nonzero(req.recovery_shares) {
        recovery_flags.push("recovery_shares");
    }
    if nonzero(req.recovery_threshold) {
        recovery_flags.push("recovery_threshold");
    }
    match seal {
        SealType::Shamir if !recovery_flags.is_empty() => Err(CoreError::InvalidRequest(format!(
            "parameters {} not applicable to seal type shamir; use secret_shares and secret_threshold",
            recovery_flags.join(",")
        ))),
        SealType::Awskms if !barrier_flags.is_empty() => Err(CoreError::InvalidRequest(format!(
            "parameters {} not applicable to seal type awskms; use recovery_shares and recovery_threshold",
            barrier_flags.join(",")
        ))),
        _ => Ok(()),
    }
}

fn encode_shares(shares: &[Zeroizing<Vec<u8>>]) -> (Vec<String>, Vec<String>) {
    (
        shares.iter().map(hex::encode).collect(),
        shares
            .iter()
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_slice()))
            .collect(),
    )
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, CoreError> {
    serde_json::to_vec(value).map_err(|e| CoreError::InvalidRequest(e.to_string()))
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

impl Core {
    /// `sys/init`. With awskms the server is unsealed when this returns.
    pub async fn initialize(&self, req: InitRequest) -> Result<InitResponse, CoreError> {
        let mut state = self.state.write().await;
        if !matches!(*state, State::Uninitialized) {
            return Err(CoreError::AlreadyInitialized);
        }
        let seal_type = self.seal.seal_type();
        validate(&req, seal_type)?;

        let root_key = Key::generate()?;
        let keyring = Keyring::new(root_key.clone())?;
        let mut keys = Vec::new();
        let mut recovery_keys = Vec::new();
        let (seal_config, recovery, wrapped) = match &self.seal {
            SealBackend::Shamir => {
                let shares = req.secret_shares.unwrap_or(0);
                let threshold = req.secret_threshold.unwrap_or(0);
                if nonzero(req.stored_shares) {
                    return Err(CoreError::InvalidRequest(
                        "stored_shares is not supported with the shamir seal".into(),
                    ));
                }
                shamir::validate(shares, threshold)?;
                let unseal_key = Key::generate()?;
                keys = shamir::split(unseal_key.as_bytes(), shares, threshold)?;
                let ct = barrier::seal_with_key(&unseal_key, paths::ROOT_KEY, root_key.as_bytes())?;
                let wrapped = WrappedRootKey {
                    seal_type,
                    key_id: None,
                    ciphertext: base64::engine::general_purpose::STANDARD.encode(ct),
                };
                let cfg = SealConfigRecord {
                    seal_type,
                    secret_shares: shares,
                    secret_threshold: threshold,
                };
                (cfg, None, wrapped)
            }
            SealBackend::AwsKms(kms) => {
                let (rs, rt) = match (req.recovery_shares, req.recovery_threshold) {
                    (None, None) => DEFAULT_RECOVERY,
                    (s, t) => (s.unwrap_or(0), t.unwrap_or(0)),
                };
                shamir::validate(rs, rt).map_err(|e| {
                    CoreError::InvalidRequest(
                        e.to_string()
                            .replace("secret_shares", "recovery_shares")
                            .replace("secret_threshold", "recovery_threshold"),
                    )
                })?;
                // Preflight: a full Encrypt + Decrypt round trip before anything is stored, so a
                // missing kms:Decrypt permission cannot leave storage initialized but unusable.
                let wrapped = kms.wrap(root_key.as_bytes()).await?;
                let back = kms.unwrap(&wrapped).await?;
                if !bool::from(back.as_slice().ct_eq(root_key.as_bytes())) {
                    return Err(CoreError::Seal(SealError::new(
                        SealErrorClass::InvalidCiphertext,
                        "KMS Decrypt did not return the key that Encrypt wrapped; check the KMS endpoint",
                    )));
                }
                let recovery_key = Key::generate()?;
                recovery_keys = shamir::split(recovery_key.as_bytes(), rs, rt)?;
                let rec = RecoveryConfigRecord {
                    secret_shares: rs,
                    secret_threshold: rt,
                    verifier: sha256_hex(recovery_key.as_bytes()),
                };
                let cfg = SealConfigRecord {
                    seal_type,
                    secret_shares: 1,
                    secret_threshold: 1,
                };
                (cfg, Some(rec), wrapped)
            }
        };

        let cluster = ClusterInfo {
            cluster_name: self.cluster_name.clone().unwrap_or_else(|| {
                format!(
                    "sealkeep-cluster-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                )
            }),
            cluster_id: uuid::Uuid::new_v4().to_string(),
        };
        let (tokens, salt_op) = TokenStore::generate()?;
        let (root_token, _entry, token_ops) = tokens.new_root()?;
        // On raft: the cluster CA that authenticates the cluster port, behind the barrier.
        let cluster_tls = match &self.raft {
            Some(_) => {
                Some(ClusterTls::generate().map_err(|e| CoreError::InvalidRequest(e.to_string()))?)
            }
            None => None,
        };
        let mut tls_op = Vec::new();
        if let Some(ca) = &cluster_tls {
            tls_op.push(TxnOp::Put {
                key: paths::CLUSTER_TLS.into(),
                value: ca
                    .to_bytes()
                    .map_err(|e| CoreError::InvalidRequest(e.to_string()))?
                    .to_vec(),
            });
        }

        // Everything in one transaction; the seal config (which means "initialized") included.
        let mut ops = Vec::new();
        for op in [
            salt_op,
            TxnOp::Put {
                key: paths::CLUSTER_INFO.into(),
                value: json(&cluster)?,
            },
        ]
        .into_iter()
        .chain(token_ops)
        .chain(tls_op)
        {
            if let TxnOp::Put { key, value } = op {
                let value = keyring.encrypt(&key, &value)?;
                ops.push(TxnOp::Put { key, value });
            }
        }
        ops.push(TxnOp::Put {
            key: KEYRING_PATH.into(),
            value: keyring.to_ciphertext()?,
        });
        ops.push(TxnOp::Put {
            key: paths::ROOT_KEY.into(),
            value: json(&wrapped)?,
        });
        if let Some(rec) = &recovery {
            ops.push(TxnOp::Put {
                key: paths::RECOVERY_CONFIG.into(),
                value: json(rec)?,
            });
        }
        ops.push(TxnOp::Put {
            key: paths::SEAL_CONFIG.into(),
            value: json(&seal_config)?,
        });
        // On raft, this node forms the cluster now: only sys/init ever does.
        self.form_cluster().await?;
        self.physical.transaction(ops).await?;
        self.metrics.initialized.set(1);

        *state = match self.seal {
            SealBackend::AwsKms(_) => {
                self.metrics.sealed.set(0);
                State::Unsealed(Arc::new(Unsealed::new(
                    Barrier::new(Arc::clone(&self.physical), Arc::new(keyring)),
                    seal_config,
                    recovery,
                    cluster,
                    tokens,
                )))
            }
            SealBackend::Shamir => State::Sealed(SealedState {
                seal_config,
                recovery,
                progress: Progress::default(),
                manual: false,
                join: None,
            }),
        };
        drop(state);
        if let (Some(raft), Some(ca)) = (&self.raft, &cluster_tls) {
            self.install_node_tls(raft, ca);
        }
        self.wake.notify_one();
        tracing::info!(seal = seal_type.as_str(), "initialized");

        let (keys_hex, keys_b64) = encode_shares(&keys);
        let (rec_hex, rec_b64) = encode_shares(&recovery_keys);
        Ok(InitResponse {
            keys: keys_hex,
            keys_base64: keys_b64,
            recovery_keys: rec_hex,
            recovery_keys_base64: rec_b64,
            root_token: root_token.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_seal_parameters_are_rejected_like_vault() {
        let shamir_params = InitRequest {
            secret_shares: Some(5),
            secret_threshold: Some(3),
            ..Default::default()
        };
        let err = validate(&shamir_params, SealType::Awskms).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "parameters secret_shares,secret_threshold not applicable to seal type awskms; use recovery_shares and recovery_threshold"
        );
        let recovery_params = InitRequest {
            recovery_shares: Some(5),
            ..Default::default()
        };
        let err = validate(&recovery_params, SealType::Shamir).expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("parameters recovery_shares not applicable to seal type shamir")
        );
        assert!(validate(&shamir_params, SealType::Shamir).is_ok());
        assert!(validate(&recovery_params, SealType::Awskms).is_ok());
        let pgp = InitRequest {
            pgp_keys: Some(vec!["k".into()]),
            ..Default::default()
        };
        assert!(validate(&pgp, SealType::Shamir).is_err());
    }
}
