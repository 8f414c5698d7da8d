//! The notification outbox: what each notifier must still be told, written
//! when the event happens and delivered by a worker with retries, in order
//! per notifier and incident; and what notifiers remember of what they
//! sent (`notifier_refs`: the Slack message of an approval, say).

use super::incidents::now;
use super::{BeginWrite, Store, StoreError, with_db};
use crate::ids::IncidentId;
use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;
use uuid::Uuid;

/// One notification for one notifier, claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub seq: i64,
    pub notifier: String,
    pub incident_id: IncidentId,
    pub notification: serde_json::Value,
    /// Delivery attempts so far, this one included.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    notifier: String,
    incident_id: Uuid,
    notification: Json<serde_json::Value>,
    attempts: i64,
    created_at: DateTime<Utc>,
}

impl From<OutboxRow> for OutboxItem {
    fn from(r: OutboxRow) -> Self {
        OutboxItem {
            seq: r.seq,
            notifier: r.notifier,
            incident_id: IncidentId(r.incident_id),
            notification: r.notification.0,
            attempts: r.attempts,
            created_at: r.created_at,
        }
    }
}

impl Store {
    /// Queue `notification` about `incident` for each of `notifiers`.
    pub async fn enqueue_notification(
        &self,
        notifiers: &[&str],
        incident: IncidentId,
        notification: &serde_json::Value,
    ) -> Result<(), StoreError> {
        if notifiers.is_empty() {
            return Ok(());
        }
        let at = now();
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            for name in notifiers {
                sqlx::query(
                    "INSERT INTO notification_outbox
                       (notifier, incident_id, notification, created_at, next_attempt_at)
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(*name)
                .bind(incident.0)
                .bind(Json(notification))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Claim up to `limit` notifications that are due, each the oldest
    /// undelivered one of its notifier and incident (a Slack thread reply
    /// never overtakes the message it replies to). A claim lasts `lease`:
    /// a worker that dies mid-delivery leaves the item to be retried then.
    pub async fn claim_notifications(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let at = now();
        let rows: Vec<OutboxRow> = with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            // The outer `next_attempt_at <= $1` is checked again on the
            // row another replica may have claimed meanwhile.
            let rows: Vec<OutboxRow> = sqlx::query_as(
                "UPDATE notification_outbox SET next_attempt_at = $2, attempts = attempts + 1
                 WHERE next_attempt_at <= $1 AND delivered_at IS NULL AND failed_at IS NULL
                   AND seq IN (
                     SELECT o.seq FROM notification_outbox o
                     WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1
                       AND NOT EXISTS (
                         SELECT 1 FROM notification_outbox e
                         WHERE e.notifier = o.notifier AND e.incident_id = o.incident_id
                           AND e.delivered_at IS NULL AND e.failed_at IS NULL AND e.seq < o.seq)
                     ORDER BY o.seq LIMIT $3)
                 RETURNING seq, notifier, incident_id, notification, attempts, created_at",
            )
            .bind(at)
            .bind(at + lease)
            .bind(limit.max(1))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows
        });
        let mut items: Vec<OutboxItem> = rows.into_iter().map(Into::into).collect();
        items.sort_by_key(|i| i.seq);
        Ok(items)
    }

    /// The notification went out.
    pub async fn notification_delivered(&self, seq: i64) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, write, |p| {
            sqlx::query("UPDATE notification_outbox SET delivered_at = $1, last_error = NULL WHERE seq = $2")
                .bind(at)
                .bind(seq)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The notification could not go out; try again at `retry_at`, or
    /// never (`None`: given up, and the ones after it may go).
    pub async fn notification_failed(
        &self,
        seq: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, write, |p| {
            match retry_at {
                Some(retry) => {
                    sqlx::query(
                        "UPDATE notification_outbox SET next_attempt_at = $1, last_error = $2 WHERE seq = $3",
                    )
                    .bind(retry)
                    .bind(error)
                    .bind(seq)
                    .execute(p)
                    .await?
                }
                None => {
                    sqlx::query(
                        "UPDATE notification_outbox SET failed_at = $1, last_error = $2 WHERE seq = $3",
                    )
                    .bind(at)
                    .bind(error)
                    .bind(seq)
                    .execute(p)
                    .await?
                }
            };
        });
        Ok(())
    }

    /// Notifications not yet delivered nor given up, per notifier.
    pub async fn notification_backlog(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT notifier, COUNT(*) FROM notification_outbox
                 WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY notifier ORDER BY notifier",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// What `notifier` remembered under `key`.
    pub async fn notifier_ref(
        &self,
        notifier: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(with_db!(self, read, |p| {
            sqlx::query_scalar("SELECT value FROM notifier_refs WHERE notifier = $1 AND key = $2")
                .bind(notifier)
                .bind(key)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Record that `notifier` received a request known by `key` (a
    /// signature), forgetting those older than `window`; false when it was
    /// recorded before, by this replica or another: a replay.
    pub async fn first_sighting(
        &self,
        notifier: &str,
        key: &str,
        window: Duration,
    ) -> Result<bool, StoreError> {
        let at = now();
        let key = format!("request:{key}");
        let inserted = with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            // Key ranges, so the primary key serves the delete.
            sqlx::query(
                "DELETE FROM notifier_refs WHERE notifier = $1
                   AND key >= 'request:' AND key < 'request;' AND updated_at < $2",
            )
            .bind(notifier)
            .bind(at - window)
            .execute(&mut *tx)
            .await?;
            let n = sqlx::query(
                "INSERT INTO notifier_refs (notifier, key, value, updated_at) VALUES ($1, $2, '', $3)
                 ON CONFLICT (notifier, key) DO NOTHING",
            )
            .bind(notifier)
            .bind(&key)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(inserted == 1)
    }

    /// Remember `value` under `key` for `notifier`, replacing what was there.
    pub async fn set_notifier_ref(
        &self,
        notifier: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO notifier_refs (notifier, key, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (notifier, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(notifier)
            .bind(key)
            .bind(value)
            .bind(at)
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
