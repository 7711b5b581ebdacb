//! The small typed client for the server's HTTP API, used by the CLI (and the operator).
//! Does network I/O.

use std::time::Duration;

use serde::Deserialize;

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

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Leader {
    pub ha_enabled: bool,
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
        Ok(Self {
            addr: addr.trim_end_matches('/').to_owned(),
            http,
        })
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
        let resp = self
            .http
            .get(&url)
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
        resp.json().await.map_err(|source| ClientError::Decode {
            addr: self.addr.clone(),
            source,
        })
    }

    pub async fn seal_status(&self) -> Result<SealStatus, ClientError> {
        self.get("/v1/sys/seal-status").await
    }

    pub async fn leader(&self) -> Result<Leader, ClientError> {
        self.get("/v1/sys/leader").await
    }
}
