//! Shared kubelet context: API client, settings, IP allocator, hosts files, events (I/O).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::hosts::{HostEntry, render_hosts, write_in_place};
use crate::ipam::Ipam;
use crate::settings::Settings;

/// Everything pod workers share.
pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub ipam: Ipam,
    pub hosts: HostsRegistry,
    pub http: reqwest::Client,
    recorder: Recorder,
}

impl Ctx {
    pub fn new(client: Client, settings: Settings, ipam: Ipam) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let reporter = Reporter {
            controller: "kubelet".into(),
            instance: Some(settings.node_name.clone()),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        let hosts = HostsRegistry::new(settings.node_ip);
        Ok(Self {
            client,
            settings,
            ipam,
            hosts,
            http,
            recorder,
        })
    }

    /// Publishes an Event about `pod`; failures are only logged.
    pub async fn event(&self, pod: &Pod, warning: bool, reason: &str, note: String) {
        let type_ = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &pod.object_ref(&())).await {
            tracing::debug!(error = %e, reason, "publishing event");
        }
    }
}

/// The hosts-file view of every pod on the node; each change rewrites all pods' files in place.
pub struct HostsRegistry {
    api_ip: std::net::Ipv4Addr,
    pods: Mutex<BTreeMap<String, (HostEntry, PathBuf)>>,
}

impl HostsRegistry {
    fn new(api_ip: std::net::Ipv4Addr) -> Self {
        Self {
            api_ip,
            pods: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds or updates a pod (its entry and its hosts file path) and rewrites all files.
    pub fn set(&self, uid: &str, entry: HostEntry, file: PathBuf) {
        let mut pods = self
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pods.insert(uid.to_string(), (entry, file));
        Self::rewrite(self.api_ip, &pods);
    }

    /// Removes a pod and rewrites the remaining files.
    pub fn remove(&self, uid: &str) {
        let mut pods = self
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pods.remove(uid).is_some() {
            Self::rewrite(self.api_ip, &pods);
        }
    }

    fn rewrite(api_ip: std::net::Ipv4Addr, pods: &BTreeMap<String, (HostEntry, PathBuf)>) {
        let all: Vec<HostEntry> = pods.values().map(|(e, _)| e.clone()).collect();
        for (entry, file) in pods.values() {
            if let Err(e) = write_in_place(file, &render_hosts(entry, &all, api_ip)) {
                tracing::warn!(file = %file.display(), error = %e, "writing hosts file");
            }
        }
    }
}
