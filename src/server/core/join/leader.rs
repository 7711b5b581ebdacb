//! Core layer: the active node's side of a raft join (`bootstrap/challenge` and
//! `bootstrap/answer`): the stateless challenge, and adding the joiner as a learner. Storage
//! and seal I/O.

use super::*;

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
}
