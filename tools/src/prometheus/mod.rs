//! Prometheus: the HTTP API as a trait ([`PrometheusApi`]) with a live
//! client ([`LivePrometheus`]) and a scenario replay ([`WorldPrometheus`],
//! with a PromQL subset in [`promql`] and [`eval`]), and the tools an agent
//! calls over either ([`PrometheusTools`]).
//!
//! The types here are the `data` member of the Prometheus HTTP API answers,
//! so the live client deserializes them as sent and the replay produces
//! the same JSON.

pub mod analysis;
pub mod eval;
mod insight;
pub mod live;
pub mod promql;
pub mod stats;
pub mod tools;
pub mod world;

pub use live::LivePrometheus;
pub use tools::PrometheusTools;
pub use world::WorldPrometheus;

use async_trait::async_trait;
use brain::backends::ToolError;
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A series' labels, `__name__` included.
pub type Labels = BTreeMap<String, String>;

/// The Prometheus HTTP API, as much of it as the tools use.
#[async_trait]
pub trait PrometheusApi: Send + Sync {
    /// Where answers come from, for messages: `Prometheus at http://…`.
    fn describe(&self) -> String;
    /// The present: the wall clock live, `world.now` in a replay.
    fn now(&self) -> DateTime<Utc>;
    /// `GET /api/v1/query`.
    async fn query(&self, query: &str, time: DateTime<Utc>) -> Result<QueryData, ToolError>;
    /// `GET /api/v1/query_range`.
    async fn query_range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryData, ToolError>;
    /// `GET /api/v1/series`: the label sets of series matching any selector.
    async fn series(
        &self,
        matchers: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Labels>, ToolError>;
    /// `GET /api/v1/labels`.
    async fn label_names(&self, matchers: &[String]) -> Result<Vec<String>, ToolError>;
    /// `GET /api/v1/label/{name}/values`; `__name__` lists metric names.
    async fn label_values(
        &self,
        label: &str,
        matchers: &[String],
    ) -> Result<Vec<String>, ToolError>;
    /// `GET /api/v1/alerts`.
    async fn alerts(&self) -> Result<AlertsData, ToolError>;
    /// `GET /api/v1/rules`.
    async fn rules(&self) -> Result<RulesData, ToolError>;
    /// `GET /api/v1/targets`.
    async fn targets(&self) -> Result<TargetsData, ToolError>;
}

/// The `data` of a query: `{"resultType": …, "result": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
    Scalar(Sample),
    String(StringSample),
}

/// One element of an instant vector: `{"metric": {…}, "value": [t, "v"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstantSample {
    pub metric: Labels,
    pub value: Sample,
}

/// One series of a matrix: `{"metric": {…}, "values": [[t, "v"], …]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSeries {
    pub metric: Labels,
    #[serde(default)]
    pub values: Vec<Sample>,
}

/// `[unix seconds, "value"]`, the value as Prometheus formats it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the epoch.
    pub t_ms: i64,
    pub v: f64,
}

/// A string result: `[t, "text"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringSample(pub f64, pub String);

impl Sample {
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.t_ms).unwrap_or_default()
    }
}

/// A float as Prometheus writes it (Go's `FormatFloat(v, 'f', -1, 64)`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// The inverse of [`format_value`].
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&(self.t_ms as f64 / 1000.0))?;
        t.serialize_element(&format_value(self.v))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, v): (f64, String) = Deserialize::deserialize(d)?;
        let v = parse_value(&v)
            .ok_or_else(|| de::Error::custom(format!("sample value {v:?} is not a number")))?;
        Ok(Sample {
            t_ms: (t * 1000.0).round() as i64,
            v,
        })
    }
}

/// The `data` of `/api/v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsData {
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// An alert of an alerting rule, pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    /// `pending` or `firing`.
    pub state: String,
    #[serde(default)]
    pub active_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub value: String,
}

/// The `data` of `/api/v1/rules`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesData {
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// An alerting or recording rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub name: String,
    pub query: String,
    /// `alerting` or `recording`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Alerting rules: `inactive`, `pending` or `firing`.
    #[serde(default)]
    pub state: Option<String>,
    /// Alerting rules: the `for` duration in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// The `data` of `/api/v1/targets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsData {
    #[serde(default)]
    pub active_targets: Vec<Target>,
}

/// One scrape target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub scrape_pool: String,
    #[serde(default)]
    pub scrape_url: String,
    /// `up`, `down` or `unknown`.
    pub health: String,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub last_scrape: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_scrape_duration: Option<f64>,
}
