//! The records the agents produce: evidence, diagnoses, proposals, approvals,
//! audit entries, LLM calls, and knowledge-base documents.

use super::alert::str_enum;
use crate::ids::*;
use crate::taxonomy::RootCause;
use crate::vocabulary::{Action, Component, Risk};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One piece of evidence, with the tool call that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    pub id: EvidenceId,
    pub incident_id: IncidentId,
    /// The tool that produced it, e.g. `get_pod_logs`.
    pub tool: String,
    /// The arguments it was called with.
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    pub summary: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub collected_at: DateTime<Utc>,
}

/// A diagnosis: a category of the taxonomy, the component at fault, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diagnosis {
    pub id: DiagnosisId,
    pub incident_id: IncidentId,
    pub category: RootCause,
    #[schema(value_type = String)]
    pub component: Component,
    pub confidence: f64,
    pub explanation: String,
    /// Runbook sections, past incidents and evidence ids cited.
    pub citations: Vec<String>,
    pub created_at: DateTime<Utc>,
}

str_enum!(
    /// Where a proposal is.
    ProposalStatus {
        Proposed => "proposed",
        AwaitingApproval => "awaiting_approval",
        Approved => "approved",
        Rejected => "rejected",
        Executing => "executing",
        Executed => "executed",
        Failed => "failed",
        Expired => "expired",
    }
);

/// A proposed remediation from the action vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionProposal {
    pub id: ProposalId,
    /// None for an action asked for outside an incident (an MCP client).
    pub incident_id: Option<IncidentId>,
    pub diagnosis_id: Option<DiagnosisId>,
    #[schema(value_type = String)]
    pub action: Action,
    #[schema(value_type = String)]
    pub target: Component,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub risk: Risk,
    pub rationale: String,
    pub status: ProposalStatus,
    pub created_at: DateTime<Utc>,
    /// The registry tool that performs it, when asked for as a tool call
    /// (`params` are then the call's arguments).
    #[serde(default)]
    pub tool: Option<String>,
    /// Who asked: `agent` for the agents, `mcp:http` or `mcp:stdio` for MCP.
    #[serde(default = "agent")]
    pub requested_by: String,
}

fn agent() -> String {
    "agent".into()
}

str_enum!(
    /// The state of an approval request.
    ApprovalStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
    }
);

/// A request for a human decision on one proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    pub id: ApprovalId,
    pub proposal_id: ProposalId,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// Different people who must approve (2: four eyes).
    #[serde(default = "one")]
    pub approvals_needed: i64,
    /// Under four eyes, who approved first while the second is awaited.
    #[serde(default)]
    pub first_approver: Option<String>,
}

fn one() -> i64 {
    1
}

/// One entry of the append-only, hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `proposal.created`, `approval.decided`, `action.executed`, ...
    pub action: String,
    /// What it concerns, e.g. an incident or proposal id.
    pub subject: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

str_enum!(
    /// How an LLM call ended. `malformed`: the answer did not have the
    /// shape asked for, even after a repair; `cached`: answered from the
    /// prompt cache, no model ran.
    LlmOutcome {
        Ok => "ok",
        Error => "error",
        Timeout => "timeout",
        RateLimited => "rate_limited",
        BudgetExceeded => "budget_exceeded",
        Malformed => "malformed",
        Cached => "cached",
    }
);

/// One metered LLM call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmCall {
    pub id: LlmCallId,
    pub incident_id: Option<IncidentId>,
    /// `fast`, `strong`, `embed`.
    pub role: String,
    pub provider: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
    pub latency_ms: i64,
    pub outcome: LlmOutcome,
    pub at: DateTime<Utc>,
}

/// A document of the knowledge base (runbook, postmortem, upload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Document {
    pub id: DocumentId,
    pub org_id: String,
    /// `runbook`, `upload`, `incident`.
    pub source: String,
    /// Where it came from, unique within the source (a file path, an upload name).
    pub path: String,
    pub title: String,
    pub mime: String,
    /// SHA-256 of the content, to skip re-embedding unchanged files.
    pub content_hash: String,
    pub size_bytes: i64,
    /// `runbook`, `postmortem` or `doc`: what a filter on `doc_type` matches.
    pub doc_type: String,
    pub services: Vec<String>,
    pub categories: Vec<String>,
    /// How many chunks it was split into.
    pub chunks: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An entry of the change feed: a deploy, a config push, a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub id: uuid::Uuid,
    pub org_id: String,
    pub source: String,
    pub external_id: String,
    /// `deploy`, `push`, `merge`, `config`, `infra`, `feature_flag`.
    pub kind: String,
    pub service: Option<String>,
    pub target: String,
    pub environment: Option<String>,
    pub description: String,
    pub author: Option<String>,
    pub at: DateTime<Utc>,
    pub url: Option<String>,
}
