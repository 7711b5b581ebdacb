use super::*;

use std::time::Duration;

/// The value of the sample line `name` (with its labels, exactly as encoded).
fn sample(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
}

fn pods(m: &OperatorMetrics, state: &str) -> Option<String> {
    sample(
        &m.encode().expect("encode"),
        &format!("sealkeep_operator_server_pods{{state=\"{state}\"}}"),
    )
}

#[test]
fn pod_states_are_the_label_values() {
    assert_eq!(
        POD_STATES,
        ["unsealed", "sealed", "uninitialized", "unreachable"]
    );
}

#[test]
fn set_pods_sums_over_servers() {
    let m = OperatorMetrics::new();
    m.set_pods("secrets/a", Some([1, 1, 0, 0]));
    m.set_pods("secrets/b", Some([0, 1, 2, 0]));
    let text = m.encode().expect("encode");
    assert!(
        text.contains("sealkeep_operator_server_pods{state=\"sealed\"} 2"),
        "{text}"
    );
    assert_eq!(pods(&m, "unsealed").as_deref(), Some("1"));
    assert_eq!(pods(&m, "sealed").as_deref(), Some("2"));
    assert_eq!(pods(&m, "uninitialized").as_deref(), Some("2"));
    assert_eq!(pods(&m, "unreachable").as_deref(), Some("0"));

    // A new observation of a server replaces its counts.
    m.set_pods("secrets/a", Some([0, 0, 0, 1]));
    assert_eq!(pods(&m, "unsealed").as_deref(), Some("0"));
    assert_eq!(pods(&m, "sealed").as_deref(), Some("1"));
    assert_eq!(pods(&m, "unreachable").as_deref(), Some("1"));
}

#[test]
fn set_pods_none_forgets_a_server() {
    let m = OperatorMetrics::new();
    m.set_pods("secrets/a", Some([1, 0, 0, 0]));
    m.set_pods("secrets/b", Some([0, 1, 0, 0]));
    m.set_pods("secrets/b", None);
    assert_eq!(pods(&m, "unsealed").as_deref(), Some("1"));
    assert_eq!(pods(&m, "sealed").as_deref(), Some("0"));
    // Forgetting an unknown server is harmless.
    m.set_pods("other/x", None);
    assert_eq!(pods(&m, "unsealed").as_deref(), Some("1"));
}

#[test]
fn retain_servers_drops_deleted_servers() {
    let m = OperatorMetrics::new();
    m.set_pods("secrets/a", Some([1, 0, 0, 0]));
    m.set_pods("secrets/b", Some([0, 1, 0, 0]));
    m.set_pods("team/c", Some([0, 0, 1, 0]));
    m.retain_servers(|k| k == "secrets/a");
    assert_eq!(pods(&m, "unsealed").as_deref(), Some("1"));
    assert_eq!(pods(&m, "sealed").as_deref(), Some("0"));
    assert_eq!(pods(&m, "uninitialized").as_deref(), Some("0"));
    m.retain_servers(|_| false);
    for state in POD_STATES {
        assert_eq!(pods(&m, state).as_deref(), Some("0"), "{state}");
    }
}

#[test]
fn encode_has_counters_histogram_and_help() {
    let m = OperatorMetrics::new();
    m.reconciled("ok", Duration::from_millis(5));
    m.reconciled("ok", Duration::from_millis(7));
    m.reconciled("error", Duration::from_millis(3));
    m.error("apply");
    m.set_pods("secrets/a", Some([0, 1, 0, 0]));
    let text = m.encode().expect("encode");
    assert_eq!(
        sample(&text, "sealkeep_operator_reconciles_total{result=\"ok\"}").as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "sealkeep_operator_reconciles_total{result=\"error\"}"
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "sealkeep_operator_reconcile_errors_total{kind=\"apply\"}"
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sealkeep_operator_reconcile_duration_seconds_count").as_deref(),
        Some("3"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sealkeep_operator_reconciles counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sealkeep_operator_server_pods gauge"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sealkeep_operator_reconcile_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("sealkeep_operator_server_pods{state=\"sealed\"} 1"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn fresh_metrics_encode_without_samples_of_pods() {
    let m = OperatorMetrics::new();
    let text = m.encode().expect("encode");
    assert_eq!(
        sample(&text, "sealkeep_operator_reconcile_duration_seconds_count").as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(pods(&m, "sealed"), None);
    assert!(format!("{m:?}").starts_with("OperatorMetrics"));
}
