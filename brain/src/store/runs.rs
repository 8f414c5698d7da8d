//! The orchestrator's durable progress: one row per incident with the last
//! step done and what the next steps need. Workers claim a row with a
//! lease; a crashed worker's row is claimed again once its lease lapses.
//! On PostgreSQL the claim skips rows another worker is claiming
//! (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer, which
//! serialises claims on its own.

use super::incidents::{foreign_key_to_not_found, now};
use super::{Db, Store, StoreError, with_db};
use crate::ids::IncidentId;
use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;
use uuid::Uuid;

/// The last step of an incident's run that finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum RunStep {
    Queued,
    Investigated,
    Diagnosed,
    Proposed,
    Done,
}

impl RunStep {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStep::Queued => "queued",
            RunStep::Investigated => "investigated",
            RunStep::Diagnosed => "diagnosed",
            RunStep::Proposed => "proposed",
            RunStep::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<RunStep> {
        [
            RunStep::Queued,
            RunStep::Investigated,
            RunStep::Diagnosed,
            RunStep::Proposed,
            RunStep::Done,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An incident's run as a worker holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRun {
    pub incident_id: IncidentId,
    pub step: RunStep,
    /// What the finished steps produced that later ones need.
    pub state: serde_json::Value,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    incident_id: Uuid,
    step: String,
    state: Json<serde_json::Value>,
    attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
}

impl TryFrom<RunRow> for IncidentRun {
    type Error = StoreError;
    fn try_from(r: RunRow) -> Result<Self, StoreError> {
        Ok(IncidentRun {
            incident_id: IncidentId(r.incident_id),
            step: RunStep::parse(&r.step).ok_or_else(|| {
                StoreError::corrupt("incident_runs", format!("step {:?}", r.step))
            })?,
            state: r.state.0,
            attempts: r.attempts,
            lease_owner: r.lease_owner,
            lease_until: r.lease_until,
        })
    }
}

const COLUMNS: &str = "incident_id, step, state, attempts, lease_owner, lease_until";

impl Store {
    /// Queue an incident for the orchestrator; false when it already has
    /// a run.
    pub async fn enqueue_run(&self, incident: IncidentId) -> Result<bool, StoreError> {
        let at = now();
        let added = with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO incident_runs (incident_id, step, state, attempts, updated_at)
                 VALUES ($1, $2, $3, 0, $4) ON CONFLICT (incident_id) DO NOTHING",
            )
            .bind(incident.0)
            .bind(RunStep::Queued.as_str())
            .bind(Json(serde_json::json!({})))
            .bind(at)
            .execute(p)
            .await
            .map_err(|e| foreign_key_to_not_found(e, || format!("incident {incident}")))?
            .rows_affected()
        });
        Ok(added == 1)
    }

    /// Take the oldest unfinished run nobody holds (or whose holder's
    /// lease lapsed) for `lease`.
    pub async fn claim_run(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<IncidentRun>, StoreError> {
        let at = now();
        let until = at + lease;
        let row: Option<RunRow> = match &self.db {
            Db::Postgres(p) => {
                let sql = format!(
                    "UPDATE incident_runs SET lease_owner = $1, lease_until = $2,
                         attempts = attempts + 1, updated_at = $3
                     WHERE incident_id = (
                         SELECT incident_id FROM incident_runs
                         WHERE step <> 'done' AND (lease_until IS NULL OR lease_until < $3)
                         ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING {COLUMNS}"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(worker)
                    .bind(until)
                    .bind(at)
                    .fetch_optional(p)
                    .await?
            }
            Db::Sqlite { write: p, .. } => {
                let sql = format!(
                    "UPDATE incident_runs SET lease_owner = $1, lease_until = $2,
                         attempts = attempts + 1, updated_at = $3
                     WHERE incident_id = (
                         SELECT incident_id FROM incident_runs
                         WHERE step <> 'done' AND (lease_until IS NULL OR lease_until < $3)
                         ORDER BY updated_at LIMIT 1)
                     RETURNING {COLUMNS}"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(worker)
                    .bind(until)
                    .bind(at)
                    .fetch_optional(p)
                    .await?
            }
        };
        row.map(IncidentRun::try_from).transpose()
    }

    /// Record that `worker` finished step `to` (from `from`) with the state
    /// later steps need; false when the worker no longer holds the run
    /// (its lease lapsed and another took it) or the step moved.
    pub async fn advance_run(
        &self,
        incident: IncidentId,
        worker: &str,
        from: RunStep,
        to: RunStep,
        state: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let at = now();
        let moved = with_db!(self, write, |p| {
            sqlx::query(
                "UPDATE incident_runs SET step = $1, state = $2, updated_at = $3
                 WHERE incident_id = $4 AND step = $5 AND lease_owner = $6",
            )
            .bind(to.as_str())
            .bind(Json(state))
            .bind(at)
            .bind(incident.0)
            .bind(from.as_str())
            .bind(worker)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(moved == 1)
    }

    /// Queue every open incident that has no run yet; returns how many.
    pub async fn enqueue_open_incidents(&self) -> Result<u64, StoreError> {
        let at = now();
        let n = with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO incident_runs (incident_id, step, state, attempts, updated_at)
                 SELECT i.id, $1, $2, 0, $3 FROM incidents i
                 WHERE i.status = 'open'
                   AND NOT EXISTS (SELECT 1 FROM incident_runs r WHERE r.incident_id = i.id)",
            )
            .bind(RunStep::Queued.as_str())
            .bind(Json(serde_json::json!({})))
            .bind(at)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Give a run back before its lease ends (a worker shutting down).
    pub async fn release_run(&self, incident: IncidentId, worker: &str) -> Result<(), StoreError> {
        with_db!(self, write, |p| {
            sqlx::query(
                "UPDATE incident_runs SET lease_owner = NULL, lease_until = NULL
                 WHERE incident_id = $1 AND lease_owner = $2",
            )
            .bind(incident.0)
            .bind(worker)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn get_run(&self, incident: IncidentId) -> Result<Option<IncidentRun>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM incident_runs WHERE incident_id = $1");
        let row: Option<RunRow> = with_db!(self, read, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(incident.0)
                .fetch_optional(p)
                .await?
        });
        row.map(IncidentRun::try_from).transpose()
    }
}
