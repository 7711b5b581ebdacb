//! Jepsen harness (test code): the fault proxy on every raft link. Network I/O (tokio TCP on
//! loopback) and `/proc` reads.
//!
//! Every node advertises a proxy port as its `cluster_addr` (tests/common/cluster.rs
//! `advertised_cluster_port`), so every connection to node `to`'s cluster port (raft RPCs and
//! forwarded requests) goes through `to`'s proxy. The proxy tells which node opened a
//! connection from the owner of its source socket ([`owner`]: `/proc/net/tcp` and the node
//! processes' fds; all nodes dial from 127.0.0.1, and the server has no option to bind a
//! source address), so each *directed* link `from → to` can be faulted on its own:
//!
//! - **cut** `from → to`: the bytes `from` sends to `to` are held back (as a firewall that
//!   drops packets: TCP retransmits them once the link heals). On a connection `from` opened
//!   that is its requests; on one `to` opened, its replies. A link cut both ways also resets
//!   every open connection between the two at the moment of the cut, and connections opened
//!   while it lasts are accepted and black-holed (nothing flows until the heal).
//! - **delay**: each chunk of bytes on the link is delivered that much later (in order).
//!
//! [`FaultNet::set`] changes the rules at once for every connection; [`FaultNet::heal`] clears
//! them. Dropping the [`FaultNet`] closes every listener and connection.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod owner;

/// Directed link faults: `(from, to)` node indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Links whose bytes are held back.
    pub cut: BTreeSet<(usize, usize)>,
    /// Links whose bytes arrive this much later.
    pub delay: BTreeMap<(usize, usize), Duration>,
}

impl Rules {
    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn cut_between(&mut self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                self.cut.insert((*x, *y));
                self.cut.insert((*y, *x));
            }
        }
    }

    fn both_cut(&self, a: usize, b: usize) -> bool {
        self.cut.contains(&(a, b)) && self.cut.contains(&(b, a))
    }
}

/// One proxy per node, in front of its cluster port.
pub struct FaultNet {
    rules: watch::Sender<Rules>,
    ports: Vec<u16>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FaultNet {
    /// Starts a proxy on a free loopback port for each of `targets` (the nodes' real cluster
    /// ports); `pids[i]` is node `i`'s pid while it runs. Needs a tokio runtime.
    pub async fn start(targets: &[u16], pids: Arc<Mutex<Vec<Option<u32>>>>) -> Self {
        let (rules, _) = watch::channel(Rules::default());
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        for (to, target) in targets.iter().enumerate() {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a fault proxy on 127.0.0.1");
            let local = listener.local_addr().expect("proxy address");
            ports.push(local.port());
            let target = SocketAddr::from(([127, 0, 0, 1], *target));
            let link = Link {
                to,
                local,
                target,
                pids: Arc::clone(&pids),
                rules: rules.subscribe(),
            };
            tasks.push(tokio::spawn(accept_loop(listener, link)));
        }
        Self {
            rules,
            ports,
            tasks,
        }
    }

    /// The proxy port of node `i` (what it advertises as its `cluster_addr`).
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// Replaces the rules.
    pub fn set(&self, rules: Rules) {
        self.rules.send_replace(rules);
    }

    /// No faults.
    pub fn heal(&self) {
        self.set(Rules::default());
    }
}

impl Drop for FaultNet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Clone)]
struct Link {
    to: usize,
    local: SocketAddr,
    target: SocketAddr,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    rules: watch::Receiver<Rules>,
}

/// Accepts connections to node `link.to` until aborted; aborting it closes them all.
async fn accept_loop(listener: TcpListener, link: Link) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        while conns.try_join_next().is_some() {}
        let link = link.clone();
        conns.spawn(async move {
            match owner::identify(peer, link.local, &link.pids).await {
                Some(from) => serve(client, from, link).await,
                // Not a node's socket (it closed already, or a stray client): refused, so
                // nothing slips past a partition; a node reconnects and is identified then.
                None => eprintln!(
                    "fault proxy of node {}: cannot tell which node {peer} is; connection closed",
                    link.to
                ),
            }
        });
    }
}

/// Relays one connection `from → link.to` under the rules; resets it when the link becomes
/// cut both ways.
async fn serve(mut client: TcpStream, from: usize, link: Link) {
    let Ok(mut upstream) = TcpStream::connect(link.target).await else {
        return; // node down: the client sees the connection close, as a refused dial
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let to = link.to;
    let reset = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let relay = async {
            tokio::join!(
                direction(cr, uw, link.rules.clone(), (from, to)),
                direction(ur, cw, link.rules.clone(), (to, from)),
            )
        };
        tokio::select! {
            _ = relay => false,
            () = until_fully_cut(link.rules.clone(), from, to) => true,
        }
    };
    if reset {
        // Closing with linger 0 sends RST: both ends see the connection reset.
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

/// Returns when the link between `a` and `b` goes from open (in either direction) to cut both
/// ways; never, while it stays as it is.
async fn until_fully_cut(mut rules: watch::Receiver<Rules>, a: usize, b: usize) {
    let mut was = rules.borrow_and_update().both_cut(a, b);
    loop {
        if rules.changed().await.is_err() {
            return std::future::pending().await;
        }
        let now = rules.borrow_and_update().both_cut(a, b);
        if now && !was {
            return;
        }
        was = now;
    }
}

/// Copies `rd` to `wr` for the directed link `dir`: holds bytes back while it is cut, delays
/// them by its delay; shuts `wr` down at the end of `rd`.
async fn direction<R, W>(
    mut rd: R,
    mut wr: W,
    mut rules: watch::Receiver<Rules>,
    dir: (usize, usize),
) where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // Held back while cut: nothing is read, so the sender's buffers fill as on a
            // link that drops packets.
            while rules.borrow_and_update().cut.contains(&dir) {
                if rules.changed().await.is_err() {
                    return;
                }
            }
            let n = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
                // The rules changed mid-read (reading is cancel-safe): look again.
                r = rules.changed() => if r.is_err() { return } else { continue },
            };
            let delay = rules.borrow().delay.get(&dir).copied().unwrap_or_default();
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(read, write);
}
