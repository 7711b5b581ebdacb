//! Core layer: joining a raft cluster, proven by the seal (Vault's and OpenBao's protocol).
//!
//! 1. The joiner asks the active node for a challenge (`sys/storage/raft/bootstrap/challenge`,
//!    unauthenticated, with its `server_id`).
//! 2. The leader derives the answer statelessly, HMAC-SHA256(join key, `server_id`), where the
//!    join key is random and exists only in the leader's unsealed state (no table of pending
//!    joiners to exhaust: CVE-2024-8185), and returns it **encrypted by the seal** (KMS).
//! 3. The joiner decrypts it with *its own* seal: only a node allowed `kms:Decrypt` on the
//!    cluster's key can. It posts the answer with its raft id and addresses
//!    (`bootstrap/answer`).
//! 4. The leader compares in constant time, adds the joiner as a learner (replacing an old id
//!    that has the same name: a node that rejoins with a wiped disk), and returns the cluster
//!    CA wrapped by the seal (a fresh data key under KMS, the CA under that key). The joiner
//!    installs it, so the leader can replicate to it; autopilot promotes it later.
//!
//! With the Shamir seal nothing can decrypt without an operator, so, as in Vault, a Shamir
//! joiner fetches the challenge, then waits for its unseal keys: the leader encrypts the
//! answer (and later the cluster CA) under the root key and sends the stored root key, still
//! wrapped by the unseal key; `sys/unseal` on the joiner recovers the root key from the shares,
//! answers, joins and unseals with it once the leader's log has arrived. Storage, seal and
//! network I/O.

mod joiner;
mod leader;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    Core, CoreError, Progress, SealBackend, SealConfigRecord, SealedState, State, Unsealed, paths,
};
use crate::server::barrier::{self, Key};
use crate::server::cluster::{ClusterAddr, ClusterTls};
use crate::server::config::RetryJoin;
use crate::server::physical::NodeInfo;
use crate::server::seal::{AwsKmsSeal, WrappedRootKey};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The HMAC label of join answers.
const ANSWER_LABEL: &[u8] = b"sealkeep-raft-peer-challenge\0";
/// Answer length (as OpenBao).
const ANSWER_LEN: usize = 24;
/// The associated data of the wrapped cluster CA.
const TLS_AAD: &str = "core/raft/tls/join";
/// The associated data of a Shamir cluster's challenge.
const CHALLENGE_AAD: &str = "core/raft/challenge";
/// How long a Shamir joiner waits for the leader's log after it answered.
const REPLICA_PATIENCE: Duration = Duration::from_secs(60);
/// How long one join request to a leader may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between `retry_join` rounds (Vault's 2 s).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// Most rounds of a `sys/storage/raft/join` with `retry` (about ten minutes).
pub const RETRY_ROUNDS: u32 = 300;

pub(super) fn new_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    // A failing system RNG leaves the key zero; joins then fail their challenge, nothing else.
    if aws_lc_rs::rand::fill(k.as_mut()).is_err() {
        tracing::error!("the system random generator failed; raft joins to this node will fail");
    }
    k
}

fn answer_for(unsealed: &Unsealed, server_id: &str) -> Zeroizing<Vec<u8>> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, unsealed.join_key.as_ref());
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(ANSWER_LABEL);
    ctx.update(server_id.as_bytes());
    Zeroizing::new(ctx.sign().as_ref()[..ANSWER_LEN].to_vec())
}

/// `sys/storage/raft/join`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JoinRequest {
    pub leader_api_addr: String,
    /// PEM CA that signed the leader's API certificate (for `https` addresses).
    #[serde(default)]
    pub leader_ca_cert: Option<String>,
    /// Keep trying in the background instead of failing now.
    #[serde(default)]
    pub retry: bool,
    #[serde(default)]
    pub non_voter: bool,
}

/// The answer to `bootstrap/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// Base64 of the seal-wrapped answer (JSON).
    pub challenge: String,
    pub seal_config: SealConfigRecord,
    /// Shamir clusters: the stored root key (base64 of its JSON), wrapped by the unseal key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_root_key: Option<String>,
}

/// A Shamir joiner's challenge, kept (sealed state) until its unseal keys arrive.
#[derive(Clone)]
pub(super) struct PendingJoin {
    leader: String,
    leader_ca_cert: Option<String>,
    challenge: String,
    wrapped_root_key: String,
}

impl std::fmt::Debug for PendingJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingJoin")
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

/// `bootstrap/answer`: Vault's fields plus this node's raft id and `api_addr`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerRequest {
    pub server_id: String,
    pub answer: String,
    pub cluster_addr: String,
    #[serde(default)]
    pub non_voter: bool,
    pub raft_node_id: u64,
    #[serde(default)]
    pub api_addr: String,
}

/// One member, as `bootstrap/answer` lists them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinPeer {
    pub server_id: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerResponse {
    pub peers: Vec<JoinPeer>,
    /// Base64 JSON of [`WrappedTls`]: the cluster CA, wrapped by the seal.
    pub tls_keyring: String,
}

/// The cluster CA under a data key that the seal wraps (awskms), or under the root key
/// (Shamir: `key` is absent).
#[derive(Serialize, Deserialize)]
struct WrappedTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<WrappedRootKey>,
    ciphertext: String,
}

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidRequest(msg.into())
}

fn join_request(target: &RetryJoin) -> Result<JoinRequest, CoreError> {
    Ok(JoinRequest {
        leader_api_addr: target.leader_api_addr.clone(),
        leader_ca_cert: target_ca(target)?,
        retry: false,
        non_voter: false,
    })
}

/// The CA certificate a `retry_join` target is verified with (`leader_ca_cert_file`), read
/// now; a file that cannot be read is an error, not "no CA" (which would make every TLS
/// check of the target fail, and look like a target that is not up).
fn target_ca(target: &RetryJoin) -> Result<Option<String>, CoreError> {
    let Some(path) = &target.leader_ca_cert_file else {
        return Ok(None);
    };
    std::fs::read_to_string(path).map(Some).map_err(|e| {
        invalid(format!(
            "cannot read the retry_join leader_ca_cert_file {} (for {}): {e}; fix the path in the storage \"raft\" stanza",
            path.display(),
            target.leader_api_addr
        ))
    })
}

async fn unwrap_tls(kms: &AwsKmsSeal, tls_keyring: &str) -> Result<ClusterTls, CoreError> {
    let malformed = || invalid("the leader's tls_keyring is malformed");
    let wrapped: WrappedTls = B64
        .decode(tls_keyring)
        .ok()
        .and_then(|j| serde_json::from_slice(&j).ok())
        .ok_or_else(malformed)?;
    let key = Key::from_slice(
        &kms.unwrap(wrapped.key.as_ref().ok_or_else(malformed)?)
            .await?,
    )?;
    let ct = B64.decode(&wrapped.ciphertext).map_err(|_| malformed())?;
    let raw = barrier::open_with_key(&key, TLS_AAD, &ct).map_err(|_| malformed())?;
    ClusterTls::from_bytes(&raw).map_err(|e| invalid(e.to_string()))
}

fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, CoreError> {
    let mut b = reqwest::Client::builder()
        .timeout(JOIN_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .no_proxy();
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| invalid(format!("leader_ca_cert is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(
                "leader_ca_cert is not PEM: it holds no certificate (a -----BEGIN CERTIFICATE----- block)",
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| invalid(e.to_string()))
}

/// Most bytes read from a peer's answer during a join (a challenge, a wrapped cluster CA, a
/// seal status: a few KiB); more is refused, so a wrong or hostile address cannot make this
/// node buffer without bound.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A peer's answer body as text, refused past [`MAX_ANSWER_BYTES`].
pub(super) async fn read_capped(mut resp: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes; check that the address is a Sealkeep or Vault API"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the answer is not UTF-8 text".to_owned())
}

/// POSTs JSON to the leader and decodes Vault's `{data}` or bare answer; errors name the leader.
async fn post<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    leader: &str,
    path: &str,
    body: &impl Serialize,
) -> Result<T, CoreError> {
    let url = format!("{leader}/v1/{path}");
    let resp = client
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| invalid(format!("cannot reach the leader at {leader}: {e}")))?;
    let status = resp.status();
    let text = read_capped(resp)
        .await
        .map_err(|e| invalid(format!("{url}: {e}")))?;
    if !status.is_success() {
        let mut msg: String = text.chars().take(300).collect();
        if msg.is_empty() {
            msg = status.to_string();
        }
        return Err(invalid(format!("{url} answered {status}: {msg}")));
    }
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("{url}: {e}")))?;
    let v = v.get("data").cloned().unwrap_or(v);
    serde_json::from_value(v).map_err(|e| invalid(format!("{url}: unexpected answer: {e}")))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn target(ca: Option<PathBuf>) -> RetryJoin {
        RetryJoin {
            leader_api_addr: "https://sealkeep-0.sealkeep-internal:8200".into(),
            leader_tls_servername: None,
            leader_ca_cert_file: ca,
        }
    }

    #[test]
    fn a_retry_join_ca_file_is_read_and_an_unreadable_one_is_an_error_not_no_ca() {
        assert_eq!(target_ca(&target(None)).expect("no CA"), None);

        let dir = tempfile::tempdir().expect("dir");
        let ca = ClusterTls::generate().expect("ca");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.ca_cert_pem()).expect("write");
        let read = target_ca(&target(Some(path))).expect("read");
        assert_eq!(read.as_deref(), Some(ca.ca_cert_pem()));
        assert!(http_client(read.as_deref()).is_ok());

        let missing = dir.path().join("missing.pem");
        let err = target_ca(&target(Some(missing))).expect_err("unreadable");
        let msg = err.to_string();
        assert!(
            msg.contains("missing.pem") && msg.contains("leader_ca_cert_file"),
            "{msg}"
        );
        let err = http_client(Some("not a certificate")).expect_err("not PEM");
        assert!(err.to_string().contains("not PEM"), "{err}");
    }
}
