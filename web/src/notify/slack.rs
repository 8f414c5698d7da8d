//! Slack: a Block Kit message per approval (incident, diagnosis, the
//! action with its target, parameters and risk, Approve with a
//! confirmation dialog, Reject), redrawn from the store whenever the
//! approval changes so nobody clicks twice; everything else about the
//! incident goes into that message's thread. Wire types are
//! slack-morphism's; calls go over the service's own HTTP client with a
//! timeout, and Slack's answers map onto retry or give up.

use super::{http_client, status_error};
use agents::knowledge::excerpt as clip;
use brain::backends::{Notification, Notifier, NotifyError};
use brain::config::{Config, Secret};
use brain::domain::{ActionProposal, Approval, ApprovalStatus, Diagnosis, Incident};
use brain::ids::{ApprovalId, IncidentId};
use brain::store::Store;
use serde::Serialize;
use slack_morphism::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// The notifier's name in the outbox and `notifier_refs`.
pub const NAME: &str = "slack";
/// `action_id`s of the two buttons; the value is the approval id.
pub const APPROVE: &str = "cerebro_approve";
pub const REJECT: &str = "cerebro_reject";

pub struct Slack {
    store: Store,
    http: reqwest::Client,
    api_url: String,
    token: Secret,
    default_channel: Option<String>,
    channels: BTreeMap<String, String>,
    public_url: Option<String>,
}

/// A message posted: where, and its `ts` (Slack's message id).
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

impl Posted {
    fn encode(&self) -> String {
        format!("{} {}", self.channel, self.ts)
    }

    fn decode(s: &str) -> Option<Posted> {
        let (channel, ts) = s.split_once(' ')?;
        Some(Posted {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
        })
    }
}

impl Slack {
    pub fn new(config: &Config, store: Store) -> anyhow::Result<Slack> {
        let s = &config.slack;
        let token = s
            .bot_token
            .clone()
            .ok_or_else(|| anyhow::anyhow!("slack.bot_token is not set"))?;
        Ok(Slack {
            store,
            http: http_client(Duration::from_secs(s.timeout_secs))?,
            api_url: s.api_url.trim_end_matches('/').to_owned(),
            token,
            default_channel: s.default_channel.clone(),
            channels: s.channels.clone(),
            public_url: config
                .server
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// Call a Web API method with a JSON body. Slack answers 200 with
    /// `ok: false` for most failures; `ratelimited` and Slack's own
    /// troubles are worth a retry, the rest (a bad token, an unknown
    /// channel) are not.
    async fn call<T: Serialize + ?Sized>(
        &self,
        method: &str,
        body: &T,
    ) -> Result<serde_json::Value, NotifyError> {
        let r = self
            .http
            .post(format!("{}/{method}", self.api_url))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| NotifyError::Unavailable(format!("{method}: {e}")))?;
        let status = r.status();
        let headers = r.headers().clone();
        let text = r
            .text()
            .await
            .map_err(|e| NotifyError::Unavailable(format!("{method}: {e}")))?;
        if !status.is_success() {
            return Err(status_error(status, &headers, &text));
        }
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| NotifyError::Unavailable(format!("{method}: unreadable answer: {e}")))?;
        if v["ok"] == true {
            return Ok(v);
        }
        let error = v["error"].as_str().unwrap_or("unknown_error").to_owned();
        Err(match error.as_str() {
            "ratelimited" => NotifyError::RateLimited(None),
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                NotifyError::Unavailable(format!("{method}: {error}"))
            }
            _ => NotifyError::Rejected(format!("{method}: {error}")),
        })
    }

    async fn post(
        &self,
        channel: &str,
        content: SlackMessageContent,
        thread: Option<&Posted>,
    ) -> Result<Posted, NotifyError> {
        let mut req = SlackApiChatPostMessageRequest::new(channel.into(), content);
        if let Some(t) = thread {
            req = req.with_thread_ts(t.ts.clone().into());
        }
        let v = self.call("chat.postMessage", &req).await?;
        Ok(Posted {
            channel: v["channel"].as_str().unwrap_or(channel).to_owned(),
            ts: v["ts"]
                .as_str()
                .ok_or_else(|| NotifyError::Unavailable("chat.postMessage: no ts".into()))?
                .to_owned(),
        })
    }

    /// Replace a posted message's content.
    async fn update(&self, at: &Posted, content: SlackMessageContent) -> Result<(), NotifyError> {
        let req = SlackApiChatUpdateRequest::new(
            at.channel.clone().into(),
            content,
            at.ts.clone().into(),
        );
        self.call("chat.update", &req).await.map(|_| ())
    }

    /// A message only `user` sees, in `channel`.
    pub async fn ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
    ) -> Result<(), NotifyError> {
        let req = SlackApiChatPostEphemeralRequest::new(
            channel.into(),
            user.into(),
            SlackMessageContent::new().with_text(text.to_owned()),
        );
        self.call("chat.postEphemeral", &req).await.map(|_| ())
    }

    fn channel_for(&self, incident: &Incident) -> Option<String> {
        incident
            .service
            .as_ref()
            .and_then(|s| self.channels.get(s))
            .or(self.default_channel.as_ref())
            .cloned()
    }

    async fn remembered(&self, key: &str) -> Result<Option<Posted>, NotifyError> {
        Ok(self
            .store
            .notifier_ref(NAME, key)
            .await
            .map_err(store_error)?
            .as_deref()
            .and_then(Posted::decode))
    }

    async fn remember(&self, key: &str, at: &Posted) -> Result<(), NotifyError> {
        self.store
            .set_notifier_ref(NAME, key, &at.encode())
            .await
            .map_err(store_error)
    }

    fn console_link(&self, incident: IncidentId) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{u}/api/v1/incidents/{incident}"))
    }

    /// The approval's message as its current state in the store says.
    async fn render(
        &self,
        approval: ApprovalId,
    ) -> Result<(Incident, SlackMessageContent), NotifyError> {
        let a = self
            .store
            .get_approval(approval)
            .await
            .map_err(store_error)?;
        let p = self
            .store
            .get_proposal(a.proposal_id)
            .await
            .map_err(store_error)?;
        let incident_id = p
            .incident_id
            .ok_or_else(|| NotifyError::Rejected("the proposal belongs to no incident".into()))?;
        let incident = self
            .store
            .get_incident(incident_id)
            .await
            .map_err(store_error)?;
        let diagnosis = self
            .store
            .latest_diagnosis(incident_id)
            .await
            .map_err(store_error)?;
        let content = approval_message(
            &incident,
            diagnosis.as_ref(),
            &p,
            &a,
            self.console_link(incident_id).as_deref(),
        );
        Ok((incident, content))
    }

    /// Post `text` in the incident's thread; with `start`, start the
    /// thread with it when there is none yet.
    async fn to_thread(
        &self,
        incident: IncidentId,
        text: String,
        start: bool,
    ) -> Result<(), NotifyError> {
        let key = format!("thread:{incident}");
        let content = SlackMessageContent::new().with_text(text);
        if let Some(thread) = self.remembered(&key).await? {
            self.post(&thread.channel.clone(), content, Some(&thread))
                .await?;
            return Ok(());
        }
        if !start {
            return Ok(());
        }
        let i = self
            .store
            .get_incident(incident)
            .await
            .map_err(store_error)?;
        let Some(channel) = self.channel_for(&i) else {
            return Ok(());
        };
        let posted = self.post(&channel, content, None).await?;
        self.remember(&key, &posted).await
    }

    async fn approval_requested(&self, approval: ApprovalId) -> Result<(), NotifyError> {
        let key = format!("approval:{approval}");
        if self.remembered(&key).await?.is_some() {
            return Ok(()); // posted already (a retry after a crash)
        }
        let (incident, content) = self.render(approval).await?;
        let Some(channel) = self.channel_for(&incident) else {
            return Ok(());
        };
        let thread_key = format!("thread:{}", incident.id);
        let thread = self.remembered(&thread_key).await?;
        // The first message about an incident starts its thread; a later
        // approval (the next candidate) goes into that thread.
        let posted = match &thread {
            Some(t) => self.post(&t.channel.clone(), content, Some(t)).await?,
            None => self.post(&channel, content, None).await?,
        };
        self.remember(&key, &posted).await?;
        if thread.is_none() {
            self.remember(&thread_key, &posted).await?;
        }
        Ok(())
    }

    /// Redraw the approval's message from the store (decided, expired,
    /// half-approved under four eyes) and say so in the thread.
    async fn approval_changed(
        &self,
        approval: ApprovalId,
        note: Option<String>,
    ) -> Result<(), NotifyError> {
        let Some(at) = self.remembered(&format!("approval:{approval}")).await? else {
            return Ok(());
        };
        let (incident, content) = self.render(approval).await?;
        self.update(&at, content).await?;
        if let Some(note) = note {
            self.to_thread(incident.id, note, false).await?;
        }
        Ok(())
    }
}

fn store_error(e: brain::store::StoreError) -> NotifyError {
    NotifyError::Unavailable(format!("store: {e}"))
}

#[async_trait::async_trait]
impl Notifier for Slack {
    fn name(&self) -> &str {
        NAME
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        match n {
            Notification::ApprovalRequested { approval_id, .. } => {
                self.approval_requested(*approval_id).await
            }
            Notification::ApprovalDecided {
                approval_id,
                approved,
                by,
                ..
            } => {
                let verb = if *approved { "approved" } else { "rejected" };
                self.approval_changed(*approval_id, Some(format!("{verb} by {by}")))
                    .await
            }
            Notification::ApprovalExpired { approval_id, .. } => {
                self.approval_changed(
                    *approval_id,
                    Some("the approval expired: nobody decided in time".into()),
                )
                .await
            }
            Notification::ApprovalReminder {
                incident_id,
                expires_in_minutes,
                ..
            } => {
                self.to_thread(
                    *incident_id,
                    format!(":alarm_clock: still awaiting a decision; the approval expires in {expires_in_minutes} min"),
                    false,
                )
                .await
            }
            Notification::Diagnosed { incident_id, summary } => {
                self.to_thread(*incident_id, format!("*Diagnosis*\n{}", clip(summary, 2500)), false)
                    .await
            }
            Notification::Remediating {
                incident_id,
                action,
                target,
            } => {
                self.to_thread(*incident_id, format!(":gear: running `{action}` on `{target}`"), true)
                    .await
            }
            Notification::Resolved {
                incident_id,
                message,
            } => {
                self.to_thread(*incident_id, format!(":white_check_mark: recovered: {}", clip(message, 1500)), false)
                    .await
            }
            Notification::TimelineUpdate {
                incident_id,
                message,
            } => self.to_thread(*incident_id, clip(message, 2500), false).await,
            Notification::Escalation { incident_id, reason } => {
                self.to_thread(
                    *incident_id,
                    format!(":rotating_light: escalated to a human: {}", clip(reason, 2500)),
                    true,
                )
                .await
            }
        }
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn md(text: String) -> SlackBlockText {
    SlackBlockMarkDownText::new(text).into()
}

/// The Block Kit message of an approval in its current state: a header,
/// the incident, the diagnosis with its top evidence lines, the action,
/// and either the buttons (pending) or who decided and when.
pub fn approval_message(
    incident: &Incident,
    diagnosis: Option<&Diagnosis>,
    p: &ActionProposal,
    a: &Approval,
    console: Option<&str>,
) -> SlackMessageContent {
    let mut blocks: Vec<SlackBlock> = Vec::new();
    blocks.push(
        SlackHeaderBlock::new(clip(&format!("Approval needed: {}", p.action.as_str()), 150).into())
            .into(),
    );
    let mut facts = format!(
        "*{}*\nseverity *{}*",
        escape(&incident.title),
        incident.severity.as_str()
    );
    if let Some(service) = &incident.service {
        facts.push_str(&format!(" · service *{}*", escape(service)));
    }
    if let Some(link) = console {
        facts.push_str(&format!(" · <{link}|incident {}>", incident.id));
    }
    blocks.push(SlackSectionBlock::new().with_text(md(facts)).into());
    if let Some(d) = diagnosis {
        let evidence: Vec<String> = d
            .explanation
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(4)
            .map(|l| format!("• {}", escape(&clip(l, 280))))
            .collect();
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md(format!(
                    "*Diagnosis:* `{}` on `{}` (confidence {:.0}%)\n{}",
                    d.category.as_str(),
                    d.component,
                    d.confidence * 100.0,
                    evidence.join("\n")
                )))
                .into(),
        );
    }
    let params = if p.params.as_object().is_some_and(|o| !o.is_empty()) {
        format!("\nparameters `{}`", clip(&p.params.to_string(), 500))
    } else {
        String::new()
    };
    blocks.push(
        SlackSectionBlock::new()
            .with_text(md(format!(
                "*Proposed:* `{}` on `{}`, risk *{}*{params}\n{}",
                p.action.as_str(),
                p.target,
                p.risk.as_str(),
                escape(&clip(&p.rationale, 600))
            )))
            .into(),
    );
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let by = a.decided_by.clone().unwrap_or_default();
    let state = match a.status {
        ApprovalStatus::Pending => None,
        ApprovalStatus::Approved => Some(format!(
            ":white_check_mark: Approved by *{}* at {}",
            escape(&by),
            when(a.decided_at)
        )),
        ApprovalStatus::Rejected => Some(format!(
            ":x: Rejected by *{}* at {}{}",
            escape(&by),
            when(a.decided_at),
            a.reason
                .as_deref()
                .map(|r| format!(": {}", escape(r)))
                .unwrap_or_default()
        )),
        ApprovalStatus::Expired => Some(format!(
            ":hourglass: Expired at {}: nobody decided in time",
            when(a.decided_at)
        )),
    };
    match state {
        Some(s) => blocks.push(
            SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                SlackBlockMarkDownText::new(s),
            )])
            .into(),
        ),
        None => {
            let mut waiting = format!("Expires {}", when(Some(a.expires_at)));
            if let Some(first) = &a.first_approver {
                waiting.push_str(&format!(
                    " · approved by *{}*; a second approver is needed",
                    escape(first)
                ));
            } else if a.approvals_needed > 1 {
                waiting.push_str(" · needs two different approvers");
            }
            blocks.push(
                SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                    SlackBlockMarkDownText::new(waiting),
                )])
                .into(),
            );
            let value = a.id.to_string();
            let confirm = SlackBlockConfirmItem::new(
                "Run this action?".into(),
                md(format!(
                    "`{}` on `{}` will run now, as you.",
                    p.action.as_str(),
                    p.target
                )),
                "Approve".into(),
                "Cancel".into(),
            );
            blocks.push(
                SlackActionsBlock::new(vec![
                    SlackActionBlockElement::Button(
                        SlackBlockButtonElement::new("Approve".into())
                            .with_action_id(APPROVE.into())
                            .with_value(value.clone())
                            .with_style(SlackBlockButtonStyle::Primary)
                            .with_confirm(confirm),
                    ),
                    SlackActionBlockElement::Button(
                        SlackBlockButtonElement::new("Reject".into())
                            .with_action_id(REJECT.into())
                            .with_value(value)
                            .with_style(SlackBlockButtonStyle::Danger),
                    ),
                ])
                .into(),
            );
        }
    }
    // The notification text is what phones and screen readers show.
    SlackMessageContent::new()
        .with_text(format!(
            "Approval needed: {} on {} ({})",
            p.action.as_str(),
            p.target,
            incident.title
        ))
        .with_blocks(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brain::domain::{IncidentStatus, ProposalStatus, Severity};
    use brain::ids::{DiagnosisId, ProposalId};
    use brain::taxonomy::RootCause;
    use brain::vocabulary::{Action, Risk};
    use serde_json::json;

    fn fixture() -> (Incident, Diagnosis, ActionProposal, Approval) {
        let now = chrono::Utc::now();
        let incident = Incident {
            id: IncidentId::new(),
            org_id: "default".into(),
            title: "checkout 5xx <above> SLO & rising".into(),
            status: IncidentStatus::AwaitingApproval,
            severity: Severity::Critical,
            service: Some("checkout".into()),
            group_key: "k".into(),
            opened_at: now,
            updated_at: now,
            resolved_at: None,
        };
        let diagnosis = Diagnosis {
            id: DiagnosisId::new(),
            incident_id: incident.id,
            category: RootCause::BadDeploy,
            component: "deployment/prod/checkout".parse().expect("component"),
            confidence: 0.87,
            explanation: "errors began 2 min after revision 14\n\nrevision 13 was clean".into(),
            citations: Vec::new(),
            created_at: now,
        };
        let proposal = ActionProposal {
            id: ProposalId::new(),
            incident_id: Some(incident.id),
            diagnosis_id: Some(diagnosis.id),
            action: Action::Rollback,
            target: "deployment/prod/checkout".parse().expect("component"),
            params: json!({"to_revision": 13}),
            risk: Risk::High,
            rationale: "roll back to the last good revision".into(),
            status: ProposalStatus::AwaitingApproval,
            created_at: now,
            tool: None,
            requested_by: "agent".into(),
        };
        let approval = Approval {
            id: ApprovalId::new(),
            proposal_id: proposal.id,
            status: ApprovalStatus::Pending,
            requested_at: now,
            expires_at: now + chrono::Duration::hours(1),
            decided_at: None,
            decided_by: None,
            reason: None,
            approvals_needed: 1,
            first_approver: None,
        };
        (incident, diagnosis, proposal, approval)
    }

    #[test]
    fn a_pending_approval_has_both_buttons_and_everything_to_decide_on() {
        let (i, d, p, a) = fixture();
        let m = approval_message(
            &i,
            Some(&d),
            &p,
            &a,
            Some("https://c.example/api/v1/incidents/x"),
        );
        let v = serde_json::to_value(&m).expect("json");
        let blocks = v["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        let text = v["blocks"].to_string();
        for want in [
            "bad_deploy",
            "87%",
            "kubernetes.rollback",
            "to_revision",
            "risk *high*",
            "errors began 2 min after revision 14",
            "<https://c.example/api/v1/incidents/x|incident",
            // Alert text cannot inject Slack markup.
            "checkout 5xx &lt;above&gt; SLO &amp; rising",
        ] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
        let buttons = blocks
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("actions")["elements"]
            .as_array()
            .expect("elements")
            .clone();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["action_id"], APPROVE);
        assert_eq!(buttons[0]["value"], a.id.to_string());
        assert_eq!(buttons[0]["confirm"]["title"]["type"], "plain_text");
        assert_eq!(buttons[1]["action_id"], REJECT);
        assert_eq!(buttons[1]["style"], "danger");
        assert!(
            v["text"]
                .as_str()
                .expect("text")
                .contains("kubernetes.rollback")
        );
    }

    #[test]
    fn a_decided_approval_shows_who_and_has_no_buttons() {
        let (i, d, p, mut a) = fixture();
        a.status = ApprovalStatus::Rejected;
        a.decided_by = Some("bob".into());
        a.decided_at = Some(chrono::Utc::now());
        a.reason = Some("freeze until 18:00".into());
        let v = serde_json::to_value(approval_message(&i, Some(&d), &p, &a, None)).expect("json");
        let text = v["blocks"].to_string();
        assert!(
            text.contains("Rejected by *bob*") && text.contains("freeze until 18:00"),
            "{text}"
        );
        assert!(!text.contains(APPROVE) && !text.contains(REJECT), "{text}");
        // Under four eyes, the first approval keeps the buttons for the second.
        let (i, d, p, mut a) = fixture();
        a.approvals_needed = 2;
        a.first_approver = Some("alice".into());
        let text = serde_json::to_value(approval_message(&i, Some(&d), &p, &a, None))
            .expect("json")["blocks"]
            .to_string();
        assert!(
            text.contains("approved by *alice*; a second approver is needed"),
            "{text}"
        );
        assert!(text.contains(APPROVE), "{text}");
    }
}
