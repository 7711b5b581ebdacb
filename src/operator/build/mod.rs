//! Operator layer, step 2 of the pipeline: pure builders, one module per child object of a
//! SecretServer. No I/O; each takes a [`Validated`] spec and returns the object to apply.

pub mod configmap;
pub mod pdb;
pub mod rbac;
pub mod scheduling;
pub mod service;
pub mod serviceaccount;
pub mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::validate::Validated;

/// The server's HTTP API port in every pod.
pub const API_PORT: i32 = 8200;
/// The cluster port of raft servers (raft RPCs and request forwarding, mutual TLS).
pub const CLUSTER_PORT: i32 = 8201;
/// Label keys. `app.kubernetes.io/instance` names the SecretServer a pod belongs to.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Value of `app.kubernetes.io/name` on every child.
pub const APP_NAME: &str = "sealkeep";
/// Value of `app.kubernetes.io/managed-by` on every child (also the SSA field manager).
pub const MANAGED_BY: &str = "sealkeep-operator";

/// Labels that select a SecretServer's pods (stable: they are in the StatefulSet's selector).
pub fn selector_labels(v: &Validated) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), v.name.clone()),
    ])
}

/// Labels on every child object.
pub fn labels(v: &Validated) -> BTreeMap<String, String> {
    let mut l = selector_labels(v);
    l.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    l.insert(LABEL_COMPONENT.to_owned(), "server".to_owned());
    l
}

/// Metadata of a child: name, namespace, labels and the controller owner reference.
pub fn meta(v: &Validated, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(v.namespace.clone()),
        labels: Some(labels(v)),
        owner_references: Some(vec![v.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Every child object of one SecretServer, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    pub stateful_set: StatefulSet,
    pub pod_disruption_budget: PodDisruptionBudget,
}

/// Builds all children of `v`.
pub fn children(v: &Validated) -> Children {
    let config_map = configmap::config_map(v);
    Children {
        service_account: serviceaccount::service_account(v),
        headless_service: service::headless_service(v),
        client_service: service::client_service(v),
        stateful_set: statefulset::stateful_set(v, &configmap::config_hash(&config_map)),
        pod_disruption_budget: pdb::pod_disruption_budget(v),
        config_map,
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
