//! Watches the pods bound to this node and runs one worker per pod; adopts survivors of a
//! previous kubelet and cleans up what belongs to pods that no longer exist (API/process I/O).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ctx::Ctx;
use crate::netns;
use crate::pod::{Msg, Worker, sandbox};
use crate::state::{self, PodRecord};

/// Errors that stop the manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("listing pods of node {node}: {source}")]
    List { node: String, source: kube::Error },
}

struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    join: JoinHandle<()>,
}

/// Runs until `shutdown` flips to true; then stops every pod and returns.
pub async fn run(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) -> Result<(), ManagerError> {
    let node = ctx.settings.node_name.clone();
    let fields = format!("spec.nodeName={node}");
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let listed = api
        .list(&ListParams::default().fields(&fields))
        .await
        .map_err(|source| ManagerError::List {
            node: node.clone(),
            source,
        })?;
    let live: HashSet<String> = listed
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    let mut adoptable = reconcile_local(&ctx, &live).await;

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut stream = watcher::watcher(api, watcher::Config::default().fields(&fields))
        .default_backoff()
        .boxed();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            ev = stream.next() => {
                let Some(ev) = ev else { break };
                match ev {
                    Ok(Event::Init) => seen.clear(),
                    Ok(Event::InitApply(pod) | Event::Apply(pod)) => {
                        let Some(uid) = pod.metadata.uid.clone() else { continue };
                        seen.insert(uid.clone());
                        if let Some(h) = workers.get(&uid) {
                            let _ = h.tx.send(Msg::Update(Box::new(pod)));
                        } else if !finished.contains(&uid) {
                            let h = spawn_worker(&ctx, pod, adoptable.remove(&uid), &done_tx);
                            workers.insert(uid, h);
                        }
                    }
                    Ok(Event::Delete(pod)) => {
                        let Some(uid) = pod.metadata.uid.clone() else { continue };
                        finished.remove(&uid);
                        if let Some(h) = workers.get(&uid) {
                            let _ = h.tx.send(Msg::Gone);
                        }
                    }
                    Ok(Event::InitDone) => {
                        for (uid, h) in &workers {
                            if !seen.contains(uid) {
                                let _ = h.tx.send(Msg::Gone);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "pod watch"),
                }
            }
        }
    }
    tracing::info!(pods = workers.len(), "stopping all pods");
    for h in workers.values() {
        let _ = h.tx.send(Msg::Shutdown);
    }
    for (_, h) in workers {
        let _ = h.join.await;
    }
    Ok(())
}

fn spawn_worker(
    ctx: &Arc<Ctx>,
    pod: Pod,
    adopted: Option<PodRecord>,
    done: &mpsc::UnboundedSender<String>,
) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let worker = Worker::new(ctx.clone(), pod, rx, adopted);
    let done = done.clone();
    let join = tokio::spawn(async move {
        worker.run().await;
        let _ = done.send(uid);
    });
    Handle { tx, join }
}

/// Cleans up pods on disk that the API no longer has, leftover netns/veths and IP leases;
/// returns the records of pods to adopt.
async fn reconcile_local(ctx: &Ctx, live: &HashSet<String>) -> HashMap<String, PodRecord> {
    let mut keep: HashMap<String, PodRecord> = HashMap::new();
    for (uid, rec) in state::scan(&ctx.settings.pods_dir()) {
        match rec {
            Some(rec) if live.contains(&uid) => {
                keep.insert(uid, rec);
            }
            Some(rec) => sandbox::cleanup_orphan(ctx, &rec).await,
            None if !live.contains(&uid) => {
                let dir = ctx.settings.pod_dir(&uid);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing stale pod directory");
                }
            }
            None => {}
        }
    }
    if let Err(e) = ctx.ipam.retain(|uid| keep.contains_key(uid)) {
        tracing::warn!(error = %e, "pruning IP leases");
    }
    let netnses: HashSet<&str> = keep.values().map(|r| r.netns.as_str()).collect();
    for ns in netns::list_netns("sk-")
        .into_iter()
        .filter(|n| !netnses.contains(n.as_str()))
    {
        tracing::info!(netns = %ns, "deleting leftover netns");
        netns::delete_netns(&ns).await;
    }
    let veths: HashSet<&str> = keep.values().map(|r| r.veth.as_str()).collect();
    for l in netns::list_links("skv")
        .into_iter()
        .filter(|l| !veths.contains(l.as_str()))
    {
        tracing::info!(link = %l, "deleting leftover veth");
        netns::delete_link(&l).await;
    }
    if !keep.is_empty() {
        tracing::info!(pods = keep.len(), "adopting pods from a previous run");
    }
    keep
}
