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

/// Live (non-zombie) processes of the environment, from /proc.
fn environment_processes() -> Vec<String> {
    let names = [
        "kube-apiserver",
        "kube-controller-manager",
        "sealkeep-pkubelet",
        "etcd",
    ];
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(arg0) = argv.first() else { continue };
        let base = arg0.rsplit('/').next().unwrap_or(arg0);
        let ours = names.contains(&base)
            || (argv.iter().any(|a| a.ends_with("moto_server"))
                && argv.iter().any(|a| a.starts_with("198.18.")));
        if ours && !zombie {
            found.push(format!("{pid} {}", argv.join(" ")));
        }
    }
    found
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
    // Killed children can linger a moment as zombies until init reaps them; they hold nothing.
    let mut procs = Vec::new();
    for _ in 0..50 {
        procs = environment_processes();
        if procs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(procs, Vec::<String>::new(), "processes left behind");
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
