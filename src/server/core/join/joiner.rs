//! Core layer: the joining node's side of a raft join (`sys/storage/raft/join`, the
//! `retry_join` loop, and the Shamir joiner that waits for its unseal keys). Seal and network
//! I/O.

use super::*;

impl Core {
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
    pub(in crate::server::core) async fn finish_shamir_join(
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
    pub(in crate::server::core) async fn refuse_init_if_joining(&self) -> Result<(), CoreError> {
        for target in &self.joins {
            // Verified with the target's own CA, as the join itself is: without it a target
            // behind a private CA never answers here, and this check would let a second
            // cluster form. A CA that cannot be read or parsed refuses the init.
            let client = http_client(target_ca(target)?.as_deref())?;
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
                let v: serde_json::Value =
                    serde_json::from_str(&read_capped(r).await.ok()?).ok()?;
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
                    let joined = async { core.raft_join(&join_request(&target)?).await };
                    match joined.await {
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
