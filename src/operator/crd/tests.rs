use kube::CustomResourceExt;
use serde_json::Value;

use super::*;

/// CI fails when the committed CRD differs from the Rust types.
#[test]
fn committed_crd_is_up_to_date() {
    let committed = include_str!("../../../crds/secretservers.sealkeep.dev.yaml");
    let generated = crd_yaml().expect("render");
    assert!(
        committed == generated,
        "crds/secretservers.sealkeep.dev.yaml is stale: run `cargo run -- crd > crds/secretservers.sealkeep.dev.yaml` and commit it"
    );
}

fn rules(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rs)) = m.get("x-kubernetes-validations") {
                out.extend(
                    rs.iter()
                        .filter_map(|r| r["rule"].as_str().map(str::to_owned)),
                );
            }
            m.values().for_each(|v| rules(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| rules(v, out)),
        _ => {}
    }
}

#[test]
fn crd_has_names_status_columns_and_cel_rules() {
    let crd = serde_json::to_value(SecretServer::crd()).expect("json");
    assert_eq!(crd["spec"]["group"], "sealkeep.dev");
    assert_eq!(crd["spec"]["names"]["plural"], "secretservers");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "sks");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Sealed",
            "Initialized",
            "Seal",
            "Active",
            "Age",
            "Reason"
        ]
    );
    let mut all = Vec::new();
    rules(&version["schema"], &mut all);
    for expected in [
        "self == 1 || self == 3 || self == 5",
        "!(has(self.storage) && has(self.storage.type) && self.storage.type == 'file') || self.replicas == 1",
        "has(self.awsKms) != has(self.shamir)",
        "self.recoveryThreshold >= 1 && self.recoveryThreshold <= self.recoveryShares",
        "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
        "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
    ] {
        assert!(
            all.iter().any(|r| r == expected),
            "missing rule {expected}: {all:?}"
        );
    }
    // Every spec field is documented, so `kubectl explain` is useful.
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for (name, field) in spec.as_object().expect("spec") {
        assert!(
            field["description"].as_str().is_some_and(|d| !d.is_empty()),
            "spec.{name} has no description"
        );
    }
}

#[test]
fn defaults_apply_to_a_minimal_spec() {
    let spec: SecretServerSpec =
        serde_json::from_str(r#"{"seal":{"awsKms":{"keyId":"alias/k","region":"us-east-1"}}}"#)
            .expect("parse");
    assert_eq!(spec.replicas, 1);
    assert_eq!(
        spec.init,
        InitSpec {
            auto: true,
            recovery_shares: 5,
            recovery_threshold: 3,
            revoke_root_token: false,
        }
    );
    assert_eq!(spec.storage.size, "1Gi");
    assert_eq!(spec.telemetry, None);
}

/// Helm installs CRDs from the chart's crds/: it must be the generated one.
#[test]
fn chart_crd_is_the_generated_crd() {
    let chart = include_str!("../../../charts/sealkeep/crds/secretservers.sealkeep.dev.yaml");
    let generated = crd_yaml().expect("render");
    assert!(
        chart == generated,
        "charts/sealkeep/crds/secretservers.sealkeep.dev.yaml differs from the generated CRD: run `cargo run -- crd > charts/sealkeep/crds/secretservers.sealkeep.dev.yaml` and commit it"
    );
}

/// docs/secretserver.md is generated from the CRD.
#[test]
fn committed_reference_doc_is_up_to_date() {
    let committed = include_str!("../../../docs/secretserver.md");
    let generated = super::reference::markdown();
    assert!(
        committed == generated,
        "docs/secretserver.md is stale: run `cargo run -- crd --reference > docs/secretserver.md` and commit it"
    );
    for field in [
        "`spec.seal.awsKms.roleArn`",
        "`spec.init.recoveryThreshold`",
        "`status.pods[].lastUnsealError`",
    ] {
        assert!(generated.contains(field), "reference lacks {field}");
    }
    assert!(generated.contains("replicas must be 1, 3 or 5"));
    assert!(generated.contains("`spec.storage.type`"));
    assert!(generated.contains("`spec.raft.autopilot.minQuorum`"));
}
