//! The approval queue over HTTP: what waits for a human, and their
//! decision. Deciding needs an approver's bearer token (`approvals.approvers`);
//! the name recorded is the token's owner, never a name from the body.
//! Approving runs the action once, through the same tools and audit log as
//! the agents.

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::RawBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use brain::domain::{ActionProposal, Approval};
use brain::ids::ApprovalId;
use brain::store::NewAuditEntry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A held action with what it would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingApproval {
    approval: Approval,
    proposal: ActionProposal,
}

/// Actions waiting for a decision, oldest first.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals",
    responses((status = 200, description = "pending approvals", body = [PendingApproval])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<PendingApproval>>, ApiError> {
    let mut out = Vec::new();
    for approval in state.store.pending_approvals().await? {
        let proposal = state.store.get_proposal(approval.proposal_id).await?;
        out.push(PendingApproval { approval, proposal });
    }
    Ok(Json(out))
}

/// A decision's body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why; required to reject.
    #[serde(default)]
    reason: Option<String>,
}

/// The decision and, after an approval, the action as it ran.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    approval: Approval,
    proposal: ActionProposal,
}

/// The approver whose token the request carries. Tokens are compared as
/// hashes, so the time taken says nothing about them.
fn approver(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let approvers = &state.config.approvals.approvers;
    if approvers.is_empty() {
        return Err(ApiError::Unauthorized(
            "no approvers are configured (approvals.approvers); nobody can decide over HTTP".into(),
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()))
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "send an approver's token as `Authorization: Bearer <token>`".into(),
            )
        })?;
    approvers
        .iter()
        .find(|a| Sha256::digest(a.token.expose().as_bytes()) == given)
        .map(|a| a.name.clone())
        .ok_or_else(|| ApiError::Unauthorized("the token is not an approver's".into()))
}

fn parse_id(id: &str) -> Result<ApprovalId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an approval id"), "id"))
}

fn body(raw: &[u8]) -> Result<DecisionBody, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    crate::extract::parse_json(raw)
}

async fn decide(
    state: AppState,
    headers: HeaderMap,
    id: ApprovalId,
    approve: bool,
    raw: &[u8],
) -> Result<Json<Decided>, ApiError> {
    let who = approver(&state, &headers)?;
    let b = body(raw)?;
    let reason = b.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(ApiError::bad_request(
            "say why the action is rejected",
            "reason",
        ));
    }
    let (approval, proposal) = decide_as(&state, &who, id, approve, reason).await?;
    Ok(Json(Decided { approval, proposal }))
}

/// Record `who`'s decision, audit it, tell the notifiers (the Slack
/// message is redrawn), and after an approval run the action once and
/// verify it in the background. `who` is an approver's configured name,
/// established by the caller (a bearer token, a verified Slack click).
pub async fn decide_as(
    state: &AppState,
    who: &str,
    id: ApprovalId,
    approve: bool,
    reason: Option<&str>,
) -> Result<(Approval, ActionProposal), ApiError> {
    let approval = state
        .store
        .decide_approval(id, approve, who, reason)
        .await?;
    let mut proposal = state.store.get_proposal(approval.proposal_id).await?;
    state
        .store
        .append_audit(NewAuditEntry {
            actor: format!("user:{who}"),
            action: if approve {
                "approval.approve"
            } else {
                "approval.reject"
            }
            .into(),
            subject: proposal.id.to_string(),
            data: serde_json::json!({
                "approval": approval.id.to_string(),
                "action": proposal.action.as_str(),
                "target": proposal.target.to_string(),
                "reason": reason,
            }),
        })
        .await?;
    if let Some(incident) = proposal.incident_id {
        state
            .agents
            .notify(brain::backends::Notification::ApprovalDecided {
                incident_id: incident,
                approval_id: approval.id,
                approved: approve,
                by: who.to_owned(),
            })
            .await;
    }
    if approve {
        proposal = state
            .agents
            .execute_approved(proposal.id)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("running the approved action: {e}")))?;
        // Watching the target recover takes minutes: not in this request.
        if proposal.status == brain::domain::ProposalStatus::Executed {
            let agents = state.agents.clone();
            let ran = proposal.clone();
            tokio::spawn(async move {
                if let Err(e) = agents.verify(&ran).await {
                    tracing::warn!(error = %e, proposal = %ran.id, "verifying an approved action failed");
                }
            });
        }
    }
    Ok((approval, proposal))
}

/// Approve a held action: it runs once, now.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "approval id")),
    request_body(content = DecisionBody, description = "`{reason?}`"),
    responses(
        (status = 200, description = "approved; the proposal as it ran", body = Decided),
        (status = 401, description = "no or unknown approver token", body = ErrorBody),
        (status = 404, description = "no such approval", body = ErrorBody),
        (status = 409, description = "already decided or expired", body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> Result<Json<Decided>, ApiError> {
    decide(state, headers, parse_id(&id)?, true, &raw).await
}

/// Reject a held action, saying why; it never runs.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "approval id")),
    request_body(content = DecisionBody, description = "`{reason}`"),
    responses(
        (status = 200, description = "rejected", body = Decided),
        (status = 400, description = "no reason", body = ErrorBody),
        (status = 401, description = "no or unknown approver token", body = ErrorBody),
        (status = 404, description = "no such approval", body = ErrorBody),
        (status = 409, description = "already decided or expired", body = ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> Result<Json<Decided>, ApiError> {
    decide(state, headers, parse_id(&id)?, false, &raw).await
}
