//! Per-pod /etc/hosts and /etc/resolv.conf content (pure), plus the in-place file rewrite.
//!
//! The files are bind-mounted into the pods, so they are rewritten in place (truncate + write):
//! a rename would swap the inode and silently detach the existing bind mounts.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

/// Cluster DNS domain used for FQDNs.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// What a pod contributes to hosts files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: Ipv4Addr,
    pub hostname: String,
    pub subdomain: Option<String>,
    pub namespace: String,
}

impl HostEntry {
    /// `<hostname>.<subdomain>.<ns>.svc.cluster.local`, when the pod has a subdomain.
    pub fn fqdn(&self) -> Option<String> {
        self.subdomain.as_ref().map(|s| {
            format!(
                "{}.{}.{}.svc.{CLUSTER_DOMAIN}",
                self.hostname, s, self.namespace
            )
        })
    }
}

/// Renders the hosts file of `own`; `peers` are all pods of the node (own entry is skipped).
pub fn render_hosts(own: &HostEntry, peers: &[HostEntry], api_ip: Ipv4Addr) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (sealkeep-pkubelet).\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
    // `<hostname>.<subdomain>` is what the search path `<ns>.svc.cluster.local` makes of the
    // FQDN in a real cluster: it names a pod of the pod's own namespace only (the own pod
    // included), never a same-named pod of another namespace. NSS "files" applies no search
    // path, so the short name is listed explicitly.
    match (own.fqdn(), own.subdomain.as_ref()) {
        (Some(fqdn), Some(sub)) => out.push_str(&format!(
            "{}\t{fqdn} {}.{sub}\t{}\n",
            own.ip, own.hostname, own.hostname
        )),
        _ => out.push_str(&format!("{}\t{}\n", own.ip, own.hostname)),
    }
    out.push_str(&format!(
        "{api_ip}\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.{CLUSTER_DOMAIN}\n"
    ));
    let mut others: Vec<&HostEntry> = peers
        .iter()
        .filter(|p| *p != own && p.subdomain.is_some())
        .collect();
    others.sort_by(|a, b| {
        (&a.namespace, &a.subdomain, &a.hostname).cmp(&(&b.namespace, &b.subdomain, &b.hostname))
    });
    for p in others {
        match (p.fqdn(), p.subdomain.as_ref()) {
            (Some(fqdn), Some(sub)) if p.namespace == own.namespace => {
                out.push_str(&format!("{}\t{fqdn} {}.{sub}\n", p.ip, p.hostname));
            }
            (Some(fqdn), _) => out.push_str(&format!("{}\t{fqdn}\n", p.ip)),
            _ => {}
        }
    }
    out
}

/// A resolv.conf with the pod's search path; the nameserver is loopback so that names missing
/// from /etc/hosts fail fast instead of timing out.
pub fn render_resolv(namespace: &str) -> String {
    format!(
        "search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\nnameserver 127.0.0.1\noptions ndots:5\n"
    )
}

/// Rewrites `path` in place (truncate + write, same inode); does nothing when unchanged.
pub fn write_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: [u8; 4], host: &str, sub: Option<&str>, ns: &str) -> HostEntry {
        HostEntry {
            ip: Ipv4Addr::from(ip),
            hostname: host.into(),
            subdomain: sub.map(str::to_string),
            namespace: ns.into(),
        }
    }

    #[test]
    fn renders_own_api_and_peer_lines() {
        let own = entry([198, 18, 1, 2], "sk-1", Some("sk-internal"), "team");
        let peers = vec![
            entry([198, 18, 1, 3], "sk-2", Some("sk-internal"), "team"),
            own.clone(),
            entry([198, 18, 1, 1], "sk-0", Some("sk-internal"), "team"),
            entry([198, 18, 1, 9], "web-abc", None, "team"),
            // Same StatefulSet name in another namespace: only its FQDN.
            entry([198, 18, 2, 1], "sk-0", Some("sk-internal"), "other"),
        ];
        let h = render_hosts(&own, &peers, Ipv4Addr::new(198, 18, 0, 1));
        let lines: Vec<&str> = h.lines().collect();
        assert!(lines.contains(&"127.0.0.1\tlocalhost"));
        assert!(lines.contains(
            &"198.18.1.2\tsk-1.sk-internal.team.svc.cluster.local sk-1.sk-internal\tsk-1"
        ));
        assert!(lines.contains(
            &"198.18.0.1\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local"
        ));
        let peer_lines: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("198.18.1."))
            .collect();
        assert_eq!(
            peer_lines,
            vec![
                "198.18.1.2\tsk-1.sk-internal.team.svc.cluster.local sk-1.sk-internal\tsk-1",
                "198.18.1.1\tsk-0.sk-internal.team.svc.cluster.local sk-0.sk-internal",
                "198.18.1.3\tsk-2.sk-internal.team.svc.cluster.local sk-2.sk-internal",
            ]
        );
        assert!(
            !h.contains("web-abc"),
            "pods without subdomain are not listed for others"
        );
        // sk-0.sk-internal is this namespace's sk-0, never the other namespace's.
        assert!(lines.contains(&"198.18.2.1\tsk-0.sk-internal.other.svc.cluster.local"));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(" sk-0.sk-internal"))
                .count(),
            1,
            "{h}"
        );
    }

    #[test]
    fn own_line_without_subdomain() {
        let own = entry([198, 18, 1, 7], "web-abc", None, "default");
        let h = render_hosts(
            &own,
            std::slice::from_ref(&own),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        assert!(h.lines().any(|l| l == "198.18.1.7\tweb-abc"));
    }

    #[test]
    fn resolv_has_search_path() {
        assert!(
            render_resolv("ns1")
                .starts_with("search ns1.svc.cluster.local svc.cluster.local cluster.local\n")
        );
    }

    #[test]
    fn in_place_rewrite_keeps_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("hosts");
        write_in_place(&p, "a long first content\n").expect("write");
        let ino = std::fs::metadata(&p).expect("meta").ino();
        write_in_place(&p, "short\n").expect("rewrite");
        assert_eq!(std::fs::metadata(&p).expect("meta").ino(), ino);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "short\n");
    }
}
