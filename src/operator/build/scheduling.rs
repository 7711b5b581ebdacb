//! Operator layer, build step: where the server pods may run. Pure (no I/O).
//!
//! A replicated server (3 or 5 pods) survives the loss of a node or a zone only if its pods
//! are spread over them, so by default its pods prefer distinct nodes (pod anti-affinity on
//! `kubernetes.io/hostname`) and spread evenly over zones (`topology.kubernetes.io/zone`). Both
//! are *preferences*: a cluster with fewer nodes or zones than pods still schedules every pod
//! (a required rule would leave pods Pending on a small cluster, and a quorum with them).
//! `spec.pod.affinity` and `spec.pod.topologySpreadConstraints` replace the defaults
//! wholesale; an empty list turns the zone spread off. A single pod gets no default: there is
//! nothing to spread, and its pod template stays as it was before replication existed.

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::selector_labels;
use crate::operator::validate::Validated;

/// The node label that names a node.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// The node label that names a node's zone.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

fn replicated(v: &Validated) -> bool {
    v.replicas > 1
}

fn own_pods(v: &Validated) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(v)),
        ..LabelSelector::default()
    }
}

/// The pods' affinity: the spec's, else (3 or 5 pods) a preference for distinct nodes.
pub fn affinity(v: &Validated) -> Option<Affinity> {
    if v.affinity.is_some() || !replicated(v) {
        return v.affinity.clone();
    }
    Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(own_pods(v)),
                        topology_key: HOSTNAME_KEY.to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    })
}

/// The pods' topology spread: the spec's (an empty list: none), else (3 or 5 pods) an even
/// spread over zones, as a preference.
pub fn topology_spread(v: &Validated) -> Option<Vec<TopologySpreadConstraint>> {
    match &v.topology_spread {
        Some(user) if user.is_empty() => None,
        Some(user) => Some(user.clone()),
        None if !replicated(v) => None,
        None => Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: ZONE_KEY.to_owned(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(own_pods(v)),
            ..TopologySpreadConstraint::default()
        }]),
    }
}

#[cfg(test)]
mod tests;
