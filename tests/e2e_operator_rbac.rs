//! End-to-end proof on testenv that the operator's ServiceAccount, with the chart's RBAC rules
//! and ValidatingAdmissionPolicy, can write no ClusterRoleBinding but its own auth-delegator
//! bindings: requests are made as that ServiceAccount (`kubectl --as`, impersonation by the
//! admin), against the real API server. A negative control shows that RBAC alone would let it
//! bind its own ClusterRole to anyone. Ignored by default; `scripts/e2e.sh` runs it.

mod common;

use std::time::Duration;

use common::k8s::*;
use common::operator::*;

const NS: &str = "e2e-rbac";

fn who() -> String {
    format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}")
}

/// A ClusterRoleBinding as YAML.
fn binding(name: &str, role: &str, subject_kind: &str, subject_ns: &str) -> String {
    let ns = if subject_kind == "ServiceAccount" {
        format!(", namespace: {subject_ns}")
    } else {
        String::new()
    };
    let api_group = if subject_kind == "ServiceAccount" {
        String::new()
    } else {
        ", apiGroup: rbac.authorization.k8s.io".into()
    };
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{ name: \"{name}\" }}\n\
         roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: \"{role}\" }}\n\
         subjects: [{{ kind: {subject_kind}, name: app{ns}{api_group} }}]\n"
    )
}

/// `kubectl create` as the operator (`--dry-run=server` runs authorization and admission
/// without storing); returns (success, stderr).
fn create_as_operator(yaml: &str, dry_run: bool) -> (bool, String) {
    let who = who();
    let mut args = vec!["create", "--as", who.as_str(), "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let mut child = cmd("kubectl")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), yaml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl create");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(what: &str, yaml: &str, expect: &str) {
    let (ok, err) = create_as_operator(yaml, false);
    assert!(!ok, "{what}: the operator's ServiceAccount was allowed");
    assert!(
        err.contains(expect),
        "{what}: expected {expect:?} in the refusal: {err}"
    );
    eprintln!("refused as expected ({what}): {}", err.trim());
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/e2e.sh runs it"]
fn operator_service_account_can_bind_only_its_own_auth_delegator_bindings() {
    operator_kubeconfig();
    namespace(NS);
    let own = format!("sealkeep:{NS}:vault:auth-delegator");
    let policy = format!("{POLICY_RELEASE}-clusterrolebindings");
    // The policy takes effect a moment after it is created: wait for a refusal it makes.
    let mut last = String::new();
    wait_for(
        "the admission policy is enforced",
        Duration::from_secs(60),
        || {
            let (ok, err) = create_as_operator(
                &binding(
                    "innocent-name",
                    "system:auth-delegator",
                    "ServiceAccount",
                    NS,
                ),
                true,
            );
            last = err;
            !ok && last.contains(&policy)
        },
    );
    assert!(
        last.contains("sealkeep:<namespace>:<name>:auth-delegator"),
        "{last}"
    );

    // RBAC: no bind on other roles, so cluster-admin is refused by the API server itself.
    refused(
        "cluster-admin",
        &binding(&own, "cluster-admin", "ServiceAccount", NS),
        "forbidden",
    );
    // Its own ClusterRole: RBAC allows it (the operator holds every permission in it, so the
    // escalation check passes, see the negative control below); the policy refuses it.
    refused(
        "the operator's own ClusterRole",
        &binding(&own, "sealkeep-operator-e2e", "ServiceAccount", NS),
        "may only bind the ClusterRole system:auth-delegator, not ClusterRole sealkeep-operator-e2e",
    );
    refused(
        "system:basic-user",
        &binding(&own, "system:basic-user", "ServiceAccount", NS),
        "may only bind the ClusterRole system:auth-delegator",
    );
    refused(
        "auth-delegator without the prefix",
        &binding("my-binding", "system:auth-delegator", "ServiceAccount", NS),
        "may only write ClusterRoleBindings named sealkeep:<namespace>:<name>:auth-delegator, not my-binding",
    );
    refused(
        "a ServiceAccount of another namespace",
        &binding(
            &own,
            "system:auth-delegator",
            "ServiceAccount",
            "kube-system",
        ),
        "may only bind ServiceAccounts of the SecretServer's namespace",
    );
    refused(
        "a User subject",
        &binding(&own, "system:auth-delegator", "User", NS),
        "may only bind ServiceAccounts",
    );

    // Deleting bindings it does not own: one without the prefix, one with the prefix that an
    // admin pointed at another role.
    apply(&binding("e2e-rbac-victim", "view", "ServiceAccount", NS));
    let squatter = format!("sealkeep:{NS}:squatter:auth-delegator");
    apply(&binding(&squatter, "view", "ServiceAccount", NS));
    for (name, expect) in [
        (
            "e2e-rbac-victim",
            "named sealkeep:<namespace>:<name>:auth-delegator, not e2e-rbac-victim",
        ),
        (
            squatter.as_str(),
            "may only bind the ClusterRole system:auth-delegator",
        ),
    ] {
        let (ok, _, err) = kubectl(&["delete", "clusterrolebinding", name, "--as", &who()]);
        assert!(!ok, "the operator deleted ClusterRoleBinding {name}");
        assert!(err.contains(expect), "delete {name}: {err}");
        assert!(
            kubectl(&["get", "clusterrolebinding", name]).0,
            "{name} is gone"
        );
    }

    // Its normal path still works: create, update (server-side apply) and delete its binding.
    let (ok, err) = create_as_operator(
        &binding(&own, "system:auth-delegator", "ServiceAccount", NS),
        false,
    );
    assert!(ok, "the operator's own binding: {err}");
    let (ok, _, err) = kubectl(&[
        "label",
        "clusterrolebinding",
        &own,
        "e2e=updated",
        "--as",
        &who(),
    ]);
    assert!(ok, "update of its own binding: {err}");
    let (ok, _, err) = kubectl(&["delete", "clusterrolebinding", &own, "--as", &who()]);
    assert!(ok, "delete of its own binding: {err}");

    // Negative control: without the policy binding, RBAC alone lets the operator bind its own
    // ClusterRole (Secrets nowhere, but StatefulSets, pods, ... everywhere) to any account.
    kubectl_ok(&[
        "delete",
        "validatingadmissionpolicybinding",
        &policy,
        "--wait=true",
    ]);
    let escalation = binding(
        &own,
        "sealkeep-operator-e2e",
        "ServiceAccount",
        "kube-system",
    );
    wait_for(
        "RBAC alone allows the escalation (dry run)",
        Duration::from_secs(60),
        || create_as_operator(&escalation, true).0,
    );
    apply(&admission_policy());
    wait_for(
        "the policy refuses it again",
        Duration::from_secs(60),
        || {
            let (ok, err) = create_as_operator(&escalation, true);
            !ok && err.contains(&policy)
        },
    );
    for name in ["e2e-rbac-victim", squatter.as_str()] {
        let _ = kubectl(&["delete", "clusterrolebinding", name]);
    }
    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"]);
}
