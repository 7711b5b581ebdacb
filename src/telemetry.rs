//! Telemetry: tracing subscriber set-up and the Prometheus metrics registry. No I/O beyond
//! writing logs to stderr.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global tracing subscriber. `RUST_LOG` wins over `default_level`.
pub fn init_tracing(default_level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,sealkeep={default_level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KmsLabels {
    pub operation: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KmsOpLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnsealLabels {
    pub method: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub code: u16,
}

/// Every server metric, registered once.
pub struct ServerMetrics {
    registry: Registry,
    /// KMS calls by operation and result class (`ok` or an error class).
    pub kms_requests: Family<KmsLabels, Counter>,
    pub kms_latency: Family<KmsOpLabels, Histogram>,
    pub unseal_attempts: Family<UnsealLabels, Counter>,
    pub sealed: Gauge,
    pub initialized: Gauge,
    pub http_requests: Family<HttpLabels, Counter>,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerMetrics")
    }
}

impl ServerMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("sealkeep");
        let kms_requests = Family::<KmsLabels, Counter>::default();
        let kms_latency = Family::<KmsOpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let unseal_attempts = Family::<UnsealLabels, Counter>::default();
        let sealed = Gauge::default();
        let initialized = Gauge::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "kms_requests",
            "AWS KMS calls by operation and result (ok or the error class)",
            kms_requests.clone(),
        );
        registry.register(
            "kms_request_duration_seconds",
            "AWS KMS call latency",
            kms_latency.clone(),
        );
        registry.register(
            "unseal_attempts",
            "Unseal attempts by method (auto, shares) and result",
            unseal_attempts.clone(),
        );
        registry.register("sealed", "1 while the server is sealed", sealed.clone());
        registry.register(
            "initialized",
            "1 once the server has been initialized",
            initialized.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP API requests by method and status code",
            http_requests.clone(),
        );
        sealed.set(1);
        Arc::new(Self {
            registry,
            kms_requests,
            kms_latency,
            unseal_attempts,
            sealed,
            initialized,
            http_requests,
        })
    }

    pub fn observe_kms(&self, operation: &'static str, result: &'static str, took: Duration) {
        self.kms_requests
            .get_or_create(&KmsLabels { operation, result })
            .inc();
        self.kms_latency
            .get_or_create(&KmsOpLabels { operation })
            .observe(took.as_secs_f64());
    }

    pub fn unseal_attempt(&self, method: &'static str, result: &'static str) {
        self.unseal_attempts
            .get_or_create(&UnsealLabels { method, result })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
