//! Ingestion in the store: deduplication by fingerprint, idempotent
//! redelivery, grouping alerts into incidents (same group key, or same
//! service within a window), reopening a recently resolved incident instead
//! of opening a twin, the change feed and suspects, and the agents' queue.
//!
//! A batch of requests commits in one transaction (group commit); the caller
//! answers each request only after the commit.

use super::incidents::now;
use super::{Db, Store, StoreError};
use crate::domain::{AlertStatus, IncidentStatus};
use crate::ids::{AlertId, IncidentId};
use crate::ingest::{AlertInput, ChangeInput};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

/// Windows that shape grouping and idempotency.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// A new alert for a service joins that service's active incident if the
    /// incident was updated this recently.
    pub group_window: Duration,
    /// A resolved incident reopens when its group fires again this soon.
    pub reopen_grace: Duration,
    /// A delivery key seen this recently is a redelivery.
    pub redelivery_window: Duration,
    /// Changes to the service this long before an alert are suspects.
    pub change_lookback: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            group_window: Duration::minutes(15),
            reopen_grace: Duration::minutes(30),
            redelivery_window: Duration::minutes(10),
            change_lookback: Duration::hours(2),
        }
    }
}

/// Identifies one webhook delivery, to make redelivery idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryKey {
    pub source: String,
    pub key: String,
}

/// What one request carries.
#[derive(Debug, Clone)]
pub enum IngestItems {
    Alerts(Vec<AlertInput>),
    Change(ChangeInput),
    /// A note about the incident holding the alert `(source, fingerprint)`.
    Note {
        source: String,
        fingerprint: String,
        content: String,
        author: Option<String>,
    },
}

/// One request of a batch.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub org_id: String,
    pub delivery: Option<DeliveryKey>,
    pub items: IngestItems,
}

/// What happened to one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcomeKind {
    /// New alert that opened a new incident.
    Opened,
    /// New alert that joined an active incident.
    Joined,
    /// New alert that reopened a recently resolved incident.
    Reopened,
    /// Repeat of a firing alert: its count and last-seen time were updated.
    Deduplicated,
    /// A firing alert resolved.
    Resolved,
    /// A resolution for an alert that is not firing here: nothing changed.
    IgnoredResolution,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AlertOutcome {
    pub outcome: AlertOutcomeKind,
    pub alert_id: Option<AlertId>,
    pub incident_id: Option<IncidentId>,
    pub fingerprint: String,
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// The same delivery was already accepted: nothing changed.
    Duplicate,
    Alerts {
        alerts: Vec<AlertOutcome>,
    },
    Change {
        change_id: Uuid,
        created: bool,
        attached_to: Vec<IncidentId>,
    },
    Note {
        incident_id: Option<IncidentId>,
    },
}

impl Store {
    /// Ingest a batch in one transaction. On error nothing of the batch is
    /// committed; callers retry requests one by one to isolate a bad one.
    pub async fn ingest(
        &self,
        settings: &IngestSettings,
        batch: Vec<IngestRequest>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        match &self.db {
            Db::Sqlite { ingest, .. } => ingest.ingest(settings, batch).await,
            Db::Postgres(pool) => on_postgres::run(pool, settings, &batch).await,
        }
    }

    /// Whether the store groups single requests into commits itself (the
    /// SQLite ingestion thread does).
    pub(crate) fn groups_ingestion(&self) -> bool {
        matches!(self.db, Db::Sqlite { .. })
    }

    /// Commit one request together with whatever else is queued (SQLite);
    /// on PostgreSQL, alone.
    pub(crate) async fn submit_ingest(
        &self,
        settings: &IngestSettings,
        request: IngestRequest,
    ) -> Result<IngestOutcome, StoreError> {
        match &self.db {
            Db::Sqlite { ingest, .. } => ingest.submit(settings, request).await,
            Db::Postgres(pool) => on_postgres::run(pool, settings, std::slice::from_ref(&request))
                .await?
                .pop()
                .ok_or_else(|| StoreError::Engine("empty ingest result".into())),
        }
    }

    /// Forget delivery keys older than the redelivery window.
    pub async fn prune_deliveries(&self, settings: &IngestSettings) -> Result<u64, StoreError> {
        let cutoff = now() - settings.redelivery_window;
        let n = super::with_db!(self, write, |p| {
            sqlx::query("DELETE FROM deliveries WHERE received_at < $1")
                .bind(cutoff)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}

/// The PostgreSQL path (the SQLite path is `sqlite_ingest.rs`, on its own thread).
mod on_postgres {
    use super::*;

    type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

    pub(super) async fn run(
        pool: &sqlx::PgPool,
        s: &IngestSettings,
        batch: &[IngestRequest],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut tx = pool.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            out.push(one(&mut tx, s, r).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn one(
        tx: &mut Tx<'_>,
        s: &IngestSettings,
        r: &IngestRequest,
    ) -> Result<IngestOutcome, StoreError> {
        let at = now();
        if let Some(d) = &r.delivery {
            let seen: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT received_at FROM deliveries WHERE source = $1 AND key = $2",
            )
            .bind(&d.source)
            .bind(&d.key)
            .fetch_optional(&mut **tx)
            .await?;
            if seen.is_some_and(|t| at - t < s.redelivery_window) {
                return Ok(IngestOutcome::Duplicate);
            }
            sqlx::query(
                        "INSERT INTO deliveries (source, key, received_at) VALUES ($1, $2, $3)
                         ON CONFLICT (source, key) DO UPDATE SET received_at = excluded.received_at",
                    )
                    .bind(&d.source)
                    .bind(&d.key)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
        }
        match &r.items {
            IngestItems::Alerts(alerts) => {
                let mut outcomes = Vec::with_capacity(alerts.len());
                for a in alerts {
                    outcomes.push(match a.status {
                        AlertStatus::Firing => firing(tx, s, &r.org_id, a, at).await?,
                        AlertStatus::Resolved => resolved(tx, a, at).await?,
                    });
                }
                Ok(IngestOutcome::Alerts { alerts: outcomes })
            }
            IngestItems::Change(c) => change(tx, &r.org_id, c, at).await,
            IngestItems::Note {
                source,
                fingerprint,
                content,
                author,
            } => {
                let incident: Option<Option<Uuid>> = sqlx::query_scalar(
                    "SELECT incident_id FROM alerts WHERE source = $1 AND fingerprint = $2
                             ORDER BY last_seen DESC LIMIT 1",
                )
                .bind(source)
                .bind(fingerprint)
                .fetch_optional(&mut **tx)
                .await?;
                let incident = incident.flatten();
                if let Some(id) = incident {
                    let actor = author
                        .as_deref()
                        .map_or_else(|| source.clone(), |a| format!("{source}:{a}"));
                    timeline(tx, id, at, "note", &actor, content, serde_json::json!({})).await?;
                }
                Ok(IngestOutcome::Note {
                    incident_id: incident.map(IncidentId),
                })
            }
        }
    }

    async fn timeline(
        tx: &mut Tx<'_>,
        incident: Uuid,
        at: DateTime<Utc>,
        kind: &str,
        actor: &str,
        message: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO timeline_events (incident_id, at, kind, actor, message, data)
                     VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(incident)
        .bind(at)
        .bind(kind)
        .bind(actor)
        .bind(message)
        .bind(Json(data))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn enqueue(tx: &mut Tx<'_>, incident: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_queue (incident_id, enqueued_at, available_at) VALUES ($1, $2, $2)
                     ON CONFLICT (incident_id) DO UPDATE SET available_at = excluded.available_at,
                         lease_owner = NULL, lease_until = NULL",
        )
        .bind(incident)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn firing(
        tx: &mut Tx<'_>,
        s: &IngestSettings,
        org: &str,
        a: &AlertInput,
        at: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError> {
        let repeat: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "UPDATE alerts SET count = count + 1, last_seen = $1, severity = $2, summary = $3,
                         description = $4, raw = $5
                     WHERE source = $6 AND fingerprint = $7 AND status = 'firing'
                     RETURNING id, incident_id",
        )
        .bind(at)
        .bind(a.severity.as_str())
        .bind(&a.summary)
        .bind(&a.description)
        .bind(Json(a.raw.raw()))
        .bind(a.source)
        .bind(&a.fingerprint)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((id, incident)) = repeat {
            if let Some(inc) = incident {
                sqlx::query("UPDATE incidents SET updated_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(inc)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(AlertOutcome {
                outcome: AlertOutcomeKind::Deduplicated,
                alert_id: Some(AlertId(id)),
                incident_id: incident.map(IncidentId),
                fingerprint: a.fingerprint.clone(),
            });
        }
        // Replicas ingesting the same group at once must pick one incident.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("{org}\u{1f}{}", a.group_key))
            .execute(&mut **tx)
            .await?;
        let (incident, outcome, incident_service) = choose_incident(tx, s, org, a, at).await?;
        let alert_id = AlertId::new();
        sqlx::query(
                    "INSERT INTO alerts (id, incident_id, source, fingerprint, status, severity, service,
                         namespace, resource, labels, summary, description, starts_at, ends_at, last_seen, count, raw)
                     VALUES ($1, $2, $3, $4, 'firing', $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13, 1, $14)",
                )
                .bind(alert_id.0)
                .bind(incident)
                .bind(a.source)
                .bind(&a.fingerprint)
                .bind(a.severity.as_str())
                .bind(&a.service)
                .bind(&a.namespace)
                .bind(&a.resource)
                .bind(Json(&a.labels))
                .bind(&a.summary)
                .bind(&a.description)
                .bind(a.starts_at)
                .bind(at)
                .bind(Json(a.raw.raw()))
                .execute(&mut **tx)
                .await?;
        timeline(
                    tx,
                    incident,
                    at,
                    "alert_received",
                    &format!("source:{}", a.source),
                    &a.summary,
                    serde_json::json!({"alert_id": alert_id, "fingerprint": a.fingerprint, "severity": a.severity}),
                )
                .await?;
        // As on SQLite: only a new or reopened incident, or another
        // service joining, can bring new suspects.
        if outcome != AlertOutcomeKind::Joined || incident_service != a.service {
            attach_suspects(
                tx,
                s,
                org,
                incident,
                a.service.as_deref(),
                a.starts_at.min(at),
                at,
            )
            .await?;
        }
        Ok(AlertOutcome {
            outcome,
            alert_id: Some(alert_id),
            incident_id: Some(IncidentId(incident)),
            fingerprint: a.fingerprint.clone(),
        })
    }

    /// Join the active incident of the group, or of the service within the
    /// window (touching it and raising its severity in the same statement);
    /// else reopen a recently resolved one; else open one.
    async fn choose_incident(
        tx: &mut Tx<'_>,
        s: &IngestSettings,
        org: &str,
        a: &AlertInput,
        at: DateTime<Utc>,
    ) -> Result<(Uuid, AlertOutcomeKind, Option<String>), StoreError> {
        let joined: Option<(Uuid, Option<String>)> = sqlx::query_as(
            "UPDATE incidents SET updated_at = $1,
                 severity = CASE WHEN $2 < (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END)
                            THEN $3 ELSE severity END
             WHERE id = (SELECT id FROM incidents WHERE org_id = $4 AND group_key = $5
                             AND status NOT IN ('resolved', 'closed') ORDER BY opened_at DESC LIMIT 1)
             RETURNING id, service",
        )
        .bind(at)
        .bind(a.severity.rank())
        .bind(a.severity.as_str())
        .bind(org)
        .bind(&a.group_key)
        .fetch_optional(&mut **tx)
        .await?;
        let joined = match (joined, &a.service) {
            (Some(found), _) => Some(found),
            (None, Some(service)) => {
                sqlx::query_as(
                    "UPDATE incidents SET updated_at = $1,
                         severity = CASE WHEN $2 < (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END)
                                    THEN $3 ELSE severity END
                     WHERE id = (SELECT id FROM incidents WHERE org_id = $4 AND service = $5
                                     AND status NOT IN ('resolved', 'closed') AND updated_at >= $6
                                     ORDER BY updated_at DESC LIMIT 1)
                     RETURNING id, service",
                )
                .bind(at)
                .bind(a.severity.rank())
                .bind(a.severity.as_str())
                .bind(org)
                .bind(service)
                .bind(at - s.group_window)
                .fetch_optional(&mut **tx)
                .await?
            }
            (None, None) => None,
        };
        if let Some((id, service)) = joined {
            return Ok((id, AlertOutcomeKind::Joined, service));
        }

        let recent: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM incidents
                     WHERE org_id = $1 AND group_key = $2 AND status = 'resolved' AND resolved_at >= $3
                     ORDER BY resolved_at DESC LIMIT 1",
                )
                .bind(org)
                .bind(&a.group_key)
                .bind(at - s.reopen_grace)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(id) = recent {
            sqlx::query(
                        "UPDATE incidents SET status = 'open', resolved_at = NULL, updated_at = $1 WHERE id = $2",
                    )
                    .bind(at)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            timeline(
                tx,
                id,
                at,
                "status_changed",
                &format!("source:{}", a.source),
                "reopened: the group fired again within the grace period",
                serde_json::json!({"from": IncidentStatus::Resolved, "to": IncidentStatus::Open}),
            )
            .await?;
            enqueue(tx, id, at).await?;
            return Ok((id, AlertOutcomeKind::Reopened, a.service.clone()));
        }

        let id = IncidentId::new().0;
        sqlx::query(
                    "INSERT INTO incidents (id, org_id, title, status, severity, service, group_key, opened_at, updated_at)
                     VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $7)",
                )
                .bind(id)
                .bind(org)
                .bind(&a.summary)
                .bind(a.severity.as_str())
                .bind(&a.service)
                .bind(&a.group_key)
                .bind(at)
                .execute(&mut **tx)
                .await?;
        timeline(
            tx,
            id,
            at,
            "status_changed",
            &format!("source:{}", a.source),
            "incident opened",
            serde_json::json!({"to": IncidentStatus::Open}),
        )
        .await?;
        enqueue(tx, id, at).await?;
        Ok((id, AlertOutcomeKind::Opened, a.service.clone()))
    }

    async fn attach_suspects(
        tx: &mut Tx<'_>,
        s: &IngestSettings,
        org: &str,
        incident: Uuid,
        service: Option<&str>,
        since_anchor: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(service) = service else {
            return Ok(());
        };
        let changes: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, kind, description, at FROM changes
                     WHERE org_id = $1 AND service = $2 AND at >= $3 AND at <= $4 ORDER BY at",
        )
        .bind(org)
        .bind(service)
        .bind(since_anchor - s.change_lookback)
        .bind(at)
        .fetch_all(&mut **tx)
        .await?;
        for (change, kind, description, changed_at) in changes {
            attach(tx, incident, change, &kind, &description, changed_at, at).await?;
        }
        Ok(())
    }

    async fn attach(
        tx: &mut Tx<'_>,
        incident: Uuid,
        change: Uuid,
        kind: &str,
        description: &str,
        changed_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO incident_changes (incident_id, change_id, attached_at) VALUES ($1, $2, $3)
                     ON CONFLICT (incident_id, change_id) DO NOTHING",
        )
        .bind(incident)
        .bind(change)
        .bind(at)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if added {
            timeline(
                tx,
                incident,
                at,
                "change_suspected",
                "system",
                &format!(
                    "{kind} at {}: {description}",
                    changed_at.format("%Y-%m-%d %H:%M:%SZ")
                ),
                serde_json::json!({"change_id": change, "kind": kind, "at": changed_at}),
            )
            .await?;
        }
        Ok(added)
    }

    async fn resolved(
        tx: &mut Tx<'_>,
        a: &AlertInput,
        at: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError> {
        let row: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "UPDATE alerts SET status = 'resolved', ends_at = $1, last_seen = $2, raw = $3
                     WHERE source = $4 AND fingerprint = $5 AND status = 'firing'
                     RETURNING id, incident_id",
        )
        .bind(a.ends_at.unwrap_or(at))
        .bind(at)
        .bind(Json(a.raw.raw()))
        .bind(a.source)
        .bind(&a.fingerprint)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((id, incident)) = row else {
            return Ok(AlertOutcome {
                outcome: AlertOutcomeKind::IgnoredResolution,
                alert_id: None,
                incident_id: None,
                fingerprint: a.fingerprint.clone(),
            });
        };
        if let Some(inc) = incident {
            let actor = format!("source:{}", a.source);
            timeline(
                tx,
                inc,
                at,
                "alert_resolved",
                &actor,
                &a.summary,
                serde_json::json!({"alert_id": id, "fingerprint": a.fingerprint}),
            )
            .await?;
            let still_firing: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE incident_id = $1 AND status = 'firing')",
            )
            .bind(inc)
            .fetch_one(&mut **tx)
            .await?;
            let status: String = sqlx::query_scalar("SELECT status FROM incidents WHERE id = $1")
                .bind(inc)
                .fetch_one(&mut **tx)
                .await?;
            let current = IncidentStatus::parse(&status)
                .ok_or_else(|| StoreError::corrupt("incidents", format!("status {status:?}")))?;
            if !still_firing && current.can_become(IncidentStatus::Resolved) {
                sqlx::query(
                            "UPDATE incidents SET status = 'resolved', resolved_at = $1, updated_at = $1 WHERE id = $2",
                        )
                        .bind(at)
                        .bind(inc)
                        .execute(&mut **tx)
                        .await?;
                timeline(
                    tx,
                    inc,
                    at,
                    "status_changed",
                    &actor,
                    "resolved: every alert of the incident resolved",
                    serde_json::json!({"from": current, "to": IncidentStatus::Resolved}),
                )
                .await?;
                sqlx::query("DELETE FROM agent_queue WHERE incident_id = $1")
                    .bind(inc)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(AlertOutcome {
            outcome: AlertOutcomeKind::Resolved,
            alert_id: Some(AlertId(id)),
            incident_id: incident.map(IncidentId),
            fingerprint: a.fingerprint.clone(),
        })
    }

    async fn change(
        tx: &mut Tx<'_>,
        org: &str,
        c: &ChangeInput,
        at: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let id = Uuid::now_v7();
        let inserted: Option<Uuid> = sqlx::query_scalar(
                    "INSERT INTO changes (id, org_id, source, external_id, kind, service, target, environment,
                         description, author, at, url, received_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (source, external_id) DO NOTHING RETURNING id",
                )
                .bind(id)
                .bind(org)
                .bind(c.source)
                .bind(&c.external_id)
                .bind(&c.kind)
                .bind(&c.service)
                .bind(&c.target)
                .bind(&c.environment)
                .bind(&c.description)
                .bind(&c.author)
                .bind(c.at)
                .bind(&c.url)
                .bind(at)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(change_id) = inserted else {
            let existing: Uuid =
                sqlx::query_scalar("SELECT id FROM changes WHERE source = $1 AND external_id = $2")
                    .bind(c.source)
                    .bind(&c.external_id)
                    .fetch_one(&mut **tx)
                    .await?;
            return Ok(IngestOutcome::Change {
                change_id: existing,
                created: false,
                attached_to: Vec::new(),
            });
        };
        let mut attached_to = Vec::new();
        if let Some(service) = &c.service {
            // A change that reaches us late may still explain an open incident.
            let incidents: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM incidents WHERE org_id = $1 AND service = $2
                             AND status NOT IN ('resolved', 'closed')",
            )
            .bind(org)
            .bind(service)
            .fetch_all(&mut **tx)
            .await?;
            for inc in incidents {
                if attach(tx, inc, change_id, &c.kind, &c.description, c.at, at).await? {
                    attached_to.push(IncidentId(inc));
                }
            }
        }
        Ok(IngestOutcome::Change {
            change_id,
            created: true,
            attached_to,
        })
    }
}
