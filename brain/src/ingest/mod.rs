//! Normalisation of every alert source into one shape, [`AlertInput`], and
//! of change events (deploys, merges) into [`ChangeInput`]. Pure functions of
//! the request body: the HTTP layer verifies signatures with [`signature`]
//! and the store does deduplication and grouping.

pub mod alertmanager;
pub mod generic;
pub mod github;
pub mod grafana;
pub mod pagerduty;
pub mod signature;

use crate::domain::{AlertStatus, Severity};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One alert as a source reported it, before deduplication.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInput {
    pub source: &'static str,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub severity: Severity,
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub description: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Alerts with the same key join the same active incident.
    pub group_key: String,
    /// The part of the body that describes this alert, as JSON text.
    pub raw: RawJson,
}

/// JSON text kept as received (or serialised once), so the store writes it
/// without building and re-serialising a value tree per alert.
#[derive(Debug, Clone)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    /// Serialise a value once.
    pub fn from_value<T: serde::Serialize>(v: &T) -> Self {
        Self(
            serde_json::value::to_raw_value(v)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        )
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// Parse the text back into a value (for tests and inspection).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl From<Box<serde_json::value::RawValue>> for RawJson {
    fn from(raw: Box<serde_json::value::RawValue>) -> Self {
        Self(raw)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// A change to the world: a deploy, a config push, a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeInput {
    pub source: &'static str,
    /// Unique within the source, so redelivery does not duplicate it.
    pub external_id: String,
    /// `deploy`, `config`, `infra`, `feature_flag`, `merge`, `push`.
    pub kind: String,
    /// The service or component that changed.
    pub service: Option<String>,
    pub target: String,
    pub environment: Option<String>,
    pub description: String,
    pub author: Option<String>,
    pub at: DateTime<Utc>,
    pub url: Option<String>,
}

/// A body that cannot be normalised; `field` is the JSON path at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub field: String,
    pub message: String,
}

impl ParseError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserialise a body, reporting the path of the first bad field.
pub fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ParseError::new("body", format!("malformed JSON: {inner}"))
        } else {
            ParseError::new(path.clone(), format!("invalid field {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ParseError::new("body", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Map the many ways sources spell severity onto three levels.
pub fn severity_from(text: Option<&str>) -> Severity {
    match text.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some(
            "critical" | "crit" | "error" | "high" | "page" | "p1" | "p2" | "sev1" | "sev2"
            | "disaster",
        ) => Severity::Critical,
        Some("info" | "informational" | "low" | "none" | "ok" | "p4" | "p5") => Severity::Info,
        _ => Severity::Warning,
    }
}

/// The service an alert is about, from the labels sources commonly use.
pub fn service_from(labels: &BTreeMap<String, String>) -> Option<String> {
    [
        "service",
        "app",
        "app_kubernetes_io_name",
        "deployment",
        "statefulset",
        "job_name",
        "container",
        "job",
    ]
    .iter()
    .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()).cloned())
}

/// The resource an alert is about, as a component-like name when the labels allow.
pub fn resource_from(labels: &BTreeMap<String, String>) -> Option<String> {
    let ns = labels.get("namespace");
    for kind in [
        "pod",
        "deployment",
        "statefulset",
        "daemonset",
        "job",
        "persistentvolumeclaim",
    ] {
        if let Some(name) = labels.get(kind) {
            return Some(match ns {
                Some(ns) => format!("{kind}/{ns}/{name}"),
                None => format!("{kind}/{name}"),
            });
        }
    }
    if let Some(node) = labels.get("node") {
        return Some(format!("node/{node}"));
    }
    labels.get("instance").cloned()
}

/// A stable fingerprint of a label set, for sources that send none.
pub fn fingerprint_labels(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xfe]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Alertmanager and Grafana mark "not ended" with the zero time.
pub fn end_time(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.filter(|t| t.timestamp() > 0)
}
