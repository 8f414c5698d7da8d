//! Webhook receivers: Alertmanager, Grafana, PagerDuty v3 and GitHub.
//! Signed sources are verified over the raw body before anything is parsed
//! or stored; an unsigned or wrongly signed request is 401 and leaves no trace.

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::RawBody;
use crate::ingest::{IngestResponse, body_key, submit};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use brain::config::Secret;
use brain::ingest::pagerduty::PagerDutyEvent;
use brain::ingest::{alertmanager, github, grafana, pagerduty, signature};
use brain::store::IngestItems;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn secrets(list: &[Secret]) -> Vec<&[u8]> {
    list.iter().map(|s| s.expose().as_bytes()).collect()
}

fn reject(source: &'static str, why: &str) -> ApiError {
    metrics::counter!("cerebro_ingest_rejected_total", "source" => source, "reason" => "signature")
        .increment(1);
    tracing::warn!(source, reason = why, "webhook signature rejected");
    ApiError::Unauthorized(why.to_owned())
}

/// Alertmanager webhook (version 4), firing and resolved.
#[utoipa::path(post, path = "/webhooks/alertmanager", tag = "ingestion",
    request_body(content = Object, description = "Alertmanager webhook body, version 4"),
    responses(
        (status = 200, description = "committed", body = IngestResponse),
        (status = 400, description = "malformed body; `field` names the JSON path", body = ErrorBody),
        (status = 413, description = "body over the limit", body = ErrorBody),
        (status = 429, description = "queue full; see Retry-After", body = ErrorBody)))]
pub async fn alertmanager(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<IngestResponse>, ApiError> {
    let alerts = alertmanager::parse(&body)?;
    // Alertmanager retries with the same body: the body is the delivery key.
    let key = body_key(&body);
    Ok(Json(
        submit(
            &state,
            "alertmanager",
            Some(key),
            IngestItems::Alerts(alerts),
            body.len(),
        )
        .await?,
    ))
}

/// Grafana unified-alerting webhook.
#[utoipa::path(post, path = "/webhooks/grafana", tag = "ingestion",
    request_body(content = Object, description = "Grafana webhook contact point body"),
    responses(
        (status = 200, description = "committed", body = IngestResponse),
        (status = 400, description = "malformed body; `field` names the JSON path", body = ErrorBody),
        (status = 429, description = "queue full; see Retry-After", body = ErrorBody)))]
pub async fn grafana(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<IngestResponse>, ApiError> {
    let alerts = grafana::parse(&body)?;
    let key = body_key(&body);
    Ok(Json(
        submit(
            &state,
            "grafana",
            Some(key),
            IngestItems::Alerts(alerts),
            body.len(),
        )
        .await?,
    ))
}

/// PagerDuty webhook v3, verified with `X-PagerDuty-Signature`.
#[utoipa::path(post, path = "/webhooks/pagerduty", tag = "ingestion",
    request_body(content = Object, description = "PagerDuty webhook v3 event"),
    params(("X-PagerDuty-Signature" = String, Header, description = "v1=<hex HMAC-SHA256 of the body>, comma-separated during rotation")),
    responses(
        (status = 200, description = "committed, a duplicate, or ignored", body = IngestResponse),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "missing or wrong signature; nothing stored", body = ErrorBody),
        (status = 429, description = "queue full; see Retry-After", body = ErrorBody)))]
pub async fn pagerduty(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IngestResponse>, ApiError> {
    let keys = secrets(&state.config.ingest.pagerduty_secrets);
    if keys.is_empty() {
        return Err(reject(
            "pagerduty",
            "no PagerDuty webhook secret is configured (ingest.pagerduty_secrets)",
        ));
    }
    let Some(sig) = header(&headers, "x-pagerduty-signature") else {
        return Err(reject("pagerduty", "missing X-PagerDuty-Signature"));
    };
    if !signature::pagerduty_valid(sig, &body, &keys) {
        return Err(reject("pagerduty", "X-PagerDuty-Signature does not match"));
    }
    let parsed = pagerduty::parse(&body)?;
    let items = match parsed.event {
        PagerDutyEvent::Alert(a) => IngestItems::Alerts(vec![*a]),
        PagerDutyEvent::Note {
            pagerduty_incident,
            content,
            author,
        } => IngestItems::Note {
            source: "pagerduty".into(),
            fingerprint: pagerduty_incident,
            content,
            author,
        },
        PagerDutyEvent::Ignored { .. } => return Ok(Json(IngestResponse::ignored())),
    };
    Ok(Json(
        submit(
            &state,
            "pagerduty",
            Some(parsed.event_id),
            items,
            body.len(),
        )
        .await?,
    ))
}

/// GitHub webhook, verified with `X-Hub-Signature-256`: deployments, pushes
/// to the default branch and merged pull requests join the change feed.
#[utoipa::path(post, path = "/webhooks/github", tag = "ingestion",
    request_body(content = Object, description = "GitHub webhook payload"),
    params(
        ("X-GitHub-Event" = String, Header, description = "deployment_status, push, pull_request (others are ignored)"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "delivery id; a redelivery changes nothing"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body>")),
    responses(
        (status = 200, description = "committed, a duplicate, or ignored", body = IngestResponse),
        (status = 400, description = "malformed body or missing event header", body = ErrorBody),
        (status = 401, description = "missing or wrong signature; nothing stored", body = ErrorBody)))]
pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IngestResponse>, ApiError> {
    let keys = secrets(&state.config.ingest.github_secrets);
    if keys.is_empty() {
        return Err(reject(
            "github",
            "no GitHub webhook secret is configured (ingest.github_secrets)",
        ));
    }
    let Some(sig) = header(&headers, "x-hub-signature-256") else {
        return Err(reject("github", "missing X-Hub-Signature-256"));
    };
    if !signature::github_valid(sig, &body, &keys) {
        return Err(reject("github", "X-Hub-Signature-256 does not match"));
    }
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| ApiError::bad_request("missing X-GitHub-Event header", "X-GitHub-Event"))?;
    let Some(change) = github::parse(event, &body)? else {
        return Ok(Json(IngestResponse::ignored()));
    };
    let delivery = header(&headers, "x-github-delivery").map(str::to_owned);
    Ok(Json(
        submit(
            &state,
            "github",
            delivery,
            IngestItems::Change(change),
            body.len(),
        )
        .await?,
    ))
}
