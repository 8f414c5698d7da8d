//! The tool registry the service and `cerebro mcp` serve, built from config,
//! and `/mcp`: the registry over streamable HTTP behind a bearer token.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use brain::config::Config;
use brain::store::Store;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tools::Registry;
use tools::gate::ApprovalGate;
use tools::mcp::{CallGate, McpClient, McpServer};

/// Every backend the config enables. External MCP servers that cannot be
/// reached are left out with a warning, so one dead server does not take
/// the others down.
pub async fn build_registry(config: &Config, store: &Store) -> anyhow::Result<Registry> {
    if let Some(path) = &config.tools.replay {
        let scenario = brain::scenario::Scenario::load(path)
            .map_err(|e| anyhow::anyhow!("tools.replay: {e}"))?;
        tracing::warn!(scenario = %path.display(), "tools answer from a scenario's world, not from live systems");
        return tools::world_registry(&scenario.world)
            .map_err(|e| anyhow::anyhow!("tools.replay: {e}"));
    }
    let mut registry = Registry::new();
    registry.add(Arc::new(tools::logs::LogsBackend::new(
        tools::logs::DrainConfig::default(),
    )))?;
    let feed = tools::changes::StoreFeed::new(store.clone());
    registry.add(Arc::new(tools::changes::ChangeTools::new(Arc::new(feed))))?;
    if let Some(url) = &config.tools.prometheus_url {
        let api = tools::prometheus::LivePrometheus::new(url, Duration::from_secs(15))?;
        registry.add(Arc::new(tools::prometheus::PrometheusTools::new(Arc::new(
            api,
        ))))?;
    }
    if let Some(source) = &config.tools.kubernetes {
        use tools::kubernetes::live::KubeSource;
        let source = match source.as_str() {
            "infer" => KubeSource::Infer,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                KubeSource::Url(url)
            }
            path => KubeSource::Kubeconfig(std::path::Path::new(path)),
        };
        let api = tools::kubernetes::LiveKubernetes::connect(source, Duration::from_secs(20))
            .await
            .map_err(|e| anyhow::anyhow!("tools.kubernetes: {e}"))?;
        registry.add(Arc::new(tools::kubernetes::KubernetesTools::new(Arc::new(
            api,
        ))))?;
    }
    if config.tools.aws {
        let aws = tools::aws::AwsConfig {
            region: config.tools.aws_region.clone(),
            endpoint_url: config.tools.aws_endpoint_url.clone(),
            ..tools::aws::AwsConfig::default()
        };
        let api = tools::aws::LiveAws::connect(&aws).await;
        registry.add(Arc::new(tools::aws::AwsTools::new(Arc::new(api))))?;
    }
    for (name, server) in &config.tools.mcp_servers {
        let timeout = Duration::from_secs(server.timeout_secs.max(1));
        match McpClient::connect(name, &server.endpoint, server.risk, timeout).await {
            Ok(client) => registry.add_with_prefix(Arc::new(client), Some(name))?,
            Err(e) => {
                tracing::warn!(server = %name, error = %e, "MCP server unavailable; its tools are left out")
            }
        }
    }
    Ok(registry)
}

/// `/mcp`, or nothing when no token is configured: the tools are never
/// served without one.
pub fn mcp_routes(config: &Config, server: McpServer, shutdown: CancellationToken) -> Router {
    let Some(token) = &config.tools.mcp_token else {
        return Router::new();
    };
    let mut http = StreamableHttpServerConfig::default();
    http.cancellation_token = shutdown;
    http.json_response = true;
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        http,
    );
    let expected: Arc<[u8; 32]> = Arc::new(Sha256::digest(token.expose().as_bytes()).into());
    Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(expected, require_token))
}

/// 401 unless `Authorization: Bearer <token>` matches. Compared as hashes,
/// so the time taken says nothing about the token.
async fn require_token(
    State(expected): State<Arc<[u8; 32]>>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())));
    match given {
        Some(hash) if hash == *expected => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({
                "error": "unauthorized",
                "field": "Authorization",
                "message": "send the token of tools.mcp_token as `Authorization: Bearer <token>`",
            })),
        )
            .into_response(),
    }
}

/// The MCP server over the registry. Any call that acts goes through the
/// policy and the approval queue, the same path as the agents' own calls.
pub fn mcp_server(
    config: &Config,
    store: &Store,
    registry: Arc<Registry>,
    caller: &str,
) -> anyhow::Result<McpServer> {
    let policy = brain::policy::Policy::new(config.policy.clone())?;
    let ttl = chrono::Duration::minutes(
        i64::try_from(config.tools.approval_ttl_minutes.max(1)).unwrap_or(60),
    );
    let gate: Arc<dyn CallGate> = Arc::new(ApprovalGate::new(store.clone(), policy, ttl));
    Ok(McpServer::new(registry, gate, caller))
}
