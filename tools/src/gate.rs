//! The gate every tool call that acts passes, over the policy and the
//! approval queue: forbidden actions never run; anything else is held as a
//! proposal with a pending approval until a human decides, and the same
//! call made again after the approval runs, once.
//!
//! The target's facts (labels, tags, current replicas) are not gathered
//! yet, so the policy cannot tell a low-risk action on an unprotected
//! target from one on a target protected by a label: until they are, every
//! call that acts is held for approval. That errs toward asking.

use crate::mcp::{Admission, CallGate};
use async_trait::async_trait;
use brain::backends::ToolSpec;
use brain::domain::{ActionProposal, ProposalStatus};
use brain::ids::ProposalId;
use brain::policy::{Decision, Policy, TargetFacts};
use brain::store::{NewAuditEntry, Store};
use brain::vocabulary::{Action, Component};
use serde_json::Value;

/// One call that acts, as the gate judged it.
struct Ask<'a> {
    spec: &'a ToolSpec,
    action: Action,
    target: Component,
    args: &'a Value,
    caller: &'a str,
    risk: brain::vocabulary::Risk,
    reason: &'a str,
}

/// The approval-queue gate.
pub struct ApprovalGate {
    store: Store,
    policy: Policy,
    ttl: chrono::Duration,
}

impl ApprovalGate {
    pub fn new(store: Store, policy: Policy, ttl: chrono::Duration) -> ApprovalGate {
        ApprovalGate { store, policy, ttl }
    }

    async fn audit(&self, actor: &str, action: &str, subject: &str, data: Value) {
        let entry = NewAuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            data,
        };
        if let Err(e) = self.store.append_audit(entry).await {
            tracing::error!(error = %e, action, subject, "could not write the audit log");
        }
    }

    async fn hold(&self, ask: Ask<'_>) -> Result<Admission, brain::store::StoreError> {
        let Ask {
            spec,
            action,
            target,
            args,
            caller,
            risk,
            reason,
        } = ask;
        if let Some(open) = self
            .store
            .open_tool_proposal(&spec.name, args, caller)
            .await?
        {
            match open.status {
                ProposalStatus::Approved => {
                    if self
                        .store
                        .transition_proposal(
                            open.id,
                            ProposalStatus::Approved,
                            ProposalStatus::Executing,
                        )
                        .await?
                    {
                        self.audit(
                            caller,
                            "tool.execute",
                            &open.target.to_string(),
                            serde_json::json!({
                                "tool": spec.name, "proposal": open.id, "args": args,
                            }),
                        )
                        .await;
                        return Ok(Admission::Run {
                            reference: Some(open.id.to_string()),
                        });
                    }
                    // Another call claimed this approval first: it runs once.
                }
                _ => {
                    let approval = self.store.approval_for_proposal(open.id).await?;
                    let reference = approval.map_or_else(
                        || format!("proposal {}", open.id),
                        |a| format!("approval {}", a.id),
                    );
                    return Ok(Admission::Pending { reference });
                }
            }
        }
        let proposal = ActionProposal {
            id: ProposalId::new(),
            incident_id: None,
            diagnosis_id: None,
            action,
            target: target.clone(),
            params: args.clone(),
            risk,
            rationale: format!("asked for as tool {} by {caller}: {reason}", spec.name),
            status: ProposalStatus::Proposed,
            created_at: brain::store::timestamp(),
            tool: Some(spec.name.clone()),
            requested_by: caller.to_owned(),
        };
        self.store.add_proposal(&proposal).await?;
        let approval = self.store.request_approval(proposal.id, self.ttl).await?;
        self.audit(caller, "approval.request", &target.to_string(), serde_json::json!({
            "tool": spec.name, "proposal": proposal.id, "approval": approval.id, "args": args, "reason": reason,
        }))
        .await;
        Ok(Admission::Pending {
            reference: format!("approval {}", approval.id),
        })
    }
}

#[async_trait]
impl CallGate for ApprovalGate {
    async fn admit(
        &self,
        spec: &ToolSpec,
        args: &Value,
        target: Option<&str>,
        caller: &str,
    ) -> Admission {
        let Some(action) = spec
            .action
            .as_deref()
            .and_then(|a| a.parse::<Action>().ok())
        else {
            return Admission::Refused {
                reason: format!(
                    "{} acts but is no action of the vocabulary, so it cannot be approved or run",
                    spec.name
                ),
            };
        };
        let Some(target) = target.and_then(|t| t.parse::<Component>().ok()) else {
            return Admission::Refused {
                reason: format!(
                    "cannot tell from the arguments what {} would act on",
                    spec.name
                ),
            };
        };
        let facts = TargetFacts::default();
        let (risk, reason) = match self.policy.decide(action, &target, args, &facts) {
            Decision::Forbidden { reason } => return Admission::Refused { reason },
            Decision::NeedsApproval { risk, reason } => (risk, reason),
            Decision::Execute { risk } => (
                risk,
                "the target's labels and tags are not checked yet".to_owned(),
            ),
        };
        match self
            .hold(Ask {
                spec,
                action,
                target,
                args,
                caller,
                risk,
                reason: &reason,
            })
            .await
        {
            Ok(a) => a,
            Err(e) => Admission::Refused {
                reason: format!("the approval queue is unavailable ({e}); nothing ran"),
            },
        }
    }

    async fn finished(&self, reference: &str, ok: bool, summary: &str) {
        let Ok(id) = reference.parse::<ProposalId>() else {
            return;
        };
        let to = if ok {
            ProposalStatus::Executed
        } else {
            ProposalStatus::Failed
        };
        if let Err(e) = self
            .store
            .transition_proposal(id, ProposalStatus::Executing, to)
            .await
        {
            tracing::error!(error = %e, proposal = %id, "could not record the outcome of an approved call");
        }
        self.audit(
            "cerebro",
            if ok { "tool.executed" } else { "tool.failed" },
            reference,
            serde_json::json!({"summary": summary}),
        )
        .await;
    }
}
