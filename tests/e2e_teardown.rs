//! Runs last in `scripts/test-all.sh`: `testenv/testenv down` must leave no process, network
//! namespace, bridge or mount of the environment behind.

use std::process::Command;

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs testenv (root): scripts/test-all.sh runs it after the e2e tests"]
fn down_leaves_nothing_behind() {
    let state = std::env::var("SEALKEEP_TESTENV_DIR")
        .unwrap_or_else(|_| "/var/lib/sealkeep-testenv".into());
    let down = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/testenv"))
        .arg("down")
        .status()
        .expect("testenv down");
    assert!(down.success());
    // Idempotent: a second down succeeds too.
    let again = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/testenv"))
        .arg("down")
        .status()
        .expect("testenv down");
    assert!(again.success());
    let procs = sh(
        "pgrep -af 'kube-apiserver|kube-controller-manager|sealkeep-pkubelet|/etcd |moto_server -H 198.18' || true",
    );
    assert_eq!(procs, "", "processes left behind");
    let netns = sh("ip netns list | grep '^sk-' || true");
    assert_eq!(netns, "", "network namespaces left behind");
    let links = sh("ip -o link show | grep -E 'skbr0|skv' || true");
    assert_eq!(links, "", "bridge or veth links left behind");
    let mounts = sh(&format!("grep -F '{state}' /proc/self/mountinfo || true"));
    assert_eq!(mounts, "", "mounts left behind");
    assert!(
        !std::path::Path::new(&state).exists(),
        "state dir {state} left behind"
    );
}
