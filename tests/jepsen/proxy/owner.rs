//! Jepsen harness (test code): which node opened a connection to a fault proxy. Reads
//! `/proc` (Linux): the connecting socket's inode from `/proc/net/tcp`, then which node
//! process holds that inode among its fds. Loopback peers all dial from 127.0.0.1, so the
//! source address alone cannot say.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long to look for the owner: a node that just started may not be in the pid table yet
/// (tests/common/cluster.rs records a pid once the API port answers).
const PATIENCE: Duration = Duration::from_secs(3);

/// The node (index into `pids`) whose process owns the socket `peer` connected to `local`;
/// else, after [`PATIENCE`], why not.
pub async fn identify(
    peer: SocketAddr,
    local: SocketAddr,
    pids: &Arc<Mutex<Vec<Option<u32>>>>,
) -> Result<usize, String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let table = pids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let found = tokio::task::spawn_blocking(move || {
            let Some(inode) = socket_inode(peer, local) else {
                return Err(format!(
                    "no open socket {peer} -> {local} in /proc/net/tcp (the peer closed it already)"
                ));
            };
            table
                .iter()
                .position(|pid| pid.is_some_and(|pid| holds(pid, inode)))
                .ok_or_else(|| {
                    format!("socket inode {inode} is held by none of the node pids {table:?}")
                })
        })
        .await
        .unwrap_or_else(|e| Err(format!("the /proc lookup panicked: {e}")));
        if found.is_ok() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/proc/net/tcp`'s spelling of an IPv4 socket address: the address as a host-order (little
/// endian here) hex u32, then the port in hex.
fn proc_addr(a: SocketAddr) -> Option<String> {
    match a.ip() {
        IpAddr::V4(ip) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            a.port()
        )),
        IpAddr::V6(_) => None,
    }
}

/// The inode of the socket whose local end is `peer` and remote end `local` (0, as the
/// kernel shows a socket no process holds any more, counts as none).
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let (want_local, want_remote) = (proc_addr(peer)?, proc_addr(local)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == want_local && f[2] == want_remote)
            .then(|| f[9].parse().ok().filter(|i| *i != 0))
            .flatten()
    })
}

/// Whether process `pid` has the socket `inode` open.
fn holds(pid: u32, inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str().to_string_lossy() == want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_of_this_process_is_found_by_its_addresses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(local).expect("connect");
        let peer = client.local_addr().expect("peer");
        let inode = socket_inode(peer, local).expect("the socket is in /proc/net/tcp");
        assert!(holds(std::process::id(), inode));
        assert_eq!(proc_addr(local).map(|a| a.len()), Some(13));
    }
}
