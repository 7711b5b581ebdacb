//! Pod networking with iproute2: the bridge, one netns + veth pair per pod (process I/O).

use std::net::Ipv4Addr;
use std::path::Path;

use tokio::process::Command;

/// Errors of `ip` invocations.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("running `ip {args}`: {source}")]
    Spawn {
        args: String,
        source: std::io::Error,
    },
    #[error("`ip {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// Directory where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";

async fn ip(args: &[&str]) -> Result<(), NetError> {
    let joined = args.join(" ");
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|source| NetError::Spawn {
            args: joined.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Failed {
            args: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Path of a named network namespace.
pub fn netns_path(name: &str) -> std::path::PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates the bridge with the node address when it does not exist yet, and sets it up.
pub async fn ensure_bridge(
    bridge: &str,
    node_ip: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), NetError> {
    if !link_exists(bridge) {
        ip(&["link", "add", bridge, "type", "bridge"]).await?;
        ip(&[
            "addr",
            "add",
            &format!("{node_ip}/{prefix_len}"),
            "dev",
            bridge,
        ])
        .await?;
    }
    ip(&["link", "set", bridge, "up"]).await
}

/// What a pod's network is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNet {
    pub netns: String,
    pub veth: String,
    pub ip: Ipv4Addr,
}

/// Creates the pod's netns and veth (idempotent: an intact pair from before is kept).
pub async fn setup(
    net: &PodNet,
    prefix_len: u8,
    gateway: Ipv4Addr,
    bridge: &str,
) -> Result<(), NetError> {
    if netns_path(&net.netns).exists() && link_exists(&net.veth) {
        return Ok(());
    }
    teardown(net).await;
    ip(&["netns", "add", &net.netns]).await?;
    ip(&[
        "link", "add", &net.veth, "type", "veth", "peer", "name", "eth0", "netns", &net.netns,
    ])
    .await?;
    ip(&["link", "set", &net.veth, "master", bridge, "up"]).await?;
    let ns = net.netns.as_str();
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{}/{prefix_len}", net.ip),
        "dev",
        "eth0",
    ])
    .await?;
    ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
    ip(&["-n", ns, "link", "set", "eth0", "up"]).await?;
    ip(&[
        "-n",
        ns,
        "route",
        "add",
        "default",
        "via",
        &gateway.to_string(),
    ])
    .await
}

/// Deletes the pod's netns and veth; absent pieces are fine, other failures are logged.
pub async fn teardown(net: &PodNet) {
    if netns_path(&net.netns).exists()
        && let Err(e) = ip(&["netns", "del", &net.netns]).await
    {
        tracing::warn!(netns = %net.netns, error = %e, "deleting netns");
    }
    // Deleting the netns normally takes the veth pair with it (asynchronously).
    if link_exists(&net.veth)
        && let Err(e) = ip(&["link", "del", &net.veth]).await
        && link_exists(&net.veth)
    {
        tracing::warn!(veth = %net.veth, error = %e, "deleting veth");
    }
}

/// Names of existing network namespaces that start with `prefix`.
pub fn list_netns(prefix: &str) -> Vec<String> {
    names_in(Path::new(NETNS_DIR), prefix)
}

/// Names of existing links that start with `prefix`.
pub fn list_links(prefix: &str) -> Vec<String> {
    names_in(Path::new("/sys/class/net"), prefix)
}

fn names_in(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Deletes a link by name (cleanup of leftovers); failures are logged.
pub async fn delete_link(name: &str) {
    if let Err(e) = ip(&["link", "del", name]).await {
        tracing::warn!(link = name, error = %e, "deleting link");
    }
}

/// Deletes a netns by name (cleanup of leftovers); failures are logged.
pub async fn delete_netns(name: &str) {
    if let Err(e) = ip(&["netns", "del", name]).await {
        tracing::warn!(netns = name, error = %e, "deleting netns");
    }
}
