//! Benchmarks: one keep-alive HTTP client per worker against one server address, writing and
//! reading KV v2 keys `bench/c<worker>/k<n>` with a fixed 1 KiB value. Shared by the KV and
//! the HA benchmarks. Network I/O; asserts only that each request succeeded.

use std::time::Duration;

use serde_json::json;

/// Bytes of each value written.
pub const VALUE_LEN: usize = 1024;

/// The value every write stores (`VALUE_LEN` printable bytes).
pub fn value_text() -> String {
    (0..VALUE_LEN)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect()
}

/// A client that keeps one connection open.
pub fn keep_alive_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// One HTTP client per worker, sharing the target address and token.
pub struct Workers {
    clients: Vec<reqwest::Client>,
    addr: String,
    token: String,
    body: Vec<u8>,
}

impl Workers {
    pub fn new(workers: usize, addr: &str, token: &str) -> Self {
        Self {
            clients: (0..workers).map(|_| keep_alive_client()).collect(),
            addr: addr.to_owned(),
            token: token.to_owned(),
            body: serde_json::to_vec(&json!({"data": {"value": value_text()}})).expect("body"),
        }
    }

    /// Worker `w` writes its key `j`.
    pub async fn write(&self, w: usize, j: u64) {
        let resp = self.clients[w]
            .post(format!("{}/v1/secret/data/bench/c{w}/k{j}", self.addr))
            .header("X-Vault-Token", &self.token)
            .header("Content-Type", "application/json")
            .body(self.body.clone())
            .send()
            .await
            .expect("write request");
        let status = resp.status();
        let text = resp.text().await.expect("write response");
        assert!(status.is_success(), "write c{w}/k{j}: {status} {text}");
    }

    /// Worker `w` reads its key `j` back.
    pub async fn read(&self, w: usize, j: u64) {
        let resp = self.clients[w]
            .get(format!("{}/v1/secret/data/bench/c{w}/k{j}", self.addr))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .expect("read request");
        let status = resp.status();
        let body = resp.bytes().await.expect("read response");
        assert!(
            status.is_success() && body.len() > VALUE_LEN,
            "read c{w}/k{j}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}
