//! Core layer: the well-known storage paths. Pure constants.
//!
//! Plaintext entries (readable while sealed, written only by `sys/init`):
//! - [`SEAL_CONFIG`]: JSON `{type, secret_shares, secret_threshold}`. Its presence means
//!   "initialized"; it is written last, in the same transaction as everything else.
//! - [`RECOVERY_CONFIG`]: JSON `{secret_shares, secret_threshold, verifier}` (awskms only);
//!   `verifier` is SHA-256 of the 32-byte random recovery key.
//! - [`ROOT_KEY`]: the root key wrapped by the seal (`WrappedRootKey` JSON).
//!
//! Barrier-encrypted entries:
//! - [`crate::server::barrier::KEYRING_PATH`] (`core/keyring`): the keyring, under the root key.
//! - [`CLUSTER_INFO`]: `{cluster_name, cluster_id}`.
//! - [`CLUSTER_TLS`] (raft only): the cluster CA (certificate and key) that authenticates the
//!   cluster port, Vault's raft TLS keyring.
//! - [`super::autopilot::AUTOPILOT_CONFIG_PATH`] (`core/raft/autopilot`): autopilot's
//!   configuration (`sys/storage/raft/autopilot/configuration`), raft only.
//! - `sys/token/...`: the token store. `logical/...`: secrets engines.

pub const SEAL_CONFIG: &str = "core/seal-config";
pub const RECOVERY_CONFIG: &str = "core/recovery-config";
pub const ROOT_KEY: &str = "core/root-key";
pub const CLUSTER_INFO: &str = "core/cluster/local/info";
pub const CLUSTER_TLS: &str = "core/raft/tls";
