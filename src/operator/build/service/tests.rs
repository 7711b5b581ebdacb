use super::*;
use crate::operator::build::fixtures;

fn spec(s: &Service) -> &ServiceSpec {
    s.spec.as_ref().expect("spec")
}

#[test]
fn headless_service_publishes_not_ready_pods() {
    let v = fixtures::awskms_role();
    let s = headless_service(&v);
    assert_eq!(s.metadata.name.as_deref(), Some("vault-internal"));
    assert_eq!(s.metadata.namespace.as_deref(), Some(fixtures::NAMESPACE));
    let spec = spec(&s);
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(spec.selector.as_ref(), Some(&selector_labels(&v)));
    let ports = spec.ports.as_ref().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(ports[0].port, 8200);
    assert_eq!(ports[0].target_port, Some(IntOrString::Int(8200)));
}

#[test]
fn client_service_is_a_cluster_ip_for_ready_pods() {
    let v = fixtures::shamir();
    let s = client_service(&v);
    assert_eq!(s.metadata.name.as_deref(), Some("shamir"));
    let spec = spec(&s);
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.cluster_ip, None);
    assert_eq!(spec.publish_not_ready_addresses, None);
    assert_eq!(spec.selector.as_ref(), Some(&selector_labels(&v)));
    let ports = spec.ports.as_ref().expect("ports");
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(ports[0].port, 8200);
}

#[test]
fn tls_names_the_port_https() {
    let v = fixtures::tls();
    for s in [headless_service(&v), client_service(&v)] {
        let ports = spec(&s).ports.as_ref().expect("ports");
        assert_eq!(ports[0].name.as_deref(), Some("https"));
        assert_eq!(ports[0].port, 8200);
    }
}

#[test]
fn selector_is_only_the_stable_selector_labels() {
    let v = fixtures::awskms_role();
    let selector = spec(&client_service(&v))
        .selector
        .clone()
        .expect("selector");
    assert_eq!(selector.len(), 2);
    assert_eq!(selector["app.kubernetes.io/name"], "sealkeep");
    assert_eq!(selector["app.kubernetes.io/instance"], "vault");
}

#[test]
fn raft_publishes_the_cluster_port_on_the_headless_service_only() {
    let v = fixtures::validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  replicas: 5\n  seal:\n    shamir: {}\n",
    );
    let headless = headless_service(&v);
    let ports: Vec<(Option<&str>, i32)> = spec(&headless)
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.port))
        .collect();
    assert_eq!(ports, [(Some("http"), 8200), (Some("cluster"), 8201)]);
    assert_eq!(spec(&headless).publish_not_ready_addresses, Some(true));
    let client = client_service(&v);
    assert_eq!(spec(&client).ports.as_ref().map(Vec::len), Some(1));
}
