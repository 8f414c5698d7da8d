//! Incidents, their alerts and their timeline.

use super::{BeginWrite, Store, StoreError, with_db};
use crate::domain::{Alert, AlertStatus, Incident, IncidentStatus, Severity, TimelineEvent};
use crate::ids::{AlertId, IncidentId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

/// Now, at the microsecond precision both databases keep.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// What is needed to open an incident.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub org_id: String,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub group_key: String,
}

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub org_id: Option<String>,
    pub status: Option<IncidentStatus>,
    pub service: Option<String>,
    pub limit: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: Uuid,
    org_id: String,
    title: String,
    status: String,
    severity: String,
    service: Option<String>,
    group_key: String,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

impl TryFrom<IncidentRow> for Incident {
    type Error = StoreError;
    fn try_from(r: IncidentRow) -> Result<Self, StoreError> {
        Ok(Incident {
            id: IncidentId(r.id),
            org_id: r.org_id,
            title: r.title,
            status: IncidentStatus::parse(&r.status).ok_or_else(|| {
                StoreError::corrupt("incidents", format!("status {:?}", r.status))
            })?,
            severity: Severity::parse(&r.severity).ok_or_else(|| {
                StoreError::corrupt("incidents", format!("severity {:?}", r.severity))
            })?,
            service: r.service,
            group_key: r.group_key,
            opened_at: r.opened_at,
            updated_at: r.updated_at,
            resolved_at: r.resolved_at,
        })
    }
}

macro_rules! incident_columns {
    () => {
        "id, org_id, title, status, severity, service, group_key, opened_at, updated_at, resolved_at"
    };
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    seq: i64,
    incident_id: Uuid,
    at: DateTime<Utc>,
    kind: String,
    actor: String,
    message: String,
    data: Json<serde_json::Value>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: Uuid,
    incident_id: Option<Uuid>,
    source: String,
    fingerprint: String,
    status: String,
    severity: String,
    service: Option<String>,
    namespace: Option<String>,
    resource: Option<String>,
    labels: Json<std::collections::BTreeMap<String, String>>,
    summary: String,
    description: Option<String>,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
    count: i64,
    raw: Json<serde_json::Value>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> Result<Self, StoreError> {
        Ok(Alert {
            id: AlertId(r.id),
            incident_id: r.incident_id.map(IncidentId),
            source: r.source,
            fingerprint: r.fingerprint,
            status: AlertStatus::parse(&r.status)
                .ok_or_else(|| StoreError::corrupt("alerts", format!("status {:?}", r.status)))?,
            severity: Severity::parse(&r.severity).ok_or_else(|| {
                StoreError::corrupt("alerts", format!("severity {:?}", r.severity))
            })?,
            service: r.service,
            namespace: r.namespace,
            resource: r.resource,
            labels: r.labels.0,
            summary: r.summary,
            description: r.description,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            last_seen: r.last_seen,
            count: r.count,
            raw: r.raw.0,
        })
    }
}

macro_rules! alert_columns {
    () => {
        "id, incident_id, source, fingerprint, status, severity, service, \
     namespace, resource, labels, summary, description, starts_at, ends_at, last_seen, count, raw"
    };
}

impl Store {
    /// Open a new incident, with its first timeline event, in one transaction.
    pub async fn create_incident(&self, new: NewIncident) -> Result<Incident, StoreError> {
        let id = IncidentId::new();
        let at = now();
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO incidents (id, org_id, title, status, severity, service, group_key, opened_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(id.0)
            .bind(&new.org_id)
            .bind(&new.title)
            .bind(IncidentStatus::Open.as_str())
            .bind(new.severity.as_str())
            .bind(&new.service)
            .bind(&new.group_key)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO timeline_events (incident_id, at, kind, actor, message, data)
                 VALUES ($1, $2, 'status_changed', 'system', 'incident opened', $3)",
            )
            .bind(id.0)
            .bind(at)
            .bind(Json(serde_json::json!({"to": "open"})))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(Incident {
            id,
            org_id: new.org_id,
            title: new.title,
            status: IncidentStatus::Open,
            severity: new.severity,
            service: new.service,
            group_key: new.group_key,
            opened_at: at,
            updated_at: at,
            resolved_at: None,
        })
    }

    pub async fn get_incident(&self, id: IncidentId) -> Result<Incident, StoreError> {
        let sql = concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents WHERE id = $1"
        );
        let row: Option<IncidentRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_optional(p).await?
        });
        row.ok_or_else(|| StoreError::not_found(format!("incident {id}")))?
            .try_into()
    }

    /// Newest first.
    pub async fn list_incidents(&self, f: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let sql = concat!("SELECT ", incident_columns!(), " FROM incidents
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR service = $3)
             ORDER BY opened_at DESC, id DESC LIMIT $4");
        let rows: Vec<IncidentRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql)
                .bind(&f.org_id)
                .bind(f.status.map(IncidentStatus::as_str))
                .bind(&f.service)
                .bind(f.limit.unwrap_or(100).clamp(1, 1000))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Move an incident along its lifecycle, recording who did it and why.
    /// An transition the lifecycle forbids is a [`StoreError::Conflict`].
    pub async fn transition_incident(
        &self,
        id: IncidentId,
        to: IncidentStatus,
        actor: &str,
        message: &str,
    ) -> Result<Incident, StoreError> {
        let at = now();
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            let sql = concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE id = $1"
            );
            let row: Option<IncidentRow> = sqlx::query_as(sql)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            let current: Incident = row
                .ok_or_else(|| StoreError::not_found(format!("incident {id}")))?
                .try_into()?;
            current.status.check(to).map_err(|e| StoreError::Conflict {
                what: e.to_string(),
            })?;
            let resolved_at = match to {
                IncidentStatus::Resolved => Some(at),
                IncidentStatus::Closed => current.resolved_at,
                _ => None,
            };
            // The status guard makes a concurrent transition lose cleanly.
            let changed = sqlx::query(
                "UPDATE incidents SET status = $1, updated_at = $2, resolved_at = $3
                 WHERE id = $4 AND status = $5",
            )
            .bind(to.as_str())
            .bind(at)
            .bind(resolved_at)
            .bind(id.0)
            .bind(current.status.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                return Err(StoreError::Conflict {
                    what: format!("incident {id} changed concurrently"),
                });
            }
            sqlx::query(
                "INSERT INTO timeline_events (incident_id, at, kind, actor, message, data)
                 VALUES ($1, $2, 'status_changed', $3, $4, $5)",
            )
            .bind(id.0)
            .bind(at)
            .bind(actor)
            .bind(message)
            .bind(Json(serde_json::json!({"from": current.status, "to": to})))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Incident {
                status: to,
                updated_at: at,
                resolved_at,
                ..current
            })
        })
    }

    /// Append an event to an incident's timeline.
    pub async fn append_timeline(
        &self,
        incident_id: IncidentId,
        kind: &str,
        actor: &str,
        message: &str,
        data: serde_json::Value,
    ) -> Result<i64, StoreError> {
        let seq: i64 = with_db!(self, write, |p| {
            sqlx::query_scalar(
                "INSERT INTO timeline_events (incident_id, at, kind, actor, message, data)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            )
            .bind(incident_id.0)
            .bind(now())
            .bind(kind)
            .bind(actor)
            .bind(message)
            .bind(Json(data))
            .fetch_one(p)
            .await
            .map_err(|e| foreign_key_to_not_found(e, || format!("incident {incident_id}")))?
        });
        Ok(seq)
    }

    /// An incident's timeline, oldest first.
    pub async fn timeline(
        &self,
        incident_id: IncidentId,
    ) -> Result<Vec<TimelineEvent>, StoreError> {
        let rows: Vec<TimelineRow> = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT seq, incident_id, at, kind, actor, message, data
                 FROM timeline_events WHERE incident_id = $1 ORDER BY seq",
            )
            .bind(incident_id.0)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| TimelineEvent {
                seq: r.seq,
                incident_id: IncidentId(r.incident_id),
                at: r.at,
                kind: r.kind,
                actor: r.actor,
                message: r.message,
                data: r.data.0,
            })
            .collect())
    }

    /// Store one alert as given. A second firing alert with the same source
    /// and fingerprint is a [`StoreError::Conflict`].
    pub async fn insert_alert(&self, a: &Alert) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO alerts (",
            alert_columns!(),
            ")
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        );
        with_db!(self, write, |p| {
            sqlx::query(sql)
                .bind(a.id.0)
                .bind(a.incident_id.map(|i| i.0))
                .bind(&a.source)
                .bind(&a.fingerprint)
                .bind(a.status.as_str())
                .bind(a.severity.as_str())
                .bind(&a.service)
                .bind(&a.namespace)
                .bind(&a.resource)
                .bind(Json(&a.labels))
                .bind(&a.summary)
                .bind(&a.description)
                .bind(a.starts_at)
                .bind(a.ends_at)
                .bind(a.last_seen)
                .bind(a.count)
                .bind(Json(&a.raw))
                .execute(p)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
                        what: format!(
                            "a firing {} alert with fingerprint {} exists",
                            a.source, a.fingerprint
                        ),
                    },
                    other => other.into(),
                })?;
        });
        Ok(())
    }

    pub async fn get_alert(&self, id: AlertId) -> Result<Alert, StoreError> {
        let sql = concat!("SELECT ", alert_columns!(), " FROM alerts WHERE id = $1");
        let row: Option<AlertRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_optional(p).await?
        });
        row.ok_or_else(|| StoreError::not_found(format!("alert {id}")))?
            .try_into()
    }

    /// The alerts of an incident, oldest first.
    pub async fn alerts_for_incident(&self, id: IncidentId) -> Result<Vec<Alert>, StoreError> {
        let sql = concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE incident_id = $1 ORDER BY starts_at, id"
        );
        let rows: Vec<AlertRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_all(p).await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

/// Map a foreign-key violation to "the parent was not found".
pub(crate) fn foreign_key_to_not_found(
    e: sqlx::Error,
    what: impl FnOnce() -> String,
) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::not_found(what()),
        _ => e.into(),
    }
}
