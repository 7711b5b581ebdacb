//! Multi-node tests over the real cluster port: three in-process nodes on 127.0.0.1 ephemeral
//! ports with mutual TLS; membership changes, replication, leader transfer, failover after
//! the leader stops, and refusal of undecodable RPCs. Every wait is bounded.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::super::network::{RaftRpcReply, decode_wire};
use super::super::{NodeInfo, RaftBackend, RaftRole};
use super::timing;
use crate::server::cluster::{
    self, ClusterListener, ClusterTls, ListenerLimits, NodeTls, PeerClient, RAFT_RPC_PATH,
};
use crate::server::physical::{Physical, PhysicalError};

/// Upper bound of every single wait (elections, catch-up, RPCs).
const BOUND: Duration = Duration::from_secs(10);

struct Node {
    backend: RaftBackend,
    info: NodeInfo,
    tls: NodeTls,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    serving: JoinHandle<()>,
    _dir: TempDir,
}

impl Node {
    fn id(&self) -> u64 {
        self.backend.node_id()
    }

    /// Stops raft and the cluster port, like a process that exits.
    async fn stop(self) {
        self.backend.shutdown().await.expect("shutdown");
        let _ = self.stop.send(true);
        tokio::time::timeout(BOUND, self.serving)
            .await
            .expect("the cluster port stops in bounded time")
            .expect("listener task");
    }
}

/// How a node gets its cluster TLS: at open, or installed after (as after unseal or join).
#[derive(Clone, Copy, PartialEq)]
enum TlsAt {
    Open,
    Later,
}

async fn start_node(ca: &ClusterTls, id: u64, tls_at: TlsAt) -> Node {
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("sealkeep-{id}");
    // Only the host of cluster_addr goes into the certificate; the port is picked below.
    let tls = ca
        .issue_node(&name, "https://127.0.0.1:8201")
        .expect("issue");
    let listener = ClusterListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &tls,
        ListenerLimits::default(),
    )
    .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let info = NodeInfo {
        name,
        api_addr: format!("http://127.0.0.1:{}", 18200 + id),
        cluster_addr: format!("https://{addr}"),
    };
    let backend = match tls_at {
        TlsAt::Open => {
            RaftBackend::open_clustered(dir.path(), Some(id), info.clone(), timing(), &tls).await
        }
        TlsAt::Later => RaftBackend::open(dir.path(), Some(id), info.clone(), timing()).await,
    }
    .expect("open");
    let app = cluster::router(Arc::new(backend.rpc_handler()));
    let (stop, stop_rx) = watch::channel(false);
    let serving = tokio::spawn(listener.serve(app, stop_rx, Duration::from_secs(1)));
    Node {
        backend,
        info,
        tls,
        addr,
        stop,
        serving,
        _dir: dir,
    }
}

async fn add_learner(leader: &Node, learner: &Node) {
    leader
        .backend
        .add_learner(learner.id(), learner.info.clone(), BOUND)
        .await
        .expect("add_learner");
}

/// Waits until `node` has applied at least `index`.
async fn wait_applied(node: &RaftBackend, index: u64) {
    node.inner
        .raft
        .wait(Some(BOUND))
        .applied_index_at_least(Some(index), "replicated entries applied")
        .await
        .unwrap_or_else(|e| panic!("node {} did not apply {index}: {e}", node.node_id()));
}

/// Waits until every node in `nodes` has applied every acknowledged key (read from its local
/// state machine) and at least the leader's applied index as of the call. (The leader's
/// metrics may trail its own acknowledged writes by a moment, so keys are the ground truth.)
async fn assert_replicated(
    leader: &RaftBackend,
    nodes: &[&RaftBackend],
    acked: &[(String, Vec<u8>)],
) {
    let index = leader.status().applied_index;
    let deadline = Instant::now() + BOUND;
    for n in nodes {
        for (k, v) in acked {
            loop {
                let got = n.read_local(k).await.expect("read_local");
                if got.as_ref() == Some(v) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} has not applied {k} within {BOUND:?}: {:?}",
                    n.node_id(),
                    n.status()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        wait_applied(n, index).await;
    }
}

async fn put(leader: &RaftBackend, acked: &mut Vec<(String, Vec<u8>)>, key: String) {
    let value = key.as_bytes().to_vec();
    tokio::time::timeout(BOUND, leader.put(&key, value.clone()))
        .await
        .expect("the write finishes in bounded time")
        .unwrap_or_else(|e| panic!("write {key}: {e}"));
    acked.push((key, value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_transfer_leadership_and_fail_over() {
    let ca = ClusterTls::generate().expect("ca");
    let a = start_node(&ca, 1, TlsAt::Later).await;
    let b = start_node(&ca, 2, TlsAt::Open).await;
    let c = start_node(&ca, 3, TlsAt::Open).await;

    // A forms the cluster with no cluster TLS yet (as `sys/init` does before the CA exists),
    // then gets it.
    a.backend.initialize_single().await.expect("initialize");
    let mut acked = Vec::new();
    put(&a.backend, &mut acked, "before/0".into()).await;
    a.backend.set_cluster_tls(&a.tls).expect("set TLS");

    // B joins as a learner (blocking until caught up) from the log.
    add_learner(&a, &b).await;
    // C joins after A compacted its log: it can only catch up from a snapshot sent over the
    // cluster port.
    put(&a.backend, &mut acked, "before/snapshot".into()).await;
    let raft = &a.backend.inner.raft;
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let m = raft
        .wait(Some(BOUND))
        .metrics(|m| m.snapshot.is_some(), "a snapshot")
        .await
        .expect("snapshot built");
    let upto = m.snapshot.map(|id| id.index()).expect("snapshot index");
    raft.trigger().purge_log(upto).await.expect("trigger purge");
    raft.wait(Some(BOUND))
        .metrics(
            |m| m.purged.map(|id| id.index()) == Some(upto),
            "purged log",
        )
        .await
        .expect("log purged");
    add_learner(&a, &c).await;
    c.backend
        .inner
        .raft
        .wait(Some(BOUND))
        .metrics(
            |m| m.snapshot.is_some_and(|id| id.index() >= upto),
            "C installed the snapshot",
        )
        .await
        .expect("C was caught up by a snapshot");
    assert_eq!(b.backend.status().role, RaftRole::Learner);
    a.backend.promote(b.id()).await.expect("promote B");
    a.backend
        .change_membership(BTreeSet::from([a.id(), b.id(), c.id()]))
        .await
        .expect("C becomes a voter");
    let config = a.backend.configuration();
    let voters: Vec<(u64, &str, bool)> = config
        .iter()
        .map(|p| (p.id, p.node.name.as_str(), p.voter))
        .collect();
    assert_eq!(
        voters,
        vec![
            (1, "sealkeep-1", true),
            (2, "sealkeep-2", true),
            (3, "sealkeep-3", true)
        ]
    );

    for i in 1..5 {
        put(&a.backend, &mut acked, format!("before/{i}")).await;
    }
    assert_replicated(&a.backend, &[&a.backend, &b.backend, &c.backend], &acked).await;
    for n in [&b, &c] {
        let s = n.backend.status();
        assert_eq!((s.role, s.leader_id), (RaftRole::Follower, Some(a.id())));
        assert_eq!(s.voters.len(), 3);
    }

    // A standby refuses writes and names the leader.
    match b.backend.put("standby", b"x".to_vec()).await {
        Err(PhysicalError::NotLeader {
            leader_api_addr, ..
        }) => assert_eq!(leader_api_addr, Some(a.info.api_addr.clone())),
        other => panic!("expected NotLeader from a standby, got {other:?}"),
    }

    // Leadership moves to B on request.
    a.backend
        .transfer_leader(b.id(), BOUND)
        .await
        .expect("transfer to B");
    assert_eq!(
        b.backend.wait_for_leader(BOUND).await.expect("leader"),
        b.id()
    );
    put(&b.backend, &mut acked, "after-transfer".into()).await;
    let err = a
        .backend
        .transfer_leader(c.id(), BOUND)
        .await
        .expect_err("only the leader transfers");
    assert!(matches!(err, PhysicalError::NotLeader { .. }), "{err}");

    // Stop the leader: A or C takes over within the bound, and writes go on through it.
    let stopped_at = Instant::now();
    b.stop().await;
    let new_leader = loop {
        if let Some(n) = [&a, &c]
            .into_iter()
            .find(|n| n.backend.status().role == RaftRole::Leader)
        {
            break n;
        }
        assert!(
            stopped_at.elapsed() < BOUND,
            "no new leader among the survivors within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    new_leader
        .backend
        .wait_for_leader(BOUND)
        .await
        .expect("serving leader");
    let failover = stopped_at.elapsed();
    for i in 0..5 {
        put(
            &new_leader.backend,
            &mut acked,
            format!("after-failover/{i}"),
        )
        .await;
    }
    assert_replicated(&new_leader.backend, &[&a.backend, &c.backend], &acked).await;
    for (k, v) in &acked {
        assert_eq!(
            new_leader.backend.get(k).await.expect("get").as_ref(),
            Some(v)
        );
    }
    eprintln!("failover to node {} in {failover:?}", new_leader.id());

    // The stopped node is removed; two voters keep working.
    new_leader.backend.remove_peer(2).await.expect("remove B");
    let ids: Vec<(u64, bool)> = new_leader
        .backend
        .configuration()
        .iter()
        .map(|p| (p.id, p.voter))
        .collect();
    assert_eq!(ids, vec![(1, true), (3, true)]);
    put(&new_leader.backend, &mut acked, "after-removal".into()).await;
    assert_replicated(&new_leader.backend, &[&a.backend, &c.backend], &acked).await;
    let err = new_leader.backend.remove_peer(2).await.expect_err("gone");
    assert!(err.to_string().contains("not a member"), "{err}");

    a.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rpcs_are_refused_not_fatal() {
    let ca = ClusterTls::generate().expect("ca");
    let n = start_node(&ca, 1, TlsAt::Open).await;
    n.backend.initialize_single().await.expect("initialize");
    let peer = ca
        .issue_node("sealkeep-9", "https://127.0.0.1:8201")
        .expect("issue");
    let client =
        PeerClient::new(&n.info.cluster_addr, peer.client_config().expect("cfg")).expect("client");
    let garbage: [&[u8]; 4] = [b"", b"\xff\xff\xff\xff\xff\xff", &[0u8; 4096], b"\x03\x00"];
    for body in garbage {
        let reply = tokio::time::timeout(BOUND, client.post(RAFT_RPC_PATH, body.to_vec(), 1 << 20))
            .await
            .expect("bounded")
            .expect("the port answers");
        match decode_wire::<RaftRpcReply>(&reply, "reply") {
            Ok(RaftRpcReply::Refused(reason)) => {
                assert!(reason.contains("raft RPC"), "{reason}")
            }
            Ok(_) => panic!("garbage {body:?} was handled as an RPC"),
            Err(e) => panic!("undecodable reply: {e}"),
        }
    }
    // The node is unharmed.
    n.backend.put("still", b"ok".to_vec()).await.expect("put");
    assert_eq!(
        n.backend.get("still").await.expect("get"),
        Some(b"ok".to_vec())
    );
    assert_eq!(
        n.addr.to_string(),
        n.info.cluster_addr.trim_start_matches("https://")
    );
    assert_eq!(n.tls.name(), "sealkeep-1");
    n.stop().await;
}

/// Step-down picks another voter and it takes over; a restore proposed on the new leader
/// replaces the state of every node through the log and is announced on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_down_and_snapshot_restore_reach_every_node() {
    let ca = ClusterTls::generate().expect("ca");
    let a = start_node(&ca, 1, TlsAt::Open).await;
    let b = start_node(&ca, 2, TlsAt::Open).await;
    let c = start_node(&ca, 3, TlsAt::Open).await;
    a.backend.initialize_single().await.expect("initialize");
    add_learner(&a, &b).await;
    add_learner(&a, &c).await;
    a.backend
        .change_membership(BTreeSet::from([a.id(), b.id(), c.id()]))
        .await
        .expect("three voters");
    let mut acked = Vec::new();
    for i in 0..3 {
        put(&a.backend, &mut acked, format!("snap/{i}")).await;
    }
    let all = [&a.backend, &b.backend, &c.backend];
    assert_replicated(&a.backend, &all, &acked).await;

    let st = a.backend.cluster_state();
    assert!(st.is_leader);
    assert_eq!(st.servers.len(), 3, "{st:?}");
    assert!(
        st.servers.iter().all(|s| s.voter && s.matched.is_some()),
        "{st:?}"
    );
    // A follower knows the members but not their progress, and cannot step down.
    let fst = b.backend.cluster_state();
    assert!(!fst.is_leader && fst.servers.iter().all(|s| s.matched.is_none()));
    let err = b
        .backend
        .step_down(BOUND)
        .await
        .expect_err("not the leader");
    assert!(matches!(err, PhysicalError::NotLeader { .. }), "{err}");

    let to = a.backend.step_down(BOUND).await.expect("step down");
    assert!(to == b.id() || to == c.id(), "{to}");
    let new_leader = if to == b.id() { &b.backend } else { &c.backend };
    assert_eq!(new_leader.wait_for_leader(BOUND).await.expect("leader"), to);
    assert!(!a.backend.is_leader());

    // Snapshot on the new leader, change things, restore: every node has the old state.
    let snapshot = new_leader.export_snapshot().await.expect("export");
    let mut later = Vec::new();
    put(new_leader, &mut later, "snap/later".into()).await;
    new_leader.delete("snap/0").await.expect("delete");
    let replaced: Vec<_> = all.iter().map(|n| n.state_replaced()).collect();
    new_leader
        .restore_snapshot(snapshot)
        .await
        .expect("restore");
    assert_replicated(new_leader, &all, &acked).await;
    for (n, rx) in all.iter().zip(&replaced) {
        assert_eq!(n.read_local("snap/later").await.expect("read"), None);
        let deadline = Instant::now() + BOUND;
        while *rx.borrow() == 0 {
            assert!(
                Instant::now() < deadline,
                "node {} never announced the restore",
                n.node_id()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// A request that read, then saw its node lose office and win it back, must not write what it
/// computed from the older state: another leader may have written the same key meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_read_under_one_leadership_cannot_write_under_another() {
    use crate::server::physical::ReadFence;

    let ca = ClusterTls::generate().expect("ca");
    let a = start_node(&ca, 1, TlsAt::Open).await;
    let b = start_node(&ca, 2, TlsAt::Open).await;
    a.backend.initialize_single().await.expect("initialize");
    add_learner(&a, &b).await;
    a.backend
        .change_membership(BTreeSet::from([a.id(), b.id()]))
        .await
        .expect("B becomes a voter");
    let mut acked = Vec::new();
    put(&a.backend, &mut acked, "k".into()).await;

    // Read and write under one leadership: the write goes through.
    ReadFence::scope(async {
        assert!(a.backend.get("k").await.expect("read").is_some());
        a.backend
            .put("k", b"same-term".to_vec())
            .await
            .expect("a write under the leadership that confirmed the read");
    })
    .await;

    // Read, then A hands office to B and wins it back (a later term): the write is refused
    // before it reaches the log.
    let err = ReadFence::scope(async {
        assert_eq!(
            a.backend.get("k").await.expect("read").as_deref(),
            Some(&b"same-term"[..])
        );
        a.backend
            .transfer_leader(b.id(), BOUND)
            .await
            .expect("to B");
        b.backend
            .transfer_leader(a.id(), BOUND)
            .await
            .expect("back to A");
        a.backend.wait_for_leader(BOUND).await.expect("A leads");
        a.backend
            .put("k", b"stale".to_vec())
            .await
            .expect_err("a write computed under an earlier term")
    })
    .await;
    assert!(
        matches!(&err, PhysicalError::NotLeader { reason, .. } if reason.contains("leadership changed")),
        "{err}"
    );
    assert_eq!(
        a.backend.get("k").await.expect("read").as_deref(),
        Some(&b"same-term"[..]),
        "the refused write left no trace"
    );
    // Outside a request (no reads recorded) writes are unconditional, as before.
    a.backend
        .put("k", b"blind".to_vec())
        .await
        .expect("a blind write");
    a.stop().await;
    b.stop().await;
}
