//! The Alertmanager webhook body, version 4.

use super::{
    AlertInput, ParseError, RawJson, end_time, fingerprint_labels, from_json, resource_from,
    service_from, severity_from,
};
use crate::domain::AlertStatus;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub version: String,
    #[serde(default)]
    pub group_key: Option<String>,
    pub status: String,
    #[serde(default)]
    pub receiver: Option<String>,
    /// Each alert's text as received: parsed below, and stored as it came.
    pub alerts: Vec<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

pub(crate) fn status(s: &str, field: &str) -> Result<AlertStatus, ParseError> {
    match s {
        "firing" | "alerting" => Ok(AlertStatus::Firing),
        "resolved" | "ok" | "normal" => Ok(AlertStatus::Resolved),
        other => Err(ParseError::new(
            field,
            format!("unknown status {other:?}: expected firing or resolved"),
        )),
    }
}

/// Normalise one webhook call.
pub fn parse(body: &[u8]) -> Result<Vec<AlertInput>, ParseError> {
    let hook: Webhook = from_json(body)?;
    if hook.version != "4" {
        return Err(ParseError::new(
            "version",
            format!(
                "unsupported webhook version {:?}: expected \"4\"",
                hook.version
            ),
        ));
    }
    status(&hook.status, "status")?;
    normalise("alertmanager", hook.group_key.as_deref(), hook.alerts)
}

/// Shared with Grafana, whose body extends Alertmanager's.
/// Parse one alert of `alerts`, naming a bad field as `alerts[i].field`.
fn parse_alert(i: usize, raw: &RawValue) -> Result<WebhookAlert, ParseError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            format!("alerts[{i}]")
        } else {
            format!("alerts[{i}].{path}")
        };
        ParseError::new(
            field.clone(),
            format!("invalid field {field}: {}", e.into_inner()),
        )
    })
}

pub(crate) fn normalise(
    source: &'static str,
    group_key: Option<&str>,
    alerts: Vec<Box<RawValue>>,
) -> Result<Vec<AlertInput>, ParseError> {
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let a = parse_alert(i, &raw)?;
            let status = status(&a.status, &format!("alerts[{i}].status"))?;
            let alertname = a
                .labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "alert".into());
            let fingerprint = a
                .fingerprint
                .clone()
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| fingerprint_labels(&a.labels));
            let service = service_from(&a.labels);
            let group_key = match group_key {
                Some(k) if !k.is_empty() => format!("{source}:{k}"),
                _ => format!("{source}:{alertname}:{}", service.as_deref().unwrap_or("-")),
            };
            Ok(AlertInput {
                source,
                fingerprint,
                status,
                severity: severity_from(a.labels.get("severity").map(String::as_str)),
                service,
                namespace: a.labels.get("namespace").cloned(),
                resource: resource_from(&a.labels),
                summary: a
                    .annotations
                    .get("summary")
                    .or_else(|| a.annotations.get("message"))
                    .cloned()
                    .unwrap_or_else(|| alertname.clone()),
                description: a.annotations.get("description").cloned(),
                starts_at: a.starts_at,
                ends_at: end_time(a.ends_at),
                group_key,
                raw: RawJson::from(raw),
                labels: a.labels,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;

    const FIRING: &[u8] = include_bytes!("../../tests/fixtures/alertmanager-firing.json");
    const RESOLVED: &[u8] = include_bytes!("../../tests/fixtures/alertmanager-resolved.json");

    #[test]
    fn a_captured_firing_webhook_becomes_one_firing_alert() {
        let alerts = parse(FIRING).expect("parse");
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.fingerprint, "9e142dcf63029400");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.service.as_deref(), Some("node-exporter"));
        assert_eq!(a.summary, "node exporter 127.0.0.1:19100 is up");
        assert_eq!(a.ends_at, None, "the zero time means not ended");
        assert_eq!(
            a.group_key,
            "alertmanager:{}:{alertname=\"NodeExporterUp\"}"
        );
    }

    #[test]
    fn a_captured_resolved_webhook_carries_its_end_time() {
        let a = &parse(RESOLVED).expect("parse")[0];
        assert_eq!(a.status, AlertStatus::Resolved);
        assert!(a.ends_at.is_some());
        assert_eq!(a.fingerprint, "9e142dcf63029400");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let err = parse(
            br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "alerts[0]");
        assert!(err.message.contains("startsAt"), "{err}");
        let err = parse(br#"{"version":"3","status":"firing","alerts":[]}"#).unwrap_err();
        assert_eq!(err.field, "version");
        let err = parse(br#"{"version":"4","status":"firing","alerts":[{"status":"burning","labels":{},"startsAt":"2026-01-01T00:00:00Z"}]}"#).unwrap_err();
        assert_eq!(err.field, "alerts[0].status");
    }

    #[test]
    fn kubernetes_labels_name_the_resource_and_an_absent_fingerprint_is_derived() {
        let body = br#"{"version":"4","status":"firing","alerts":[{"status":"firing",
            "labels":{"alertname":"KubePodCrashLooping","namespace":"prod","pod":"payments-api-6c9f7b8d4-x2k9p","severity":"critical"},
            "startsAt":"2026-03-14T10:21:30Z"}]}"#;
        let a = &parse(body).expect("parse")[0];
        assert_eq!(
            a.resource.as_deref(),
            Some("pod/prod/payments-api-6c9f7b8d4-x2k9p")
        );
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.fingerprint.len(), 16);
        assert_eq!(
            a.fingerprint,
            parse(body).expect("again")[0].fingerprint,
            "stable"
        );
    }
}
