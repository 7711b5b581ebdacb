//! A pod's sandbox on the host: IP, netns + veth, pod directory, hosts/resolv files; and its
//! teardown, also for orphans found after a crash (network, file and process I/O).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use nix::sys::signal::Signal;

use crate::ctx::Ctx;
use crate::hosts::{HostEntry, render_resolv, write_in_place};
use crate::ipam::IpamError;
use crate::netns::{self, NetError, PodNet};
use crate::proc;
use crate::settings::netns_name;
use crate::state::{PodRecord, StateError};
use crate::volumes;

/// Why the sandbox could not be created (FailedCreatePodSandBox; retried).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Hostname and subdomain as the pod spec asks (`spec.hostname`, else the pod name).
pub fn host_entry(pod: &Pod, ip: Ipv4Addr) -> HostEntry {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    HostEntry {
        ip,
        hostname: hostname.chars().take(63).collect(),
        subdomain: spec
            .and_then(|s| s.subdomain.clone())
            .filter(|s| !s.is_empty()),
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    }
}

/// Creates (or, with `existing`, re-checks) the sandbox and returns its record.
pub async fn setup(
    ctx: &Ctx,
    pod: &Pod,
    existing: Option<PodRecord>,
) -> Result<PodRecord, SandboxError> {
    let s = &ctx.settings;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let record = match existing {
        Some(r) => {
            ctx.ipam.reserve(&uid, r.ip)?;
            r
        }
        None => {
            let ip = ctx.ipam.allocate(&uid)?;
            PodRecord {
                uid: uid.clone(),
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                ip,
                netns: netns_name(&uid),
                veth: format!("skv{}", ctx.ipam.index_of(ip)),
                containers: Default::default(),
                tmpfs: Vec::new(),
            }
        }
    };
    let net = PodNet {
        netns: record.netns.clone(),
        veth: record.veth.clone(),
        ip: record.ip,
    };
    netns::setup(&net, s.prefix_len, s.node_ip, &s.bridge).await?;
    let dir = s.pod_dir(&uid);
    for d in [dir.join("home"), dir.join("logs"), dir.join("volumes")] {
        std::fs::create_dir_all(&d).map_err(|source| SandboxError::Io {
            path: d.clone(),
            source,
        })?;
    }
    let entry = host_entry(pod, record.ip);
    let resolv = dir.join("resolv.conf");
    write_in_place(&resolv, &render_resolv(&entry.namespace)).map_err(|source| {
        SandboxError::Io {
            path: resolv,
            source,
        }
    })?;
    ctx.hosts.set(&uid, entry, dir.join("etc-hosts"));
    record.save(&dir)?;
    Ok(record)
}

/// Removes everything local of a pod whose processes are gone: hosts entry, host mounts,
/// netns + veth, IP lease and the pod directory (PVC directories stay).
pub async fn teardown(ctx: &Ctx, rec: &PodRecord) {
    ctx.hosts.remove(&rec.uid);
    for m in &rec.tmpfs {
        volumes::unmount(m);
    }
    let dir = ctx.settings.pod_dir(&rec.uid);
    for m in mounts_below(&dir) {
        volumes::unmount(Path::new(&m));
    }
    netns::teardown(&PodNet {
        netns: rec.netns.clone(),
        veth: rec.veth.clone(),
        ip: rec.ip,
    })
    .await;
    if let Err(e) = ctx.ipam.release(&rec.uid) {
        tracing::warn!(uid = %rec.uid, error = %e, "releasing IP");
    }
    if mounts_below(&dir).is_empty()
        && let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing pod directory");
    }
}

/// Host mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

/// Stops the recorded processes of a pod that no longer exists (TERM, then KILL) and tears
/// it down.
pub async fn cleanup_orphan(ctx: &Ctx, rec: &PodRecord) {
    tracing::info!(uid = %rec.uid, pod = %format!("{}/{}", rec.namespace, rec.name), "cleaning up orphaned pod");
    let live: Vec<_> = rec
        .containers
        .values()
        .filter_map(|c| c.proc.as_ref())
        .filter(|p| proc::is_alive(p.pid, p.start_ticks))
        .cloned()
        .collect();
    for p in &live {
        proc::signal_group(p.pid, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while live.iter().any(|p| proc::is_alive(p.pid, p.start_ticks))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in live.iter().filter(|p| proc::is_alive(p.pid, p.start_ticks)) {
        proc::signal_group(p.pid, Signal::SIGKILL);
    }
    teardown(ctx, rec).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn hostname_and_subdomain() {
        let ip = Ipv4Addr::new(198, 18, 1, 1);
        let sts = pod(serde_json::json!({
            "metadata": {"name": "srv-0", "namespace": "team"},
            "spec": {"containers": [], "hostname": "srv-0", "subdomain": "srv"}
        }));
        let e = host_entry(&sts, ip);
        assert_eq!(
            e.fqdn().as_deref(),
            Some("srv-0.srv.team.svc.cluster.local")
        );
        let plain =
            pod(serde_json::json!({"metadata": {"name": "web-abc"}, "spec": {"containers": []}}));
        let e = host_entry(&plain, ip);
        assert_eq!(
            (e.hostname.as_str(), e.subdomain, e.namespace.as_str()),
            ("web-abc", None, "default")
        );
    }
}
