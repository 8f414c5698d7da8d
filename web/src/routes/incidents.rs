//! Incidents and the change feed.

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery as Query;
use crate::extract::RawBody;
use axum::Json;
use axum::extract::{Path, State};
use brain::domain::{Alert, Change, Incident, IncidentStatus, TimelineEvent};
use brain::ids::IncidentId;
use brain::store::{ChangeFilter, IncidentFilter};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
pub struct IncidentQuery {
    /// `open`, `investigating`, `awaiting_approval`, `remediating`, `resolved`, `closed`.
    status: Option<String>,
    service: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// Incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery),
    responses(
        (status = 200, description = "incidents", body = [Incident]),
        (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<IncidentQuery>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            IncidentStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status {s:?}"), "status"))
        })
        .transpose()?;
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::bad_request(
            "limit must be between 1 and 1000",
            "limit",
        ));
    }
    let filter = IncidentFilter {
        org_id: Some("default".into()),
        status,
        service: q.service,
        limit: q.limit,
    };
    Ok(Json(state.store.list_incidents(&filter).await?))
}

/// One incident with its alerts, timeline and suspected changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDetail {
    incident: Incident,
    alerts: Vec<Alert>,
    timeline: Vec<TimelineEvent>,
    /// Recent changes to the service, attached as suspects.
    suspects: Vec<Change>,
}

fn parse_id(id: &str) -> Result<IncidentId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an incident id"), "id"))
}

/// One incident in full.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "incident id")),
    responses(
        (status = 200, description = "the incident", body = IncidentDetail),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = parse_id(&id)?;
    let incident = state.store.get_incident(id).await?;
    let (alerts, timeline, suspects) = tokio::try_join!(
        state.store.alerts_for_incident(id),
        state.store.timeline(id),
        state.store.suspects_for_incident(id),
    )?;
    Ok(Json(IncidentDetail {
        incident,
        alerts,
        timeline,
        suspects,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// Why it is resolved; goes on the timeline.
    reason: Option<String>,
}

/// Resolve an incident by hand.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = String, Path, description = "incident id")),
    request_body(content = Option<ResolveRequest>, description = "optional reason"),
    responses(
        (status = 200, description = "resolved", body = Incident),
        (status = 400, description = "bad id or body", body = ErrorBody),
        (status = 404, description = "no such incident", body = ErrorBody),
        (status = 409, description = "already resolved or closed", body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<Incident>, ApiError> {
    let id = parse_id(&id)?;
    let req: ResolveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveRequest::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let reason = req.reason.unwrap_or_else(|| "resolved by hand".into());
    let incident = state
        .store
        .transition_incident(id, IncidentStatus::Resolved, "api", &reason)
        .await?;
    Ok(Json(incident))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChangeQuery {
    service: Option<String>,
    /// RFC 3339; only changes at or after this time.
    since: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

/// The change feed: deploys, pushes, merges; newest first.
#[utoipa::path(get, path = "/api/v1/changes", tag = "incidents", params(ChangeQuery),
    responses(
        (status = 200, description = "changes", body = [Change]),
        (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    Query(q): Query<ChangeQuery>,
) -> Result<Json<Vec<Change>>, ApiError> {
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::bad_request(
            "limit must be between 1 and 1000",
            "limit",
        ));
    }
    let filter = ChangeFilter {
        org_id: Some("default".into()),
        service: q.service,
        since: q.since,
        limit: q.limit,
    };
    Ok(Json(state.store.list_changes(&filter).await?))
}
