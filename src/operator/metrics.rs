//! Operator layer: Prometheus metrics of the controller (reconciles, errors, durations, server
//! pods by seal state). No I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// `read` (GET, including watches) or `write` (everything else).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// Seal states of server pods, as the `state` label of `sealkeep_operator_server_pods`.
pub const POD_STATES: [&str; 4] = ["unsealed", "sealed", "uninitialized", "unreachable"];

pub struct OperatorMetrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    pods: Family<StateLabels, Gauge>,
    api_requests: Family<VerbLabels, Counter>,
    /// Pod counts per SecretServer (namespace/name), summed into `pods`.
    per_server: Mutex<HashMap<String, [i64; 4]>>,
}

impl std::fmt::Debug for OperatorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorMetrics").finish_non_exhaustive()
    }
}

impl OperatorMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("sealkeep_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let pods = Family::<StateLabels, Gauge>::default();
        let api_requests = Family::<VerbLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API server by kind (read, write)",
            api_requests.clone(),
        );
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            duration.clone(),
        );
        registry.register(
            "server_pods",
            "Server pods by seal state (unsealed, sealed, uninitialized, unreachable)",
            pods.clone(),
        );
        Arc::new(Self {
            registry,
            reconciles,
            errors,
            duration,
            pods,
            api_requests,
            per_server: Mutex::new(HashMap::new()),
        })
    }

    pub fn reconciled(&self, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    /// Counts one Kubernetes API request.
    pub fn api_request(&self, method: &axum::http::Method) {
        let kind = if method == axum::http::Method::GET {
            "read"
        } else {
            "write"
        };
        self.api_requests.get_or_create(&VerbLabels { kind }).inc();
    }

    /// Records the pod counts of one SecretServer (`None` forgets it) and refreshes the gauge.
    pub fn set_pods(&self, key: &str, counts: Option<[i64; 4]>) {
        let Ok(mut m) = self.per_server.lock() else {
            return;
        };
        match counts {
            Some(c) => {
                m.insert(key.to_owned(), c);
            }
            None => {
                m.remove(key);
            }
        }
        for (i, state) in POD_STATES.iter().enumerate() {
            let total: i64 = m.values().map(|c| c[i]).sum();
            self.pods.get_or_create(&StateLabels { state }).set(total);
        }
    }

    /// Forgets SecretServers that no longer exist.
    pub fn retain_servers(&self, exists: impl Fn(&str) -> bool) {
        let keys: Vec<String> = self
            .per_server
            .lock()
            .map(|m| m.keys().filter(|k| !exists(k)).cloned().collect())
            .unwrap_or_default();
        for k in keys {
            self.set_pods(&k, None);
        }
    }

    /// Text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
