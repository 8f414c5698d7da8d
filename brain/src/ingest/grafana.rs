//! Grafana unified-alerting webhook body (contact point of type webhook).
//! It extends Alertmanager's body; each alert also carries dashboard and
//! panel links and the values that fired, which stay in `raw`.

use super::alertmanager::{normalise, status};
use super::{AlertInput, ParseError, from_json};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    status: String,
    #[serde(default)]
    group_key: Option<String>,
    #[serde(default)]
    org_id: Option<i64>,
    alerts: Vec<Box<serde_json::value::RawValue>>,
}

/// Normalise one webhook call.
pub fn parse(body: &[u8]) -> Result<Vec<AlertInput>, ParseError> {
    let hook: Webhook = from_json(body)?;
    status(&hook.status, "status")?;
    let org = hook.org_id.map(|o| format!("org{o}:")).unwrap_or_default();
    let group_key = hook.group_key.map(|k| format!("{org}{k}"));
    // Each alert's raw text keeps everything Grafana sent (dashboard and
    // panel links, the values that fired), not just the shared fields.
    normalise("grafana", group_key.as_deref(), hook.alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertStatus, Severity};

    const BODY: &[u8] = include_bytes!("../../tests/fixtures/grafana-firing.json");

    #[test]
    fn a_grafana_webhook_becomes_alerts_with_dashboard_links_kept() {
        let alerts = parse(BODY).expect("parse");
        assert_eq!(alerts.len(), 2);
        let a = &alerts[0];
        assert_eq!(a.source, "grafana");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.service.as_deref(), Some("checkout"));
        assert_eq!(a.fingerprint, "57c6d9296de2ad39");
        assert!(
            a.raw.to_value()["dashboardURL"]
                .as_str()
                .is_some_and(|u| u.contains("/d/"))
        );
        assert_eq!(alerts[1].status, AlertStatus::Resolved);
        assert!(alerts[1].ends_at.is_some());
        assert!(a.group_key.starts_with("grafana:org1:"));
    }
}
