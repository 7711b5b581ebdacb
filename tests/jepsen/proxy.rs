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
        let log_start = std::time::Instant::now();
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
                log: std::env::var_os("SEALKEEP_JEPSEN_PROXY_LOG").map(|_| log_start),
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
    /// `SEALKEEP_JEPSEN_PROXY_LOG` set: print every connection's life on stderr.
    log: Option<std::time::Instant>,
}

impl Link {
    fn log(&self, what: std::fmt::Arguments<'_>) {
        if let Some(start) = self.log {
            eprintln!(
                "proxy {:>8.3}s to node {}: {what}",
                start.elapsed().as_secs_f64(),
                self.to
            );
        }
    }
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
            let began = std::time::Instant::now();
            let how = serve(client, peer, &link).await;
            link.log(format_args!(
                "{peer}: {how} after {} ms",
                began.elapsed().as_millis()
            ));
        });
    }
}

/// Relays one connection from `peer` to node `link.to` under the rules. Which node `peer` is
/// is looked up alongside (bytes flow meanwhile while there are no faults, and wait for it
/// while there are); the connection is reset when its link becomes cut both ways, or when
/// `peer` is no node's.
async fn serve(mut client: TcpStream, peer: SocketAddr, link: &Link) -> String {
    let Ok(mut upstream) = TcpStream::connect(link.target).await else {
        return "refused (node down)".into(); // the client sees the connection close
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let to = link.to;
    let (known, from) = watch::channel(None::<usize>);
    let ended = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let relay = async {
            tokio::join!(
                direction(cr, uw, link.rules.clone(), from.clone(), |f| (f, to)),
                direction(ur, cw, link.rules.clone(), from.clone(), |f| (to, f)),
            )
        };
        let watchdog = async {
            let began = std::time::Instant::now();
            let f = match owner::identify(peer, link.local, &link.pids).await {
                Ok(f) => f,
                Err(why) => return format!("reset: cannot tell which node it is ({why})"),
            };
            known.send_replace(Some(f));
            link.log(format_args!(
                "{peer} is node {f} ({} ms to tell)",
                began.elapsed().as_millis()
            ));
            until_fully_cut(link.rules.clone(), f, to).await;
            format!("from node {f}: reset by a cut")
        };
        tokio::select! {
            _ = relay => None,
            why = watchdog => Some(why),
        }
    };
    match ended {
        Some(why) => {
            // Closing with linger 0 sends RST: both ends see the connection reset.
            let _ = client.set_zero_linger();
            let _ = upstream.set_zero_linger();
            why
        }
        None => format!("from node {:?}: closed", *from.borrow()),
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

/// Copies `rd` to `wr` on the directed link `dir(from)`: holds bytes back while it is cut,
/// delays them by its delay; shuts `wr` down at the end of `rd`. While any fault is in effect
/// and `from` is not known yet, bytes wait for it.
async fn direction<R, W>(
    mut rd: R,
    mut wr: W,
    mut rules: watch::Receiver<Rules>,
    mut from: watch::Receiver<Option<usize>>,
    dir: impl Fn(usize) -> (usize, usize),
) where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    // The delay of the link now, or `None` while its bytes must be held back.
    let open = move |rules: &Rules, from: Option<usize>| {
        if *rules == Rules::default() {
            return Some(Duration::ZERO);
        }
        let d = dir(from?);
        (!rules.cut.contains(&d)).then(|| rules.delay.get(&d).copied().unwrap_or_default())
    };
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // Held back while cut: nothing is read, so the sender's buffers fill as on a
            // link that drops packets.
            while open(&rules.borrow_and_update(), *from.borrow_and_update()).is_none() {
                let changed = tokio::select! {
                    r = rules.changed() => r.is_ok(),
                    r = from.changed() => r.is_ok(),
                };
                if !changed {
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
            // Read before a cut began: in flight already, delivered.
            let delay = open(&rules.borrow(), *from.borrow()).unwrap_or_default();
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
