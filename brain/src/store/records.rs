//! What the agents record: evidence, diagnoses, proposals, and LLM calls.

use super::incidents::{foreign_key_to_not_found, now};
use super::{Store, StoreError, with_db};
use crate::domain::{ActionProposal, Diagnosis, Evidence, LlmCall, LlmOutcome, ProposalStatus};
use crate::ids::*;
use crate::vocabulary::Risk;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct EvidenceRow {
    id: Uuid,
    incident_id: Uuid,
    tool: String,
    args: Json<serde_json::Value>,
    summary: String,
    data: Json<serde_json::Value>,
    collected_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DiagnosisRow {
    id: Uuid,
    incident_id: Uuid,
    category: String,
    component: String,
    confidence: f64,
    explanation: String,
    citations: Json<Vec<String>>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ProposalRow {
    id: Uuid,
    incident_id: Option<Uuid>,
    diagnosis_id: Option<Uuid>,
    action: String,
    target: String,
    params: Json<serde_json::Value>,
    risk: String,
    rationale: String,
    status: String,
    created_at: DateTime<Utc>,
    tool: Option<String>,
    requested_by: String,
}

impl TryFrom<ProposalRow> for ActionProposal {
    type Error = StoreError;
    fn try_from(r: ProposalRow) -> Result<Self, StoreError> {
        let bad =
            |what: &str, v: &str| StoreError::corrupt("action_proposals", format!("{what} {v:?}"));
        Ok(ActionProposal {
            id: ProposalId(r.id),
            incident_id: r.incident_id.map(IncidentId),
            diagnosis_id: r.diagnosis_id.map(DiagnosisId),
            action: r.action.parse().map_err(|_| bad("action", &r.action))?,
            target: r.target.parse().map_err(|_| bad("target", &r.target))?,
            params: r.params.0,
            risk: parse_risk(&r.risk).ok_or_else(|| bad("risk", &r.risk))?,
            rationale: r.rationale,
            status: ProposalStatus::parse(&r.status).ok_or_else(|| bad("status", &r.status))?,
            created_at: r.created_at,
            tool: r.tool,
            requested_by: r.requested_by,
        })
    }
}

fn parse_risk(s: &str) -> Option<Risk> {
    [Risk::Read, Risk::Low, Risk::High, Risk::Forbidden]
        .into_iter()
        .find(|r| r.as_str() == s)
}

macro_rules! proposal_columns {
    () => {
        "id, incident_id, diagnosis_id, action, target, params, risk, rationale, status, created_at, tool, requested_by"
    };
}

#[derive(sqlx::FromRow)]
struct LlmCallRow {
    id: Uuid,
    incident_id: Option<Uuid>,
    role: String,
    provider: String,
    model: String,
    tokens_in: i64,
    tokens_out: i64,
    cost_usd: f64,
    latency_ms: i64,
    outcome: String,
    at: DateTime<Utc>,
}

/// Token and cost totals for an incident.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LlmUsage {
    pub calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
}

impl Store {
    pub async fn add_evidence(&self, e: &Evidence) -> Result<(), StoreError> {
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO evidence (id, incident_id, tool, args, summary, data, collected_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.id.0)
            .bind(e.incident_id.0)
            .bind(&e.tool)
            .bind(Json(&e.args))
            .bind(&e.summary)
            .bind(Json(&e.data))
            .bind(e.collected_at)
            .execute(p)
            .await
            .map_err(|err| {
                foreign_key_to_not_found(err, || format!("incident {}", e.incident_id))
            })?;
        });
        Ok(())
    }

    pub async fn evidence_for_incident(&self, id: IncidentId) -> Result<Vec<Evidence>, StoreError> {
        let rows: Vec<EvidenceRow> = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT id, incident_id, tool, args, summary, data, collected_at
                 FROM evidence WHERE incident_id = $1 ORDER BY collected_at, id",
            )
            .bind(id.0)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| Evidence {
                id: EvidenceId(r.id),
                incident_id: IncidentId(r.incident_id),
                tool: r.tool,
                args: r.args.0,
                summary: r.summary,
                data: r.data.0,
                collected_at: r.collected_at,
            })
            .collect())
    }

    pub async fn add_diagnosis(&self, d: &Diagnosis) -> Result<(), StoreError> {
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO diagnoses (id, incident_id, category, component, confidence, explanation, citations, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(d.id.0)
            .bind(d.incident_id.0)
            .bind(d.category.as_str())
            .bind(d.component.to_string())
            .bind(d.confidence)
            .bind(&d.explanation)
            .bind(Json(&d.citations))
            .bind(d.created_at)
            .execute(p)
            .await
            .map_err(|err| foreign_key_to_not_found(err, || format!("incident {}", d.incident_id)))?;
        });
        Ok(())
    }

    /// The newest diagnosis of an incident, if any.
    pub async fn latest_diagnosis(&self, id: IncidentId) -> Result<Option<Diagnosis>, StoreError> {
        let row: Option<DiagnosisRow> = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT id, incident_id, category, component, confidence, explanation, citations, created_at
                 FROM diagnoses WHERE incident_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(id.0)
            .fetch_optional(p)
            .await?
        });
        row.map(|r| {
            let bad =
                |what: &str, v: &str| StoreError::corrupt("diagnoses", format!("{what} {v:?}"));
            Ok(Diagnosis {
                id: DiagnosisId(r.id),
                incident_id: IncidentId(r.incident_id),
                category: r
                    .category
                    .parse()
                    .map_err(|_| bad("category", &r.category))?,
                component: r
                    .component
                    .parse()
                    .map_err(|_| bad("component", &r.component))?,
                confidence: r.confidence,
                explanation: r.explanation,
                citations: r.citations.0,
                created_at: r.created_at,
            })
        })
        .transpose()
    }

    pub async fn add_proposal(&self, a: &ActionProposal) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO action_proposals (",
            proposal_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        with_db!(self, write, |p| {
            sqlx::query(sql)
                .bind(a.id.0)
                .bind(a.incident_id.map(|i| i.0))
                .bind(a.diagnosis_id.map(|d| d.0))
                .bind(a.action.as_str())
                .bind(a.target.to_string())
                .bind(Json(&a.params))
                .bind(a.risk.as_str())
                .bind(&a.rationale)
                .bind(a.status.as_str())
                .bind(a.created_at)
                .bind(a.tool.as_deref())
                .bind(&a.requested_by)
                .execute(p)
                .await
                .map_err(|err| {
                    foreign_key_to_not_found(err, || {
                        a.incident_id
                            .map_or_else(|| "diagnosis".to_owned(), |i| format!("incident {i}"))
                    })
                })?;
        });
        Ok(())
    }

    pub async fn get_proposal(&self, id: ProposalId) -> Result<ActionProposal, StoreError> {
        let sql = concat!(
            "SELECT ",
            proposal_columns!(),
            " FROM action_proposals WHERE id = $1"
        );
        let row: Option<ProposalRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_optional(p).await?
        });
        row.ok_or_else(|| StoreError::not_found(format!("proposal {id}")))?
            .try_into()
    }

    pub async fn proposals_for_incident(
        &self,
        id: IncidentId,
    ) -> Result<Vec<ActionProposal>, StoreError> {
        let sql = concat!(
            "SELECT ",
            proposal_columns!(),
            " FROM action_proposals WHERE incident_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<ProposalRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_all(p).await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The newest proposal for exactly this tool call (same tool, same
    /// arguments, same requester) that is still waiting or approved, if any:
    /// a repeated call finds the approval its first attempt asked for.
    pub async fn open_tool_proposal(
        &self,
        tool: &str,
        params: &serde_json::Value,
        requested_by: &str,
    ) -> Result<Option<ActionProposal>, StoreError> {
        let sql = concat!(
            "SELECT ",
            proposal_columns!(),
            " FROM action_proposals WHERE tool = $1 AND requested_by = $2 AND status IN ($3, $4)
              ORDER BY created_at DESC, id DESC LIMIT 50"
        );
        let rows: Vec<ProposalRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql)
                .bind(tool)
                .bind(requested_by)
                .bind(ProposalStatus::AwaitingApproval.as_str())
                .bind(ProposalStatus::Approved.as_str())
                .fetch_all(p)
                .await?
        });
        for row in rows {
            if row.params.0 == *params {
                return Ok(Some(row.try_into()?));
            }
        }
        Ok(None)
    }

    /// Move a proposal from `from` to `to` if it is still in `from`; false
    /// when another caller moved it first. Claiming an approved proposal
    /// for execution this way runs it at most once.
    pub async fn transition_proposal(
        &self,
        id: ProposalId,
        from: ProposalStatus,
        to: ProposalStatus,
    ) -> Result<bool, StoreError> {
        let moved = with_db!(self, write, |p| {
            sqlx::query("UPDATE action_proposals SET status = $1 WHERE id = $2 AND status = $3")
                .bind(to.as_str())
                .bind(id.0)
                .bind(from.as_str())
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(moved == 1)
    }

    /// The approval asked for `proposal`, if any.
    pub async fn approval_for_proposal(
        &self,
        proposal: ProposalId,
    ) -> Result<Option<crate::domain::Approval>, StoreError> {
        // One approval per proposal (a unique column): look it up directly.
        let id: Option<Uuid> = with_db!(self, read, |p| {
            sqlx::query_scalar("SELECT id FROM approvals WHERE proposal_id = $1")
                .bind(proposal.0)
                .fetch_optional(p)
                .await?
        });
        match id {
            Some(id) => Ok(Some(self.get_approval(ApprovalId(id)).await?)),
            None => Ok(None),
        }
    }

    pub async fn record_llm_call(&self, c: &LlmCall) -> Result<(), StoreError> {
        with_db!(self, write, |p| {
            sqlx::query(
                "INSERT INTO llm_calls (id, incident_id, role, provider, model, tokens_in, tokens_out, cost_usd, latency_ms, outcome, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(c.id.0)
            .bind(c.incident_id.map(|i| i.0))
            .bind(&c.role)
            .bind(&c.provider)
            .bind(&c.model)
            .bind(c.tokens_in)
            .bind(c.tokens_out)
            .bind(c.cost_usd)
            .bind(c.latency_ms)
            .bind(c.outcome.as_str())
            .bind(c.at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn llm_calls_for_incident(&self, id: IncidentId) -> Result<Vec<LlmCall>, StoreError> {
        let rows: Vec<LlmCallRow> = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT id, incident_id, role, provider, model, tokens_in, tokens_out, cost_usd, latency_ms, outcome, at
                 FROM llm_calls WHERE incident_id = $1 ORDER BY at, id",
            )
            .bind(id.0)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(LlmCall {
                    id: LlmCallId(r.id),
                    incident_id: r.incident_id.map(IncidentId),
                    outcome: LlmOutcome::parse(&r.outcome).ok_or_else(|| {
                        StoreError::corrupt("llm_calls", format!("outcome {:?}", r.outcome))
                    })?,
                    role: r.role,
                    provider: r.provider,
                    model: r.model,
                    tokens_in: r.tokens_in,
                    tokens_out: r.tokens_out,
                    cost_usd: r.cost_usd,
                    latency_ms: r.latency_ms,
                    at: r.at,
                })
            })
            .collect()
    }

    /// Tokens (in and out) of every LLM call since `since`: the gateway's
    /// daily budget survives a restart by starting from this.
    pub async fn llm_tokens_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let (total,): (Option<i64>,) = with_db!(self, read, |p| {
            sqlx::query_as(
                "SELECT CAST(SUM(tokens_in + tokens_out) AS BIGINT) FROM llm_calls WHERE at >= $1",
            )
            .bind(since)
            .fetch_one(p)
            .await?
        });
        Ok(u64::try_from(total.unwrap_or(0)).unwrap_or(0))
    }

    /// Totals over an incident's LLM calls.
    pub async fn llm_usage_for_incident(&self, id: IncidentId) -> Result<LlmUsage, StoreError> {
        let (calls, tokens_in, tokens_out, cost_usd): (i64, Option<i64>, Option<i64>, Option<f64>) = with_db!(
            self,
            read,
            |p| {
                sqlx::query_as(
                    "SELECT COUNT(*), CAST(SUM(tokens_in) AS BIGINT), CAST(SUM(tokens_out) AS BIGINT), SUM(cost_usd)
                     FROM llm_calls WHERE incident_id = $1",
                )
                .bind(id.0)
                .fetch_one(p)
                .await?
            }
        );
        Ok(LlmUsage {
            calls,
            tokens_in: tokens_in.unwrap_or(0),
            tokens_out: tokens_out.unwrap_or(0),
            cost_usd: cost_usd.unwrap_or(0.0),
        })
    }
}

/// The current time at stored precision, for callers building records.
pub fn timestamp() -> DateTime<Utc> {
    now()
}
