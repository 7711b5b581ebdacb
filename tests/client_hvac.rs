//! hvac, the Python Vault client, against the real `sealkeep` binary: this harness starts the
//! server (file storage, Shamir seal, uninitialized) on a free loopback port and runs
//! `tests/clients/test_hvac.py` with the venv's Python (hvac pinned by `scripts/test-all.sh`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/test_hvac.py");
const LIMIT: Duration = Duration::from_secs(180);

/// The venv's Python: $SEALKEEP_HVAC_PYTHON, else $SEALKEEP_CACHE/venv/bin/python (the venv
/// that `scripts/test-all.sh` fills), else `python3` on PATH.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SEALKEEP_HVAC_PYTHON") {
        return p.into();
    }
    let cache = std::env::var("SEALKEEP_CACHE").unwrap_or_else(|_| "/var/cache/sealkeep".into());
    let venv = PathBuf::from(cache).join("venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

#[test]
fn hvac_drives_init_unseal_kv2_tokens_policies_and_mounts() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import hvac"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", py.display()));
    assert!(
        probe.status.success(),
        "hvac is not importable with {}: run `bash scripts/test-all.sh` once, or `{} -m pip install hvac==2.4.0` ({})",
        py.display(),
        py.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec {
        dir: dir.path(),
        port: free_port(),
        extra_hcl: String::new(),
        env: vec![],
    };
    let server = ServerProc::start(&spec);

    let out_path = dir.path().join("hvac.out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("output file");
    let started = Instant::now();
    // Nothing inherited but PATH: no VAULT_TOKEN, proxy settings or ~/.vault-token.
    let mut child = base_command(py.to_str().expect("utf-8 path"))
        .arg("-W")
        .arg("error::DeprecationWarning:__main__")
        .arg(SCRIPT)
        .env("VAULT_ADDR", &server.addr)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn python");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait python") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{output}");
    println!("hvac test took {:.1?}", started.elapsed());
    let Some(status) = status else {
        panic!(
            "test_hvac.py did not finish within {LIMIT:?}\nserver log:\n{}",
            server.log_text()
        );
    };
    assert!(
        status.success(),
        "test_hvac.py failed ({status}):\n{output}\nserver log:\n{}",
        server.log_text()
    );
    assert!(
        output.contains(" passed, 0 failed"),
        "no summary line from test_hvac.py:\n{output}"
    );
}
