//! The router and its layers.

use crate::error::{ApiError, ErrorBody, internal_response};
use crate::{metrics, openapi, routes};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use brain::config::Config;
use brain::store::{IngestWriter, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// Group-commit writer for ingestion.
    pub writer: IngestWriter,
    pub noise: Arc<crate::ingest::NoiseCounters>,
    /// None when its embedder or vector store did not start; its routes
    /// then answer 503 and the rest of the service works.
    pub knowledge: Option<Arc<agents::knowledge::KnowledgeBase>>,
    /// Works incidents, and runs approved actions.
    pub agents: Arc<agents::orchestrator::Orchestrator>,
    /// Slack's clicks and commands (`slack.signing_secret` for the HTTP
    /// routes, `slack.app_token` for Socket Mode); without a signing secret
    /// the HTTP routes answer 404.
    pub slack: Option<Arc<crate::routes::slack::Inbound>>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The knowledge base; uploads get their own, larger body limit.
fn knowledge_routes(max_upload: usize) -> OpenApiRouter<AppState> {
    let upload = OpenApiRouter::new()
        .routes(routes!(routes::knowledge::upload, routes::knowledge::list))
        .layer(DefaultBodyLimit::max(
            max_upload.saturating_add(1024 * 1024),
        ));
    OpenApiRouter::new()
        .merge(upload)
        .routes(routes!(routes::knowledge::get, routes::knowledge::delete))
        .routes(routes!(routes::knowledge::search))
        .routes(routes!(routes::knowledge::ask))
}

/// The whole service: API routes, OpenAPI document and reference page, layers.
pub fn router(state: AppState) -> Router {
    let (api_router, api) = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(metrics::metrics_handler))
        .routes(routes!(routes::config::validate_config))
        .merge(ingestion_routes(state.config.ingest.max_in_flight))
        .routes(routes!(routes::approvals::list))
        .routes(routes!(routes::approvals::approve))
        .routes(routes!(routes::approvals::reject))
        .routes(routes!(routes::slack::interactions))
        .routes(routes!(routes::slack::commands))
        .routes(routes!(routes::incidents::list))
        .routes(routes!(routes::incidents::get))
        .routes(routes!(routes::incidents::resolve))
        .routes(routes!(routes::incidents::changes))
        .merge(knowledge_routes(state.config.knowledge.max_upload_bytes))
        .split_for_parts();
    let api = Arc::new(api);

    let server = &state.config.server;
    let timeout = Duration::from_secs(server.request_timeout_secs);
    let cors = cors_layer(&server.cors_allowed_origins);
    let body_limit = server.body_limit_bytes;

    api_router
        .merge(openapi::routes(api))
        .route("/", axum::routing::get(routes::index::index))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(timeout, timeout_layer))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request| {
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
                    internal_response(&"handler panicked")
                }))
                .layer(middleware::from_fn(metrics::track))
                .layer(CompressionLayer::new())
                .option_layer(cors),
        )
        .with_state(state)
}

/// The ingestion endpoints, behind a limit on requests in flight: beyond it
/// a sender gets 429 at once, before its body is read, so a storm costs
/// bounded memory.
fn ingestion_routes(max_in_flight: usize) -> OpenApiRouter<AppState> {
    let permits = Arc::new(Semaphore::new(
        max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
    ));
    OpenApiRouter::new()
        .routes(routes!(routes::webhooks::alertmanager))
        .routes(routes!(routes::webhooks::grafana))
        .routes(routes!(routes::webhooks::pagerduty))
        .routes(routes!(routes::webhooks::github))
        .routes(routes!(routes::alerts::post_alerts))
        .layer(middleware::from_fn_with_state(permits, in_flight_limit))
}

async fn in_flight_limit(
    State(permits): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            ::metrics::counter!("cerebro_ingest_rejected_total", "source" => "any", "reason" => "in_flight").increment(1);
            ApiError::Overloaded {
                message: "too many ingestion requests in flight, retry shortly".into(),
                retry_after: Duration::from_secs(1),
            }
            .into_response()
        }
    }
}

/// CORS is off unless origins are configured.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST, Method::DELETE]),
    )
}

/// A handler that runs past the configured timeout is answered 503; the
/// client can retry.
async fn timeout_layer(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Unavailable {
            message: format!("request timed out after {}s", limit.as_secs()),
            retry_after: Some(Duration::from_secs(1)),
        }
        .into_response(),
    }
}

async fn not_found(req: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(ErrorBody {
            error: format!("no route for {} {}", req.method(), req.uri().path()),
            field: None,
            error_id: None,
        }),
    )
        .into_response()
}
