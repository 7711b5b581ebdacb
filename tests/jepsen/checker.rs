//! Jepsen harness (test code): runs the porcupine linearizability checker
//! (tests/jepsen/checker, Go) on a history. Process I/O: builds the checker once with `go
//! build` into a cache file named by a hash of its sources (`$SEALKEEP_CACHE/bin`, else
//! cargo's target tmpdir), as scripts/test-all.sh does; `$SEALKEEP_JEPSEN_CHECKER` overrides.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jepsen/checker");

/// The checker's answer.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// 0 linearizable, 1 not linearizable, 2 bad input, 3 unknown (timed out).
    pub code: i32,
    pub output: String,
}

impl Verdict {
    pub fn linearizable(&self) -> bool {
        self.code == 0
    }
}

/// A hash of the checker's sources: go.mod, go.sum, then every `*.go` by name (the same bytes
/// scripts/test-all.sh hashes).
fn source_hash() -> String {
    let mut files = vec![
        PathBuf::from(SRC).join("go.mod"),
        PathBuf::from(SRC).join("go.sum"),
    ];
    let mut go: Vec<PathBuf> = std::fs::read_dir(SRC)
        .expect("tests/jepsen/checker")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "go"))
        .collect();
    go.sort();
    files.extend(go);
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for f in files {
        ctx.update(&std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
    }
    hex::encode(ctx.finish().as_ref())[..12].to_owned()
}

/// The checker binary, built on first use.
pub fn checker_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SEALKEEP_JEPSEN_CHECKER") {
            return p.into();
        }
        let dir = std::env::var("SEALKEEP_CACHE")
            .map(|c| Path::new(&c).join("bin"))
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
        let out = dir.join(format!("jepsen-checker-{}", source_hash()));
        if out.exists() {
            return out;
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let st = Command::new("go")
            .args(["build", "-o"])
            .arg(&tmp)
            .arg(".")
            .env("CGO_ENABLED", "0")
            .current_dir(SRC)
            .status()
            .expect("go is needed to build the linearizability checker (tests/jepsen/checker); install Go or set SEALKEEP_JEPSEN_CHECKER");
        assert!(
            st.success(),
            "go build of tests/jepsen/checker failed; it needs github.com/anishathalye/porcupine from the Go module proxy (GOPROXY) or the module cache"
        );
        std::fs::rename(&tmp, &out).expect("install the checker");
        out
    })
    .clone()
}

/// Checks the JSON Lines history at `history`; a key that is not linearizable gets its
/// visualization `html_dir/<key>.html`.
pub fn check(history: &Path, html_dir: &Path) -> Verdict {
    let out = Command::new(checker_bin())
        .arg("-history")
        .arg(history)
        .arg("-html-dir")
        .arg(html_dir)
        .arg("-timeout")
        .arg("120s")
        .output()
        .expect("run the checker");
    Verdict {
        code: out.status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
