//! `sealkeep`: CLI parsing and wiring only.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealkeep::server::Server;
use sealkeep::server::config::{ProcessEnv, ServerConfig};
use sealkeep::telemetry::{self, LogFormat};

/// mimalloc instead of glibc's malloc: under many threads allocating and freeing small
/// buffers (requests, cache entries) glibc's arenas spent up to 15 % of the server's CPU in
/// `_int_malloc`/`malloc_consolidate` (see `benches/kv.rs`). Built with `no_thp`: with
/// transparent huge pages its eagerly committed arena raised an idle server's RSS from
/// ~17 MiB to ~29 MiB (`benches/unseal.rs` reports it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "sealkeep",
    version,
    about = "Kubernetes-native secrets server with a Vault-compatible API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the secrets server.
    Server(ServerArgs),
    /// Run the operator: reconcile SecretServer resources into auto-unsealed servers.
    Operator(Box<OperatorArgs>),
    /// Print the SecretServer CustomResourceDefinition as YAML (what crds/ holds).
    Crd {
        /// Print the field reference as Markdown instead (what docs/secretserver.md holds).
        #[arg(long)]
        reference: bool,
    },
    /// The init Secret auto-init wrote (root token and key shares).
    #[command(subcommand)]
    InitSecret(InitSecretCommand),
    /// Print the seal status like `vault status` (exit 0 unsealed, 2 sealed, 1 error).
    Status {
        /// Server address; defaults to SEALKEEP_ADDR, then VAULT_ADDR, then http://127.0.0.1:8200.
        #[arg(long = "address", alias = "addr")]
        address: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum InitSecretCommand {
    /// Print the root token and key shares of SecretServer NAME (Secret NAME-init), decrypting
    /// them with KMS (kms:Decrypt under your AWS identity) when the seal is awskms.
    Show {
        /// The SecretServer's name (its init Secret is NAME-init).
        name: String,
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Print only this field, for scripts.
        #[arg(long, value_enum)]
        field: Option<sealkeep::cmd::init_secret::Field>,
        /// KMS region (default: the one stored in the Secret).
        #[arg(long)]
        region: Option<String>,
        /// KMS endpoint (default: AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, else AWS's).
        #[arg(long)]
        kms_endpoint: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum OperatorCommand {
    /// Copy every key of one storage backend into another, offline (Vault's
    /// `operator migrate`): for example a `file` server's storage into a new `raft` store.
    Migrate(MigrateArgs),
}

#[derive(clap::Args, Debug)]
struct MigrateArgs {
    /// The migration file: storage_source, storage_destination and cluster_addr (Vault's
    /// format). `-config` is accepted too.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Copy only keys at or after this one (keys are copied in sorted order), to resume a
    /// migration that stopped.
    #[arg(long)]
    start: Option<String>,
    /// Vault resets its migration lock with this. Sealkeep keeps no such lock: it says so and
    /// copies nothing.
    #[arg(long)]
    reset: bool,
}

#[derive(clap::Args, Debug)]
struct OperatorArgs {
    /// `operator migrate`; without a subcommand, `operator` runs the operator.
    #[command(subcommand)]
    command: Option<OperatorCommand>,
    /// Watch only these namespaces, comma-separated or repeated (default: all namespaces).
    #[arg(long, env = "SEALKEEP_WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Server image for SecretServers without spec.image.
    #[arg(long, env = "SEALKEEP_DEFAULT_IMAGE", default_value = concat!("ghcr.io/sealkeep/sealkeep:", env!("CARGO_PKG_VERSION")))]
    default_image: String,
    /// Hold a Lease before reconciling, so that several replicas are safe.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "sealkeep-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else --namespace, else default).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Identity in the Lease and in Events (default: POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (RUST_LOG wins).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The ClusterRole a namespace binds to let the operator keep Secrets there (named in the
    /// InitSecretForbidden condition; the chart sets it).
    #[arg(long)]
    secrets_cluster_role: Option<String>,
    /// The operator's own ServiceAccount: the subject of the Kubernetes-auth role it writes on
    /// raft servers at init and logs in with (the chart sets it from spec.serviceAccountName).
    /// Unset: the operator has no token of its own and raft upgrades wait.
    #[arg(long, env = "POD_SERVICE_ACCOUNT")]
    service_account: Option<String>,
    /// Namespace of that ServiceAccount (default: POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE")]
    service_account_namespace: Option<String>,
    /// The operator's projected ServiceAccount token with audience `sealkeep`, read for each
    /// login (the chart mounts it here).
    #[arg(long, default_value = sealkeep::operator::operator_auth::DEFAULT_TOKEN_FILE)]
    login_token_file: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Vault-style HCL configuration file.
    #[arg(
        long,
        short = 'c',
        required_unless_present = "dev",
        conflicts_with = "dev"
    )]
    config: Option<PathBuf>,
    /// In-memory, initialized and unsealed server for development. Never use in production.
    #[arg(long)]
    dev: bool,
    /// Listen address in dev mode.
    #[arg(long, default_value = "127.0.0.1:8200")]
    dev_listen_address: SocketAddr,
    /// Log format (overrides log_format in the config).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Log level (overrides log_level in the config; RUST_LOG wins over both).
    #[arg(long)]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    // One TLS provider for the whole process (rustls with aws-lc-rs, shared with the AWS SDK).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse_from(sealkeep::cmd::migrate::vault_style_args(
        std::env::args_os().collect(),
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Crd { reference: true } => {
            print!("{}", sealkeep::operator::crd::reference::markdown());
            ExitCode::SUCCESS
        }
        Command::Crd { reference: false } => match sealkeep::operator::crd::crd_yaml() {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Operator(mut op) if matches!(op.command, Some(OperatorCommand::Migrate(_))) => {
            let Some(OperatorCommand::Migrate(args)) = op.command.take() else {
                return ExitCode::FAILURE;
            };
            let opts = sealkeep::cmd::migrate::MigrateOptions {
                config: args.config,
                start: args.start,
                reset: args.reset,
            };
            ExitCode::from(runtime.block_on(sealkeep::cmd::migrate::run(&opts)))
        }
        Command::Operator(args) => match runtime.block_on(run_operator(*args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::InitSecret(InitSecretCommand::Show {
            name,
            namespace,
            field,
            region,
            kms_endpoint,
        }) => {
            let opts = sealkeep::cmd::init_secret::ShowOptions {
                region,
                kms_endpoint,
            };
            match runtime.block_on(sealkeep::cmd::init_secret::show(
                &name,
                namespace.as_deref(),
                field,
                &opts,
            )) {
                Ok(out) => {
                    print!("{out}");
                    // It holds the root token and key shares.
                    drop(zeroize::Zeroizing::new(out));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { address } => {
            let addr = address.unwrap_or_else(sealkeep::api_client::Client::addr_from_env);
            ExitCode::from(runtime.block_on(sealkeep::cmd::status::run(&addr)))
        }
        Command::Server(args) => match runtime.block_on(run_server(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run_operator(args: OperatorArgs) -> anyhow::Result<()> {
    telemetry::init_tracing(&args.log_level, args.log_format);
    let identity = args
        .identity
        .filter(|i| !i.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("sealkeep-operator-{}", std::process::id()));
    let account = sealkeep::operator::operator_auth::Identity::new(
        args.service_account_namespace.as_deref(),
        args.service_account.as_deref(),
        args.login_token_file,
    )?;
    match &account {
        Some(a) => {
            tracing::info!(service_account = %format!("{}/{}", a.namespace, a.service_account), token_file = %a.token_file.display(), "the operator logs in to raft servers as this ServiceAccount")
        }
        None => tracing::warn!(
            "POD_SERVICE_ACCOUNT / --service-account is unset: the operator has no token of its own on raft servers, so their upgrades and scaling wait"
        ),
    }
    let cfg = sealkeep::operator::controller::OperatorConfig {
        namespaces: {
            let mut ns: Vec<String> = args
                .namespace
                .into_iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            ns.sort();
            ns.dedup();
            ns
        },
        metrics_addr: args.metrics_addr,
        default_image: Some(args.default_image).filter(|i| !i.is_empty()),
        leader_elect: args.leader_elect,
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace.filter(|n| !n.is_empty()),
        identity,
        secrets_role: args.secrets_cluster_role.filter(|r| !r.is_empty()),
        account,
    };
    sealkeep::operator::controller::run(cfg, sealkeep::server::shutdown_signal()).await?;
    Ok(())
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let config = if args.dev {
        ServerConfig::dev(args.dev_listen_address)
    } else {
        let path = args
            .config
            .context("--config FILE is required (or use --dev)")?;
        ServerConfig::load(&path, &ProcessEnv)?
    };
    let level = args
        .log_level
        .clone()
        .or_else(|| config.log_level.map(|l| l.as_str().to_owned()))
        .unwrap_or_else(|| "info".into());
    telemetry::init_tracing(
        &level,
        args.log_format.or(config.log_format).unwrap_or_default(),
    );
    let server = Server::build(config.clone()).await?;
    if args.dev {
        let (root_token, unseal_key) = server.init_dev().await?;
        let addr = format!("http://{}", args.dev_listen_address);
        println!(
            "WARNING! dev mode is enabled! In this mode, Sealkeep runs entirely in-memory\n\
             and starts unsealed with a single unseal key. Never use it in production.\n\n\
             You may need to set the following environment variables:\n\n    \
             $ export VAULT_ADDR='{addr}'\n    $ export SEALKEEP_ADDR='{addr}'\n\n\
             Unseal Key: {unseal_key}\nRoot Token: {root_token}\n"
        );
    }
    tracing::info!(
        version = sealkeep::server::core::VERSION,
        storage = config.storage.kind(),
        seal = config.seal.seal_type().as_str(),
        "sealkeep server starting"
    );
    server.serve(sealkeep::server::shutdown_signal()).await?;
    Ok(())
}
