//! Start the service and stop it gracefully.
//!
//! On SIGTERM or Ctrl-C the listener stops accepting, in-flight requests get
//! `server.shutdown_grace_secs` to finish, then the database pool is closed.

use crate::app::{AppState, router};
use anyhow::Context;
use brain::config::Config;
use brain::store::{IngestWriter, Store};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A service ready to serve: database open and migrated, port bound.
pub struct Bound {
    pub addr: SocketAddr,
    listener: TcpListener,
    state: AppState,
    writer_task: tokio::task::JoinHandle<()>,
    registry: Arc<tools::Registry>,
    notifiers: std::collections::BTreeMap<String, Arc<dyn brain::backends::Notifier>>,
    /// Slack's clicks and commands over a WebSocket, with `slack.app_token`.
    socket_mode: Option<crate::slack_socket::SocketMode>,
}

/// Open the store (migrating it) and bind the listener. Nothing is served
/// until [`Bound::serve`]; on error nothing is left half-started.
pub async fn bind(config: Config) -> anyhow::Result<Bound> {
    let store = Store::open(&config).await?;
    let registry = match crate::tools::build_registry(&config, &store).await {
        Ok(r) => Arc::new(r),
        Err(e) => {
            store.close().await;
            return Err(e.context("building the tool registry"));
        }
    };
    let listen = config.server.listen;
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            store.close().await;
            return Err(e).with_context(|| format!("binding server.listen {listen}"));
        }
    };
    let addr = listener.local_addr().context("reading the bound address")?;
    // The knowledge base is optional: without its embedder the rest of the
    // service still serves, and its routes say why they cannot.
    let knowledge = match crate::knowledge::open(&config, &store).await {
        Ok(kb) => Some(kb),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the knowledge base is unavailable");
            None
        }
    };
    crate::metrics::handle();
    let (writer, writer_task) = IngestWriter::start(
        store.clone(),
        config.ingest_settings(),
        config.ingest.queue_bytes,
        config.ingest.max_batch,
    );
    // The agents' model is optional too: without it they run on the
    // analyzers and retrieval alone.
    let llm = if config.agents.enabled && config.agents.llm {
        match crate::llm::gateway_for_roles(&config, Some(store.clone()), &["fast"]).await {
            Ok(gw) => Some(Arc::new(gw)),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the agents run without a model");
                None
            }
        }
    } else {
        None
    };
    let notifiers = match crate::notify::notifiers(&config, &store) {
        Ok(n) => n,
        Err(e) => {
            store.close().await;
            return Err(e.context("starting the notifiers"));
        }
    };
    let mut agents = orchestrator(&config, &store, knowledge.clone(), registry.clone(), llm)?;
    if !notifiers.is_empty() {
        // The pipeline only writes to the outbox; `serve` delivers it.
        let outbox: Arc<dyn brain::backends::Notifier> = Arc::new(brain::backends::Outbox::new(
            store.clone(),
            notifiers.keys().cloned().collect(),
        ));
        agents.notifiers = vec![outbox];
    }
    let agents = Arc::new(agents);
    let slack = crate::routes::slack::Inbound::from_config(&config, &store).map(Arc::new);
    let socket_mode = match slack.as_ref().and_then(|s| s.app_token()) {
        None => None,
        Some(token) => match crate::slack_socket::SocketMode::new(&config, token.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                store.close().await;
                return Err(e.context("starting Slack's Socket Mode (slack.app_token)"));
            }
        },
    };
    Ok(Bound {
        addr,
        listener,
        state: AppState {
            config: Arc::new(config),
            store,
            writer,
            noise: Arc::default(),
            knowledge,
            agents,
            slack,
        },
        writer_task,
        registry,
        notifiers,
        socket_mode,
    })
}

impl Bound {
    /// Serve until `shutdown` is cancelled, then drain within the grace period.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let store = self.state.store.clone();
        let janitor = tokio::spawn(prune_deliveries(
            store.clone(),
            self.state.config.ingest_settings(),
            shutdown.clone(),
        ));
        let mut background = Vec::new();
        if let Some(kb) = self.state.knowledge.clone() {
            let config = self.state.config.clone();
            let stop = shutdown.clone();
            let store = store.clone();
            background.push(tokio::spawn(async move {
                if config.knowledge.index_runbooks {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = crate::knowledge::index_runbooks(&config, &kb) => {}
                    }
                }
                if config.knowledge.remember_incidents {
                    crate::knowledge::remember_resolved(store, kb, Duration::from_secs(30), stop)
                        .await;
                }
            }));
        }
        if !self.notifiers.is_empty() {
            background.push(tokio::spawn(crate::notify::deliver(
                store.clone(),
                self.notifiers.clone(),
                Duration::from_secs(1),
                shutdown.clone(),
            )));
        }
        if self.state.config.agents.enabled {
            background.push(tokio::spawn(work_incidents(
                self.state.agents.clone(),
                Duration::from_secs(self.state.config.agents.poll_secs),
                shutdown.clone(),
            )));
        }
        if let Some(socket_mode) = self.socket_mode {
            background.push(tokio::spawn(
                socket_mode.run(self.state.clone(), shutdown.clone()),
            ));
        }
        let max_connections = self.state.config.server.max_connections;
        let mcp = crate::tools::mcp_server(&self.state.config, &store, self.registry, "mcp:http")?;
        let mcp_routes = crate::tools::mcp_routes(&self.state.config, mcp, shutdown.child_token());
        let app = router(self.state).merge(mcp_routes);
        let stop = shutdown.clone();
        let listener = crate::listener::LimitedListener::new(self.listener, max_connections);
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        let drained = tokio::select! {
            r = server => { r.context("serving HTTP")?; true }
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => false,
        };
        if drained {
            tracing::info!("all in-flight requests finished");
        } else {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish within the grace period"
            );
        }
        // The router held the last handles to the writer: it now commits
        // what is queued and stops. Every queued request was answered or
        // is being answered, so this is short.
        if tokio::time::timeout(Duration::from_secs(10), self.writer_task)
            .await
            .is_err()
        {
            tracing::warn!("ingestion writer did not drain in time");
        }
        let _ = janitor.await;
        for task in background {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The incident orchestrator over the service's store, tools, policy,
/// knowledge base and model.
fn orchestrator(
    c: &Config,
    store: &Store,
    knowledge: Option<Arc<agents::knowledge::KnowledgeBase>>,
    tools: Arc<tools::Registry>,
    llm: Option<Arc<models::gateway::Gateway>>,
) -> anyhow::Result<agents::orchestrator::Orchestrator> {
    let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
    let policy = brain::policy::Policy::new(c.policy.clone())?;
    let (runbooks, problems) = agents::runbooks::Runbooks::load(&c.paths.runbooks_dir);
    for p in &problems {
        tracing::warn!(problem = %p, "a runbook's front matter is unusable; it steers no remediation");
    }
    Ok(agents::orchestrator::Orchestrator {
        knowledge,
        runbooks: Arc::new(runbooks),
        summarize: llm.is_some(),
        llm,
        limits: agents::budget::Limits {
            tool_calls: c.agents.max_tool_calls,
            llm_tokens: c.agents.max_llm_tokens,
            wall: Duration::from_secs(c.agents.max_wall_secs),
        },
        approval_ttl: secs(c.tools.approval_ttl_minutes.saturating_mul(60)),
        remind_before: secs(c.approvals.remind_before_minutes.saturating_mul(60)),
        worker: format!("{}:{}", hostname(), std::process::id()),
        lease: secs(c.agents.lease_secs),
        verify_window: Duration::from_secs(c.agents.verify_secs),
        four_eyes: c.approvals.four_eyes,
        ..agents::orchestrator::Orchestrator::new(store.clone(), tools, policy)
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "cerebro".into())
}

/// Queue new incidents and work them one at a time until `stop`.
async fn work_incidents(
    o: Arc<agents::orchestrator::Orchestrator>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match o.remind_approvals().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                reminded = n,
                "reminded approvers of approvals about to expire"
            ),
            Err(e) => tracing::warn!(error = %e, "reminding approvers failed"),
        }
        match o.expire_approvals().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "approvals expired unanswered; escalated"),
            Err(e) => tracing::warn!(error = %e, "expiring approvals failed"),
        }
        if let Err(e) = o.store.enqueue_open_incidents().await {
            tracing::warn!(error = %e, "queueing new incidents failed");
            continue;
        }
        loop {
            let worked = tokio::select! {
                () = stop.cancelled() => return,
                r = o.work_one() => r,
            };
            match worked {
                Ok(Some((id, outcome))) => tracing::info!(
                    incident = %id,
                    action = outcome.proposal.as_ref().map(|p| p.action.as_str()),
                    tool_calls = outcome.tool_calls,
                    "incident worked"
                ),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "working an incident failed; it is retried when its lease lapses");
                    break;
                }
            }
        }
    }
}

/// Forget webhook delivery keys once they are older than the redelivery
/// window, so the table stays small.
async fn prune_deliveries(
    store: Store,
    settings: brain::store::IngestSettings,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.prune_deliveries(&settings).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "pruned delivery keys"),
            Err(e) => tracing::warn!(error = %e, "pruning delivery keys failed"),
        }
    }
}

/// Cancel `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = term => tracing::info!("SIGTERM received, shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received, shutting down"),
        }
        token.cancel();
    });
}

/// Print where the service listens, on stdout, for people and scripts.
pub fn announce(addr: SocketAddr, config: &Config) {
    let url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "cerebro listening on http://{addr}");
    let _ = writeln!(out, "console: {url}/   API reference: {url}/api/docs");
    let _ = out.flush();
}
