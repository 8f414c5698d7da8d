//! PagerDuty webhook v3 (`incident.triggered`, `.acknowledged`,
//! `.resolved`, `.annotated`, ...). The signature is checked by the caller
//! with [`super::signature::pagerduty_valid`] before this runs.

use super::{AlertInput, ParseError, RawJson, from_json, severity_from};
use crate::domain::AlertStatus;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct Envelope {
    event: Event,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    event_type: String,
    resource_type: String,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    agent: Option<Reference>,
    data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Reference {
    #[serde(default)]
    summary: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IncidentData {
    id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    service: Option<ServiceRef>,
    #[serde(default)]
    priority: Option<ServiceRef>,
    #[serde(default)]
    incident_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ServiceRef {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    summary: Option<String>,
}

/// What one PagerDuty event means for cerebro.
#[derive(Debug, Clone, PartialEq)]
pub enum PagerDutyEvent {
    /// An incident changed state: the alert that stands for it.
    Alert(Box<AlertInput>),
    /// A note was added to an incident.
    Note {
        pagerduty_incident: String,
        content: String,
        author: Option<String>,
    },
    /// An event cerebro does not act on (it is still acknowledged).
    Ignored { event_type: String },
}

/// A parsed webhook call: the event id makes redelivery idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub event_id: String,
    pub event: PagerDutyEvent,
}

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let env: Envelope = from_json(body)?;
    let e = env.event;
    let event = match (e.resource_type.as_str(), e.event_type.as_str()) {
        ("incident", "incident.annotated") => {
            let incident = e.data["incident"]["id"]
                .as_str()
                .ok_or_else(|| ParseError::new("event.data.incident.id", "missing incident id"))?;
            PagerDutyEvent::Note {
                pagerduty_incident: incident.to_owned(),
                content: e.data["content"].as_str().unwrap_or_default().to_owned(),
                author: e.agent.and_then(|a| a.summary),
            }
        }
        ("incident", t) if t.starts_with("incident.") => {
            let data: IncidentData = serde_path_to_error::deserialize(&e.data).map_err(|err| {
                ParseError::new(
                    format!("event.data.{}", err.path()),
                    err.inner().to_string(),
                )
            })?;
            PagerDutyEvent::Alert(Box::new(incident_alert(
                &e.event_type,
                e.occurred_at,
                data,
                e.data,
            )))
        }
        (_, t) => PagerDutyEvent::Ignored {
            event_type: t.to_owned(),
        },
    };
    Ok(Parsed {
        event_id: e.id,
        event,
    })
}

fn incident_alert(
    event_type: &str,
    at: DateTime<Utc>,
    d: IncidentData,
    raw: serde_json::Value,
) -> AlertInput {
    let resolved = event_type == "incident.resolved" || d.status.as_deref() == Some("resolved");
    let service = d.service.as_ref().and_then(|s| s.summary.clone());
    let mut labels = BTreeMap::from([
        ("pagerduty_incident".to_owned(), d.id.clone()),
        ("pagerduty_event".to_owned(), event_type.to_owned()),
    ]);
    for (k, v) in [
        ("urgency", d.urgency.clone()),
        (
            "priority",
            d.priority.as_ref().and_then(|p| p.summary.clone()),
        ),
        (
            "pagerduty_service_id",
            d.service.as_ref().and_then(|s| s.id.clone()),
        ),
        ("incident_key", d.incident_key.clone()),
        ("html_url", d.html_url.clone()),
        ("service", service.clone()),
    ] {
        if let Some(v) = v {
            labels.insert(k.to_owned(), v);
        }
    }
    // A P1/P2 priority or high urgency pages someone: treat as critical.
    let severity = severity_from(
        d.priority
            .as_ref()
            .and_then(|p| p.summary.as_deref())
            .filter(|p| matches!(*p, "P1" | "P2"))
            .or(d.urgency.as_deref()),
    );
    AlertInput {
        source: "pagerduty",
        fingerprint: d.id.clone(),
        status: if resolved {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        },
        severity,
        service,
        namespace: None,
        resource: None,
        summary: d
            .title
            .clone()
            .unwrap_or_else(|| format!("PagerDuty incident {}", d.id)),
        description: None,
        starts_at: d.created_at.unwrap_or(at),
        ends_at: resolved.then_some(at),
        group_key: format!("pagerduty:{}", d.id),
        labels,
        raw: RawJson::from_value(&raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;

    const TRIGGERED: &[u8] =
        include_bytes!("../../tests/fixtures/pagerduty-incident-triggered.json");

    #[test]
    fn a_triggered_incident_becomes_a_firing_alert_keyed_by_the_incident() {
        let p = parse(TRIGGERED).expect("parse");
        assert_eq!(p.event_id, "01DEN1HNLBC1NNRMZDUFBVQ0ZK");
        let PagerDutyEvent::Alert(a) = p.event else {
            panic!("expected an alert")
        };
        assert_eq!(a.fingerprint, "Q2K7FCHOR1KM8T");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.service.as_deref(), Some("orders-api"));
        assert_eq!(a.summary, "orders-api: 5xx ratio above 5%");
        assert_eq!(a.labels["pagerduty_event"], "incident.triggered");
    }

    #[test]
    fn a_resolved_event_resolves_the_same_fingerprint() {
        let body = String::from_utf8_lossy(TRIGGERED)
            .replace("incident.triggered", "incident.resolved")
            .replace("\"status\": \"triggered\"", "\"status\": \"resolved\"");
        let PagerDutyEvent::Alert(a) = parse(body.as_bytes()).expect("parse").event else {
            panic!("expected an alert")
        };
        assert_eq!(
            (a.status, a.fingerprint.as_str()),
            (AlertStatus::Resolved, "Q2K7FCHOR1KM8T")
        );
        assert!(a.ends_at.is_some());
    }

    #[test]
    fn an_annotation_is_a_note_and_other_resources_are_ignored() {
        let note = br#"{"event":{"id":"E1","event_type":"incident.annotated","resource_type":"incident",
            "occurred_at":"2026-11-20T10:00:00Z","agent":{"summary":"Jane Doe"},
            "data":{"incident":{"id":"Q2K7FCHOR1KM8T"},"content":"rolled back by hand","type":"incident_note"}}}"#;
        assert_eq!(
            parse(note).expect("parse").event,
            PagerDutyEvent::Note {
                pagerduty_incident: "Q2K7FCHOR1KM8T".into(),
                content: "rolled back by hand".into(),
                author: Some("Jane Doe".into())
            }
        );
        let svc = br#"{"event":{"id":"E2","event_type":"service.updated","resource_type":"service",
            "occurred_at":"2026-11-20T10:00:00Z","data":{"id":"PSVC"}}}"#;
        assert!(matches!(
            parse(svc).expect("parse").event,
            PagerDutyEvent::Ignored { .. }
        ));
    }

    #[test]
    fn a_missing_event_field_is_named() {
        let err = parse(br#"{"event":{"id":"E","resource_type":"incident","occurred_at":"2026-11-20T10:00:00Z","data":{}}}"#)
            .unwrap_err();
        assert_eq!(err.field, "event");
        assert!(err.message.contains("event_type"), "{err}");
        let err = parse(br#"{"event":{"id":"E","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-11-20T10:00:00Z","data":{"title":"x"}}}"#)
            .unwrap_err();
        assert!(err.field.starts_with("event.data"), "{err:?}");
    }
}
