//! Helpers for end-to-end tests on testenv: `testenv up` once per test binary, and kubectl
//! with the testenv's environment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `testenv/testenv up` once (it reuses a running environment), then its `env` exports.
pub fn testenv() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let up = Command::new(repo().join("testenv/testenv"))
            .arg("up")
            .status()
            .expect("run testenv/testenv up");
        assert!(
            up.success(),
            "testenv/testenv up failed; see its logs under the state dir"
        );
        let out = Command::new(repo().join("testenv/testenv"))
            .arg("env")
            .output()
            .expect("testenv env");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.trim_matches(|c| c == '"' || c == '\'').to_owned(),
                )
            })
            .collect()
    })
}

pub fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    for (k, v) in testenv() {
        c.env(k, v);
    }
    c
}

/// Runs kubectl; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    let out = cmd("kubectl")
        .args(args)
        .output()
        .expect("kubectl on the testenv PATH");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn kubectl_ok(args: &[&str]) -> String {
    let (ok, out, err) = kubectl(args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// `kubectl apply -f -` with `yaml` on standard input.
pub fn apply_output(yaml: &str) -> std::process::Output {
    let mut child = cmd("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), yaml.as_bytes())
        .expect("write");
    child.wait_with_output().expect("apply")
}

pub fn apply(yaml: &str) {
    let out = apply_output(yaml);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Applies an object the API server must refuse; returns its error text.
pub fn apply_err(yaml: &str) -> String {
    let out = apply_output(yaml);
    assert!(
        !out.status.success(),
        "apply of an invalid object succeeded: {yaml}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&kubectl_ok(&a)).expect("kubectl json")
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            eprintln!("{what}: {:?}", start.elapsed());
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within {limit:?}");
}

pub fn namespace(name: &str) {
    let _ = kubectl(&["delete", "namespace", name, "--wait=false"]);
    wait_for("old namespace gone", Duration::from_secs(120), || {
        !kubectl(&["get", "namespace", name]).0
    });
    kubectl_ok(&["create", "namespace", name]);
    wait_for("default service account", Duration::from_secs(30), || {
        kubectl(&["-n", name, "get", "serviceaccount", "default"]).0
    });
}

/// Applies the committed SecretServer CRD and waits until the API server serves it.
/// (`kubectl wait --for condition=established` fails at once while the CRD has no conditions.)
pub fn apply_crd() {
    let crd = repo().join("crds/secretservers.sealkeep.dev.yaml");
    kubectl_ok(&["apply", "--server-side", "-f", &crd.display().to_string()]);
    wait_for(
        "SecretServer CRD established",
        Duration::from_secs(30),
        || {
            kubectl(&[
                "get",
                "crd",
                "secretservers.sealkeep.dev",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])
            .1
            .trim()
                == "True"
        },
    );
}

/// Waits (up to `limit`) for the run-once pod `ns/pod` to succeed or fail, and returns the log
/// of its container `container`, as the process kubelet keeps it under its state directory.
pub fn finished_pod_log(ns: &str, pod: &str, container: &str, limit: Duration) -> String {
    let mut uid = String::new();
    wait_for(&format!("pod {ns}/{pod} finished"), limit, || {
        let p = json(&["-n", ns, "get", "pod", pod]);
        uid = p["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed"
    });
    let state = testenv()
        .get("SEALKEEP_TESTENV_DIR")
        .cloned()
        .unwrap_or_else(|| "/var/lib/sealkeep-testenv".into());
    let path = PathBuf::from(state)
        .join("kubelet/pods")
        .join(&uid)
        .join(format!("logs/{container}.log"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("log of {ns}/{pod} at {}: {e}", path.display()))
}
