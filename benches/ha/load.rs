//! HA benchmark, client side (HTTP I/O on loopback): what one KV v2 write looks like to a Vault
//! client while leadership moves, and the pauses between retries.

use std::time::Duration;

use serde_json::{Value, json};

/// How one write ended, as the client saw it (redirects are followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 200 or 204: acknowledged.
    Acked,
    /// 503: a standby with no known leader, or a new leader that is not active yet.
    Unavailable,
    /// Connection refused or not established (typically a 307 to the dead leader).
    ConnectFailed,
    /// The connection broke after it was made (the node died mid-request).
    Broken,
    /// No answer within the client timeout.
    TimedOut,
    /// Any other status.
    Status(u16),
}

impl Outcome {
    pub fn label(self) -> String {
        match self {
            Self::Acked => "acked".into(),
            Self::Unavailable => "503".into(),
            Self::ConnectFailed => "connect failed".into(),
            Self::Broken => "connection broken".into(),
            Self::TimedOut => "timed out".into(),
            Self::Status(s) => format!("status {s}"),
        }
    }

    /// What a Vault client retries: 503, 307 loops, connection errors, timeouts.
    pub fn retryable(self) -> bool {
        !matches!(self, Self::Acked | Self::Status(_))
    }
}

/// The pause after a failed attempt `n`: 20-50 ms, spread deterministically.
pub fn backoff(n: u64) -> Duration {
    Duration::from_millis(20 + (n.wrapping_mul(7919) % 31))
}

/// A keep-alive client with the root token; it follows redirects (307 to the active node).
pub struct Kv {
    client: reqwest::Client,
    token: String,
}

impl Kv {
    pub fn new(token: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .timeout(timeout)
            .build()
            .expect("http client");
        Self {
            client,
            token: token.to_owned(),
        }
    }

    /// Writes `{"n": n}` to `secret/data/<key>` through `addr`.
    pub async fn write(&self, addr: &str, key: &str, n: u64) -> Outcome {
        self.put(
            addr,
            &format!("/v1/secret/data/{key}"),
            &json!({"data": {"n": n}}),
        )
        .await
    }

    /// A PUT of `body` to `path` through `addr`.
    pub async fn put(&self, addr: &str, path: &str, body: &Value) -> Outcome {
        let resp = self
            .client
            .put(format!("{addr}{path}"))
            .header("X-Vault-Token", &self.token)
            .json(body)
            .send()
            .await;
        match resp {
            Ok(r) => {
                let st = r.status().as_u16();
                // Drain the body so the connection is reused.
                let _ = r.bytes().await;
                match st {
                    200 | 204 => Outcome::Acked,
                    503 => Outcome::Unavailable,
                    s => Outcome::Status(s),
                }
            }
            Err(e) if e.is_timeout() => Outcome::TimedOut,
            Err(e) if e.is_connect() => Outcome::ConnectFailed,
            Err(_) => Outcome::Broken,
        }
    }

    /// `data.n` of `secret/data/<key>` read through `addr`, or the status that prevented it.
    pub async fn read_n(&self, addr: &str, key: &str) -> Result<u64, String> {
        let resp = self
            .client
            .get(format!("{addr}/v1/secret/data/{key}"))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let st = resp.status().as_u16();
        let v: Value = resp.json().await.map_err(|e| e.to_string())?;
        v["data"]["data"]["n"]
            .as_u64()
            .ok_or_else(|| format!("status {st}: {v}"))
    }

    /// `GET sys/leader` through `addr` (short timeout): whether that node says it leads.
    pub async fn is_self_leader(&self, addr: &str) -> bool {
        let resp = self
            .client
            .get(format!("{addr}/v1/sys/leader"))
            .header("X-Vault-Token", &self.token)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        match resp {
            Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["is_self"] == true),
            Err(_) => false,
        }
    }
}
