//! sealkeep-pkubelet: a process kubelet for Sealkeep's local test environment (never ships).
//! CLI parsing and wiring only; it runs pods bound to its node as local processes in their
//! own network, mount and UTS namespaces.

mod atomic;
mod binder;
mod ctx;
mod env;
mod expand;
mod hosts;
mod image;
mod ipam;
mod manager;
mod netns;
mod node;
mod pod;
mod podinit;
mod probe;
mod proc;
mod pvc;
mod resources;
mod settings;
mod sources;
mod state;
mod token;
mod volumes;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::image::ImageMap;
use crate::resources::NodeResources;
use crate::settings::Settings;

/// Runs pods bound to one node as local processes (root only; test environments only).
#[derive(Debug, Parser)]
#[command(name = "sealkeep-pkubelet", version)]
struct Args {
    /// Kubeconfig with node and pod rights (the admin kubeconfig of the test environment).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Name of the Node to register.
    #[arg(long, default_value = "pk-0")]
    node_name: String,
    /// Directory for pod directories, PVC data, IP allocations and pid records.
    #[arg(long)]
    state_dir: PathBuf,
    /// Bridge the pod veths attach to (created when missing).
    #[arg(long, default_value = "skbr0")]
    bridge: String,
    /// The node's address on the bridge: gateway of pods, InternalIP and API server address.
    #[arg(long, default_value = "198.18.0.1")]
    node_ip: Ipv4Addr,
    /// Prefix length of the pod network.
    #[arg(long, default_value_t = 16)]
    pod_prefix_len: u8,
    /// API server port pods are told (KUBERNETES_SERVICE_PORT).
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// Executable for images whose repository ends in `sealkeep/sealkeep`.
    #[arg(long)]
    sealkeep_bin: PathBuf,
    /// Extra image mappings, `REPO-SUFFIX=EXECUTABLE` (repeatable).
    #[arg(long = "image-map")]
    image_map: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args_os();
    let _ = argv.next();
    if let Some(first) = argv.next()
        && first == podinit::SUBCOMMAND
    {
        let spec = podinit::InitSpec::parse(argv).context("parsing __pod-init arguments")?;
        let err = podinit::run(&spec);
        eprintln!("sealkeep-pkubelet __pod-init: {err}");
        std::process::exit(127);
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("installing the rustls aws-lc-rs provider"))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn node_resources(state_dir: &std::path::Path) -> NodeResources {
    let cpus =
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
    let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(4 << 20);
    let disk = nix::sys::statvfs::statvfs(state_dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(20 << 30);
    NodeResources {
        cpus,
        memory_bytes: memory_kib * 1024,
        ephemeral_bytes: disk,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "sealkeep-pkubelet must run as root"
    );
    std::fs::create_dir_all(args.state_dir.join("pods"))
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let state_dir = std::fs::canonicalize(&args.state_dir)?;
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", args.kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    let settings = Settings {
        node_name: args.node_name.clone(),
        node_ip: args.node_ip,
        prefix_len: args.pod_prefix_len,
        bridge: args.bridge.clone(),
        images: ImageMap::new(&args.image_map, &args.sealkeep_bin)?,
        api_port: args.api_port,
        node: node_resources(&state_dir),
        // Resolved by the forked child at exec time: still this binary even after a rebuild
        // replaced the file on disk.
        self_exe: PathBuf::from("/proc/self/exe"),
        state_dir,
    };
    netns::ensure_bridge(&settings.bridge, settings.node_ip, settings.prefix_len)
        .await
        .context("setting up the bridge")?;
    let ipam = ipam::Ipam::load(&settings.ipam_file(), settings.node_ip, settings.prefix_len)?;
    node::register(&client, &settings).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        settings.clone(),
        stop_rx.clone(),
    ));
    let binder = tokio::spawn(binder::run(
        client.clone(),
        settings.node_name.clone(),
        stop_rx.clone(),
    ));
    let claims = tokio::spawn(pvc::run(
        client.clone(),
        settings.state_dir.join("pvc"),
        stop_rx.clone(),
    ));
    let ctx = Arc::new(ctx::Ctx::new(client, settings, ipam)?);
    let manager = tokio::spawn(manager::run(ctx, stop_rx));
    tracing::info!(node = %args.node_name, "sealkeep-pkubelet running");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut manager = manager;
    let early = tokio::select! {
        _ = term.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
        res = &mut manager => Some(res),
    };
    tracing::info!("shutting down: stopping pods");
    let _ = stop_tx.send(true);
    let result = match early {
        Some(res) => res,
        None => manager.await,
    };
    let _ = binder.await;
    let _ = claims.await;
    let _ = heartbeat.await;
    result??;
    tracing::info!("stopped");
    Ok(())
}
