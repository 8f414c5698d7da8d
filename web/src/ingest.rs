//! From a parsed request to a committed one: submit to the group-commit
//! writer, map overload to 429, and count what happened for `/metrics`.

use crate::app::AppState;
use crate::error::ApiError;
use brain::ingest::ParseError;
use brain::store::{AlertOutcomeKind, IngestItems, IngestOutcome, IngestRequest, SubmitError};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use utoipa::ToSchema;

/// The sources, a fixed set so metric labels stay bounded.
pub const SOURCES: [&str; 5] = ["alertmanager", "grafana", "pagerduty", "github", "generic"];

/// Per-source totals since start, for the noise-reduction gauge.
#[derive(Default)]
pub struct NoiseCounters {
    alerts: [AtomicU64; 5],
    incidents: [AtomicU64; 5],
}

impl NoiseCounters {
    fn record(&self, source: &str, outcome: &IngestOutcome) {
        let Some(i) = SOURCES.iter().position(|s| *s == source) else {
            return;
        };
        let IngestOutcome::Alerts { alerts } = outcome else {
            return;
        };
        for a in alerts {
            let kind = match a.outcome {
                AlertOutcomeKind::Opened => "opened",
                AlertOutcomeKind::Joined => "joined",
                AlertOutcomeKind::Reopened => "reopened",
                AlertOutcomeKind::Deduplicated => "deduplicated",
                AlertOutcomeKind::Resolved => "resolved",
                AlertOutcomeKind::IgnoredResolution => "ignored_resolution",
            };
            metrics::counter!("cerebro_alerts_received_total", "source" => SOURCES[i], "outcome" => kind)
                .increment(1);
            if matches!(
                a.outcome,
                AlertOutcomeKind::Resolved | AlertOutcomeKind::IgnoredResolution
            ) {
                continue;
            }
            self.alerts[i].fetch_add(1, Ordering::Relaxed);
            if a.outcome == AlertOutcomeKind::Opened {
                self.incidents[i].fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cerebro_incidents_opened_total", "source" => SOURCES[i])
                    .increment(1);
            }
        }
        let incidents = self.incidents[i].load(Ordering::Relaxed);
        if incidents > 0 {
            let ratio = self.alerts[i].load(Ordering::Relaxed) as f64 / incidents as f64;
            metrics::gauge!("cerebro_alert_noise_reduction_ratio", "source" => SOURCES[i])
                .set(ratio);
        }
    }
}

/// What an ingestion endpoint answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    /// `accepted`, `duplicate` (a redelivery: nothing changed) or `ignored`.
    pub status: &'static str,
    /// One entry per alert in the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<brain::store::AlertOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub change: Option<serde_json::Value>,
}

impl IngestResponse {
    pub fn ignored() -> Self {
        Self {
            status: "ignored",
            alerts: Vec::new(),
            change: None,
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::BadRequest {
            message: e.message,
            field: Some(e.field),
        }
    }
}

/// Commit one request; answer only once it is durable.
pub async fn submit(
    state: &AppState,
    source: &'static str,
    delivery: Option<String>,
    items: IngestItems,
    cost_bytes: usize,
) -> Result<IngestResponse, ApiError> {
    let request = IngestRequest {
        org_id: "default".into(),
        delivery: delivery.map(|key| brain::store::DeliveryKey {
            source: source.into(),
            key,
        }),
        items,
    };
    let outcome = state
        .writer
        .submit(request, cost_bytes)
        .await
        .map_err(|e| match e {
            SubmitError::Overloaded => {
                metrics::counter!("cerebro_ingest_rejected_total", "source" => source, "reason" => "overloaded")
                    .increment(1);
                ApiError::Overloaded {
                    message: "ingestion queue is full, retry shortly".into(),
                    retry_after: Duration::from_secs(1),
                }
            }
            SubmitError::Stopped => ApiError::Unavailable {
                message: "shutting down".into(),
                retry_after: Some(Duration::from_secs(5)),
            },
            SubmitError::Store(e) => e.into(),
        })?;
    state.noise.record(source, &outcome);
    Ok(match outcome {
        IngestOutcome::Duplicate => {
            metrics::counter!("cerebro_ingest_duplicate_deliveries_total", "source" => source)
                .increment(1);
            IngestResponse {
                status: "duplicate",
                alerts: Vec::new(),
                change: None,
            }
        }
        IngestOutcome::Alerts { alerts } => IngestResponse {
            status: "accepted",
            alerts,
            change: None,
        },
        other @ (IngestOutcome::Change { .. } | IngestOutcome::Note { .. }) => IngestResponse {
            status: "accepted",
            alerts: Vec::new(),
            change: serde_json::to_value(&other).ok(),
        },
    })
}

/// A delivery key for sources that send no id: the body itself.
pub fn body_key(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}
