//! Kubelet-wide settings and the state-dir layout (pure path arithmetic, no I/O).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::image::ImageMap;
use crate::resources::NodeResources;

/// Everything the kubelet was told on the command line, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    /// Prefix length of the pod network on the bridge (198.18.0.0/16).
    pub prefix_len: u8,
    pub bridge: String,
    pub state_dir: PathBuf,
    pub images: ImageMap,
    /// Port pods use for the API server (KUBERNETES_SERVICE_PORT).
    pub api_port: u16,
    pub node: NodeResources,
    /// This executable, re-run as `__pod-init`.
    pub self_exe: PathBuf,
}

impl Settings {
    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    pub fn volume_dir(&self, uid: &str, volume: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(volume)
    }

    /// Host directory backing a PersistentVolumeClaim; it outlives pods.
    pub fn pvc_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.state_dir.join("pvc").join(namespace).join(claim)
    }

    pub fn ipam_file(&self) -> PathBuf {
        self.state_dir.join("ipam.json")
    }

    /// The service environment every container gets (lowest precedence).
    pub fn base_env(&self, home: &str, hostname: &str) -> Vec<(String, String)> {
        let (ip, port) = (self.node_ip.to_string(), self.api_port.to_string());
        let url = format!("tcp://{ip}:{port}");
        let p = format!("KUBERNETES_PORT_{port}_TCP");
        vec![
            ("PATH".into(), crate::image::STD_PATH.into()),
            ("HOME".into(), home.into()),
            ("HOSTNAME".into(), hostname.into()),
            ("KUBERNETES_SERVICE_HOST".into(), ip.clone()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
            ("KUBERNETES_PORT".into(), url.clone()),
            (p.clone(), url),
            (format!("{p}_PROTO"), "tcp".into()),
            (format!("{p}_PORT"), port),
            (format!("{p}_ADDR"), ip),
        ]
    }
}

/// Short form of a pod UID used in namespace names: the first 8 hex digits.
pub fn short_uid(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect()
}

/// Name of the pod's network namespace (`/run/netns/<name>`).
pub fn netns_name(uid: &str) -> String {
    format!("sk-{}", short_uid(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            netns_name("0a1b2c3d-4e5f-6789-abcd-ef0123456789"),
            "sk-0a1b2c3d"
        );
        assert_eq!(short_uid("ab-cd"), "abcd");
    }
}
