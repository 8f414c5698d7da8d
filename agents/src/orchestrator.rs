//! The orchestrator: takes an incident through triage → investigate →
//! diagnose → propose → (await approval | execute) or escalate, writing
//! each step's output to the store before the next starts: evidence rows,
//! the diagnosis, the proposal, the approval request, audit entries and
//! timeline events.
//!
//! What may run is decided here, in code: the remediator's candidates go
//! through the policy engine; a proposal that needs approval is only
//! queued; only `Execute` decisions call an acting tool, and the proposal
//! is claimed (`proposed → executing`) before the call, so it runs once.

use crate::budget::{Budget, Limits};
use crate::diagnostician::{self, Findings};
use crate::investigator::{self, Evidence};
use crate::knowledge::{Filters, KnowledgeBase};
use crate::remediator::{self, Proposal};
use brain::backends::Retrieval;
use brain::domain::{ActionProposal, Diagnosis, Evidence as EvidenceRow, ProposalStatus};
use brain::ids::{DiagnosisId, EvidenceId, IncidentId, ProposalId};
use brain::policy::{Decision, Policy};
use brain::store::{NewAuditEntry, Store, StoreError};
use brain::vocabulary::{Action, Component, Risk};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tools::Registry;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("incident {0} has no alerts")]
    NoAlerts(IncidentId),
}

/// What became of one incident.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub findings: Findings,
    pub explanation: String,
    pub citations: Vec<String>,
    /// The first proposal and the policy's decision on it.
    pub proposal: Option<ActionProposal>,
    pub decision: Option<Decision>,
    /// Candidates dropped before proposing (missing target, forbidden).
    pub dropped: Vec<String>,
    /// Whether the proposal's action ran.
    pub executed: bool,
    pub tool_calls: u32,
    /// The budget that ran out, if one did.
    pub exhausted: Option<&'static str>,
    pub evidence: Evidence,
}

pub struct Orchestrator {
    pub store: Store,
    pub tools: Arc<Registry>,
    pub policy: Policy,
    pub knowledge: Option<Arc<KnowledgeBase>>,
    pub limits: Limits,
    pub approval_ttl: chrono::Duration,
    /// Who the audit log names as acting.
    pub actor: String,
}

impl Orchestrator {
    /// Work one incident from its alerts to a proposal (queued, executed
    /// or an escalation).
    pub async fn handle(&self, incident: IncidentId) -> Result<Outcome, AgentError> {
        let store = &self.store;
        let alerts = store.alerts_for_incident(incident).await?;
        if alerts.is_empty() {
            return Err(AgentError::NoAlerts(incident));
        }
        let mut budget = Budget::new(self.limits);
        let _ = store
            .transition_incident(
                incident,
                brain::domain::IncidentStatus::Investigating,
                &self.actor,
                "investigation started",
            )
            .await;

        // Investigate: every observation is stored as evidence.
        let evidence = investigator::investigate(&self.tools, &alerts, &mut budget).await;
        for o in &evidence.observations {
            store
                .add_evidence(&EvidenceRow {
                    id: EvidenceId::new(),
                    incident_id: incident,
                    tool: o.tool.clone(),
                    args: o.args.clone(),
                    summary: summary(o),
                    data: if o.ok() {
                        o.data.clone()
                    } else {
                        json!({"error": o.error})
                    },
                    collected_at: chrono::Utc::now(),
                })
                .await?;
        }

        // Diagnose, grounded in the runbooks when there is a knowledge base.
        let findings = diagnostician::diagnose(&evidence);
        let mut explanation = findings.explanation(&evidence);
        let mut citations = Vec::new();
        if let (Some(kb), Some(best)) = (&self.knowledge, findings.best()) {
            let query = format!(
                "{} {} {}",
                best.category.as_str().replace('_', " "),
                best.component,
                alerts[0].summary
            );
            if let Ok(hits) = kb
                .search(&query, &Filters::default(), Retrieval::Hybrid, 3)
                .await
            {
                for h in hits.iter().take(2) {
                    citations.push(format!("{} > {}", h.title, h.section));
                }
            }
            if !citations.is_empty() {
                explanation.push_str(&format!("\nRunbooks: {}", citations.join(", ")));
            }
        }
        let diagnosis = match findings.best() {
            Some(best) => match best.component.parse::<Component>() {
                Ok(component) => {
                    let d = Diagnosis {
                        id: DiagnosisId::new(),
                        incident_id: incident,
                        category: best.category,
                        component,
                        confidence: findings.confidence,
                        explanation: explanation.clone(),
                        citations: citations.clone(),
                        created_at: chrono::Utc::now(),
                    };
                    store.add_diagnosis(&d).await?;
                    Some(d)
                }
                Err(_) => None,
            },
            None => None,
        };

        // Propose: candidates through the policy; the first survivor is it.
        let candidates = remediator::candidates(&findings, &evidence);
        let (proposals, dropped) =
            remediator::classify(&self.tools, &self.policy, candidates).await;
        let mut outcome = Outcome {
            findings,
            explanation,
            citations,
            proposal: None,
            decision: None,
            dropped,
            executed: false,
            tool_calls: budget.tool_calls,
            exhausted: budget.exhausted,
            evidence,
        };
        let Some(first) = proposals.into_iter().next() else {
            store
                .append_timeline(
                    incident,
                    "escalated",
                    &self.actor,
                    "no cause found in the evidence; a human must look",
                    json!({}),
                )
                .await?;
            return Ok(outcome);
        };
        let record = self
            .propose(incident, diagnosis.as_ref().map(|d| d.id), &first)
            .await?;
        outcome.decision = Some(first.decision.clone());
        outcome.executed = record.status == ProposalStatus::Executed;
        outcome.proposal = Some(record);
        outcome.tool_calls = budget.tool_calls;
        Ok(outcome)
    }

    /// Record a proposal and act on the policy's decision.
    async fn propose(
        &self,
        incident: IncidentId,
        diagnosis: Option<DiagnosisId>,
        p: &Proposal,
    ) -> Result<ActionProposal, AgentError> {
        let store = &self.store;
        let c = &p.candidate;
        let risk = match &p.decision {
            Decision::Execute { risk } | Decision::NeedsApproval { risk, .. } => *risk,
            Decision::Forbidden { .. } => Risk::Forbidden,
        };
        let mut record = ActionProposal {
            id: ProposalId::new(),
            incident_id: Some(incident),
            diagnosis_id: diagnosis,
            action: c.action,
            target: c.target.clone(),
            params: c.params.clone(),
            risk,
            rationale: c.rationale.clone(),
            status: ProposalStatus::Proposed,
            created_at: chrono::Utc::now(),
            tool: tool_for(c.action).map(str::to_owned),
            requested_by: self.actor.clone(),
        };
        store.add_proposal(&record).await?;
        self.audit("proposal.create", &record, json!({"decision": p.decision}))
            .await?;
        match &p.decision {
            Decision::NeedsApproval { reason, .. } => {
                let approval = store.request_approval(record.id, self.approval_ttl).await?;
                record.status = ProposalStatus::AwaitingApproval;
                self.audit(
                    "approval.request",
                    &record,
                    json!({"approval": approval.id, "reason": reason}),
                )
                .await?;
                let _ = store
                    .transition_incident(
                        incident,
                        brain::domain::IncidentStatus::AwaitingApproval,
                        &self.actor,
                        &format!("{} on {} awaits approval", c.action.as_str(), c.target),
                    )
                    .await;
            }
            Decision::Execute { .. } if c.action == Action::Escalate => {
                store
                    .append_timeline(
                        incident,
                        "escalated",
                        &self.actor,
                        &c.rationale,
                        json!({"target": c.target.to_string(), "params": c.params}),
                    )
                    .await?;
                if store
                    .transition_proposal(
                        record.id,
                        ProposalStatus::Proposed,
                        ProposalStatus::Executed,
                    )
                    .await?
                {
                    record.status = ProposalStatus::Executed;
                }
                self.audit("incident.escalate", &record, json!({})).await?;
            }
            Decision::Execute { .. } => {
                // Claim it first: a second worker finds it claimed.
                if !store
                    .transition_proposal(
                        record.id,
                        ProposalStatus::Proposed,
                        ProposalStatus::Executing,
                    )
                    .await?
                {
                    return Ok(record);
                }
                let (tool, args) = tool_call(c);
                let result = match tool {
                    Some(tool) => self
                        .tools
                        .call(tool, args.clone())
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err(format!("no tool executes {}", c.action.as_str())),
                };
                let (to, data) = match &result {
                    Ok(out) => (
                        ProposalStatus::Executed,
                        json!({"tool": tool, "args": args, "result": out.text}),
                    ),
                    Err(e) => (
                        ProposalStatus::Failed,
                        json!({"tool": tool, "args": args, "error": e}),
                    ),
                };
                store
                    .transition_proposal(record.id, ProposalStatus::Executing, to)
                    .await?;
                record.status = to;
                self.audit("action.execute", &record, data).await?;
                let _ = store
                    .transition_incident(
                        incident,
                        brain::domain::IncidentStatus::Remediating,
                        &self.actor,
                        &format!("{} on {} {}", c.action.as_str(), c.target, to.as_str()),
                    )
                    .await;
            }
            Decision::Forbidden { .. } => {}
        }
        Ok(record)
    }

    async fn audit(
        &self,
        action: &str,
        p: &ActionProposal,
        extra: Value,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(NewAuditEntry {
                actor: self.actor.clone(),
                action: action.to_owned(),
                subject: p.id.to_string(),
                data: json!({
                    "incident": p.incident_id.map(|i| i.to_string()),
                    "action": p.action.as_str(),
                    "target": p.target.to_string(),
                    "params": p.params,
                    "risk": p.risk.as_str(),
                    "detail": extra,
                }),
            })
            .await
            .map(|_| ())
    }
}

fn summary(o: &investigator::Observation) -> String {
    match &o.error {
        Some(e) => format!("error: {e}"),
        None => o
            .text
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    }
}

/// The acting tool of an action.
pub fn tool_for(action: Action) -> Option<&'static str> {
    Some(match action {
        Action::RolloutRestart => "restart_rollout",
        Action::DeletePod => "delete_pod",
        Action::Scale => "scale_workload",
        Action::Rollback => "rollback_deployment",
        Action::SetResources => "set_resources",
        Action::SetImage => "set_image",
        Action::CordonNode => "cordon_node",
        Action::DrainNode => "drain_node",
        Action::PatchHpa => "patch_hpa",
        Action::Ec2Reboot => "reboot_ec2_instance",
        Action::AsgSetDesired => "set_asg_desired_capacity",
        Action::RdsReboot => "reboot_rds_instance",
        Action::RdsModify => "modify_rds_instance",
        _ => return None,
    })
}

/// The acting tool and its arguments for a candidate.
fn tool_call(c: &remediator::Candidate) -> (Option<&'static str>, Value) {
    let tool = tool_for(c.action);
    let mut args = match &c.target {
        Component::Kubernetes {
            kind,
            namespace,
            name,
        } => {
            let mut a = json!({"name": name});
            if let Some(ns) = namespace {
                a["namespace"] = json!(ns);
            }
            match kind.as_str() {
                "statefulset" => a["kind"] = json!("StatefulSet"),
                "daemonset" => a["kind"] = json!("DaemonSet"),
                "deployment" if !matches!(c.action, Action::Rollback) => {
                    a["kind"] = json!("Deployment")
                }
                _ => {}
            }
            a
        }
        Component::Aws { service, id } => match service.as_str() {
            "ec2" => json!({"instance_id": id}),
            "asg" => json!({"name": id}),
            "rds" => json!({"db_instance_identifier": id}),
            _ => json!({}),
        },
        Component::External { .. } => json!({}),
    };
    if let (Some(a), Some(p)) = (args.as_object_mut(), c.params.as_object()) {
        for (k, v) in p {
            a.insert(k.clone(), v.clone());
        }
        if c.action == Action::RdsModify {
            a.insert("apply_immediately".into(), json!(true));
        }
        if c.action == Action::Scale {
            a.insert(
                "replicas".into(),
                p.get("replicas").cloned().unwrap_or(Value::Null),
            );
        }
    }
    (tool, args)
}
