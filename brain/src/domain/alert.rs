//! One normalised alert, whatever source it came from.

use crate::ids::{AlertId, IncidentId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

macro_rules! str_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Parse the stored text form.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// Whether the alert is still firing.
    AlertStatus { Firing => "firing", Resolved => "resolved" }
);

str_enum!(
    /// Severity, normalised across sources; ordered most severe first.
    Severity { Critical => "critical", Warning => "warning", Info => "info" }
);

impl Severity {
    /// 0 for critical, 1 for warning, 2 for info; the store ranks stored
    /// severities with the same numbers.
    pub fn rank(self) -> i64 {
        match self {
            Severity::Critical => 0,
            Severity::Warning => 1,
            Severity::Info => 2,
        }
    }
}

/// One alert after normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: AlertId,
    pub incident_id: Option<IncidentId>,
    /// `alertmanager`, `grafana`, `pagerduty`, `generic`.
    pub source: String,
    /// Stable identity of the alert within its source.
    pub fingerprint: String,
    pub status: AlertStatus,
    pub severity: Severity,
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub description: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub last_seen: DateTime<Utc>,
    /// How many times this alert was received while firing.
    pub count: i64,
    /// The body as the source sent it.
    #[schema(value_type = Object)]
    pub raw: serde_json::Value,
}
