//! End-to-end tests of the init Secret on testenv (real API server, process kubelet, moto as
//! KMS): an operator without KMS access initializes nothing and stores nothing; a `<name>-init`
//! Secret the operator did not create blocks auto-init with `InitSecretForeign` and is left
//! untouched; `spec.init.revokeRootToken` revokes the root token after storing the keys, and
//! `sealkeep init-secret show` decrypts the Secret for a human with kms:Decrypt. Ignored by
//! default; `scripts/e2e.sh` runs them.

mod common;

use std::time::Duration;

use common::k8s::*;
use common::operator::*;

fn secret_names(ns: &str) -> Vec<String> {
    kubectl_ok(&["-n", ns, "get", "secrets", "-o", "name"])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/e2e.sh runs it"]
fn operator_without_kms_access_initializes_nothing_then_recovers() {
    let ns = "e2e-init-nokms";
    namespace(ns);
    let op = Operator::start_without_aws(ns);
    apply(&awskms_server(ns, "vault", &kms_alias(), &moto_url()));
    let s = wait_sks(
        ns,
        "vault",
        "Initialized=False InitSecretKMSFailed",
        Duration::from_secs(120),
        |s| condition(s, "Initialized").1 == "InitSecretKMSFailed",
    );
    let (status, _, message) = condition(&s, "Initialized");
    assert_eq!(status, "False");
    assert!(
        message.contains("kms:GenerateDataKey") && message.contains(&kms_alias()),
        "the message names the permission and the key: {message}"
    );
    assert_eq!(condition(&s, "Degraded").0, "True", "{s}");
    assert_eq!(s["status"]["initialized"], false, "sys/init was not called");
    assert!(
        !secret_names(ns).iter().any(|n| n == "secret/vault-init"),
        "no marker, no keys in clear: {:?}",
        secret_names(ns)
    );
    assert!(
        events(ns)
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "InitSecretKMSFailed"),
        "{:?}",
        events(ns)
    );
    drop(op);
    // With an AWS identity, the next operator initializes the same server.
    let op = Operator::start(ns);
    wait_sks(ns, "vault", "Ready", Duration::from_secs(120), is_ready);
    let secret = json(&["-n", ns, "get", "secret", "vault-init"]);
    assert!(secret["data"]["ciphertext"].is_string(), "{secret}");
    assert!(secret["data"]["root-token"].is_null(), "{secret}");
    drop(op);
    kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/e2e.sh runs it"]
fn foreign_init_secret_blocks_auto_init_and_is_never_overwritten() {
    let ns = "e2e-init-foreign";
    namespace(ns);
    // Someone else's Secret of that name, even one dressed as a pending marker.
    apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: vault-init\n  namespace: {ns}\n  \
         annotations: {{ sealkeep.dev/init-state: pending }}\nstringData: {{ note: mine }}\n"
    ));
    let rv =
        json(&["-n", ns, "get", "secret", "vault-init"])["metadata"]["resourceVersion"].clone();
    let op = Operator::start(ns);
    apply(&awskms_server(ns, "vault", &kms_alias(), &moto_url()));
    let s = wait_sks(
        ns,
        "vault",
        "Initialized=False InitSecretForeign",
        Duration::from_secs(120),
        |s| condition(s, "Initialized").1 == "InitSecretForeign",
    );
    let message = condition(&s, "Initialized").2;
    assert!(
        message.contains("vault-init")
            && message.contains("sealkeep.dev/init-secret-for")
            && message.contains("delete it"),
        "{message}"
    );
    assert_eq!(s["status"]["initialized"], false);
    std::thread::sleep(Duration::from_secs(3));
    let secret = json(&["-n", ns, "get", "secret", "vault-init"]);
    assert_eq!(
        secret["metadata"]["resourceVersion"], rv,
        "the foreign Secret was modified"
    );
    assert_eq!(secret["data"]["note"], "bWluZQ==", "{secret}");
    // Deleting it lets the operator initialize.
    kubectl_ok(&["-n", ns, "delete", "secret", "vault-init"]);
    wait_sks(ns, "vault", "Ready", Duration::from_secs(120), is_ready);
    assert!(!root_token(ns, "vault").is_empty());
    drop(op);
    kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/e2e.sh runs it"]
fn revoke_root_token_after_init_keeps_the_keys_readable() {
    let ns = "e2e-init-revoke";
    namespace(ns);
    let op = Operator::start(ns);
    apply(
        &(awskms_server(ns, "vault", &kms_alias(), &moto_url())
            + "  init:\n    revokeRootToken: true\n"),
    );
    wait_sks(ns, "vault", "Ready", Duration::from_secs(120), is_ready);
    wait_for("RootTokenRevoked event", Duration::from_secs(30), || {
        events(ns)
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "RootTokenRevoked")
    });
    let revoked = kubectl_ok(&[
        "-n",
        ns,
        "get",
        "secret",
        "vault-init",
        "-o",
        "jsonpath={.data.root-token-revoked}",
    ]);
    assert_eq!(revoked.trim(), "dHJ1ZQ==", "root-token-revoked: true");
    let (ok, out, err) = init_secret_show(ns, "vault", Some("root-token"));
    assert!(!ok, "a revoked root token must not be printed: {out}");
    assert!(
        err.contains("revoked") && err.contains("generate-root"),
        "{err}"
    );
    let (ok, out, err) = init_secret_show(ns, "vault", None);
    assert!(ok, "{err}");
    assert!(
        out.contains("Root Token    revoked after initialization"),
        "{}",
        out.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    let (ok, keys, err) = init_secret_show(ns, "vault", Some("keys"));
    assert!(ok, "{err}");
    assert_eq!(keys.lines().count(), 5, "five recovery shares remain");
    // A wrong name says what exists.
    let (ok, _, err) = init_secret_show(ns, "nope", None);
    assert!(!ok);
    assert!(
        err.contains("no Secret nope-init") && err.contains(ns),
        "{err}"
    );
    drop(op);
    kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
}
