//! Incidents and their lifecycle.

use super::alert::{Severity, str_enum};
use crate::ids::IncidentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

str_enum!(
    /// Where an incident is in its lifecycle.
    IncidentStatus {
        Open => "open",
        Investigating => "investigating",
        AwaitingApproval => "awaiting_approval",
        Remediating => "remediating",
        Resolved => "resolved",
        Closed => "closed",
    }
);

/// A status change the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("incident cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: IncidentStatus,
    pub to: IncidentStatus,
}

impl IncidentStatus {
    /// Whether the incident is still being worked on.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Resolved | Self::Closed)
    }

    /// The lifecycle: `open → investigating → awaiting_approval → remediating →
    /// resolved → closed`. Work may loop back (a rejected approval returns to
    /// investigating, a failed verification too), any active state may resolve,
    /// and a resolved incident may reopen within its grace period.
    pub fn can_become(self, to: Self) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (Open, Investigating)
                | (Investigating, AwaitingApproval)
                | (Investigating, Remediating)
                | (AwaitingApproval, Remediating)
                | (AwaitingApproval, Investigating)
                | (Remediating, Investigating)
                | (
                    Open | Investigating | AwaitingApproval | Remediating,
                    Resolved
                )
                | (Resolved, Open)
                | (Resolved, Closed)
        )
    }

    pub fn check(self, to: Self) -> Result<(), InvalidTransition> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

/// One incident: a group of alerts about one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: IncidentId,
    pub org_id: String,
    pub title: String,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub service: Option<String>,
    /// Alerts sharing this key join this incident while it is active.
    pub group_key: String,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    pub seq: i64,
    pub incident_id: IncidentId,
    pub at: DateTime<Utc>,
    /// `status_changed`, `alert_received`, `tool_called`, `llm_called`, ...
    pub kind: String,
    /// Who did it: `system`, `agent:investigator`, `user:alice`.
    pub actor: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_of_the_lifecycle_is_allowed_and_skipping_ahead_is_not() {
        use IncidentStatus::*;
        let path = [
            Open,
            Investigating,
            AwaitingApproval,
            Remediating,
            Resolved,
            Closed,
        ];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(Open.check(Remediating).is_err());
        assert!(Closed.check(Open).is_err());
        assert!(Resolved.can_become(Open), "reopen within grace");
    }
}
