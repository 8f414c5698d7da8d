//! Identifier newtypes, so an incident id can never be passed where an alert id
//! is expected. All are UUIDv7: sortable by creation time, which keeps B-tree
//! inserts local on both SQLite and PostgreSQL.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )+};
}

id_type!(
    /// An incident: a group of alerts about one problem.
    IncidentId,
    /// One normalised alert.
    AlertId,
    /// One piece of evidence gathered by a tool call.
    EvidenceId,
    /// One diagnosis of an incident.
    DiagnosisId,
    /// One proposed remediation.
    ProposalId,
    /// One approval request for a proposal.
    ApprovalId,
    /// One recorded LLM call.
    LlmCallId,
    /// One document of the knowledge base.
    DocumentId,
);
