use super::*;
use crate::operator::build::fixtures;

fn with_pod(pod: &str) -> Validated {
    fixtures::validated(&format!("{}  pod:\n{pod}", fixtures::RAFT3_YAML))
}

#[test]
fn replicated_pods_prefer_distinct_nodes_and_spread_over_zones() {
    let v = fixtures::validated(fixtures::RAFT3_YAML);
    let a = affinity(&v).expect("a default affinity");
    let terms = a
        .pod_anti_affinity
        .and_then(|p| p.preferred_during_scheduling_ignored_during_execution)
        .expect("preferred anti-affinity");
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].pod_affinity_term.topology_key, HOSTNAME_KEY);
    assert_eq!(
        terms[0].pod_affinity_term.label_selector,
        Some(own_pods(&v)),
        "it selects this server's own pods"
    );
    let spread = topology_spread(&v).expect("a default spread");
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].topology_key, ZONE_KEY);
    assert_eq!(
        spread[0].when_unsatisfiable, "ScheduleAnyway",
        "a preference: a one-zone cluster still schedules every pod"
    );
    assert_eq!(spread[0].max_skew, 1);
}

#[test]
fn a_single_pod_keeps_its_template_without_defaults() {
    let v = fixtures::shamir();
    assert_eq!(v.replicas, 1);
    assert_eq!(affinity(&v), None);
    assert_eq!(topology_spread(&v), None);
}

#[test]
fn the_spec_replaces_the_defaults_and_an_empty_spread_turns_it_off() {
    let v = with_pod(
        r#"    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
            - matchExpressions:
                - {key: pool, operator: In, values: [secrets]}
    topologySpreadConstraints:
      - maxSkew: 2
        topologyKey: example.com/rack
        whenUnsatisfiable: DoNotSchedule
"#,
    );
    let a = affinity(&v).expect("the spec's affinity");
    assert!(
        a.node_affinity.is_some() && a.pod_anti_affinity.is_none(),
        "{a:?}"
    );
    let spread = topology_spread(&v).expect("the spec's spread");
    assert_eq!(
        (spread[0].topology_key.as_str(), spread[0].max_skew),
        ("example.com/rack", 2)
    );

    let v = with_pod("    topologySpreadConstraints: []\n");
    assert_eq!(topology_spread(&v), None);
    assert!(affinity(&v).is_some(), "the affinity default stays");
}
