//! The generic alert of `shared/evals/SPEC.md`, for scripts and the REST API:
//! `{title, severity, service, labels, description}`, plus optional
//! `fingerprint`, `status`, `starts_at`, `ends_at` and `group_key`.

use super::{AlertInput, ParseError, RawJson, fingerprint_labels, from_json, resource_from};
use crate::domain::{AlertStatus, Severity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One generic alert.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct GenericAlert {
    /// One line saying what is wrong.
    pub title: String,
    pub severity: Severity,
    /// The service the alert is about; alerts of one service group together.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Identity of the alert; derived from service, title and labels when absent.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `firing` (default) or `resolved`.
    #[serde(default)]
    pub status: Option<AlertStatus>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Alerts with the same group key join one incident.
    #[serde(default)]
    pub group_key: Option<String>,
}

/// Parse a body holding one alert object or an array of them.
pub fn parse(body: &[u8]) -> Result<Vec<AlertInput>, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let alerts: Vec<GenericAlert> = if first == Some(&b'[') {
        from_json(body)?
    } else {
        vec![from_json(body)?]
    };
    if alerts.is_empty() {
        return Err(ParseError::new("body", "no alerts in the request"));
    }
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            normalise(a).map_err(|e| ParseError::new(format!("[{i}].{}", e.field), e.message))
        })
        .collect()
}

fn normalise(a: GenericAlert) -> Result<AlertInput, ParseError> {
    if a.title.trim().is_empty() {
        return Err(ParseError::new("title", "title must not be empty"));
    }
    let raw = RawJson::from_value(&a);
    let fingerprint = a
        .fingerprint
        .clone()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| {
            let mut identity = a.labels.clone();
            identity.insert("__title".into(), a.title.clone());
            identity.insert("__service".into(), a.service.clone().unwrap_or_default());
            fingerprint_labels(&identity)
        });
    let status = a.status.unwrap_or(AlertStatus::Firing);
    let starts_at = a.starts_at.unwrap_or_else(Utc::now);
    let group_key = a
        .group_key
        .clone()
        .unwrap_or_else(|| format!("generic:{}", a.service.as_deref().unwrap_or(&a.title)));
    Ok(AlertInput {
        source: "generic",
        fingerprint,
        status,
        severity: a.severity,
        namespace: a.labels.get("namespace").cloned(),
        resource: resource_from(&a.labels),
        service: a.service,
        summary: a.title,
        description: a.description,
        starts_at,
        ends_at: a
            .ends_at
            .or_else(|| (status == AlertStatus::Resolved).then(Utc::now)),
        group_key,
        labels: a.labels,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_shape_parses_as_one_firing_alert() {
        let a = &parse(
            br#"{"title":"orders-db connections at 98%","severity":"critical","service":"orders",
            "labels":{"db":"orders-db"},"description":"max_connections nearly reached"}"#,
        )
        .expect("parse")[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.group_key, "generic:orders");
        assert_eq!(a.fingerprint.len(), 16);
    }

    #[test]
    fn an_array_is_many_alerts_and_a_bad_one_is_named_by_index() {
        let ok = parse(br#"[{"title":"a","severity":"info"},{"title":"b","severity":"warning"}]"#)
            .expect("parse");
        assert_eq!(ok.len(), 2);
        let err = parse(br#"[{"title":"a","severity":"info"},{"title":"b","severity":"loud"}]"#)
            .unwrap_err();
        assert_eq!(err.field, "[1].severity");
        let err = parse(br#"{"severity":"info"}"#).unwrap_err();
        assert_eq!(err.field, "body");
        assert!(err.message.contains("title"), "{err}");
        let err = parse(br#"{"title":"  ","severity":"info"}"#).unwrap_err();
        assert_eq!(err.field, "[0].title");
        assert!(parse(b"[]").is_err());
    }
}
