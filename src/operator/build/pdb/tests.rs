use super::*;
use crate::operator::build::fixtures;

#[test]
fn pdb_allows_one_eviction_and_selects_the_server_pods() {
    let v = fixtures::awskms_role();
    let pdb = pod_disruption_budget(&v);
    assert_eq!(pdb.metadata.name.as_deref(), Some("vault"));
    assert_eq!(pdb.metadata.namespace.as_deref(), Some(fixtures::NAMESPACE));
    let spec = pdb.spec.expect("spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.min_available, None);
    let selector = spec.selector.expect("selector");
    assert_eq!(selector.match_labels, Some(selector_labels(&v)));
    assert_eq!(selector.match_expressions, None);
}

#[test]
fn pdb_is_owned_by_the_secret_server() {
    let pdb = pod_disruption_budget(&fixtures::shamir());
    let owners = pdb.metadata.owner_references.expect("owners");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].name, "shamir");
    assert_eq!(owners[0].controller, Some(true));
}
