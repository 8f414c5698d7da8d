//! PagerDuty: for incidents a PagerDuty webhook opened, the diagnosis and
//! what happens next as notes, acknowledge when an action starts, resolve
//! when verification passes (REST API v2, each switchable); and paging a
//! human when cerebro escalates: PagerDuty's own incident re-assigned to
//! an escalation policy, and/or an alert triggered with the Events API v2
//! (deduplicated per incident).

use super::{http_client, status_error};
use agents::knowledge::excerpt as clip;
use brain::backends::{Notification, Notifier, NotifyError};
use brain::config::{Config, PagerDutyConfig, Secret};
use brain::ids::IncidentId;
use brain::store::Store;
use serde_json::{Value, json};
use std::time::Duration;

pub const NAME: &str = "pagerduty";

pub struct PagerDuty {
    store: Store,
    http: reqwest::Client,
    config: PagerDutyConfig,
    api_url: String,
    public_url: Option<String>,
}

impl PagerDuty {
    pub fn new(config: &Config, store: Store) -> anyhow::Result<PagerDuty> {
        let c = &config.pagerduty;
        Ok(PagerDuty {
            store,
            http: http_client(Duration::from_secs(c.timeout_secs))?,
            api_url: c.api_url.trim_end_matches('/').to_owned(),
            config: c.clone(),
            public_url: config
                .server
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// The PagerDuty incident behind ours, when a PagerDuty webhook
    /// opened it (its alerts' fingerprint is PagerDuty's incident id).
    async fn pagerduty_incident(
        &self,
        incident: IncidentId,
    ) -> Result<Option<String>, NotifyError> {
        let alerts = self
            .store
            .alerts_for_incident(incident)
            .await
            .map_err(|e| NotifyError::Unavailable(format!("store: {e}")))?;
        Ok(alerts
            .into_iter()
            .find(|a| a.source == "pagerduty")
            .map(|a| a.fingerprint))
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, NotifyError> {
        let r = req
            .send()
            .await
            .map_err(|e| NotifyError::Unavailable(format!("{what}: {e}")))?;
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(match status_error(status, &headers, &text) {
                NotifyError::Rejected(m) => NotifyError::Rejected(format!("{what}: {m}")),
                NotifyError::Unavailable(m) => NotifyError::Unavailable(format!("{what}: {m}")),
                e => e,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A REST v2 request with the headers PagerDuty requires.
    fn rest(&self, method: reqwest::Method, path: &str) -> Option<reqwest::RequestBuilder> {
        let token: &Secret = self.config.api_token.as_ref()?;
        let from = self.config.from_email.as_deref()?;
        Some(
            self.http
                .request(method, format!("{}{path}", self.api_url))
                .header("Authorization", format!("Token token={}", token.expose()))
                .header("Accept", "application/vnd.pagerduty+json;version=2")
                .header("From", from),
        )
    }

    async fn note(&self, pd: &str, content: String) -> Result<(), NotifyError> {
        let Some(req) = self.rest(reqwest::Method::POST, &format!("/incidents/{pd}/notes")) else {
            return Ok(());
        };
        self.send(
            req.json(&json!({"note": {"content": content}})),
            "adding a note",
        )
        .await
        .map(|_| ())
    }

    async fn set_status(&self, pd: &str, status: &str) -> Result<(), NotifyError> {
        let Some(req) = self.rest(reqwest::Method::PUT, &format!("/incidents/{pd}")) else {
            return Ok(());
        };
        let body = json!({"incident": {"type": "incident_reference", "status": status}});
        self.send(req.json(&body), &format!("setting the incident {status}"))
            .await
            .map(|_| ())
    }

    async fn reassign(&self, pd: &str, policy: &str) -> Result<(), NotifyError> {
        let Some(req) = self.rest(reqwest::Method::PUT, &format!("/incidents/{pd}")) else {
            return Ok(());
        };
        let body = json!({"incident": {
            "type": "incident_reference",
            "escalation_policy": {"id": policy, "type": "escalation_policy_reference"},
        }});
        self.send(req.json(&body), "re-assigning the incident")
            .await
            .map(|_| ())
    }

    /// Page a human through the Events API: one alert per incident
    /// (`dedup_key`), so a second escalation updates it.
    async fn page(&self, incident: IncidentId, reason: &str) -> Result<(), NotifyError> {
        let Some(key) = &self.config.routing_key else {
            return Ok(());
        };
        let i = self
            .store
            .get_incident(incident)
            .await
            .map_err(|e| NotifyError::Unavailable(format!("store: {e}")))?;
        let mut body = json!({
            "routing_key": key.expose(),
            "event_action": "trigger",
            "dedup_key": format!("cerebro-{incident}"),
            "payload": {
                "summary": clip(&format!("cerebro escalated: {}: {reason}", i.title), 1024),
                "source": "cerebro",
                "severity": pd_severity(i.severity.as_str()),
                "component": i.service,
                "custom_details": {"incident": incident.to_string(), "reason": reason},
            },
        });
        if let Some(u) = &self.public_url {
            body["links"] = json!([{"href": format!("{u}/api/v1/incidents/{incident}"), "text": "cerebro incident"}]);
        }
        let v = self
            .send(
                self.http.post(&self.config.events_url).json(&body),
                "triggering an alert",
            )
            .await?;
        if v["status"] == "success" {
            Ok(())
        } else {
            Err(NotifyError::Rejected(format!("triggering an alert: {v}")))
        }
    }
}

/// The Events API's severities: critical, error, warning, info.
fn pd_severity(ours: &str) -> &'static str {
    match ours {
        "critical" => "critical",
        "high" | "error" => "error",
        "warning" | "medium" => "warning",
        _ => "info",
    }
}

#[async_trait::async_trait]
impl Notifier for PagerDuty {
    fn name(&self) -> &str {
        NAME
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let incident = n.incident_id();
        if let Notification::Escalation { reason, .. } = n {
            if !self.config.escalate {
                return Ok(());
            }
            if let Some(pd) = self.pagerduty_incident(incident).await? {
                self.note(&pd, format!("cerebro escalated to a human: {reason}"))
                    .await?;
                // Re-assigned to an escalation policy, its first level is
                // paged again even though cerebro acknowledged it.
                if let Some(policy) = &self.config.escalation_policy {
                    self.reassign(&pd, policy).await?;
                }
            }
            return self.page(incident, reason).await;
        }
        let Some(pd) = self.pagerduty_incident(incident).await? else {
            return Ok(()); // not PagerDuty's incident
        };
        let c = &self.config;
        match n {
            Notification::Diagnosed { summary, .. } if c.add_notes => {
                self.note(&pd, clip(&format!("cerebro diagnosis:\n{summary}"), 25_000))
                    .await
            }
            Notification::ApprovalRequested { summary, .. } if c.add_notes => {
                self.note(&pd, format!("cerebro awaits approval: {summary}"))
                    .await
            }
            Notification::ApprovalDecided { approved, by, .. } if c.add_notes => {
                let verb = if *approved { "approved" } else { "rejected" };
                self.note(&pd, format!("cerebro: the action was {verb} by {by}"))
                    .await
            }
            Notification::Remediating { action, target, .. } => {
                if c.add_notes {
                    self.note(&pd, format!("cerebro is running {action} on {target}"))
                        .await?;
                }
                if c.acknowledge {
                    self.set_status(&pd, "acknowledged").await?;
                }
                Ok(())
            }
            Notification::Resolved { message, .. } => {
                if c.add_notes {
                    self.note(&pd, format!("cerebro verified recovery: {message}"))
                        .await?;
                }
                if c.resolve {
                    self.set_status(&pd, "resolved").await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
