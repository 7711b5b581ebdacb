//! `sealkeep status`: prints the seal status like `vault status`, with its HA lines (mode,
//! active node, raft indexes) from `sys/leader`. Network I/O via the API client.

use std::fmt::Write;

use crate::api_client::{Client, ClientError, Leader, SealStatus};

/// Exit codes, as `vault status`.
pub const EXIT_UNSEALED: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_SEALED: u8 = 2;

/// Renders the status table. `leader`: `sys/leader`, when the server answered it (it does
/// only while unsealed).
pub fn render(st: &SealStatus, leader: Option<&Leader>) -> String {
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
        leader.map_or_else(|| "n/a".into(), |l| l.ha_enabled.to_string()),
    ));
    if let Some(l) = leader.filter(|l| l.ha_enabled) {
        ha_rows(&mut rows, st, l);
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}    Value", "Key");
    let _ = writeln!(out, "{:<width$}    -----", "---");
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}    {v}");
    }
    out
}

/// `vault status`'s HA lines: the cluster address, the mode, the active node when this is a
/// standby, and the raft indexes.
fn ha_rows(rows: &mut Vec<(&str, String)>, st: &SealStatus, l: &Leader) {
    let cluster = if l.leader_cluster_address.is_empty() {
        "n/a".into()
    } else {
        l.leader_cluster_address.clone()
    };
    rows.push(("HA Cluster", cluster));
    let mode = match (st.sealed, l.is_self) {
        (true, _) => "sealed",
        (false, true) => "active",
        (false, false) => "standby",
    };
    rows.push(("HA Mode", mode.into()));
    if !st.sealed && !l.is_self {
        let addr = if l.leader_address.is_empty() {
            "<none>".into()
        } else {
            l.leader_address.clone()
        };
        rows.push(("Active Node Address", addr));
    }
    if let (Some(committed), Some(applied)) = (l.raft_committed_index, l.raft_applied_index)
        && committed > 0
    {
        rows.push(("Raft Committed Index", committed.to_string()));
        rows.push(("Raft Applied Index", applied.to_string()));
    }
}

/// Runs the command; returns the process exit code.
pub async fn run(addr: &str) -> u8 {
    match fetch(addr).await {
        Ok((st, ha)) => {
            print!("{}", render(&st, ha.as_ref()));
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

async fn fetch(addr: &str) -> Result<(SealStatus, Option<Leader>), ClientError> {
    let client = Client::new(addr, std::time::Duration::from_secs(10))?;
    let st = client.seal_status().await?;
    let ha = if !st.sealed {
        client.leader().await.ok()
    } else if st.storage_type == "raft" {
        // A sealed node cannot name the leader; as `vault status`: HA on, mode "sealed".
        Some(Leader {
            ha_enabled: true,
            ..Leader::default()
        })
    } else {
        None
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
        let out = render(
            &st,
            Some(&Leader {
                ha_enabled: false,
                ..Leader::default()
            }),
        );
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
        assert!(!out.contains("HA Mode"), "{out}");
    }

    fn has(out: &str, words: &[&str]) -> bool {
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
    }

    #[test]
    fn renders_vaults_ha_lines_for_active_and_standby() {
        let st = SealStatus {
            seal_type: "shamir".into(),
            initialized: true,
            sealed: false,
            t: 1,
            n: 1,
            progress: 0,
            nonce: String::new(),
            version: "0.1.0".into(),
            build_date: "2026-11-30T00:00:00Z".into(),
            recovery_seal: false,
            storage_type: "raft".into(),
            cluster_name: None,
            cluster_id: None,
        };
        let mut leader = Leader {
            ha_enabled: true,
            is_self: true,
            leader_address: "http://10.0.0.1:8200".into(),
            leader_cluster_address: "https://10.0.0.1:8201".into(),
            raft_committed_index: Some(42),
            raft_applied_index: Some(41),
        };
        let out = render(&st, Some(&leader));
        for words in [
            ["HA", "Enabled", "true"].as_slice(),
            &["HA", "Cluster", "https://10.0.0.1:8201"],
            &["HA", "Mode", "active"],
            &["Raft", "Committed", "Index", "42"],
            &["Raft", "Applied", "Index", "41"],
        ] {
            assert!(has(&out, words), "missing {words:?} in\n{out}");
        }
        assert!(!out.contains("Active Node Address"), "{out}");
        leader.is_self = false;
        let out = render(&st, Some(&leader));
        assert!(has(&out, &["HA", "Mode", "standby"]), "{out}");
        let sealed = SealStatus {
            sealed: true,
            ..st.clone()
        };
        let sealed_out = render(
            &sealed,
            Some(&Leader {
                ha_enabled: true,
                ..Leader::default()
            }),
        );
        assert!(has(&sealed_out, &["HA", "Mode", "sealed"]), "{sealed_out}");
        assert!(has(&sealed_out, &["HA", "Cluster", "n/a"]), "{sealed_out}");
        assert!(!sealed_out.contains("Active Node Address"), "{sealed_out}");
        assert!(!sealed_out.contains("Raft Committed Index"), "{sealed_out}");
        assert!(
            has(&out, &["Active", "Node", "Address", "http://10.0.0.1:8200"]),
            "{out}"
        );
    }
}
