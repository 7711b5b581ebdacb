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

impl Core {
    /// The unsealed state of the active node, for the leader's side of a join.
    async fn active(&self) -> Result<Arc<Unsealed>, CoreError> {
        let raft = self.raft.as_ref().ok_or_else(|| {
            invalid("this server does not use integrated raft storage (storage \"raft\")")
        })?;
        let u = self.unsealed_any().await?;
        if u.standby || !raft.is_leader() {
            return Err(invalid(
                "this node is not the active node; send the join to the leader's api_addr",
            ));
        }
        Ok(u)
    }

    /// Leader: `bootstrap/challenge`.
    pub async fn raft_challenge(&self, server_id: &str) -> Result<ChallengeResponse, CoreError> {
        if server_id.is_empty() || server_id.len() > 256 {
            return Err(invalid("server_id must be 1-256 characters"));
        }
        let u = self.active().await?;
        let answer = answer_for(&u, server_id);
        let (challenge, wrapped_root_key) =
            match &self.seal {
                SealBackend::AwsKms(kms) => {
                    let wrapped = kms.wrap(&answer).await?;
                    let json = serde_json::to_vec(&wrapped).map_err(|e| invalid(e.to_string()))?;
                    (B64.encode(json), None)
                }
                SealBackend::Shamir => {
                    let ct = u.barrier.keyring().seal_with_root(CHALLENGE_AAD, &answer)?;
                    let root = self.local.get(paths::ROOT_KEY).await?.ok_or_else(|| {
                        CoreError::Corrupt {
                            path: paths::ROOT_KEY,
                            reason: "missing".into(),
                        }
                    })?;
                    (B64.encode(ct), Some(B64.encode(root)))
                }
            };
        Ok(ChallengeResponse {
            challenge,
            seal_config: u.seal_config.clone(),
            wrapped_root_key,
        })
    }

    /// Leader: `bootstrap/answer`. Adds the joiner as a learner and returns the cluster CA.
    pub async fn raft_answer(&self, req: &AnswerRequest) -> Result<AnswerResponse, CoreError> {
        let u = self.active().await?;
        let raft = self.raft.as_ref().ok_or_else(|| invalid("no raft"))?;
        let given = B64
            .decode(req.answer.trim())
            .map_err(|_| invalid("answer must be base64"))?;
        let expected = answer_for(&u, &req.server_id);
        if !bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            return Err(CoreError::PermissionDenied);
        }
        ClusterAddr::parse(&req.cluster_addr).map_err(|e| invalid(e.to_string()))?;
        if req.non_voter {
            return Err(invalid(
                "non_voter joins are not supported; join as a voter (autopilot promotes the node once it is stable)",
            ));
        }
        let peers = raft.configuration();
        if !peers.iter().any(|p| p.id == req.raft_node_id) {
            let node = NodeInfo {
                name: req.server_id.clone(),
                api_addr: req.api_addr.clone(),
                cluster_addr: req.cluster_addr.clone(),
            };
            raft.add_learner_now(req.raft_node_id, node).await?;
            tracing::info!(node = %req.server_id, id = req.raft_node_id, "raft: a node joined as a learner");
            // The same name under another id: the node came back with a wiped disk.
            for old in peers
                .iter()
                .filter(|p| p.node.name == req.server_id && p.id != req.raft_node_id)
            {
                raft.remove_peer(old.id).await?;
                tracing::info!(node = %req.server_id, old_id = old.id, "raft: removed the rejoined node's old id");
            }
        }
        let raw = u
            .barrier
            .get(paths::CLUSTER_TLS)
            .await?
            .ok_or_else(|| CoreError::Corrupt {
                path: paths::CLUSTER_TLS,
                reason: "missing".into(),
            })?;
        let wrapped = match &self.seal {
            SealBackend::AwsKms(kms) => {
                let data_key = Key::generate()?;
                let ciphertext = barrier::seal_with_key(&data_key, TLS_AAD, &raw)?;
                WrappedTls {
                    key: Some(kms.wrap(data_key.as_bytes()).await?),
                    ciphertext: B64.encode(ciphertext),
                }
            }
            SealBackend::Shamir => WrappedTls {
                key: None,
                ciphertext: B64.encode(u.barrier.keyring().seal_with_root(TLS_AAD, &raw)?),
            },
        };
        let json = serde_json::to_vec(&wrapped).map_err(|e| invalid(e.to_string()))?;
        Ok(AnswerResponse {
            peers: raft
                .configuration()
                .into_iter()
                .map(|p| JoinPeer {
                    server_id: p.node.name,
                    address: p.node.cluster_addr,
                })
                .collect(),
            tls_keyring: B64.encode(json),
        })
    }

    /// Joiner: `sys/storage/raft/join` (and each `retry_join` attempt).
    pub async fn raft_join(&self, req: &JoinRequest) -> Result<(), CoreError> {
        let raft = self.raft.as_ref().ok_or_else(|| {
            invalid("this server does not use integrated raft storage (storage \"raft\")")
        })?;
        if !matches!(*self.state.read().await, State::Uninitialized)
            || raft.is_initialized().await?
        {
            return Err(invalid("this node is already part of a raft cluster"));
        }
        let leader = req.leader_api_addr.trim_end_matches('/');
        let client = http_client(req.leader_ca_cert.as_deref())?;
        let node = raft.node_info();
        let challenge: ChallengeResponse = post(
            &client,
            leader,
            "sys/storage/raft/bootstrap/challenge",
            &serde_json::json!({ "server_id": node.name }),
        )
        .await?;
        if challenge.seal_config.seal_type != self.seal.seal_type() {
            return Err(invalid(format!(
                "mismatching seal types: the cluster at {leader} uses {}, this node {}",
                challenge.seal_config.seal_type.as_str(),
                self.seal.seal_type().as_str()
            )));
        }
        let kms = match &self.seal {
            SealBackend::AwsKms(kms) => kms,
            SealBackend::Shamir => return self.await_unseal_keys(req, leader, challenge).await,
        };
        let wrapped: WrappedRootKey = B64
            .decode(&challenge.challenge)
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or_else(|| invalid(format!("the challenge from {leader} is malformed")))?;
        let answer = kms.unwrap(&wrapped).await.map_err(|e| {
            invalid(format!(
                "cannot decrypt the join challenge with this node's seal ({e}); every node needs kms:Decrypt on the cluster's KMS key"
            ))
        })?;
        let tls = self
            .send_answer(&client, leader, &answer, req.non_voter)
            .await?;
        let tls = unwrap_tls(kms, &tls).await?;
        self.install_node_tls(raft, &tls);
        tracing::info!(
            leader,
            "joined the raft cluster; waiting for the leader's log"
        );
        Ok(())
    }

    /// Posts the answer; returns the leader's wrapped cluster CA.
    async fn send_answer(
        &self,
        client: &reqwest::Client,
        leader: &str,
        answer: &[u8],
        non_voter: bool,
    ) -> Result<String, CoreError> {
        let raft = self.raft.as_ref().ok_or_else(|| invalid("no raft"))?;
        let node = raft.node_info();
        let reply: AnswerResponse = post(
            client,
            leader,
            "sys/storage/raft/bootstrap/answer",
            &AnswerRequest {
                server_id: node.name.clone(),
                answer: B64.encode(answer),
                cluster_addr: node.cluster_addr.clone(),
                non_voter,
                raft_node_id: raft.node_id(),
                api_addr: node.api_addr.clone(),
            },
        )
        .await?;
        Ok(reply.tls_keyring)
    }

    /// Shamir joiner: keeps the challenge and waits, sealed, for the unseal keys.
    async fn await_unseal_keys(
        &self,
        req: &JoinRequest,
        leader: &str,
        challenge: ChallengeResponse,
    ) -> Result<(), CoreError> {
        let wrapped_root_key = challenge.wrapped_root_key.ok_or_else(|| {
            invalid(format!(
                "the challenge from {leader} has no wrapped_root_key"
            ))
        })?;
        let mut state = self.state.write().await;
        if !matches!(*state, State::Uninitialized) {
            return Err(invalid("this node is already part of a raft cluster"));
        }
        *state = State::Sealed(SealedState {
            seal_config: challenge.seal_config,
            recovery: None,
            progress: Progress::default(),
            manual: false,
            join: Some(Box::new(PendingJoin {
                leader: leader.to_owned(),
                leader_ca_cert: req.leader_ca_cert.clone(),
                challenge: challenge.challenge,
                wrapped_root_key,
            })),
        });
        tracing::info!(
            leader,
            "joining the raft cluster: waiting for the unseal keys (sys/unseal)"
        );
        Ok(())
    }

    /// Shamir joiner, at the unseal threshold: recovers the root key with the combined unseal
    /// key, answers the challenge, installs the cluster CA and waits for the leader's log.
    /// Returns the root key.
    pub(super) async fn finish_shamir_join(
        &self,
        pending: &PendingJoin,
        unseal_key: &Key,
    ) -> Result<Key, CoreError> {
        let raft = self.raft.as_ref().ok_or_else(|| invalid("no raft"))?;
        let stored: WrappedRootKey = B64
            .decode(&pending.wrapped_root_key)
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or_else(|| invalid("the leader's wrapped_root_key is malformed"))?;
        let ct = B64
            .decode(&stored.ciphertext)
            .map_err(|_| invalid("the leader's wrapped_root_key is malformed"))?;
        let root = barrier::open_with_key(unseal_key, paths::ROOT_KEY, &ct)
            .map_err(|_| CoreError::InvalidKey)?;
        let root = Key::from_slice(&root)?;
        let challenge = B64
            .decode(&pending.challenge)
            .map_err(|_| invalid("the join challenge is malformed"))?;
        let answer = barrier::open_with_key(&root, CHALLENGE_AAD, &challenge)
            .map_err(|_| invalid("the join challenge does not open with this root key"))?;
        let client = http_client(pending.leader_ca_cert.as_deref())?;
        let tls = self
            .send_answer(&client, &pending.leader, &answer, false)
            .await?;
        let wrapped: WrappedTls = B64
            .decode(&tls)
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or_else(|| invalid("the leader's tls_keyring is malformed"))?;
        let ct = B64
            .decode(&wrapped.ciphertext)
            .map_err(|_| invalid("the leader's tls_keyring is malformed"))?;
        let raw = barrier::open_with_key(&root, TLS_AAD, &ct)
            .map_err(|_| invalid("the leader's tls_keyring does not open with this root key"))?;
        let ca = ClusterTls::from_bytes(&raw).map_err(|e| invalid(e.to_string()))?;
        self.install_node_tls(raft, &ca);
        tracing::info!(leader = %pending.leader, "joined the raft cluster; waiting for the leader's log to unseal");
        let start = tokio::time::Instant::now();
        while self.local.get(paths::SEAL_CONFIG).await?.is_none() {
            if start.elapsed() > REPLICA_PATIENCE {
                return Err(invalid(format!(
                    "joined, but the leader's log has not arrived within {REPLICA_PATIENCE:?}; check that the leader can reach this node's cluster_addr, then unseal again"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(root)
    }

    /// Refuses `sys/init` on a node whose `retry_join` targets answer as initialized.
    pub(super) async fn refuse_init_if_joining(&self) -> Result<(), CoreError> {
        for target in &self.joins {
            let Ok(client) = http_client(None) else {
                continue;
            };
            let url = format!(
                "{}/v1/sys/seal-status",
                target.leader_api_addr.trim_end_matches('/')
            );
            let initialized = async {
                let r = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                let v: serde_json::Value = r.json().await.ok()?;
                v.get("initialized")?.as_bool()
            }
            .await;
            if initialized == Some(true) {
                return Err(invalid(format!(
                    "this node is configured to retry_join {}, which is already initialized; it will join that cluster, do not initialize it",
                    target.leader_api_addr
                )));
            }
        }
        Ok(())
    }

    /// Starts the `retry_join` loop on a node with empty raft state: every target in turn,
    /// every [`RETRY_INTERVAL`], until one join succeeds.
    pub fn spawn_retry_join(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let raft = self.raft.clone()?;
        if self.joins.is_empty() {
            return None;
        }
        let core = Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                if raft.is_initialized().await.unwrap_or(true)
                    || !matches!(*core.state.read().await, State::Uninitialized)
                {
                    return;
                }
                for target in core.joins.clone() {
                    match core.raft_join(&join_request(&target)).await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(
                            leader = %target.leader_api_addr,
                            error = %e,
                            "failed to join the raft cluster; retrying"
                        ),
                    }
                }
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
        }))
    }
}

fn join_request(target: &RetryJoin) -> JoinRequest {
    JoinRequest {
        leader_api_addr: target.leader_api_addr.clone(),
        leader_ca_cert: target
            .leader_ca_cert_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok()),
        retry: false,
        non_voter: false,
    }
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
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| invalid(e.to_string()))
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
    let text = resp
        .text()
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
