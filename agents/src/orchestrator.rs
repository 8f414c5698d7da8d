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
use crate::explorer::{self, Explored};
use crate::investigator::{self, Evidence};
use crate::knowledge::{Filters, KnowledgeBase};
use crate::ranker::{self, Ranked};
use crate::remediator;
use crate::runbooks::Runbooks;
use crate::writer::{self, Written};
use brain::backends::{Notification, Notifier, Retrieval};
use brain::domain::IncidentStatus;
use brain::domain::{ActionProposal, Diagnosis, Evidence as EvidenceRow, ProposalStatus};
use brain::ids::{DiagnosisId, EvidenceId, IncidentId, ProposalId};
use brain::policy::{Decision, Policy};
use brain::store::{IncidentRun, NewAuditEntry, RunStep, Store, StoreError};
use brain::vocabulary::{Action, Component, Risk};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use tools::Registry;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("incident {0} has no alerts")]
    NoAlerts(IncidentId),
    #[error("incident {0} is held by another worker")]
    NotClaimable(IncidentId),
    #[error("lost the lease on incident {0} to another worker")]
    LostLease(IncidentId),
    /// Only from the test hook [`Orchestrator::crash_after`].
    #[error("stopped after step {0:?} (test hook)")]
    Crashed(RunStep),
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
    pub exhausted: Option<String>,
    /// The model's part, when one took part: its pick on a close call,
    /// the reads it asked for, the summary it wrote.
    pub llm: Ranked,
    pub explored: Explored,
    pub written: Option<Written>,
    pub evidence: Evidence,
}

impl Outcome {
    /// Model calls and tokens (in, out) spent on the incident.
    pub fn model_usage(&self) -> (u32, u64, u64) {
        let w = self.written.clone().unwrap_or_default();
        (
            self.llm.calls + self.explored.calls + w.calls,
            self.llm.tokens_in + self.explored.tokens_in + w.tokens_in,
            self.llm.tokens_out + self.explored.tokens_out + w.tokens_out,
        )
    }
}

pub struct Orchestrator {
    pub store: Store,
    pub tools: Arc<Registry>,
    pub policy: Policy,
    pub knowledge: Option<Arc<KnowledgeBase>>,
    /// The runbooks' front matter: which actions each category allows.
    pub runbooks: Arc<Runbooks>,
    /// A model to direct a few more reads when the diagnosis is unsure and
    /// to settle close calls between hypotheses; none: analyzers and
    /// retrieval alone.
    pub llm: Option<Arc<models::gateway::Gateway>>,
    /// Have the model write a short summary once the proposal is out.
    pub summarize: bool,
    /// Who hears about approvals asked for, reminders, escalations and
    /// summaries. A notifier that fails or hangs delays nothing for long.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Remind the notifiers of an unanswered approval this long before it
    /// expires (once); zero: no reminders.
    pub remind_before: chrono::Duration,
    pub limits: Limits,
    pub approval_ttl: chrono::Duration,
    /// Who the audit log names as acting.
    pub actor: String,
    /// This worker's name on the runs it claims.
    pub worker: String,
    /// How long a claim holds before another worker may take the run.
    pub lease: chrono::Duration,
    /// How long to watch an executed action's target recover before
    /// escalating; zero checks once.
    pub verify_window: std::time::Duration,
    /// High-risk actions on protected targets need two different approvers.
    pub four_eyes: bool,
    /// Tests only: stop with [`AgentError::Crashed`] right after this step
    /// is recorded, as a worker killed there would.
    pub crash_after: Option<RunStep>,
}

/// What finished steps leave for later ones, persisted with the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunState {
    #[serde(default)]
    evidence: Option<Evidence>,
    #[serde(default)]
    tool_calls: u32,
    #[serde(default)]
    exhausted: Option<String>,
    #[serde(default)]
    findings: Option<Findings>,
    #[serde(default)]
    explanation: String,
    #[serde(default)]
    citations: Vec<String>,
    #[serde(default)]
    diagnosis: Option<DiagnosisId>,
    #[serde(default)]
    dropped: Vec<String>,
    /// Chosen before it is written, so a retry finds it instead of
    /// proposing again.
    #[serde(default)]
    proposal: Option<ProposalId>,
    #[serde(default)]
    decision: Option<Decision>,
    #[serde(default)]
    candidate: Option<remediator::Candidate>,
    #[serde(default)]
    llm: Ranked,
    #[serde(default)]
    explored: Explored,
    #[serde(default)]
    written: Option<Written>,
    /// Different approvers the proposal needs.
    #[serde(default)]
    approvals_needed: i64,
}

/// What grounds a diagnosis: the two runbook sections that best match
/// `query`, and the best past incident or note (a postmortem, a document
/// uploaded or given with a scenario) when it is relevant at all. One
/// query embedding serves both searches; a failing search cites nothing.
async fn ground(kb: &KnowledgeBase, query: &str) -> (Vec<String>, Vec<String>) {
    let label = |h: &crate::knowledge::Hit| {
        if h.section.is_empty() {
            h.title.clone()
        } else {
            format!("{} > {}", h.title, h.section)
        }
    };
    let Ok((dense, sparse)) = kb.encode_query(query).await else {
        return (Vec::new(), Vec::new());
    };
    let runbook_filter = Filters {
        doc_type: Some("runbook".into()),
        ..Filters::default()
    };
    let runbooks = kb
        .search_encoded(&dense, &sparse, &runbook_filter, Retrieval::Hybrid, 2)
        .await
        .map(|hits| hits.iter().map(label).collect())
        .unwrap_or_default();
    let notes = kb
        .search_encoded(&dense, &sparse, &Filters::default(), Retrieval::Hybrid, 10)
        .await
        .ok()
        .and_then(|hits| {
            hits.iter()
                .find(|h| h.doc_type != "runbook" && h.relevance >= kb.min_relevance())
                .map(label)
        })
        .into_iter()
        .collect();
    (runbooks, notes)
}

/// How long one notifier gets per message.
const NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Orchestrator {
    /// An orchestrator with the defaults: no model, no knowledge base, no
    /// notifiers, default budgets, an hour to approve, a 15-minute lease
    /// and no verification window. Set the rest with struct update syntax.
    pub fn new(store: Store, tools: Arc<Registry>, policy: Policy) -> Orchestrator {
        Orchestrator {
            store,
            tools,
            policy,
            knowledge: None,
            runbooks: Arc::default(),
            llm: None,
            summarize: false,
            notifiers: Vec::new(),
            remind_before: chrono::Duration::zero(),
            limits: Limits::default(),
            approval_ttl: chrono::Duration::minutes(60),
            actor: "agent:orchestrator".into(),
            worker: "cerebro".into(),
            lease: chrono::Duration::minutes(15),
            verify_window: std::time::Duration::ZERO,
            four_eyes: false,
            crash_after: None,
        }
    }

    /// Tell every notifier, each within [`NOTIFY_TIMEOUT`]; failures are
    /// logged, never the incident's problem.
    pub async fn notify(&self, n: Notification) {
        for notifier in &self.notifiers {
            match tokio::time::timeout(NOTIFY_TIMEOUT, notifier.notify(&n)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(notifier = notifier.name(), error = %e, "notification failed")
                }
                Err(_) => tracing::warn!(notifier = notifier.name(), "notification timed out"),
            }
        }
    }

    /// Append an `escalated` entry to the timeline and tell the notifiers.
    async fn escalate(
        &self,
        incident: IncidentId,
        reason: &str,
        data: Value,
    ) -> Result<(), AgentError> {
        self.store
            .append_timeline(incident, "escalated", &self.actor, reason, data)
            .await?;
        self.notify(Notification::Escalation {
            incident_id: incident,
            reason: reason.to_owned(),
        })
        .await;
        Ok(())
    }

    /// Queue the incident, then work queued runs until this one is done.
    /// The service's workers call [`Orchestrator::work_one`] instead.
    pub async fn handle(&self, incident: IncidentId) -> Result<Outcome, AgentError> {
        self.store.enqueue_run(incident).await?;
        loop {
            match self.work_one().await? {
                Some((id, outcome)) if id == incident => return Ok(outcome),
                Some(_) => continue,
                None => return Err(AgentError::NotClaimable(incident)),
            }
        }
    }

    /// Claim one queued (or abandoned) run and take it as far as it goes.
    pub async fn work_one(&self) -> Result<Option<(IncidentId, Outcome)>, AgentError> {
        let Some(run) = self.store.claim_run(&self.worker, self.lease).await? else {
            return Ok(None);
        };
        let id = run.incident_id;
        let outcome = self.resume(run).await?;
        Ok(Some((id, outcome)))
    }

    /// Continue a claimed run after its last finished step. Each step's
    /// output is written before the step is marked done.
    async fn resume(&self, run: IncidentRun) -> Result<Outcome, AgentError> {
        let store = &self.store;
        let incident = run.incident_id;
        let mut step = run.step;
        let mut st: RunState = serde_json::from_value(run.state).unwrap_or_default();
        let advance = |from: RunStep, to: RunStep, st: &RunState| {
            let state = serde_json::to_value(st).unwrap_or_default();
            async move {
                if !store
                    .advance_run(incident, &self.worker, from, to, &state)
                    .await?
                {
                    return Err(AgentError::LostLease(incident));
                }
                if self.crash_after == Some(to) {
                    return Err(AgentError::Crashed(to));
                }
                Ok::<(), AgentError>(())
            }
        };

        if step == RunStep::Queued {
            let alerts = store.alerts_for_incident(incident).await?;
            if alerts.is_empty() {
                return Err(AgentError::NoAlerts(incident));
            }
            let _ = store
                .transition_incident(
                    incident,
                    IncidentStatus::Investigating,
                    &self.actor,
                    "investigation started",
                )
                .await;
            let mut budget = Budget::new(self.limits);
            let mut evidence = investigator::investigate(&self.tools, &alerts, &mut budget).await;
            // The playbooks left the diagnosis unsure: the model may ask
            // for a few more reads (read-only tools, within the budget).
            if let Some(gw) = &self.llm {
                let first = diagnostician::diagnose(&evidence);
                if explorer::is_weak(&first) {
                    st.explored = explorer::explore(
                        gw,
                        &self.tools,
                        incident,
                        &mut evidence,
                        &first,
                        &mut budget,
                    )
                    .await;
                }
            }
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
            st.tool_calls = budget.tool_calls;
            st.exhausted = budget.exhausted.map(str::to_owned);
            st.evidence = Some(evidence);
            advance(RunStep::Queued, RunStep::Investigated, &st).await?;
            step = RunStep::Investigated;
        }
        let evidence = st.evidence.clone().unwrap_or_default();

        if step == RunStep::Investigated {
            // Diagnose, grounded in the runbooks when there is a knowledge base.
            // On a close call, a model picks among the analyzers' best
            // (a short constrained answer).
            let mut findings = diagnostician::diagnose(&evidence);
            if let Some(gw) = &self.llm
                && ranker::is_close(&findings)
            {
                st.llm = ranker::rank(gw, incident, &evidence, &mut findings).await;
            }
            let mut explanation = findings.explanation(&evidence);
            let mut citations = Vec::new();
            if let (Some(kb), Some(best)) = (&self.knowledge, findings.best()) {
                let summary = evidence.subject.text.lines().next().unwrap_or_default();
                let query = format!(
                    "{} {} {summary}",
                    best.category.as_str().replace('_', " "),
                    best.component
                );
                let (runbooks, notes) = ground(kb, &query).await;
                if !runbooks.is_empty() {
                    explanation.push_str(&format!("\nRunbooks: {}", runbooks.join(", ")));
                }
                if !notes.is_empty() {
                    explanation
                        .push_str(&format!("\nPast incidents and notes: {}", notes.join(", ")));
                }
                citations = runbooks.into_iter().chain(notes).collect();
            }
            if let Some(why) = &st.exhausted {
                explanation.push_str(&format!(
                    "\nThe {why} budget ran out: these findings are partial."
                ));
            }
            if let Some(best) = findings.best()
                && let Ok(component) = best.component.parse::<Component>()
            {
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
                st.diagnosis = Some(d.id);
            }
            st.findings = Some(findings);
            st.explanation = explanation;
            st.citations = citations;
            advance(RunStep::Investigated, RunStep::Diagnosed, &st).await?;
            step = RunStep::Diagnosed;
        }
        let findings = st.findings.clone().unwrap_or(Findings {
            ranked: Vec::new(),
            confidence: 0.0,
        });

        if step == RunStep::Diagnosed {
            if st.proposal.is_none() {
                // Propose: candidates through the policy; the first that
                // survives is it. Out of budget: hand over what we have.
                let mut candidates = remediator::candidates(&findings, &evidence);
                if st.exhausted.is_some() {
                    candidates.retain(|c| c.action == Action::Escalate);
                }
                // Only what a runbook for the category allows.
                let mut steered = Vec::new();
                if let Some(best) = findings.best() {
                    (candidates, steered) = self.runbooks.steer(best.category, candidates);
                }
                let (proposals, dropped) =
                    remediator::classify(&self.tools, &self.policy, candidates).await;
                st.dropped = steered;
                st.dropped.extend(dropped);
                if let Some(first) = proposals.into_iter().next() {
                    st.proposal = Some(ProposalId::new());
                    // Four eyes: a high-risk action on a protected target
                    // needs two different approvers when configured.
                    st.approvals_needed = if self.four_eyes
                        && first.protected
                        && matches!(
                            first.decision,
                            Decision::NeedsApproval {
                                risk: Risk::High,
                                ..
                            }
                        ) {
                        2
                    } else {
                        1
                    };
                    st.decision = Some(first.decision);
                    st.candidate = Some(first.candidate);
                }
                // The chosen id is durable before the proposal exists.
                advance(RunStep::Diagnosed, RunStep::Diagnosed, &st).await?;
            }
            match (st.proposal, &st.candidate, &st.decision) {
                (Some(id), Some(candidate), Some(decision)) => {
                    self.notify(Notification::Diagnosed {
                        incident_id: incident,
                        summary: format!(
                            "{}\nProposed: {} on {} ({}): {}",
                            st.explanation,
                            candidate.action.as_str(),
                            candidate.target,
                            decision_words(decision),
                            candidate.rationale
                        ),
                    })
                    .await;
                    self.propose(
                        incident,
                        st.diagnosis,
                        id,
                        candidate,
                        decision,
                        st.approvals_needed,
                    )
                    .await?;
                }
                _ => {
                    self.escalate(
                        incident,
                        "no cause found in the evidence; a human must look",
                        json!({}),
                    )
                    .await?;
                }
            }
            advance(RunStep::Diagnosed, RunStep::Proposed, &st).await?;
            step = RunStep::Proposed;
        }
        if step == RunStep::Proposed {
            // The write-up, off the critical path: the proposal and any
            // approval request are already out. Recorded before it is
            // posted, so a retry never posts it twice.
            if let (true, Some(gw), None) = (self.summarize, &self.llm, &st.written) {
                let next = match (&st.candidate, &st.decision) {
                    (Some(c), Some(d)) => format!(
                        "{} on {} ({}): {}",
                        c.action.as_str(),
                        c.target,
                        decision_words(d),
                        c.rationale
                    ),
                    _ => "escalate to a human".to_owned(),
                };
                st.written = Some(writer::summarize(gw, incident, &st.explanation, &next).await);
                advance(RunStep::Proposed, RunStep::Proposed, &st).await?;
                if let Some(w) = &st.written
                    && let Some(text) = &w.summary
                {
                    store
                        .append_timeline(
                            incident,
                            "summary",
                            "agent:writer",
                            text,
                            json!({"model_written": true, "tokens_in": w.tokens_in, "tokens_out": w.tokens_out}),
                        )
                        .await?;
                    self.notify(Notification::TimelineUpdate {
                        incident_id: incident,
                        message: text.clone(),
                    })
                    .await;
                }
            }
            advance(RunStep::Proposed, RunStep::Done, &st).await?;
        }

        let proposal = match st.proposal {
            Some(id) => Some(store.get_proposal(id).await?),
            None => None,
        };
        Ok(Outcome {
            explanation: st.explanation,
            citations: st.citations,
            executed: proposal
                .as_ref()
                .is_some_and(|p| p.status == ProposalStatus::Executed),
            proposal,
            decision: st.decision,
            dropped: st.dropped,
            tool_calls: st.tool_calls,
            exhausted: st.exhausted,
            llm: st.llm,
            explored: st.explored,
            written: st.written,
            findings,
            evidence,
        })
    }

    /// Record the proposal `id` and act on the policy's decision. Safe to
    /// repeat: an existing proposal is not written again, and an action
    /// runs only from `proposed`, which it leaves before the tool is called.
    async fn propose(
        &self,
        incident: IncidentId,
        diagnosis: Option<DiagnosisId>,
        id: ProposalId,
        c: &remediator::Candidate,
        decision: &Decision,
        needed: i64,
    ) -> Result<ActionProposal, AgentError> {
        let store = &self.store;
        if let Ok(existing) = store.get_proposal(id).await {
            return self.act(incident, existing, c, decision, needed).await;
        }
        let risk = match decision {
            Decision::Execute { risk } | Decision::NeedsApproval { risk, .. } => *risk,
            Decision::Forbidden { .. } => Risk::Forbidden,
        };
        let record = ActionProposal {
            id,
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
        self.audit("proposal.create", &record, json!({"decision": decision}))
            .await?;
        self.act(incident, record, c, decision, needed).await
    }

    /// Carry out the decision on a recorded proposal, from whatever status
    /// a previous attempt left it in.
    async fn act(
        &self,
        incident: IncidentId,
        mut record: ActionProposal,
        c: &remediator::Candidate,
        decision: &Decision,
        needed: i64,
    ) -> Result<ActionProposal, AgentError> {
        let store = &self.store;
        if record.status == ProposalStatus::Executing {
            // A worker died between claiming the action and recording its
            // result: whether it ran is unknown, so it is not run again.
            self.escalate(
                incident,
                &format!(
                    "{} on {} was started by a worker that stopped; check whether it ran",
                    c.action.as_str(),
                    c.target
                ),
                json!({"proposal": record.id.to_string()}),
            )
            .await?;
            return Ok(record);
        }
        if record.status != ProposalStatus::Proposed {
            return Ok(record);
        }
        match decision {
            Decision::NeedsApproval { reason, .. } => {
                let approval = store
                    .request_approvals(record.id, self.approval_ttl, needed)
                    .await?;
                record.status = ProposalStatus::AwaitingApproval;
                self.audit(
                    "approval.request",
                    &record,
                    json!({"approval": approval.id, "reason": reason, "approvals_needed": needed}),
                )
                .await?;
                let _ = store
                    .transition_incident(
                        incident,
                        IncidentStatus::AwaitingApproval,
                        &self.actor,
                        &format!("{} on {} awaits approval", c.action.as_str(), c.target),
                    )
                    .await;
                self.notify(Notification::ApprovalRequested {
                    incident_id: incident,
                    approval_id: approval.id,
                    summary: approval_summary(&record, needed, reason),
                })
                .await;
            }
            Decision::Execute { .. } if c.action == Action::Escalate => {
                self.escalate(
                    incident,
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
                record = self.run_action(record, ProposalStatus::Proposed).await?;
                if record.status == ProposalStatus::Executed {
                    self.verify(&record).await?;
                }
            }
            Decision::Forbidden { .. } => {}
        }
        Ok(record)
    }

    /// Watch an executed action for up to `verify_window`: its target (a
    /// workload whose pods are all ready, a cordoned node, an instance
    /// whose checks pass, an available database) and the signal that
    /// fired (the incident's alerts resolved, or the alert's own PromQL
    /// expression no longer returning series). Recovered: the timeline
    /// says so; not: the incident is escalated with what was seen.
    pub async fn verify(&self, p: &ActionProposal) -> Result<bool, AgentError> {
        let deadline = std::time::Instant::now() + self.verify_window;
        let mut seen;
        loop {
            seen = self.recovered(p).await;
            if seen.0 || std::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(10).min(self.verify_window)).await;
        }
        let (ok, what) = seen;
        if let Some(incident) = p.incident_id {
            if ok {
                let message = format!("after {} on {}: {what}", p.action.as_str(), p.target);
                self.store
                    .append_timeline(
                        incident,
                        "verified",
                        &self.actor,
                        &message,
                        json!({"proposal": p.id.to_string()}),
                    )
                    .await?;
                self.notify(Notification::Resolved {
                    incident_id: incident,
                    message,
                })
                .await;
            } else {
                self.escalate(
                    incident,
                    &format!(
                        "{} on {} ran but has not brought recovery: {what}; a human must look",
                        p.action.as_str(),
                        p.target
                    ),
                    json!({"proposal": p.id.to_string()}),
                )
                .await?;
            }
        }
        self.audit(
            if ok {
                "action.verified"
            } else {
                "action.unverified"
            },
            p,
            json!({"seen": what}),
        )
        .await?;
        Ok(ok)
    }

    /// Whether the action brought recovery, and what was seen: the signal
    /// still firing overrides a healthy-looking target; a target with no
    /// health check of its own counts as recovered once the signal clears.
    async fn recovered(&self, p: &ActionProposal) -> (bool, String) {
        let signal = match p.incident_id {
            Some(incident) => self.signal(incident).await,
            None => Signal::Unknown,
        };
        let target = self.target_health(p).await;
        match (target, signal) {
            (Some((_, t)), Signal::Firing(s)) => (false, format!("{t}; but {s}")),
            (None, Signal::Firing(s)) => (false, s),
            (Some((ok, t)), Signal::Cleared(s)) => (ok, format!("{t}; {s}")),
            (Some((ok, t)), Signal::Unknown) => (ok, t),
            (None, Signal::Cleared(s)) => (true, s),
            (None, Signal::Unknown) => (
                false,
                format!("no health check for {} and no signal to watch", p.target),
            ),
        }
    }

    /// The state of the signal that opened the incident: its alerts all
    /// resolved, or their PromQL expressions (from Prometheus'
    /// `generatorURL`) evaluated now.
    async fn signal(&self, incident: IncidentId) -> Signal {
        let Ok(alerts) = self.store.alerts_for_incident(incident).await else {
            return Signal::Unknown;
        };
        let firing: Vec<_> = alerts
            .iter()
            .filter(|a| a.status == brain::domain::AlertStatus::Firing)
            .collect();
        if !alerts.is_empty() && firing.is_empty() {
            return Signal::Cleared("its alerts have resolved".into());
        }
        let mut exprs: Vec<String> = firing
            .iter()
            .filter_map(|a| a.raw.get("generatorURL").and_then(Value::as_str))
            .filter_map(generator_expr)
            .collect();
        exprs.sort();
        exprs.dedup();
        if exprs.is_empty() || self.tools.spec("query_prometheus").is_none() {
            return Signal::Unknown;
        }
        let mut quiet = 0;
        for expr in &exprs {
            match self
                .tools
                .call("query_prometheus", json!({"query": expr}))
                .await
            {
                Ok(out) => match out.data["result"].as_array() {
                    Some(series) if !series.is_empty() => {
                        return Signal::Firing(format!(
                            "the alert's expression `{expr}` still returns {} series",
                            series.len()
                        ));
                    }
                    Some(_) => quiet += 1,
                    None => {}
                },
                Err(e) => {
                    tracing::debug!(error = %e, expr, "could not evaluate the alert's expression")
                }
            }
        }
        if quiet == exprs.len() {
            Signal::Cleared("the alert's expression returns nothing now".into())
        } else {
            Signal::Unknown
        }
    }

    /// Whether the action's target looks healthy now, and what was seen;
    /// `None` for a target with no health check.
    async fn target_health(&self, p: &ActionProposal) -> Option<(bool, String)> {
        let call = |tool: &'static str, args: Value| async move {
            self.tools
                .call(tool, args)
                .await
                .map(|o| o.data)
                .map_err(|e| e.to_string())
        };
        Some(match &p.target {
            Component::Kubernetes {
                kind,
                namespace: Some(ns),
                name,
            } if kind == "deployment" || kind == "statefulset" => {
                match call("list_pods", json!({"namespace": ns})).await {
                    Ok(d) => {
                        let pods: Vec<&Value> = d["pods"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|r| {
                                r["name"]
                                    .as_str()
                                    .and_then(|n| n.strip_prefix(name.as_str()))
                                    .is_some_and(|rest| rest.starts_with('-'))
                            })
                            .collect();
                        let sick: Vec<String> = pods
                            .iter()
                            .filter(|r| r["healthy"] != true)
                            .map(|r| {
                                format!(
                                    "{} {}",
                                    r["name"].as_str().unwrap_or("?"),
                                    r["status"].as_str().unwrap_or("?")
                                )
                            })
                            .collect();
                        if pods.is_empty() {
                            (false, "no pods of it are running".into())
                        } else if sick.is_empty() {
                            (true, format!("all {} pods healthy", pods.len()))
                        } else {
                            (false, format!("unhealthy: {}", sick.join(", ")))
                        }
                    }
                    Err(e) => (false, format!("could not list its pods: {e}")),
                }
            }
            Component::Kubernetes { kind, name, .. } if kind == "node" => {
                match call("describe_node", json!({"name": name})).await {
                    Ok(d) => {
                        let cordoned = d["node"]["cordoned"] == true;
                        (cordoned, format!("node cordoned={cordoned}"))
                    }
                    Err(e) => (false, format!("could not read the node: {e}")),
                }
            }
            Component::Aws { service, id } if service == "ec2" => {
                match call("get_ec2_status_checks", json!({"instance_ids": [id]})).await {
                    Ok(d) => {
                        let st = crate::investigator::array_in(&d);
                        let ok = st.iter().all(|s| {
                            s["SystemStatus"]["Status"] != "impaired"
                                && s["InstanceStatus"]["Status"] != "impaired"
                        });
                        (
                            ok,
                            format!(
                                "status checks {}",
                                if ok { "pass" } else { "still impaired" }
                            ),
                        )
                    }
                    Err(e) => (false, format!("could not read its status: {e}")),
                }
            }
            Component::Aws { service, id } if service == "rds" => {
                match call(
                    "describe_rds_instance",
                    json!({"db_instance_identifier": id}),
                )
                .await
                {
                    Ok(d) => {
                        let status = d["instance"]["DBInstanceStatus"]
                            .as_str()
                            .unwrap_or("unknown")
                            .to_owned();
                        (status == "available", format!("status {status}"))
                    }
                    Err(e) => (false, format!("could not read it: {e}")),
                }
            }
            _ => return None,
        })
    }

    /// Expire the approvals nobody answered in time and hand their
    /// incidents to a human: the action never runs. Returns how many.
    pub async fn expire_approvals(&self) -> Result<usize, AgentError> {
        let expired = self.store.expire_approvals().await?;
        for a in &expired {
            let p = self.store.get_proposal(a.proposal_id).await?;
            let message = format!(
                "nobody decided on {} on {} before {}; it will not run, and a human must decide what to do",
                p.action.as_str(),
                p.target,
                a.expires_at
            );
            if let Some(incident) = p.incident_id {
                self.notify(Notification::ApprovalExpired {
                    incident_id: incident,
                    approval_id: a.id,
                })
                .await;
                self.escalate(incident, &message, json!({"approval": a.id.to_string()}))
                    .await?;
            }
            self.audit("approval.expire", &p, json!({"approval": a.id.to_string()}))
                .await?;
        }
        Ok(expired.len())
    }

    /// Remind the notifiers, once, of each approval still unanswered
    /// within `remind_before` of its expiry. Returns how many.
    pub async fn remind_approvals(&self) -> Result<usize, AgentError> {
        if self.remind_before <= chrono::Duration::zero() {
            return Ok(0);
        }
        let due = self
            .store
            .due_approval_reminders(self.remind_before)
            .await?;
        for a in &due {
            let p = self.store.get_proposal(a.proposal_id).await?;
            let Some(incident) = p.incident_id else {
                continue;
            };
            let left = (a.expires_at - chrono::Utc::now()).num_minutes().max(0);
            let message = format!(
                "reminder: {} on {} still awaits approval and expires in {left} min",
                p.action.as_str(),
                p.target
            );
            self.store
                .append_timeline(
                    incident,
                    "approval_reminder",
                    &self.actor,
                    &message,
                    json!({"approval": a.id.to_string()}),
                )
                .await?;
            self.notify(Notification::ApprovalReminder {
                incident_id: incident,
                approval_id: a.id,
                expires_in_minutes: left,
            })
            .await;
        }
        Ok(due.len())
    }

    /// Run an approved proposal's action, once (see [`Self::run_action`]).
    pub async fn execute_approved(&self, id: ProposalId) -> Result<ActionProposal, AgentError> {
        let record = self.store.get_proposal(id).await?;
        self.run_action(record, ProposalStatus::Approved).await
    }

    /// Run a proposal's action if it is still in `from`: it is claimed
    /// (`from → executing`) before its tool is called, so a second caller
    /// (a retried request, another replica) finds it claimed and runs
    /// nothing. The result is recorded on the proposal, in the audit log
    /// and on the incident.
    async fn run_action(
        &self,
        mut record: ActionProposal,
        from: ProposalStatus,
    ) -> Result<ActionProposal, AgentError> {
        let store = &self.store;
        if !store
            .transition_proposal(record.id, from, ProposalStatus::Executing)
            .await?
        {
            return Ok(record);
        }
        let c = remediator::Candidate {
            action: record.action,
            target: record.target.clone(),
            params: record.params.clone(),
            rationale: record.rationale.clone(),
        };
        if let Some(incident) = record.incident_id
            && record.action.is_mutating()
        {
            self.notify(Notification::Remediating {
                incident_id: incident,
                action: record.action.as_str().to_owned(),
                target: record.target.to_string(),
            })
            .await;
        }
        let (tool, args) = tool_call(&c);
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
        if let Some(incident) = record.incident_id {
            let _ = store
                .transition_incident(
                    incident,
                    IncidentStatus::Remediating,
                    &self.actor,
                    &format!("{} on {} {}", c.action.as_str(), c.target, to.as_str()),
                )
                .await;
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

/// What the alert's signal looks like after an action.
enum Signal {
    Cleared(String),
    Firing(String),
    Unknown,
}

/// The PromQL expression of a Prometheus `generatorURL`
/// (`…/graph?g0.expr=…&g0.tab=1`); `None` for other sources' links.
pub fn generator_expr(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "g0.expr")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn decision_words(d: &Decision) -> &'static str {
    match d {
        Decision::Execute { .. } => "runs without approval",
        Decision::NeedsApproval { .. } => "awaits approval",
        Decision::Forbidden { .. } => "forbidden",
    }
}

/// One line for an approver: what, where, why, and how many must approve.
fn approval_summary(p: &ActionProposal, needed: i64, reason: &str) -> String {
    let mut s = format!(
        "{} on {} (risk {}): {}",
        p.action.as_str(),
        p.target,
        p.risk.as_str(),
        p.rationale
    );
    if !reason.is_empty() {
        s.push_str(&format!(" Held because: {reason}."));
    }
    if needed > 1 {
        s.push_str(&format!(" Needs {needed} different approvers."));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_expression_comes_from_a_prometheus_generator_url() {
        assert_eq!(
            generator_expr(
                "http://prometheus:9090/graph?g0.expr=sum+by+%28pod%29+%28rate%28x%5B5m%5D%29%29+%3E+0.05&g0.tab=1"
            )
            .as_deref(),
            Some("sum by (pod) (rate(x[5m])) > 0.05")
        );
        assert_eq!(
            generator_expr("https://grafana.example.org/alerting/grafana/abc/view"),
            None
        );
        assert_eq!(generator_expr("not a url"), None);
        assert_eq!(
            generator_expr("http://p:9090/graph?g0.expr=&g0.tab=1"),
            None
        );
    }
}
