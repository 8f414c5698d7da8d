//! Domain types: what cerebro stores and reasons about.

mod alert;
mod incident;
mod records;

pub use alert::{Alert, AlertStatus, Severity};
pub use incident::{Incident, IncidentStatus, InvalidTransition, TimelineEvent};
pub use records::{
    ActionProposal, Approval, ApprovalStatus, AuditEntry, Change, Diagnosis, Document, Evidence,
    LlmCall, LlmOutcome, ProposalStatus,
};
