//! Records the build date reported by `sys/seal-status` (`build_date`). Honours
//! SOURCE_DATE_EPOCH for reproducible builds.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or_else(SystemTime::now);
    println!(
        "cargo:rustc-env=SEALKEEP_BUILD_DATE={}",
        humantime::format_rfc3339_seconds(t)
    );
}
