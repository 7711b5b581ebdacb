//! Operator layer, build step: the headless Service (stable pod DNS names, also for sealed and
//! uninitialized pods) and the client Service (ready pods only). Pure (no I/O).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{API_PORT, CLUSTER_PORT, meta, selector_labels};
use crate::operator::validate::{Storage, Validated};

/// Name of the cluster port (raft servers) on the headless Service and the container.
pub const CLUSTER_PORT_NAME: &str = "cluster";

/// Name of the API port on the Services and the container: `https` with TLS, else `http`.
pub fn port_name(v: &Validated) -> &'static str {
    v.scheme()
}

fn api_port(v: &Validated) -> ServicePort {
    ServicePort {
        name: Some(port_name(v).to_owned()),
        port: API_PORT,
        target_port: Some(IntOrString::Int(API_PORT)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// The headless Service `v.headless_service_name()`, the StatefulSet's `serviceName`. It
/// publishes not-ready pods too: a sealed or uninitialized pod must still be reachable by name
/// (a raft pod joins, and is joined, before it is unsealed). Raft servers also publish the
/// cluster port.
pub fn headless_service(v: &Validated) -> Service {
    let mut ports = vec![api_port(v)];
    if matches!(v.storage, Storage::Raft(_)) {
        ports.push(ServicePort {
            name: Some(CLUSTER_PORT_NAME.to_owned()),
            port: CLUSTER_PORT,
            target_port: Some(IntOrString::Int(CLUSTER_PORT)),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        });
    }
    Service {
        metadata: meta(v, v.headless_service_name()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            ports: Some(ports),
            selector: Some(selector_labels(v)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The client Service `v.name`: a ClusterIP in front of the ready (unsealed) pods.
pub fn client_service(v: &Validated) -> Service {
    Service {
        metadata: meta(v, v.name.clone()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            ports: Some(vec![api_port(v)]),
            selector: Some(selector_labels(v)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests;
