//! The append-only, hash-chained audit log.
//!
//! Each entry's hash is SHA-256 over its sequence number, time, actor,
//! action, subject, data and the previous entry's hash, so editing or
//! deleting any row breaks the chain from there on. Database triggers refuse
//! UPDATE and DELETE; [`Store::verify_audit`] catches whoever gets past them.

use super::incidents::now;
use super::{BeginWrite, Dialect, Store, StoreError, with_db};
use crate::domain::AuditEntry;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Serialises appends on PostgreSQL (SQLite has a single writer already).
const AUDIT_LOCK_KEY: i64 = 0x0ce7_eb70_a0d1;

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub data: serde_json::Value,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerification {
    pub entries: u64,
    /// The first entry that does not check out, and why.
    pub first_broken: Option<(i64, String)>,
}

impl AuditVerification {
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

fn entry_hash(
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    data: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        seq.to_string().as_str(),
        &at.to_rfc3339_opts(SecondsFormat::Micros, true),
        actor,
        action,
        subject,
        data,
        prev_hash,
    ] {
        // Length-prefix each field so no two different entries hash alike.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: String,
    data: String,
    prev_hash: String,
    hash: String,
}

impl Store {
    /// Append one entry to the chain.
    pub async fn append_audit(&self, e: NewAuditEntry) -> Result<AuditEntry, StoreError> {
        let at = now();
        let data = serde_json::to_string(&e.data)
            .map_err(|err| StoreError::corrupt("audit_log", err.to_string()))?;
        let postgres = self.dialect() == Dialect::Postgres;
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(AUDIT_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
            }
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (seq, prev_hash) = match last {
                Some((s, h)) => (s + 1, h),
                None => (1, GENESIS.to_owned()),
            };
            let hash = entry_hash(seq, at, &e.actor, &e.action, &e.subject, &data, &prev_hash);
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, subject, data, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(seq)
            .bind(at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.subject)
            .bind(&data)
            .bind(&prev_hash)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(AuditEntry {
                seq,
                at,
                actor: e.actor,
                action: e.action,
                subject: e.subject,
                data: e.data,
                prev_hash,
                hash,
            })
        })
    }

    /// Entries in order, optionally only those about `subject`.
    pub async fn audit_entries(
        &self,
        subject: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT seq, at, actor, action, subject, data, prev_hash, hash FROM audit_log
                 WHERE ($1 IS NULL OR subject = $1) ORDER BY seq",
            )
            .bind(subject)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    data: serde_json::from_str(&r.data)
                        .map_err(|e| StoreError::corrupt("audit_log", e.to_string()))?,
                    seq: r.seq,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    subject: r.subject,
                    prev_hash: r.prev_hash,
                    hash: r.hash,
                })
            })
            .collect()
    }

    /// Walk the chain and report the first entry that was edited, inserted
    /// out of order, or follows a deleted one.
    pub async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        let rows: Vec<AuditRow> = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT seq, at, actor, action, subject, data, prev_hash, hash FROM audit_log ORDER BY seq",
            )
            .fetch_all(p)
            .await?
        });
        let mut prev = GENESIS.to_owned();
        for (expected_seq, r) in (1_i64..).zip(rows.iter()) {
            let broken = if r.seq != expected_seq {
                Some(format!(
                    "expected entry {expected_seq}, found {}: entries were deleted",
                    r.seq
                ))
            } else if r.prev_hash != prev {
                Some("previous-hash link does not match the entry before it".to_owned())
            } else if entry_hash(
                r.seq,
                r.at,
                &r.actor,
                &r.action,
                &r.subject,
                &r.data,
                &r.prev_hash,
            ) != r.hash
            {
                Some("content does not match its hash: the entry was edited".to_owned())
            } else {
                None
            };
            if let Some(reason) = broken {
                return Ok(AuditVerification {
                    entries: rows.len() as u64,
                    first_broken: Some((r.seq, reason)),
                });
            }
            prev.clone_from(&r.hash);
        }
        Ok(AuditVerification {
            entries: rows.len() as u64,
            first_broken: None,
        })
    }
}
