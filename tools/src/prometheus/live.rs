//! The live Prometheus HTTP API over reqwest, every request within a
//! timeout, Prometheus's own error text handed back to the agent.

use super::{AlertsData, Labels, PrometheusApi, QueryData, RulesData, TargetsData};
use async_trait::async_trait;
use brain::backends::ToolError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A Prometheus server reached over HTTP.
#[derive(Debug, Clone)]
pub struct LivePrometheus {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

/// The envelope of every `/api/v1` answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error_type: Option<String>,
    error: Option<String>,
}

impl LivePrometheus {
    /// `base` is the server's URL, e.g. `http://prometheus.monitoring:9090`;
    /// each request gives up after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<LivePrometheus, ToolError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| {
                ToolError::Backend(format!("building the http client for prometheus: {e}"))
            })?;
        Ok(LivePrometheus {
            base: base.trim_end_matches('/').to_owned(),
            http,
            timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, ToolError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.transport(&e))?;
        let envelope: Envelope<T> = match serde_json::from_str(&body) {
            Ok(e) => e,
            Err(e) if status.is_success() => {
                return Err(ToolError::Backend(format!(
                    "reading the answer of {} to {path}: {e}",
                    self.describe()
                )));
            }
            Err(_) => {
                let snippet: String = body.chars().take(200).collect();
                return Err(ToolError::Backend(format!(
                    "{} answered {path} with HTTP {status}: {snippet}",
                    self.describe()
                )));
            }
        };
        if envelope.status == "success" {
            return envelope.data.ok_or_else(|| {
                ToolError::Backend(format!("{} answered {path} without data", self.describe()))
            });
        }
        let error = envelope.error.unwrap_or_default();
        let kind = envelope.error_type.unwrap_or_default();
        Err(match kind.as_str() {
            // The query or its parameters are wrong: the agent can fix them.
            "bad_data" => ToolError::InvalidArguments(error),
            "timeout" => ToolError::Timeout(self.timeout),
            "unavailable" => ToolError::Unavailable(format!("{}: {error}", self.describe())),
            // `execution` (e.g. many-to-many matching) is also the query's fault.
            "execution" => ToolError::InvalidArguments(error),
            _ => ToolError::Backend(format!(
                "{} ({kind}, HTTP {status}): {error}",
                self.describe()
            )),
        })
    }

    fn transport(&self, e: &reqwest::Error) -> ToolError {
        if e.is_timeout() {
            ToolError::Timeout(self.timeout)
        } else if e.is_connect() {
            ToolError::Backend(format!(
                "{} is unreachable: {}",
                self.describe(),
                root_cause(e)
            ))
        } else {
            ToolError::Backend(format!("querying {}: {}", self.describe(), root_cause(e)))
        }
    }
}

/// The innermost error's text: "Connection refused (os error 111)" rather
/// than reqwest's "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn step_param(step: Duration) -> String {
    format!("{}", step.as_secs_f64())
}

fn with_matchers(
    mut params: Vec<(&'static str, String)>,
    matchers: &[String],
) -> Vec<(&'static str, String)> {
    params.extend(matchers.iter().map(|m| ("match[]", m.clone())));
    params
}

#[async_trait]
impl PrometheusApi for LivePrometheus {
    fn describe(&self) -> String {
        format!("Prometheus at {}", self.base)
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn query(&self, query: &str, time: DateTime<Utc>) -> Result<QueryData, ToolError> {
        self.get(
            "/api/v1/query",
            &[("query", query.to_owned()), ("time", ts(time))],
        )
        .await
    }

    async fn query_range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryData, ToolError> {
        let params = [
            ("query", query.to_owned()),
            ("start", ts(start)),
            ("end", ts(end)),
            ("step", step_param(step)),
        ];
        self.get("/api/v1/query_range", &params).await
    }

    async fn series(
        &self,
        matchers: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Labels>, ToolError> {
        let params = with_matchers(vec![("start", ts(start)), ("end", ts(end))], matchers);
        self.get("/api/v1/series", &params).await
    }

    async fn label_names(&self, matchers: &[String]) -> Result<Vec<String>, ToolError> {
        self.get("/api/v1/labels", &with_matchers(Vec::new(), matchers))
            .await
    }

    async fn label_values(
        &self,
        label: &str,
        matchers: &[String],
    ) -> Result<Vec<String>, ToolError> {
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ToolError::InvalidArguments(format!(
                "{label:?} is not a label name"
            )));
        }
        let path = format!("/api/v1/label/{label}/values");
        self.get(&path, &with_matchers(Vec::new(), matchers)).await
    }

    async fn alerts(&self) -> Result<AlertsData, ToolError> {
        self.get("/api/v1/alerts", &[]).await
    }

    async fn rules(&self) -> Result<RulesData, ToolError> {
        self.get("/api/v1/rules", &[]).await
    }

    async fn targets(&self) -> Result<TargetsData, ToolError> {
        self.get("/api/v1/targets", &[("state", "active".to_owned())])
            .await
    }
}
