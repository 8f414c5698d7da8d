//! Notifiers: Slack, PagerDuty.

use crate::ids::{ApprovalId, IncidentId};
use async_trait::async_trait;
use serde::Serialize;
use std::time::Duration;

/// Something people should hear about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    ApprovalRequested {
        incident_id: IncidentId,
        approval_id: ApprovalId,
        summary: String,
    },
    ApprovalDecided {
        incident_id: IncidentId,
        approval_id: ApprovalId,
        approved: bool,
        by: String,
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
