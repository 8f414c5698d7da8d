//! The `cerebro` binary: one process for the service, its maintenance
//! commands and the evaluation harness.

use anyhow::Context;
use brain::config::{Config, LogFormat};
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use web::{logging, server};

#[derive(Parser)]
#[command(
    name = "cerebro",
    version,
    about = "Agentic AIOps: alerts in, incidents diagnosed, remediations held for approval"
)]
struct Cli {
    /// TOML configuration file (defaults, then this file, then CEREBRO__SECTION__KEY variables).
    #[arg(long, global = true, env = "CEREBRO_CONFIG")]
    config: Option<PathBuf>,
    /// Log format; overrides log.format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<CliLogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: API, webhooks and console.
    Serve {
        /// Address to listen on; overrides server.listen (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory for the embedded database and index; overrides paths.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets masked) and check each backend.
    CheckConfig {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run incident scenarios through the pipeline and score them.
    Eval {
        #[arg(long)]
        scenarios: Option<PathBuf>,
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Serve the tool registry over MCP on stdio.
    Mcp,
    /// Fetch the default local model weights.
    FetchModels,
}

/// Configuration problems exit 2; everything else that fails exits 1.
enum Failure {
    Config(anyhow::Error),
    Run(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli, data_dir: Option<&PathBuf>) -> Result<Config, Failure> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())
        .map_err(|e| Failure::Config(e.into()))?;
    if let Some(dir) = data_dir {
        config.paths.data_dir.clone_from(dir);
    }
    if let Some(f) = cli.log_format {
        config.log.format = match f {
            CliLogFormat::Text => LogFormat::Text,
            CliLogFormat::Json => LogFormat::Json,
        };
    }
    logging::init(config.log.format, &config.log.filter);
    Ok(config)
}

fn not_built(command: &str, issue: u32) -> Failure {
    Failure::Run(anyhow::anyhow!(
        "`cerebro {command}` is not built yet (tracked in issue #{issue})"
    ))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // kube (ring) and the AWS SDK (aws-lc-rs) both bring rustls; name the
    // provider once so the first TLS client does not panic.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match &cli.command {
        Command::Serve { listen, data_dir } => {
            let mut config = load_config(&cli, data_dir.as_ref())?;
            if let Some(addr) = listen {
                config.server.listen = *addr;
            }
            let shown = config.clone();
            let bound = server::bind(config).await.map_err(Failure::Run)?;
            server::announce(bound.addr, &shown);
            tracing::info!(addr = %bound.addr, "serving");
            let shutdown = CancellationToken::new();
            server::cancel_on_signal(shutdown.clone());
            bound.serve(shutdown).await.map_err(Failure::Run)
        }
        Command::Migrate { data_dir } => {
            let config = load_config(&cli, data_dir.as_ref())?;
            let store = brain::store::Store::open(&config)
                .await
                .map_err(|e| Failure::Run(e.into()))?;
            println!("database {} is migrated", store.url());
            store.close().await;
            Ok(())
        }
        Command::CheckConfig { data_dir } => {
            let config = load_config(&cli, data_dir.as_ref())?;
            check_config(&config).await.map_err(Failure::Run)
        }
        Command::Eval { .. } => Err(not_built("eval", 7)),
        Command::Mcp => Err(not_built("mcp", 5)),
        Command::FetchModels => Err(not_built("fetch-models", 4)),
    }
}

/// Print the effective configuration, then check each configured backend
/// with a cheap real call.
async fn check_config(config: &Config) -> anyhow::Result<()> {
    println!(
        "# effective configuration (secrets masked)\n{}",
        config.to_masked_toml()
    );
    println!("# checks");
    let url = config.database_url().masked();
    let start = Instant::now();
    let store = brain::store::Store::connect(config)
        .await
        .with_context(|| format!("check database {url}"))?;
    let r = store.readiness().await;
    store.close().await;
    let ms = start.elapsed().as_millis();
    if !r.reachable {
        anyhow::bail!("check database {url}: not reachable");
    }
    println!(
        "database  {url}  ok ({ms} ms, migrations {}/{}{})",
        r.migrations_applied,
        r.migrations_expected,
        if r.is_ready() {
            ""
        } else {
            ", run `cerebro migrate`"
        }
    );
    Ok(())
}
