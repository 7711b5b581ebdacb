//! Operator layer, build step: the PodDisruptionBudget of the server pods. Pure (no I/O).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{meta, selector_labels};
use crate::operator::validate::Validated;

/// The PodDisruptionBudget `v.name`: at most one server pod evicted at a time.
///
/// `maxUnavailable: 1`, not `minAvailable: 1`: with the single replica Sealkeep supports today,
/// `minAvailable: 1` would refuse every eviction, so a node drain (cluster upgrade) would block
/// forever. The pod's data is on a PersistentVolume, so it restarts elsewhere (and auto-unseals
/// with awskms). With replicated storage later, the same budget keeps a quorum during drains.
pub fn pod_disruption_budget(v: &Validated) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(v, v.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(v)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests;
