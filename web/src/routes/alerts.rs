//! `POST /api/v1/alerts`: the generic alert of the scenario spec, for scripts.

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::RawBody;
use crate::ingest::{IngestResponse, submit};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use brain::ingest::generic::{self, GenericAlert};
use brain::store::IngestItems;

/// Post one alert or an array of them. Send `Idempotency-Key` to make a
/// retry of the same request change nothing.
#[utoipa::path(post, path = "/api/v1/alerts", tag = "ingestion",
    request_body(content = GenericAlert, description = "one alert, or an array of them"),
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key changes nothing")),
    responses(
        (status = 200, description = "committed", body = IngestResponse),
        (status = 400, description = "malformed body; `field` names the JSON path", body = ErrorBody),
        (status = 429, description = "queue full; see Retry-After", body = ErrorBody)))]
pub async fn post_alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IngestResponse>, ApiError> {
    let alerts = generic::parse(&body)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    Ok(Json(
        submit(
            &state,
            "generic",
            key,
            IngestItems::Alerts(alerts),
            body.len(),
        )
        .await?,
    ))
}
