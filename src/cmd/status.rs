//! `sealkeep status`: prints the seal status like `vault status`. Network I/O via the API
//! client.

use std::fmt::Write;

use crate::api_client::{Client, ClientError, SealStatus};

/// Exit codes, as `vault status`.
pub const EXIT_UNSEALED: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_SEALED: u8 = 2;

/// Renders the status table.
pub fn render(st: &SealStatus, ha_enabled: Option<bool>) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if st.recovery_seal {
        rows.push(("Seal Type", st.seal_type.clone()));
        rows.push(("Recovery Seal Type", "shamir".into()));
    } else {
        rows.push(("Seal Type", st.seal_type.clone()));
    }
    rows.push(("Initialized", st.initialized.to_string()));
    rows.push(("Sealed", st.sealed.to_string()));
    let shares = if st.recovery_seal {
        "Total Recovery Shares"
    } else {
        "Total Shares"
    };
    rows.push((shares, st.n.to_string()));
    rows.push(("Threshold", st.t.to_string()));
    if st.sealed && st.initialized {
        rows.push(("Unseal Progress", format!("{}/{}", st.progress, st.t)));
        rows.push((
            "Unseal Nonce",
            if st.nonce.is_empty() {
                "n/a".into()
            } else {
                st.nonce.clone()
            },
        ));
    }
    rows.push(("Version", st.version.clone()));
    rows.push(("Build Date", st.build_date.clone()));
    rows.push(("Storage Type", st.storage_type.clone()));
    if let Some(n) = &st.cluster_name {
        rows.push(("Cluster Name", n.clone()));
    }
    if let Some(id) = &st.cluster_id {
        rows.push(("Cluster ID", id.clone()));
    }
    rows.push((
        "HA Enabled",
        ha_enabled.map_or_else(|| "n/a".into(), |h| h.to_string()),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}    Value", "Key");
    let _ = writeln!(out, "{:<width$}    -----", "---");
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}    {v}");
    }
    out
}

/// Runs the command; returns the process exit code.
pub async fn run(addr: &str) -> u8 {
    match fetch(addr).await {
        Ok((st, ha)) => {
            print!("{}", render(&st, ha));
            if st.sealed {
                EXIT_SEALED
            } else {
                EXIT_UNSEALED
            }
        }
        Err(e) => {
            eprintln!("Error checking seal status: {e}");
            EXIT_ERROR
        }
    }
}

async fn fetch(addr: &str) -> Result<(SealStatus, Option<bool>), ClientError> {
    let client = Client::new(addr, std::time::Duration::from_secs(10))?;
    let st = client.seal_status().await?;
    let ha = if st.sealed {
        None
    } else {
        client.leader().await.ok().map(|l| l.ha_enabled)
    };
    Ok((st, ha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_vault_status() {
        let st = SealStatus {
            seal_type: "awskms".into(),
            initialized: true,
            sealed: false,
            t: 3,
            n: 5,
            progress: 0,
            nonce: String::new(),
            version: "0.1.0".into(),
            build_date: "2026-11-30T00:00:00Z".into(),
            recovery_seal: true,
            storage_type: "file".into(),
            cluster_name: Some("c".into()),
            cluster_id: Some("id".into()),
        };
        let out = render(&st, Some(false));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["Key", "Value"]
        );
        for expected in [
            ["Seal", "Type", "awskms"].as_slice(),
            &["Recovery", "Seal", "Type", "shamir"],
            &["Initialized", "true"],
            &["Sealed", "false"],
            &["Total", "Recovery", "Shares", "5"],
            &["Threshold", "3"],
            &["Storage", "Type", "file"],
            &["HA", "Enabled", "false"],
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>() == expected),
                "missing {expected:?} in\n{out}"
            );
        }
    }
}
