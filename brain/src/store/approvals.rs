//! The approval queue's storage: one approval request per proposal, decided
//! at most once, before it expires.

use super::incidents::now;
use super::{BeginWrite, Store, StoreError, with_db};
use crate::domain::{Approval, ApprovalStatus, ProposalStatus};
use crate::ids::{ApprovalId, ProposalId};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: Uuid,
    proposal_id: Uuid,
    status: String,
    requested_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    decided_by: Option<String>,
    reason: Option<String>,
    approvals_needed: i64,
    first_approver: Option<String>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;
    fn try_from(r: ApprovalRow) -> Result<Self, StoreError> {
        Ok(Approval {
            id: ApprovalId(r.id),
            proposal_id: ProposalId(r.proposal_id),
            status: ApprovalStatus::parse(&r.status).ok_or_else(|| {
                StoreError::corrupt("approvals", format!("status {:?}", r.status))
            })?,
            requested_at: r.requested_at,
            expires_at: r.expires_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            reason: r.reason,
            approvals_needed: r.approvals_needed,
            first_approver: r.first_approver,
        })
    }
}

macro_rules! approval_columns {
    () => {
        "id, proposal_id, status, requested_at, expires_at, decided_at, decided_by, reason, approvals_needed, first_approver"
    };
}

impl Store {
    /// Hold a proposal for a human decision, expiring after `ttl`.
    pub async fn request_approval(
        &self,
        proposal_id: ProposalId,
        ttl: Duration,
    ) -> Result<Approval, StoreError> {
        self.request_approvals(proposal_id, ttl, 1).await
    }

    /// Hold a proposal until `needed` different people approve it (2: four
    /// eyes), expiring after `ttl`.
    pub async fn request_approvals(
        &self,
        proposal_id: ProposalId,
        ttl: Duration,
        needed: i64,
    ) -> Result<Approval, StoreError> {
        let needed = needed.clamp(1, 2);
        let id = ApprovalId::new();
        let at = now();
        let expires_at = at + ttl;
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE action_proposals SET status = $1 WHERE id = $2 AND status = $3",
            )
            .bind(ProposalStatus::AwaitingApproval.as_str())
            .bind(proposal_id.0)
            .bind(ProposalStatus::Proposed.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                return Err(StoreError::Conflict {
                    what: format!("proposal {proposal_id} is missing or not awaiting a decision"),
                });
            }
            sqlx::query(
                "INSERT INTO approvals (id, proposal_id, status, requested_at, expires_at, approvals_needed)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.0)
            .bind(proposal_id.0)
            .bind(ApprovalStatus::Pending.as_str())
            .bind(at)
            .bind(expires_at)
            .bind(needed)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(Approval {
            id,
            proposal_id,
            status: ApprovalStatus::Pending,
            requested_at: at,
            expires_at,
            decided_at: None,
            decided_by: None,
            reason: None,
            approvals_needed: needed,
            first_approver: None,
        })
    }

    pub async fn get_approval(&self, id: ApprovalId) -> Result<Approval, StoreError> {
        let sql = concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE id = $1"
        );
        let row: Option<ApprovalRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_optional(p).await?
        });
        row.ok_or_else(|| StoreError::not_found(format!("approval {id}")))?
            .try_into()
    }

    /// Pending approvals, the soonest to expire first.
    pub async fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let sql = concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE status = 'pending' ORDER BY expires_at, id"
        );
        let rows: Vec<ApprovalRow> =
            with_db!(self, read, |p| { sqlx::query_as(sql).fetch_all(p).await? });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Record a human decision. Only a pending, unexpired approval can be
    /// decided, and only once: a second decision is a [`StoreError::Conflict`]
    /// and changes nothing.
    pub async fn decide_approval(
        &self,
        id: ApprovalId,
        approve: bool,
        decided_by: &str,
        reason: Option<&str>,
    ) -> Result<Approval, StoreError> {
        let at = now();
        let (status, proposal_status) = if approve {
            (ApprovalStatus::Approved, ProposalStatus::Approved)
        } else {
            (ApprovalStatus::Rejected, ProposalStatus::Rejected)
        };
        if approve {
            let current = self.get_approval(id).await?;
            if current.approvals_needed >= 2 && current.status == ApprovalStatus::Pending {
                match current.first_approver.as_deref() {
                    Some(first) if first == decided_by => {
                        return Err(StoreError::Conflict {
                            what: format!(
                                "approval {id} needs a second approver other than {decided_by}"
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        // The first of two: recorded, still pending.
                        let sql = concat!(
                            "UPDATE approvals SET first_approver = $1
                             WHERE id = $2 AND status = 'pending' AND first_approver IS NULL AND expires_at > $3
                             RETURNING ",
                            approval_columns!()
                        );
                        let row: Option<ApprovalRow> = with_db!(self, write, |p| {
                            sqlx::query_as(sql)
                                .bind(decided_by)
                                .bind(id.0)
                                .bind(at)
                                .fetch_optional(p)
                                .await?
                        });
                        return match row {
                            Some(r) => r.try_into(),
                            // Raced with another first approver, or expired.
                            None => Err(StoreError::Conflict {
                                what: format!("approval {id} changed meanwhile; read it again"),
                            }),
                        };
                    }
                }
            }
        }
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            let sql = concat!(
                "UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3, reason = $4
                 WHERE id = $5 AND status = 'pending' AND expires_at > $2
                 RETURNING ",
                approval_columns!()
            );
            let row: Option<ApprovalRow> = sqlx::query_as(sql)
                .bind(status.as_str())
                .bind(at)
                .bind(decided_by)
                .bind(reason)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                drop(tx);
                let current = self.get_approval(id).await?;
                return Err(StoreError::Conflict {
                    what: if current.status == ApprovalStatus::Pending {
                        format!("approval {id} expired at {}", current.expires_at)
                    } else {
                        format!("approval {id} is already {}", current.status)
                    },
                });
            };
            let approval: Approval = row.try_into()?;
            sqlx::query("UPDATE action_proposals SET status = $1 WHERE id = $2")
                .bind(proposal_status.as_str())
                .bind(approval.proposal_id.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(approval)
        })
    }

    /// Pending approvals that expire within `within` and whose reminder
    /// has not gone out, marked reminded now; returns them. Marked before
    /// anyone is told, so a reminder goes out at most once.
    pub async fn due_approval_reminders(
        &self,
        within: Duration,
    ) -> Result<Vec<Approval>, StoreError> {
        let at = now();
        let horizon = at + within;
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            let sql = concat!(
                "UPDATE approvals SET reminded_at = $1
                 WHERE status = 'pending' AND reminded_at IS NULL
                   AND expires_at > $1 AND expires_at <= $2 RETURNING ",
                approval_columns!()
            );
            let rows: Vec<ApprovalRow> = sqlx::query_as(sql)
                .bind(at)
                .bind(horizon)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.into_iter().map(TryInto::try_into).collect()
        })
    }

    /// Expire every pending approval whose time has passed; returns them.
    pub async fn expire_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let at = now();
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            let sql = concat!(
                "UPDATE approvals SET status = 'expired', decided_at = $1
                 WHERE status = 'pending' AND expires_at <= $1 RETURNING ",
                approval_columns!()
            );
            let rows: Vec<ApprovalRow> = sqlx::query_as(sql).bind(at).fetch_all(&mut *tx).await?;
            let expired: Vec<Approval> = rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?;
            for a in &expired {
                sqlx::query("UPDATE action_proposals SET status = $1 WHERE id = $2")
                    .bind(ProposalStatus::Expired.as_str())
                    .bind(a.proposal_id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(expired)
        })
    }
}
