//! Notifiers (Slack, PagerDuty): what people should hear about, and the
//! outbox that queues it durably for them.

use crate::ids::{ApprovalId, IncidentId};
use crate::store::Store;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Something people should hear about. Notifiers look up the rest (the
/// incident, the proposal, the diagnosis) in the store when they need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// The agents found a cause and chose what to do about it.
    Diagnosed {
        incident_id: IncidentId,
        /// The diagnosis and the proposed action, in a few lines.
        summary: String,
    },
    ApprovalRequested {
        incident_id: IncidentId,
        approval_id: ApprovalId,
        summary: String,
    },
    /// An approval still unanswered shortly before it expires (once).
    ApprovalReminder {
        incident_id: IncidentId,
        approval_id: ApprovalId,
        expires_in_minutes: i64,
    },
    ApprovalDecided {
        incident_id: IncidentId,
        approval_id: ApprovalId,
        approved: bool,
        by: String,
    },
    /// Nobody decided before the approval's expiry.
    ApprovalExpired {
        incident_id: IncidentId,
        approval_id: ApprovalId,
    },
    /// An action is running against the incident's target.
    Remediating {
        incident_id: IncidentId,
        action: String,
        target: String,
    },
    /// Verification saw the signal recover.
    Resolved {
        incident_id: IncidentId,
        message: String,
    },
    TimelineUpdate {
        incident_id: IncidentId,
        message: String,
    },
    Escalation {
        incident_id: IncidentId,
        reason: String,
    },
}

impl Notification {
    pub fn incident_id(&self) -> IncidentId {
        match self {
            Self::Diagnosed { incident_id, .. }
            | Self::ApprovalRequested { incident_id, .. }
            | Self::ApprovalReminder { incident_id, .. }
            | Self::ApprovalDecided { incident_id, .. }
            | Self::ApprovalExpired { incident_id, .. }
            | Self::Remediating { incident_id, .. }
            | Self::Resolved { incident_id, .. }
            | Self::TimelineUpdate { incident_id, .. }
            | Self::Escalation { incident_id, .. } => *incident_id,
        }
    }

    /// The `kind` tag, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Diagnosed { .. } => "diagnosed",
            Self::ApprovalRequested { .. } => "approval_requested",
            Self::ApprovalReminder { .. } => "approval_reminder",
            Self::ApprovalDecided { .. } => "approval_decided",
            Self::ApprovalExpired { .. } => "approval_expired",
            Self::Remediating { .. } => "remediating",
            Self::Resolved { .. } => "resolved",
            Self::TimelineUpdate { .. } => "timeline_update",
            Self::Escalation { .. } => "escalation",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    #[error("rate limited; retry after {0:?}")]
    RateLimited(Option<Duration>),
    #[error("notifier unavailable: {0}")]
    Unavailable(String),
    #[error("notifier rejected the message: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Notifier: Send + Sync {
    fn name(&self) -> &str;
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError>;
}

/// A notifier that delivers nothing itself: it queues each notification
/// in the store's outbox for the named notifiers, whose worker delivers
/// it with retries. The pipeline's only cost is one insert.
pub struct Outbox {
    store: Store,
    notifiers: Vec<String>,
}

impl Outbox {
    pub fn new(store: Store, notifiers: Vec<String>) -> Outbox {
        Outbox { store, notifiers }
    }
}

#[async_trait]
impl Notifier for Outbox {
    fn name(&self) -> &str {
        "outbox"
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let names: Vec<&str> = self.notifiers.iter().map(String::as_str).collect();
        let body = serde_json::to_value(n).map_err(|e| NotifyError::Rejected(e.to_string()))?;
        self.store
            .enqueue_notification(&names, n.incident_id(), &body)
            .await
            .map_err(|e| NotifyError::Unavailable(format!("queueing the notification: {e}")))
    }
}
