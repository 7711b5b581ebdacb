//! Readiness, liveness and startup probes: bookkeeping (pure) and execution (network/process I/O).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::time::Instant;

/// Counters of one probe of one container run.
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub spec: Option<Probe>,
    next: Option<Instant>,
    successes: i32,
    failures: i32,
    /// Last settled result: `Some(true)` after successThreshold successes, `Some(false)` after
    /// failureThreshold failures, `None` before either.
    pub result: Option<bool>,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
}

impl ProbeState {
    pub fn new(spec: Option<Probe>) -> Self {
        Self {
            spec,
            next: None,
            successes: 0,
            failures: 0,
            result: None,
        }
    }

    /// Arms the probe for a process that started at `started`.
    pub fn reset(&mut self, started: Instant) {
        let delay = self
            .spec
            .as_ref()
            .map_or(Duration::ZERO, |p| secs(p.initial_delay_seconds, 0));
        self.next = Some(started + delay);
        self.successes = 0;
        self.failures = 0;
        self.result = None;
    }

    /// Stops probing (process gone).
    pub fn disarm(&mut self) {
        self.next = None;
        self.result = None;
    }

    pub fn due(&self, now: Instant) -> bool {
        self.spec.is_some() && self.next.is_some_and(|n| n <= now)
    }

    pub fn timeout(&self) -> Duration {
        self.spec.as_ref().map_or(Duration::from_secs(1), |p| {
            secs(p.timeout_seconds, 1).max(Duration::from_secs(1))
        })
    }

    /// Records one outcome; returns true when the settled result changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        let Some(p) = &self.spec else { return false };
        self.next = Some(now + secs(p.period_seconds, 10).max(Duration::from_secs(1)));
        let before = self.result;
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= p.success_threshold.unwrap_or(1).max(1) {
                self.result = Some(true);
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                self.result = Some(false);
            }
        }
        before != self.result
    }
}

/// Where and how to run a probe for one container.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod_ip: Ipv4Addr,
    pub pid: i32,
    pub env: Vec<(String, String)>,
}

fn port(p: &IntOrString, c: &Container) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs the probe once; `Err` carries the failure message.
pub async fn run(
    probe: &Probe,
    c: &Container,
    t: &Target,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<(), String> {
    let fut = async {
        if let Some(h) = &probe.http_get {
            let host = h
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| t.pod_ip.to_string());
            let p = port(&h.port, c).ok_or("invalid httpGet port")?;
            let scheme = if h.scheme.as_deref() == Some("HTTPS") {
                "https"
            } else {
                "http"
            };
            let path = h.path.clone().unwrap_or_default();
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            let mut req = http
                .get(format!("{scheme}://{host}:{p}{path}"))
                .timeout(timeout);
            for hd in h.http_headers.iter().flatten() {
                req = req.header(hd.name.as_str(), hd.value.as_str());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("HTTP probe failed: {e}"))?;
            let code = resp.status().as_u16();
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        } else if let Some(s) = &probe.tcp_socket {
            let host: IpAddr = s
                .host
                .as_deref()
                .and_then(|h| h.parse().ok())
                .unwrap_or(IpAddr::V4(t.pod_ip));
            let p = port(&s.port, c).ok_or("invalid tcpSocket port")?;
            tokio::net::TcpStream::connect(SocketAddr::new(host, p))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {host}:{p}: {e}"))
        } else if let Some(e) = &probe.exec {
            let cmd = e.command.clone().unwrap_or_default();
            let out = tokio::process::Command::new("nsenter")
                .args(["-t", &t.pid.to_string(), "-n", "-m", "-u", "--"])
                .args(&cmd)
                .env_clear()
                .envs(t.env.iter().map(|(k, v)| (k, v)))
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("exec probe: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                let text =
                    String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
                Err(format!(
                    "exec probe {cmd:?} failed ({}): {}",
                    out.status,
                    text.trim()
                ))
            }
        } else if probe.grpc.is_some() {
            Err("grpc probes are not supported".to_string())
        } else {
            Ok(())
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).expect("probe")
    }

    #[test]
    fn thresholds_and_delays() {
        let t0 = Instant::now();
        let mut s = ProbeState::new(Some(probe(serde_json::json!({
            "initialDelaySeconds": 5, "periodSeconds": 2, "successThreshold": 2, "failureThreshold": 2
        }))));
        s.reset(t0);
        assert!(!s.due(t0));
        assert!(s.due(t0 + Duration::from_secs(5)));
        assert!(!s.record(true, t0), "one success is not enough");
        assert_eq!(s.result, None);
        assert!(s.record(true, t0));
        assert_eq!(s.result, Some(true));
        assert!(!s.due(t0 + Duration::from_secs(1)));
        assert!(s.due(t0 + Duration::from_secs(2)));
        assert!(!s.record(false, t0));
        assert!(s.record(false, t0));
        assert_eq!(s.result, Some(false));
        assert!(!ProbeState::new(None).due(t0));
    }

    #[test]
    fn named_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8200}]
        }))
        .expect("container");
        assert_eq!(port(&IntOrString::String("http".into()), &c), Some(8200));
        assert_eq!(port(&IntOrString::Int(81), &c), Some(81));
        assert_eq!(port(&IntOrString::String("nope".into()), &c), None);
    }

    #[tokio::test]
    async fn tcp_and_http_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ");
                let status = if ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = sock
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let c = Container {
            name: "c".into(),
            ..Default::default()
        };
        let t = Target {
            pod_ip: Ipv4Addr::LOCALHOST,
            pid: 0,
            env: vec![],
        };
        let http = reqwest::Client::new();
        let d = Duration::from_secs(2);
        let p = addr.port();
        let tcp = probe(serde_json::json!({"tcpSocket": {"port": p}}));
        assert_eq!(run(&tcp, &c, &t, &http, d).await, Ok(()));
        let ok = probe(serde_json::json!({"httpGet": {"port": p, "path": "/ok"}}));
        assert_eq!(run(&ok, &c, &t, &http, d).await, Ok(()));
        let bad = probe(serde_json::json!({"httpGet": {"port": p, "path": "/bad"}}));
        let err = run(&bad, &c, &t, &http, d).await.expect_err("503");
        assert!(err.contains("503"), "{err}");
    }
}
