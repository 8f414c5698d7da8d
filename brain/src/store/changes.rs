//! Reading the change feed, incident suspects and the agents' queue.

use super::{Store, StoreError, with_db};
use crate::domain::Change;
use crate::ids::IncidentId;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: Uuid,
    org_id: String,
    source: String,
    external_id: String,
    kind: String,
    service: Option<String>,
    target: String,
    environment: Option<String>,
    description: String,
    author: Option<String>,
    at: DateTime<Utc>,
    url: Option<String>,
}

impl From<ChangeRow> for Change {
    fn from(r: ChangeRow) -> Self {
        Change {
            id: r.id,
            org_id: r.org_id,
            source: r.source,
            external_id: r.external_id,
            kind: r.kind,
            service: r.service,
            target: r.target,
            environment: r.environment,
            description: r.description,
            author: r.author,
            at: r.at,
            url: r.url,
        }
    }
}

macro_rules! change_columns {
    () => {
        "c.id, c.org_id, c.source, c.external_id, c.kind, c.service, c.target, c.environment, c.description, c.author, c.at, c.url"
    };
}

/// Which changes to list.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub org_id: Option<String>,
    pub service: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

impl Store {
    /// Changes newest first.
    pub async fn list_changes(&self, f: &ChangeFilter) -> Result<Vec<Change>, StoreError> {
        let sql = concat!(
            "SELECT ",
            change_columns!(),
            " FROM changes c WHERE ($1 IS NULL OR c.org_id = $1) AND ($2 IS NULL OR c.service = $2)
              AND ($3 IS NULL OR c.at >= $3) ORDER BY c.at DESC, c.id DESC LIMIT $4"
        );
        let rows: Vec<ChangeRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql)
                .bind(&f.org_id)
                .bind(&f.service)
                .bind(f.since)
                .bind(f.limit.unwrap_or(100).clamp(1, 1000))
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The changes attached to an incident as suspects, oldest first.
    pub async fn suspects_for_incident(&self, id: IncidentId) -> Result<Vec<Change>, StoreError> {
        let sql = concat!(
            "SELECT ",
            change_columns!(),
            " FROM changes c JOIN incident_changes ic ON ic.change_id = c.id
              WHERE ic.incident_id = $1 ORDER BY c.at, c.id"
        );
        let rows: Vec<ChangeRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Incidents waiting for the agents, oldest first.
    pub async fn queued_incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        let ids: Vec<Uuid> = with_db!(self, read, |p| {
            sqlx::query_scalar(
                "SELECT incident_id FROM agent_queue ORDER BY enqueued_at, incident_id",
            )
            .fetch_all(p)
            .await?
        });
        Ok(ids.into_iter().map(IncidentId).collect())
    }
}
