//! The small typed client for the server's HTTP API, used by the CLI (and the operator).
//! Does network I/O.

use std::time::Duration;

use serde::Deserialize;

/// How long `sys/step-down` may take: the server waits up to 2 s for leadership to move.
pub const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `sys/init` may take (KMS calls, raft bootstrap), whatever the client's own
/// timeout: a client that gives up while the server finishes the init loses the root token
/// and key shares it returns (the server completes the request either way).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {addr}: {source}; check SEALKEEP_ADDR/VAULT_ADDR")]
    Unreachable {
        addr: String,
        source: reqwest::Error,
    },
    #[error("server at {addr} answered {status}: {body}")]
    Status {
        addr: String,
        status: u16,
        body: String,
    },
    #[error("server at {addr} sent an unexpected response: {source}")]
    Decode {
        addr: String,
        source: reqwest::Error,
    },
}

/// `sys/seal-status`, as the server (or Vault) returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: u32,
    pub n: u32,
    pub progress: u32,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub build_date: String,
    #[serde(default)]
    pub recovery_seal: bool,
    #[serde(default)]
    pub storage_type: String,
    pub cluster_name: Option<String>,
    pub cluster_id: Option<String>,
}

/// `sys/health`: decoded whatever its status code (Vault answers 429, 472, 501, 503 with the same
/// body).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Health {
    pub initialized: bool,
    pub sealed: bool,
    #[serde(default)]
    pub standby: bool,
    #[serde(default)]
    pub version: String,
    /// The HTTP status code the server answered with.
    #[serde(skip)]
    pub code: u16,
}

/// `sys/seal-backend-status`: the seal's health and, for awskms, the last error.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct SealBackendStatus {
    pub healthy: bool,
    #[serde(default)]
    pub unhealthy_since: String,
    #[serde(default)]
    pub backends: Vec<SealBackend>,
    #[serde(default)]
    pub last_error_class: String,
    #[serde(default)]
    pub last_error: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct SealBackend {
    pub name: String,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `sys/init` request: Shamir servers split the root key (`secret_*`), auto-unseal servers
/// split a recovery key (`recovery_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitRequest {
    Shamir { shares: u8, threshold: u8 },
    Recovery { shares: u8, threshold: u8 },
}

/// `sys/init` response. Holds the root token and key shares: zeroized on drop, never logged.
#[derive(Clone, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct InitResponse {
    #[serde(default)]
    pub keys_base64: Vec<String>,
    #[serde(default)]
    pub recovery_keys_base64: Vec<String>,
    pub root_token: String,
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &self.keys_base64.len())
            .field("recovery_keys", &self.recovery_keys_base64.len())
            .field("root_token", &"<redacted>")
            .finish()
    }
}

/// `sys/leader`. The raft indexes are present only with integrated raft storage.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Leader {
    pub ha_enabled: bool,
    #[serde(default)]
    pub is_self: bool,
    #[serde(default)]
    pub leader_address: String,
    #[serde(default)]
    pub leader_cluster_address: String,
    #[serde(default)]
    pub raft_committed_index: Option<u64>,
    #[serde(default)]
    pub raft_applied_index: Option<u64>,
}

/// `sys/storage/raft/configuration`'s `data.config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RaftConfiguration {
    #[serde(default)]
    pub index: u64,
    #[serde(default)]
    pub servers: Vec<RaftServer>,
}

/// One server of the raft configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RaftServer {
    pub node_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub leader: bool,
    #[serde(default)]
    pub voter: bool,
}

#[derive(Deserialize)]
struct ConfigurationData {
    config: RaftConfiguration,
}

#[derive(Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

/// The `auth` block of a login: the client token and its lifetime. `Debug` never shows the
/// token.
#[derive(Clone)]
pub struct LoginAuth {
    pub client_token: zeroize::Zeroizing<String>,
    /// Seconds; 0: the token does not expire.
    pub lease_duration: u64,
}

impl std::fmt::Debug for LoginAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAuth")
            .field("client_token", &"<redacted>")
            .field("lease_duration", &self.lease_duration)
            .finish()
    }
}

#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct RawLoginAuth {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
}

#[derive(Deserialize)]
struct LoginEnvelope {
    auth: RawLoginAuth,
}

#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(addr: &str, timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|source| ClientError::Unreachable {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Self::with_http(addr, http))
    }

    /// A client over a prepared `reqwest::Client` (shared connection pool, custom TLS roots).
    pub fn with_http(addr: &str, http: reqwest::Client) -> Self {
        Self {
            addr: addr.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// The address from `SEALKEEP_ADDR`, else `VAULT_ADDR`, else the local default.
    pub fn addr_from_env() -> String {
        ["SEALKEEP_ADDR", "VAULT_ADDR"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "http://127.0.0.1:8200".into())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.addr);
        self.send(self.http.get(&url)).await
    }

    /// Sends a request; a non-2xx status is [`ClientError::Status`], the body is decoded as `T`.
    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send_ok(req).await?;
        resp.json().await.map_err(|source| ClientError::Decode {
            addr: self.addr.clone(),
            source,
        })
    }

    /// Sends a request; a non-2xx status is [`ClientError::Status`] with the answer's body.
    async fn send_ok(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(ClientError::Status {
                addr: self.addr.clone(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(resp)
    }

    pub async fn seal_status(&self) -> Result<SealStatus, ClientError> {
        self.get("/v1/sys/seal-status").await
    }

    /// `GET /v1/sys/health?standbyok=true`; any status code with a health body is an answer.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let url = format!("{}/v1/sys/health?standbyok=true", self.addr);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        let code = resp.status().as_u16();
        let mut health: Health = resp.json().await.map_err(|source| ClientError::Decode {
            addr: self.addr.clone(),
            source,
        })?;
        health.code = code;
        Ok(health)
    }

    pub async fn seal_backend_status(&self) -> Result<SealBackendStatus, ClientError> {
        self.get("/v1/sys/seal-backend-status").await
    }

    /// `PUT /v1/sys/init`. The response carries the root token and key shares.
    pub async fn init(&self, req: InitRequest) -> Result<InitResponse, ClientError> {
        let body = match req {
            InitRequest::Shamir { shares, threshold } => {
                serde_json::json!({"secret_shares": shares, "secret_threshold": threshold})
            }
            InitRequest::Recovery { shares, threshold } => {
                serde_json::json!({"recovery_shares": shares, "recovery_threshold": threshold})
            }
        };
        let url = format!("{}/v1/sys/init", self.addr);
        self.send(self.http.put(&url).timeout(INIT_TIMEOUT).json(&body))
            .await
    }

    /// `POST /v1/auth/token/revoke-self` with `token`: revokes the token that makes the call
    /// (Vault answers 204 with no body).
    pub async fn revoke_self(&self, token: &str) -> Result<(), ClientError> {
        let url = format!("{}/v1/auth/token/revoke-self", self.addr);
        let req = self.http.post(&url).header("X-Vault-Token", token);
        self.send_ok(req).await.map(drop)
    }

    pub async fn leader(&self) -> Result<Leader, ClientError> {
        self.get("/v1/sys/leader").await
    }

    /// `GET /v1/sys/storage/raft/configuration` with `token` (a policy with `read` on it).
    pub async fn raft_configuration(&self, token: &str) -> Result<RaftConfiguration, ClientError> {
        let url = format!("{}/v1/sys/storage/raft/configuration", self.addr);
        let env: DataEnvelope<ConfigurationData> = self
            .send(self.http.get(&url).header("X-Vault-Token", token))
            .await?;
        Ok(env.data.config)
    }

    /// `POST /v1/auth/kubernetes/login` with `body` (`operator_auth::login_request`): the
    /// client token and its lifetime.
    pub async fn kubernetes_login(
        &self,
        body: &serde_json::Value,
    ) -> Result<LoginAuth, ClientError> {
        let url = format!("{}/v1/auth/kubernetes/login", self.addr);
        let env: LoginEnvelope = self.send(self.http.post(&url).json(body)).await?;
        Ok(LoginAuth {
            client_token: zeroize::Zeroizing::new(env.auth.client_token.clone()),
            lease_duration: env.auth.lease_duration,
        })
    }

    /// `method` on `/v1/<path>` with `token` and an optional JSON body. `Ok(None)` for an
    /// empty answer (204), `Ok(Some(json))` otherwise; a non-2xx status is
    /// [`ClientError::Status`].
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let url = format!("{}/v1/{path}", self.addr);
        let mut req = self
            .http
            .request(method, &url)
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|source| ClientError::Decode {
            addr: self.addr.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(ClientError::Status {
                addr: self.addr.clone(),
                status: status.as_u16(),
                body: text,
            });
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ClientError::Status {
                addr: self.addr.clone(),
                status: status.as_u16(),
                body: format!("not JSON ({e}): {text}"),
            })
    }

    /// `PUT /v1/sys/step-down` with `token` (`update` and `sudo` on `sys/step-down`): the
    /// server answers 204 once leadership moved, which may take it up to 2 s, so this request
    /// waits longer than the client's usual timeout.
    pub async fn step_down(&self, token: &str) -> Result<(), ClientError> {
        let url = format!("{}/v1/sys/step-down", self.addr);
        let req = self
            .http
            .put(&url)
            .timeout(STEP_DOWN_TIMEOUT)
            .header("X-Vault-Token", token);
        self.send_ok(req).await.map(drop)
    }
}
