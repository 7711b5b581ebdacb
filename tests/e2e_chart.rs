//! End-to-end tests of the Helm chart and the examples on testenv: lint, server-side dry-run of
//! the rendered chart in its three RBAC modes (all namespaces without Secrets, watched
//! namespaces, cluster-wide Secrets), a namespace opting in to Secrets, `helm install` with the operator running as a pod
//! under the process kubelet (in-cluster config, the chart's ServiceAccount only), every
//! example reaching its expected state, `helm upgrade` rolling the operator, and
//! `helm uninstall` leaving the CRD, the data and the init Secrets. Ignored by default;
//! `scripts/e2e.sh` runs them with `--ignored` (one thread: they share the release).

mod common;

use std::time::{Duration, Instant};

use common::k8s::*;
use serde_json::Value;

const RELEASE: &str = "sealkeep";
const OPNS: &str = "sealkeep-system";

fn helm(args: &[&str]) -> (bool, String, String) {
    let out = cmd("helm")
        .args(args)
        .output()
        .expect("helm on the testenv PATH");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn helm_ok(args: &[&str]) -> String {
    let (ok, out, err) = helm(args);
    assert!(ok, "helm {args:?} failed: {err}\n{out}");
    out
}

fn chart() -> String {
    repo().join("charts/sealkeep").display().to_string()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo().join("examples").join(name)).expect("example file")
}

fn ensure_namespace(ns: &str) {
    if !kubectl(&["get", "namespace", ns]).0 {
        kubectl_ok(&["create", "namespace", ns]);
    }
}

/// `kubectl apply --dry-run=server -f -`: the API server validates without storing.
fn dry_run(yaml: &str) -> std::process::Output {
    let mut child = cmd("kubectl")
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), yaml.as_bytes())
        .expect("write");
    child.wait_with_output().expect("kubectl apply")
}

fn condition(s: &Value, type_: &str) -> (String, String) {
    s["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .unwrap_or_default()
}

fn wait_sks(ns: &str, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        let (ok, out, _) = kubectl(&["-n", ns, "get", "secretserver", "vault", "-o", "json"]);
        if ok && let Ok(v) = serde_json::from_str::<Value>(&out) {
            if pred(&v) {
                eprintln!("{what}: {:?}", start.elapsed());
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let logs = kubectl(&["-n", OPNS, "get", "pods", "-o", "wide"]).1;
    panic!(
        "{what}: not within {limit:?}; last status: {}\noperator pods:\n{logs}",
        serde_json::to_string_pretty(&last["status"]).unwrap_or_default()
    );
}

fn ready(s: &Value) -> bool {
    s["status"]["ready"] == "1/1"
        && s["status"]["sealed"] == false
        && condition(s, "Ready").0 == "True"
}

fn operator_pod() -> Value {
    let pods = json(&[
        "-n",
        OPNS,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=sealkeep-operator",
    ]);
    pods["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|p| p["metadata"]["deletionTimestamp"].is_null())
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// The opt-in the chart's NOTES show: the operator may keep Secrets in `ns`.
fn opt_in(ns: &str) {
    kubectl_ok(&[
        "-n",
        ns,
        "create",
        "rolebinding",
        "sealkeep-secrets",
        "--clusterrole=sealkeep-secrets",
        &format!("--serviceaccount={OPNS}:{RELEASE}"),
    ]);
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/e2e.sh runs it"]
fn chart_lints_renders_and_refuses_wrong_value_types() {
    let (ok, out, err) = helm(&["lint", &chart()]);
    assert!(
        ok && out.contains("0 chart(s) failed"),
        "helm lint: {out}{err}"
    );
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "{out}"
    );

    // Server-side validation of the rendered chart, cluster-wide and single-namespace.
    apply_crd();
    ensure_namespace(OPNS);
    ensure_namespace("e2e-chart-team");
    for extra in [
        vec![],
        vec![
            "--set",
            "watchNamespaces={e2e-chart-team,sealkeep-system}",
            "--set",
            "replicaCount=2",
        ],
        vec!["--set", "rbac.clusterWideSecrets=true"],
    ] {
        let chart = chart();
        let mut args = vec!["template", RELEASE, chart.as_str(), "-n", OPNS];
        args.extend(extra.iter().copied());
        let rendered = helm_ok(&args);
        let docs: Vec<&str> = rendered.split("\n---\n").collect();
        let find = |kind: &str, name: &str| -> Vec<&str> {
            docs.iter()
                .filter(|d| {
                    d.lines().any(|l| l == format!("kind: {kind}"))
                        && d.lines().any(|l| l == format!("  name: {name}"))
                })
                .copied()
                .collect()
        };
        // Secrets are never in the main rules; their ClusterRole exists in every mode.
        for d in find("ClusterRole", RELEASE)
            .into_iter()
            .chain(find("Role", RELEASE))
        {
            assert!(!d.contains("\"secrets\""), "Secrets in the main rules: {d}");
        }
        assert_eq!(find("ClusterRole", "sealkeep-secrets").len(), 1);
        assert_eq!(
            find("ValidatingAdmissionPolicy", "sealkeep-clusterrolebindings").len(),
            1
        );
        assert_eq!(
            find(
                "ValidatingAdmissionPolicyBinding",
                "sealkeep-clusterrolebindings"
            )
            .len(),
            1
        );
        let cluster_wide_secrets = find("ClusterRoleBinding", "sealkeep-secrets").len();
        match extra.get(1).copied() {
            None => {
                assert_eq!(
                    find("ClusterRole", RELEASE).len(),
                    1,
                    "ClusterRole in all-namespaces mode"
                );
                assert_eq!(
                    cluster_wide_secrets, 0,
                    "no Secrets cluster-wide by default"
                );
                assert!(!rendered.contains("--namespace="));
            }
            Some("rbac.clusterWideSecrets=true") => assert_eq!(cluster_wide_secrets, 1),
            Some(_) => {
                assert_eq!(cluster_wide_secrets, 0);
                assert!(
                    find("ClusterRole", RELEASE).is_empty(),
                    "no ClusterRole with namespaced rules"
                );
                assert_eq!(
                    find("Role", RELEASE).len(),
                    2,
                    "a Role per watched namespace"
                );
                assert_eq!(find("RoleBinding", "sealkeep-secrets").len(), 2);
                assert!(
                    rendered.contains("--leader-elect"),
                    "replicas > 1 turns on leader election"
                );
                assert!(rendered.contains("--namespace=e2e-chart-team,sealkeep-system"));
                assert!(
                    rendered.contains(r#"s.namespace in ["e2e-chart-team","sealkeep-system"]"#)
                );
            }
        }
        assert!(!rendered.contains("\"*\""), "no wildcard RBAC");
        let out = dry_run(&rendered);
        assert!(
            out.status.success(),
            "server-side dry-run of the chart ({extra:?}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ok, _, err) = helm(&[
        "template",
        RELEASE,
        &chart(),
        "--set",
        "watchNamespaces={a}",
        "--set",
        "rbac.clusterWideSecrets=true",
    ]);
    assert!(
        !ok && err.contains("only makes sense when watching all namespaces"),
        "{err}"
    );

    // Optional objects: the PDB passes server-side validation; the ServiceMonitor needs the
    // Prometheus Operator's CRD, so it is checked as rendered.
    let rendered = helm_ok(&[
        "template",
        RELEASE,
        &chart(),
        "-n",
        OPNS,
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prom",
    ]);
    assert!(rendered.contains("kind: PodDisruptionBudget"), "{rendered}");
    let (monitor, rest): (Vec<&str>, Vec<&str>) = rendered
        .split("\n---\n")
        .partition(|doc| doc.contains("kind: ServiceMonitor"));
    assert_eq!(monitor.len(), 1, "one ServiceMonitor");
    assert!(
        monitor[0].contains("release: prom") && monitor[0].contains("port: metrics"),
        "{}",
        monitor[0]
    );
    let out = dry_run(&rest.join("\n---\n"));
    assert!(
        out.status.success(),
        "dry-run with the PDB: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong value type fails with the schema's message.
    for (set, message) in [
        (
            "replicaCount=two",
            "at '/replicaCount': got string, want integer",
        ),
        ("logFormat=xml", "at '/logFormat': value must be one of"),
        ("metrics.port=notaport", "at '/metrics/port'"),
        ("watchNamespaces={Bad_NS}", "at '/watchNamespaces/0'"),
        ("aws.roleArn=not-an-arn", "at '/aws/roleArn'"),
    ] {
        let (ok, _, err) = helm(&["template", RELEASE, &chart(), "--set", set]);
        assert!(!ok, "--set {set} must be refused");
        assert!(
            err.contains(message),
            "--set {set}: expected {message:?} in: {err}"
        );
    }
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/e2e.sh runs it"]
fn helm_install_runs_the_examples_upgrade_rolls_uninstall_keeps_data() {
    let _ = helm(&["uninstall", RELEASE, "-n", OPNS, "--wait"]);
    // The operator's own AWS identity (IRSA through moto's STS) for the init Secret's data keys.
    let moto = testenv()
        .get("SEALKEEP_TESTENV_MOTO_URL")
        .cloned()
        .unwrap_or_else(|| "http://198.18.0.1:5000".into());
    let values = std::env::temp_dir().join("sealkeep-e2e-chart-values.yaml");
    std::fs::write(
        &values,
        format!(
            "aws:\n  roleArn: arn:aws:iam::123456789012:role/sealkeep-operator\n  region: us-east-1\n\
             extraEnv:\n  - name: AWS_ENDPOINT_URL_STS\n    value: {moto}\n"
        ),
    )
    .expect("values file");
    helm_ok(&[
        "install",
        RELEASE,
        &chart(),
        "-n",
        OPNS,
        "--create-namespace",
        "-f",
        &values.display().to_string(),
        "--wait",
        "--timeout",
        "3m",
    ]);
    let pod = operator_pod();
    assert_eq!(pod["status"]["phase"], "Running", "{pod}");
    assert_eq!(
        pod["spec"]["serviceAccountName"], RELEASE,
        "runs as the chart's ServiceAccount"
    );
    let first_pod = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();

    // local-kms.yaml in a namespace that has not opted in: the operator may not keep the init
    // Secret there (no Secrets cluster-wide by default), and says so.
    let ns_kms = "demo";
    namespace(ns_kms);
    apply(&example("local-kms.yaml"));
    let s = wait_sks(
        ns_kms,
        "InitSecretForbidden before the namespace opts in",
        Duration::from_secs(180),
        |s| {
            condition(s, "Initialized").1 == "InitSecretForbidden"
                && s["status"]["initialized"] == false
        },
    );
    assert_eq!(s["status"]["initialized"], false, "nothing initialized");
    let message = s["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Initialized"))
        .map(|c| c["message"].to_string())
        .unwrap_or_default();
    assert!(
        message.contains("bind the ClusterRole sealkeep-secrets")
            && message.contains("watchNamespaces"),
        "{message}"
    );
    opt_in(ns_kms);
    let s = wait_sks(
        ns_kms,
        "local-kms.yaml Ready after the opt-in",
        Duration::from_secs(180),
        ready,
    );
    assert_eq!(s["status"]["initialized"], true);
    // Encrypted by the operator pod with a data key from moto (IRSA); read with the CLI.
    let token = common::operator::root_token(ns_kms, "vault");
    assert!(
        token.starts_with("hvs."),
        "init-secret show printed no token"
    );
    let format = kubectl_ok(&[
        "-n",
        ns_kms,
        "get",
        "secret",
        "vault-init",
        "-o",
        "jsonpath={.data.format}",
    ]);
    assert_eq!(
        format.trim(),
        "YXdza21zLWVudmVsb3BlLXYx",
        "awskms-envelope-v1"
    );

    // shamir.yaml: initialized, sealed until unsealed with the shares from the init Secret.
    let ns_sh = "shamir";
    namespace(ns_sh);
    opt_in(ns_sh);
    apply(&example("shamir.yaml"));
    let s = wait_sks(
        ns_sh,
        "shamir.yaml initialized and sealed",
        Duration::from_secs(180),
        |s| {
            s["status"]["initialized"] == true
                && s["status"]["sealed"] == true
                && condition(s, "Unsealed").1 == "AwaitingUnsealKeys"
        },
    );
    assert_eq!(condition(&s, "Ready").0, "False");
    let keys_b64 = kubectl_ok(&[
        "-n",
        ns_sh,
        "get",
        "secret",
        "vault-init",
        "-o",
        "jsonpath={.data.keys}",
    ]);
    let keys = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, keys_b64.trim())
            .expect("base64"),
    )
    .expect("utf8");
    let threshold: usize = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            kubectl_ok(&[
                "-n",
                ns_sh,
                "get",
                "secret",
                "vault-init",
                "-o",
                "jsonpath={.data.threshold}",
            ])
            .trim(),
        )
        .expect("base64"),
    )
    .expect("utf8")
    .parse()
    .expect("threshold");
    assert_eq!(threshold, 3);
    let ip = kubectl_ok(&[
        "-n",
        ns_sh,
        "get",
        "pod",
        "vault-0",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    for key in keys.lines().take(threshold) {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "-m", "5", "-X", "PUT", "-d"])
            .arg(serde_json::json!({ "key": key }).to_string())
            .arg(format!("http://{ip}:8200/v1/sys/unseal"))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "unseal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_sks(
        ns_sh,
        "shamir.yaml Ready after unsealing",
        Duration::from_secs(120),
        ready,
    );

    // basic-awskms-irsa.yaml is for EKS (real AWS): the API server must accept it as written.
    ensure_namespace("secrets");
    let out = dry_run(&example("basic-awskms-irsa.yaml"));
    assert!(
        out.status.success(),
        "basic-awskms-irsa.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "iam-policy-kms-unseal.json",
        "irsa-trust-policy.json",
        "iam-policy-operator.json",
        "iam-policy-init-secret-reader.json",
    ] {
        let v: Value = serde_json::from_str(&example(f)).expect("valid JSON policy");
        assert_eq!(v["Version"], "2012-10-17", "{f}");
    }

    // helm upgrade with a changed value rolls the operator.
    helm_ok(&[
        "upgrade",
        RELEASE,
        &chart(),
        "-n",
        OPNS,
        "--set",
        "logLevel=debug",
        "--wait",
        "--timeout",
        "3m",
    ]);
    wait_for(
        "operator rolled to a new pod",
        Duration::from_secs(120),
        || {
            let p = operator_pod();
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n != first_pod)
                && p["status"]["phase"] == "Running"
                && p["spec"]["containers"][0]["args"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "--log-level=debug"))
        },
    );
    // The new operator keeps the servers Ready.
    wait_sks(
        ns_kms,
        "Ready under the upgraded operator",
        Duration::from_secs(60),
        ready,
    );

    // helm uninstall removes the operator, not the CRD, the data or the init Secrets.
    helm_ok(&["uninstall", RELEASE, "-n", OPNS, "--wait"]);
    wait_for("operator gone", Duration::from_secs(60), || {
        operator_pod().is_null()
    });
    assert!(
        kubectl(&["get", "crd", "secretservers.sealkeep.dev"]).0,
        "CRD kept"
    );
    for ns in [ns_kms, ns_sh] {
        assert!(
            kubectl(&["-n", ns, "get", "pvc", "data-vault-0"]).0,
            "PVC kept in {ns}"
        );
        assert!(
            kubectl(&["-n", ns, "get", "secret", "vault-init"]).0,
            "init Secret kept in {ns}"
        );
    }
    let (_, out, _) = kubectl(&["get", "clusterrole", RELEASE]);
    assert!(out.is_empty(), "ClusterRole removed");
    // With the operator gone, nothing removes the cleanup finalizer of a SecretServer that binds
    // system:auth-delegator (every raft server does), so its namespace would stay Terminating:
    // do what the README's uninstall section tells a user, then wait for the namespaces to go
    // (the demo, run next, uses `demo` too).
    for ns in [ns_kms, ns_sh] {
        let (_, names, _) = kubectl(&["-n", ns, "get", "secretservers", "-o", "name"]);
        for name in names.split_whitespace() {
            kubectl_ok(&[
                "-n",
                ns,
                "patch",
                name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
        let _ = kubectl(&[
            "delete",
            "clusterrolebinding",
            "-l",
            &format!("sealkeep.dev/namespace={ns}"),
        ]);
    }
    let _ = kubectl(&[
        "delete",
        "namespace",
        ns_kms,
        ns_sh,
        "secrets",
        "--wait=true",
        "--timeout=120s",
    ]);
}
