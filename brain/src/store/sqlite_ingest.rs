//! Ingestion on SQLite, run on a dedicated thread with rusqlite.
//!
//! Why not sqlx here: sqlx runs SQLite on a worker thread and hops to it for
//! every statement; under an alert storm those hops (futex wake-ups and
//! context switches) cost far more than SQLite itself (perf: ~70 µs per
//! statement against ~5 µs of SQLite work). A batch runs here start to end on
//! one thread in one IMMEDIATE transaction. The logic mirrors the PostgreSQL
//! path in `ingest.rs` step for step; the behaviour tests in
//! `brain/tests/ingest.rs` run on both.
//!
//! Values are written exactly as sqlx writes them, so the rest of the store
//! reads them back: UUIDs as 16-byte blobs, times as RFC 3339 text with
//! `+00:00`, JSON as text.

use super::ingest::{
    AlertOutcome, AlertOutcomeKind, IngestItems, IngestOutcome, IngestRequest, IngestSettings,
};
use super::{StoreError, incidents::now};
use crate::domain::{AlertStatus, IncidentStatus};
use crate::ids::{AlertId, IncidentId};
use crate::ingest::{AlertInput, ChangeInput};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How often the checkpoint thread copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

type Reply = oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>;
type OneReply = oneshot::Sender<Result<IngestOutcome, StoreError>>;

enum Job {
    /// A batch committed as one transaction, as given.
    Batch {
        settings: IngestSettings,
        batch: Vec<IngestRequest>,
        reply: Reply,
    },
    /// One request. The thread commits every request queued while the
    /// previous commit ran in one transaction: the group commit.
    One {
        settings: IngestSettings,
        request: Box<IngestRequest>,
        reply: OneReply,
    },
}

/// Handle to the ingestion thread; the thread ends when the handle drops.
pub(super) struct SqliteIngest {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Dropping it stops the checkpoint thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for SqliteIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteIngest")
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

impl SqliteIngest {
    pub(super) fn start(
        path: &Path,
        busy_timeout: Duration,
        max_group: usize,
    ) -> Result<SqliteIngest, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        // Same durability as the sqlx pools: on disk before we answer.
        // Memory-mapped reads keep a storm's hot pages (open incidents,
        // firing alerts) from being copied in with pread for every
        // statement. The page cache stays at SQLite's default: at 32 MB,
        // dropping it past the end of the file at every commit
        // (pcache1TruncateUnsafe) cost 7% of the server's CPU (perf).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA mmap_size = 268435456;
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        let caught_up = Arc::new(AtomicBool::new(false));
        let checkpointer = start_checkpointer(path, busy_timeout, Arc::clone(&caught_up))?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-ingest".into())
            .spawn(move || serve_jobs(conn, &rx, max_group.max(1), &caught_up))
            .map_err(|e| StoreError::Engine(format!("starting the ingestion thread: {e}")))?;
        Ok(SqliteIngest {
            jobs: tx,
            _checkpointer: checkpointer,
        })
    }

    /// Commit `batch` as one transaction.
    pub(super) async fn ingest(
        &self,
        settings: &IngestSettings,
        batch: Vec<IngestRequest>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Batch {
            settings: *settings,
            batch,
            reply,
        })?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commit one request together with whatever else is queued.
    pub(super) async fn submit(
        &self,
        settings: &IngestSettings,
        request: IngestRequest,
    ) -> Result<IngestOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::One {
            settings: *settings,
            request: Box::new(request),
            reply,
        })?;
        answer.await.map_err(|_| stopped())?
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Engine("the ingestion thread stopped".into())
}

/// The thread's loop: batches as given, single requests grouped.
fn serve_jobs(
    mut conn: Connection,
    rx: &std::sync::mpsc::Receiver<Job>,
    max_group: usize,
    caught_up: &AtomicBool,
) {
    let mut next: Option<Job> = None;
    loop {
        if caught_up.swap(false, Ordering::AcqRel) {
            finish_checkpoint(&conn);
        }
        let job = match next.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Batch {
                settings,
                batch,
                reply,
            } => {
                let _ = reply.send(run(&mut conn, &settings, &batch));
            }
            Job::One {
                settings,
                request,
                reply,
            } => {
                let mut requests = vec![*request];
                let mut replies = vec![reply];
                while requests.len() < max_group {
                    match rx.try_recv() {
                        Ok(Job::One { request, reply, .. }) => {
                            requests.push(*request);
                            replies.push(reply);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, &settings, &requests, replies);
            }
        }
    }
}

/// Commit a group in one transaction; if that fails, one by one, so a bad
/// request does not fail its neighbours.
fn commit_group(
    conn: &mut Connection,
    settings: &IngestSettings,
    requests: &[IngestRequest],
    replies: Vec<OneReply>,
) {
    match run(conn, settings, requests) {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            if requests.len() > 1 {
                tracing::warn!(error = %e, size = requests.len(), "group commit failed; committing one by one");
            }
            for (request, reply) in requests.iter().zip(replies) {
                let result =
                    run(conn, settings, std::slice::from_ref(request)).and_then(|mut o| {
                        o.pop()
                            .ok_or_else(|| StoreError::Engine("empty ingest result".into()))
                    });
                let _ = reply.send(result);
            }
        }
    }
}

/// Copy the frames the checkpoint thread has not reached yet, on the
/// writer's own connection between two transactions. Once every frame is in
/// the database, SQLite starts the next transaction at the head of the WAL
/// again instead of appending: without this, a steady stream of commits
/// never leaves the WAL fully copied and the file grows without bound (1.9
/// GB in 20 s of an alert storm, measured), and every frame lands on a
/// fresh file block the kernel must zero first. The thread did the bulk of
/// the copy, so this is the last few frames and one fsync.
fn finish_checkpoint(conn: &Connection) {
    // PASSIVE never waits; BUSY only means the other thread is copying.
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        Ok(())
        | Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: rusqlite::ErrorCode::DatabaseBusy,
                ..
            },
            _,
        )) => {}
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
    }
}

/// Copy the WAL into the database from a thread of its own, then ask the
/// writer to copy the tail (`finish_checkpoint`). A commit that had to
/// checkpoint the whole WAL (SQLite's default, every 1000 pages) would
/// stall every request in its batch; here the writer only copies what
/// arrived during the thread's pass.
fn start_checkpointer(
    path: &Path,
    busy_timeout: Duration,
    caught_up: Arc<AtomicBool>,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                // (busy, frames in the WAL, frames copied)
                let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                });
                match pass {
                    Ok((frames, copied)) if frames > 0 && copied > 0 => {
                        caught_up.store(true, Ordering::Release);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
        })
        .map_err(|e| StoreError::Engine(format!("starting the checkpoint thread: {e}")))?;
    Ok(stop)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn blob(id: Uuid) -> [u8; 16] {
    *id.as_bytes()
}

fn uuid(bytes: Vec<u8>) -> Result<Uuid, StoreError> {
    Uuid::from_slice(&bytes).map_err(|e| StoreError::corrupt("incidents", format!("id: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn run(
    conn: &mut Connection,
    s: &IngestSettings,
    batch: &[IngestRequest],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(batch.len());
    for r in batch {
        out.push(one(&tx, s, r)?);
    }
    tx.commit()?;
    Ok(out)
}

fn one(
    tx: &Transaction<'_>,
    s: &IngestSettings,
    r: &IngestRequest,
) -> Result<IngestOutcome, StoreError> {
    let at = now();
    if let Some(d) = &r.delivery {
        let fresh = tx
            .prepare_cached("INSERT INTO deliveries (source, key, received_at) VALUES (?1, ?2, ?3) ON CONFLICT (source, key) DO NOTHING")?
            .execute(params![d.source, d.key, ts(at)])?
            == 1;
        if !fresh {
            let recent: bool = tx
                .prepare_cached(
                    "SELECT received_at >= ?3 FROM deliveries WHERE source = ?1 AND key = ?2",
                )?
                .query_row(
                    params![d.source, d.key, ts(at - s.redelivery_window)],
                    |row| row.get(0),
                )?;
            if recent {
                return Ok(IngestOutcome::Duplicate);
            }
            tx.prepare_cached(
                "UPDATE deliveries SET received_at = ?3 WHERE source = ?1 AND key = ?2",
            )?
            .execute(params![d.source, d.key, ts(at)])?;
        }
    }
    match &r.items {
        IngestItems::Alerts(alerts) => {
            let mut outcomes = Vec::with_capacity(alerts.len());
            for a in alerts {
                outcomes.push(match a.status {
                    AlertStatus::Firing => firing(tx, s, &r.org_id, a, at)?,
                    AlertStatus::Resolved => resolved(tx, a, at)?,
                });
            }
            Ok(IngestOutcome::Alerts { alerts: outcomes })
        }
        IngestItems::Change(c) => change(tx, &r.org_id, c, at),
        IngestItems::Note {
            source,
            fingerprint,
            content,
            author,
        } => {
            let incident: Option<Option<Vec<u8>>> = tx
                .prepare_cached("SELECT incident_id FROM alerts WHERE source = ?1 AND fingerprint = ?2 ORDER BY last_seen DESC LIMIT 1")?
                .query_row(params![source, fingerprint], |row| row.get(0))
                .optional()?;
            let incident = incident.flatten().map(uuid).transpose()?;
            if let Some(id) = incident {
                let actor = author
                    .as_deref()
                    .map_or_else(|| source.clone(), |a| format!("{source}:{a}"));
                timeline(tx, id, at, "note", &actor, content, &serde_json::json!({}))?;
            }
            Ok(IngestOutcome::Note {
                incident_id: incident.map(IncidentId),
            })
        }
    }
}

fn timeline(
    tx: &Transaction<'_>,
    incident: Uuid,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    message: &str,
    data: &serde_json::Value,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO timeline_events (incident_id, at, kind, actor, message, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![blob(incident), ts(at), kind, actor, message, json(data)])?;
    Ok(())
}

fn enqueue(tx: &Transaction<'_>, incident: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO agent_queue (incident_id, enqueued_at, available_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (incident_id) DO UPDATE SET available_at = excluded.available_at, lease_owner = NULL, lease_until = NULL",
    )?
    .execute(params![blob(incident), ts(at)])?;
    Ok(())
}

fn firing(
    tx: &Transaction<'_>,
    s: &IngestSettings,
    org: &str,
    a: &AlertInput,
    at: DateTime<Utc>,
) -> Result<AlertOutcome, StoreError> {
    let repeat: Option<(Vec<u8>, Option<Vec<u8>>)> = tx
        .prepare_cached(
            "UPDATE alerts SET count = count + 1, last_seen = ?1, severity = ?2, summary = ?3, description = ?4, raw = ?5
             WHERE source = ?6 AND fingerprint = ?7 AND status = 'firing' RETURNING id, incident_id",
        )?
        .query_row(
            params![ts(at), a.severity.as_str(), a.summary, a.description, a.raw.as_str(), a.source, a.fingerprint],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((id, incident)) = repeat {
        let incident = incident.map(uuid).transpose()?;
        if let Some(inc) = incident {
            tx.prepare_cached("UPDATE incidents SET updated_at = ?1 WHERE id = ?2")?
                .execute(params![ts(at), blob(inc)])?;
        }
        return Ok(AlertOutcome {
            outcome: AlertOutcomeKind::Deduplicated,
            alert_id: Some(AlertId(uuid(id)?)),
            incident_id: incident.map(IncidentId),
            fingerprint: a.fingerprint.clone(),
        });
    }
    let (incident, outcome, incident_service) = choose_incident(tx, s, org, a, at)?;
    let alert_id = AlertId::new();
    tx.prepare_cached(
        "INSERT INTO alerts (id, incident_id, source, fingerprint, status, severity, service, namespace, resource,
             labels, summary, description, starts_at, ends_at, last_seen, count, raw)
         VALUES (?1, ?2, ?3, ?4, 'firing', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, ?13, 1, ?14)",
    )?
    .execute(params![
        blob(alert_id.0),
        blob(incident),
        a.source,
        a.fingerprint,
        a.severity.as_str(),
        a.service,
        a.namespace,
        a.resource,
        json(&a.labels),
        a.summary,
        a.description,
        ts(a.starts_at),
        ts(at),
        a.raw.as_str(),
    ])?;
    timeline(
        tx,
        incident,
        at,
        "alert_received",
        &format!("source:{}", a.source),
        &a.summary,
        &serde_json::json!({"alert_id": alert_id, "fingerprint": a.fingerprint, "severity": a.severity}),
    )?;
    // A new or reopened incident, or an alert of another service joining
    // one, may have suspects; an alert joining its own service's incident
    // brings none the incident does not have already.
    if outcome != AlertOutcomeKind::Joined || incident_service != a.service {
        attach_suspects(
            tx,
            s,
            org,
            incident,
            a.service.as_deref(),
            a.starts_at.min(at),
            at,
        )?;
    }
    Ok(AlertOutcome {
        outcome,
        alert_id: Some(alert_id),
        incident_id: Some(IncidentId(incident)),
        fingerprint: a.fingerprint.clone(),
    })
}

/// Join the active incident of the alert's group, or of its service within
/// the window, touching it and raising its severity to the alert's in the
/// same statement; else reopen a recently resolved one; else open one.
/// Returns the incident, what happened, and the incident's service.
fn choose_incident(
    tx: &Transaction<'_>,
    s: &IngestSettings,
    org: &str,
    a: &AlertInput,
    at: DateTime<Utc>,
) -> Result<(Uuid, AlertOutcomeKind, Option<String>), StoreError> {
    let joined: Option<(Vec<u8>, Option<String>)> = tx
        .prepare_cached(
            "UPDATE incidents SET updated_at = ?1,
                 severity = CASE WHEN ?2 < (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END)
                            THEN ?3 ELSE severity END
             WHERE id = (SELECT id FROM incidents WHERE org_id = ?4 AND group_key = ?5
                             AND status NOT IN ('resolved', 'closed') ORDER BY opened_at DESC LIMIT 1)
             RETURNING id, service",
        )?
        .query_row(
            params![ts(at), a.severity.rank(), a.severity.as_str(), org, a.group_key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let joined = match (joined, &a.service) {
        (Some(found), _) => Some(found),
        (None, Some(service)) => tx
            .prepare_cached(
                "UPDATE incidents SET updated_at = ?1,
                     severity = CASE WHEN ?2 < (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END)
                                THEN ?3 ELSE severity END
                 WHERE id = (SELECT id FROM incidents WHERE org_id = ?4 AND service = ?5
                                 AND status NOT IN ('resolved', 'closed') AND updated_at >= ?6
                                 ORDER BY updated_at DESC LIMIT 1)
                 RETURNING id, service",
            )?
            .query_row(
                params![ts(at), a.severity.rank(), a.severity.as_str(), org, service, ts(at - s.group_window)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?,
        (None, None) => None,
    };
    if let Some((id, service)) = joined {
        return Ok((uuid(id)?, AlertOutcomeKind::Joined, service));
    }
    let recent: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT id FROM incidents WHERE org_id = ?1 AND group_key = ?2 AND status = 'resolved' AND resolved_at >= ?3
             ORDER BY resolved_at DESC LIMIT 1",
        )?
        .query_row(params![org, a.group_key, ts(at - s.reopen_grace)], |row| row.get(0))
        .optional()?;
    if let Some(id) = recent {
        let id = uuid(id)?;
        tx.prepare_cached("UPDATE incidents SET status = 'open', resolved_at = NULL, updated_at = ?1 WHERE id = ?2")?
            .execute(params![ts(at), blob(id)])?;
        timeline(
            tx,
            id,
            at,
            "status_changed",
            &format!("source:{}", a.source),
            "reopened: the group fired again within the grace period",
            &serde_json::json!({"from": IncidentStatus::Resolved, "to": IncidentStatus::Open}),
        )?;
        enqueue(tx, id, at)?;
        return Ok((id, AlertOutcomeKind::Reopened, a.service.clone()));
    }
    let id = IncidentId::new().0;
    tx.prepare_cached(
        "INSERT INTO incidents (id, org_id, title, status, severity, service, group_key, opened_at, updated_at)
         VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![blob(id), org, a.summary, a.severity.as_str(), a.service, a.group_key, ts(at)])?;
    timeline(
        tx,
        id,
        at,
        "status_changed",
        &format!("source:{}", a.source),
        "incident opened",
        &serde_json::json!({"to": IncidentStatus::Open}),
    )?;
    enqueue(tx, id, at)?;
    Ok((id, AlertOutcomeKind::Opened, a.service.clone()))
}

fn attach_suspects(
    tx: &Transaction<'_>,
    s: &IngestSettings,
    org: &str,
    incident: Uuid,
    service: Option<&str>,
    anchor: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(service) = service else {
        return Ok(());
    };
    let changes: Vec<(Vec<u8>, String, String, String)> = tx
        .prepare_cached(
            "SELECT id, kind, description, at FROM changes WHERE org_id = ?1 AND service = ?2 AND at >= ?3 AND at <= ?4 ORDER BY at",
        )?
        .query_map(params![org, service, ts(anchor - s.change_lookback), ts(at)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (change, kind, description, changed_at) in changes {
        let changed_at = DateTime::parse_from_rfc3339(&changed_at)
            .map_err(|e| StoreError::corrupt("changes", format!("at: {e}")))?
            .with_timezone(&Utc);
        attach(
            tx,
            incident,
            uuid(change)?,
            &kind,
            &description,
            changed_at,
            at,
        )?;
    }
    Ok(())
}

fn attach(
    tx: &Transaction<'_>,
    incident: Uuid,
    change: Uuid,
    kind: &str,
    description: &str,
    changed_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let added = tx
        .prepare_cached(
            "INSERT INTO incident_changes (incident_id, change_id, attached_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (incident_id, change_id) DO NOTHING",
        )?
        .execute(params![blob(incident), blob(change), ts(at)])?
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
            &serde_json::json!({"change_id": change, "kind": kind, "at": changed_at}),
        )?;
    }
    Ok(added)
}

fn resolved(
    tx: &Transaction<'_>,
    a: &AlertInput,
    at: DateTime<Utc>,
) -> Result<AlertOutcome, StoreError> {
    let row: Option<(Vec<u8>, Option<Vec<u8>>)> = tx
        .prepare_cached(
            "UPDATE alerts SET status = 'resolved', ends_at = ?1, last_seen = ?2, raw = ?3
             WHERE source = ?4 AND fingerprint = ?5 AND status = 'firing' RETURNING id, incident_id",
        )?
        .query_row(
            params![ts(a.ends_at.unwrap_or(at)), ts(at), a.raw.as_str(), a.source, a.fingerprint],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((id, incident)) = row else {
        return Ok(AlertOutcome {
            outcome: AlertOutcomeKind::IgnoredResolution,
            alert_id: None,
            incident_id: None,
            fingerprint: a.fingerprint.clone(),
        });
    };
    let id = uuid(id)?;
    let incident = incident.map(uuid).transpose()?;
    if let Some(inc) = incident {
        let actor = format!("source:{}", a.source);
        timeline(
            tx,
            inc,
            at,
            "alert_resolved",
            &actor,
            &a.summary,
            &serde_json::json!({"alert_id": id, "fingerprint": a.fingerprint}),
        )?;
        let still_firing: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE incident_id = ?1 AND status = 'firing')",
            )?
            .query_row(params![blob(inc)], |row| row.get(0))?;
        let status: String = tx
            .prepare_cached("SELECT status FROM incidents WHERE id = ?1")?
            .query_row(params![blob(inc)], |row| row.get(0))?;
        let current = IncidentStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("incidents", format!("status {status:?}")))?;
        if !still_firing && current.can_become(IncidentStatus::Resolved) {
            tx.prepare_cached("UPDATE incidents SET status = 'resolved', resolved_at = ?1, updated_at = ?1 WHERE id = ?2")?
                .execute(params![ts(at), blob(inc)])?;
            timeline(
                tx,
                inc,
                at,
                "status_changed",
                &actor,
                "resolved: every alert of the incident resolved",
                &serde_json::json!({"from": current, "to": IncidentStatus::Resolved}),
            )?;
            tx.prepare_cached("DELETE FROM agent_queue WHERE incident_id = ?1")?
                .execute(params![blob(inc)])?;
        }
    }
    Ok(AlertOutcome {
        outcome: AlertOutcomeKind::Resolved,
        alert_id: Some(AlertId(id)),
        incident_id: incident.map(IncidentId),
        fingerprint: a.fingerprint.clone(),
    })
}

fn change(
    tx: &Transaction<'_>,
    org: &str,
    c: &ChangeInput,
    at: DateTime<Utc>,
) -> Result<IngestOutcome, StoreError> {
    let id = Uuid::now_v7();
    let inserted = tx
        .prepare_cached(
            "INSERT INTO changes (id, org_id, source, external_id, kind, service, target, environment, description, author, at, url, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (source, external_id) DO NOTHING",
        )?
        .execute(params![
            blob(id),
            org,
            c.source,
            c.external_id,
            c.kind,
            c.service,
            c.target,
            c.environment,
            c.description,
            c.author,
            ts(c.at),
            c.url,
            ts(at),
        ])?
        == 1;
    if !inserted {
        let existing: Vec<u8> = tx
            .prepare_cached("SELECT id FROM changes WHERE source = ?1 AND external_id = ?2")?
            .query_row(params![c.source, c.external_id], |row| row.get(0))?;
        return Ok(IngestOutcome::Change {
            change_id: uuid(existing)?,
            created: false,
            attached_to: Vec::new(),
        });
    }
    let mut attached_to = Vec::new();
    if let Some(service) = &c.service {
        // A change that reaches us late may still explain an open incident.
        let incidents: Vec<Vec<u8>> = tx
            .prepare_cached("SELECT id FROM incidents WHERE org_id = ?1 AND service = ?2 AND status NOT IN ('resolved', 'closed')")?
            .query_map(params![org, service], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for inc in incidents {
            let inc = uuid(inc)?;
            if attach(tx, inc, id, &c.kind, &c.description, c.at, at)? {
                attached_to.push(IncidentId(inc));
            }
        }
    }
    Ok(IngestOutcome::Change {
        change_id: id,
        created: true,
        attached_to,
    })
}
