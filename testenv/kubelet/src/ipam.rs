//! Pod IP allocation from the node's /16, persisted in the state dir (file I/O).
//!
//! Addresses start at x.y.1.1, skip .0/.255 last octets, and are handed out round-robin
//! (a cursor), so a just-released address is not reused at once (stale ARP entries).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Errors of the allocator.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("pod network exhausted")]
    Exhausted,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct IpamState {
    /// Next address to try, as an offset in the network.
    next: u32,
    /// Pod UID -> address.
    leases: BTreeMap<String, Ipv4Addr>,
}

/// The allocator; every change is written to disk before it is returned.
#[derive(Debug)]
pub struct Ipam {
    path: PathBuf,
    network: u32,
    size: u32,
    state: Mutex<IpamState>,
}

impl Ipam {
    /// Loads (or starts) the allocation file for the network of `node_ip/prefix_len`.
    pub fn load(path: &Path, node_ip: Ipv4Addr, prefix_len: u8) -> Result<Self, IpamError> {
        let state = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| IpamError::Parse {
                path: path.into(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IpamState::default(),
            Err(source) => {
                return Err(IpamError::Io {
                    path: path.into(),
                    source,
                });
            }
        };
        let bits = 32 - u32::from(prefix_len.clamp(8, 30));
        let mask = u32::MAX << bits;
        Ok(Self {
            path: path.into(),
            network: u32::from(node_ip) & mask,
            size: 1 << bits,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IpamState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The address of `uid`, allocating one when it has none.
    pub fn allocate(&self, uid: &str) -> Result<Ipv4Addr, IpamError> {
        let mut st = self.lock();
        if let Some(ip) = st.leases.get(uid) {
            return Ok(*ip);
        }
        let ip = next_free(&st, self.network, self.size).ok_or(IpamError::Exhausted)?;
        st.next = u32::from(ip) - self.network + 1;
        st.leases.insert(uid.to_string(), ip);
        self.save(&st)?;
        Ok(ip)
    }

    /// Records that `uid` holds `ip` (adoption after a restart); keeps an existing lease.
    pub fn reserve(&self, uid: &str, ip: Ipv4Addr) -> Result<(), IpamError> {
        let mut st = self.lock();
        if st.leases.get(uid) == Some(&ip) {
            return Ok(());
        }
        st.leases.insert(uid.to_string(), ip);
        self.save(&st)
    }

    /// The address of `uid`, if it has one.
    #[cfg(test)]
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.lock().leases.get(uid).copied()
    }

    /// Frees the address of `uid` (no-op when it has none).
    pub fn release(&self, uid: &str) -> Result<(), IpamError> {
        let mut st = self.lock();
        if st.leases.remove(uid).is_some() {
            self.save(&st)?;
        }
        Ok(())
    }

    /// Frees every lease whose UID `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<(), IpamError> {
        let mut st = self.lock();
        let before = st.leases.len();
        st.leases.retain(|uid, _| keep(uid));
        if st.leases.len() != before {
            self.save(&st)?;
        }
        Ok(())
    }

    /// Stable small number for the host-side veth name, derived from the address.
    pub fn index_of(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip).wrapping_sub(self.network)
    }

    fn save(&self, st: &IpamState) -> Result<(), IpamError> {
        let io = |source| IpamError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(st).map_err(|source| IpamError::Parse {
            path: self.path.clone(),
            source,
        })?;
        std::fs::write(&tmp, data).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

/// The first usable, unleased address at or after the cursor (wrapping), from x.y.1.1 on.
fn next_free(st: &IpamState, network: u32, size: u32) -> Option<Ipv4Addr> {
    let first = 0x0101u32.min(size.saturating_sub(2)).max(1);
    let usable = |off: u32| off >= first && off < size - 1 && !matches!(off & 0xff, 0 | 255);
    let used: std::collections::HashSet<u32> = st
        .leases
        .values()
        .map(|ip| u32::from(*ip) - network)
        .collect();
    let start = if (first..size - 1).contains(&st.next) {
        st.next
    } else {
        first
    };
    (start..size - 1)
        .chain(first..start)
        .find(|off| usable(*off) && !used.contains(off))
        .map(|off| Ipv4Addr::from(network + off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_round_robin_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipam.json");
        let node = Ipv4Addr::new(198, 18, 0, 1);
        let ipam = Ipam::load(&path, node, 16).expect("load");
        let a = ipam.allocate("a").expect("a");
        assert_eq!(a, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(ipam.allocate("a").expect("again"), a, "idempotent");
        let b = ipam.allocate("b").expect("b");
        assert_eq!(b, Ipv4Addr::new(198, 18, 1, 2));
        ipam.release("a").expect("release");
        let c = ipam.allocate("c").expect("c");
        assert_eq!(
            c,
            Ipv4Addr::new(198, 18, 1, 3),
            "released address is not reused at once"
        );
        assert_eq!(ipam.index_of(c), 0x0103);

        let again = Ipam::load(&path, node, 16).expect("reload");
        assert_eq!(again.get("b"), Some(b));
        assert_eq!(again.get("a"), None);
        again.retain(|uid| uid == "c").expect("retain");
        assert_eq!(again.get("b"), None);
        assert_eq!(again.get("c"), Some(c));
    }

    #[test]
    fn skips_zero_and_broadcast_octets_and_wraps() {
        let st = IpamState {
            next: 0x01ff,
            leases: BTreeMap::new(),
        };
        let net = u32::from(Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(
            next_free(&st, net, 1 << 16),
            Some(Ipv4Addr::new(198, 18, 2, 1))
        );
        let leases = BTreeMap::from([("x".to_string(), Ipv4Addr::new(198, 18, 255, 254))]);
        let st = IpamState {
            next: 0xfffe,
            leases,
        };
        assert_eq!(
            next_free(&st, net, 1 << 16),
            Some(Ipv4Addr::new(198, 18, 1, 1)),
            "wraps"
        );
    }
}
