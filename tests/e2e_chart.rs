//! End-to-end tests of the Helm chart and the examples on testenv: lint, server-side dry-run of
//! the rendered chart in both RBAC modes, `helm install` with the operator running as a pod
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
            "watchNamespace=e2e-chart-team",
            "--set",
            "replicaCount=2",
        ],
    ] {
        let chart = chart();
        let mut args = vec!["template", RELEASE, chart.as_str(), "-n", OPNS];
        args.extend(extra.iter().copied());
        let rendered = helm_ok(&args);
        let kinds: Vec<&str> = rendered
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect();
        if extra.is_empty() {
            assert!(
                kinds.contains(&"ClusterRole") && kinds.contains(&"ClusterRoleBinding"),
                "{kinds:?}"
            );
        } else {
            assert!(kinds.contains(&"Role"), "{kinds:?}");
            assert_eq!(
                kinds.iter().filter(|k| **k == "ClusterRole").count(),
                1,
                "only the cluster-scoped rules (auth-delegator binding) stay a ClusterRole: {kinds:?}"
            );
            assert!(
                rendered.contains("--leader-elect"),
                "replicas > 1 turns on leader election"
            );
            assert!(rendered.contains("--namespace=e2e-chart-team"));
        }
        assert!(!rendered.contains("\"*\""), "no wildcard RBAC");
        let out = dry_run(&rendered);
        assert!(
            out.status.success(),
            "server-side dry-run of the chart ({extra:?}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

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
    helm_ok(&[
        "install",
        RELEASE,
        &chart(),
        "-n",
        OPNS,
        "--create-namespace",
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

    // local-kms.yaml: Ready and unsealed, through the operator pod.
    let ns_kms = "demo";
    namespace(ns_kms);
    apply(&example("local-kms.yaml"));
    let s = wait_sks(
        ns_kms,
        "local-kms.yaml Ready",
        Duration::from_secs(180),
        ready,
    );
    assert_eq!(s["status"]["initialized"], true);
    assert!(kubectl(&["-n", ns_kms, "get", "secret", "vault-init"]).0);

    // shamir.yaml: initialized, sealed until unsealed with the shares from the init Secret.
    let ns_sh = "shamir";
    namespace(ns_sh);
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
    for f in ["iam-policy-kms-unseal.json", "irsa-trust-policy.json"] {
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
    // Wait for the namespaces to go: the demo, run next, uses `demo` too.
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
