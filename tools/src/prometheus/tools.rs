//! The `prometheus` tool backend: queries, discovery (metric names, label
//! values, series), alerts, rules and targets, and the analysis tools, over
//! any [`PrometheusApi`]. Text is one line per series for a model; `data`
//! holds the structured answer.

use super::analysis::{self, num, percent};
use super::insight;
use super::{Labels, PrometheusApi, QueryData, RangeSeries};
use crate::typed;
use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use brain::vocabulary::Risk;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Lines of series shown before "… and N more".
pub(super) const MAX_LINES: usize = 40;
pub(super) const TIMEOUT: Duration = Duration::from_secs(30);

/// The Prometheus tools over one API, live or replayed.
#[derive(Clone)]
pub struct PrometheusTools {
    pub(super) api: Arc<dyn PrometheusApi>,
}

impl PrometheusTools {
    pub fn new(api: Arc<dyn PrometheusApi>) -> PrometheusTools {
        PrometheusTools { api }
    }
}

/// Arguments of `query_prometheus`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryArgs {
    /// A PromQL expression, e.g. `sum by (service) (rate(http_requests_total{code=~"5.."}[5m]))`.
    query: String,
    /// When to evaluate: RFC 3339 (`2026-04-07T15:30:00Z`) or an offset from now (`-30m`). Default: now.
    #[serde(default)]
    time: Option<String>,
}

/// Arguments of `query_prometheus_range`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RangeArgs {
    /// A PromQL expression that returns an instant vector or a scalar.
    query: String,
    /// Start of the range: RFC 3339 or an offset from now like `-1h`. Default: `-1h`.
    #[serde(default)]
    start: Option<String>,
    /// End of the range: RFC 3339 or an offset like `-5m`. Default: now.
    #[serde(default)]
    end: Option<String>,
    /// Resolution such as `30s`, `1m`, `5m`. Default: about 60 points over the range.
    #[serde(default)]
    step: Option<String>,
}

/// Arguments of `list_metric_names`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MetricNamesArgs {
    /// Keep names containing this text, or matching it as a regular expression
    /// (case-insensitive), e.g. `http_.*error` or `memory`.
    #[serde(default)]
    filter: Option<String>,
}

/// Arguments of `list_label_values`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LabelValuesArgs {
    /// The label, e.g. `namespace`, `pod`, `job`, `service`.
    label: String,
    /// Only series matching this selector, e.g. `kube_pod_info{namespace="prod"}`.
    #[serde(default)]
    selector: Option<String>,
}

/// Arguments of `find_series`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FindSeriesArgs {
    /// Series selectors, e.g. `["up{job=\"api\"}", "{__name__=~\"http_.*\", service=\"checkout\"}"]`.
    selectors: Vec<String>,
    /// Only series with samples after this time (RFC 3339 or offset). Default: `-1h`.
    #[serde(default)]
    start: Option<String>,
    /// Only series with samples before this time. Default: now.
    #[serde(default)]
    end: Option<String>,
}

/// Arguments of `list_prometheus_alerts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AlertsArgs {
    /// `firing` or `pending`. Default: both.
    #[serde(default)]
    state: Option<String>,
}

/// Arguments of `list_alert_rules`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RulesArgs {
    /// Keep rules whose name or expression contains this text.
    #[serde(default)]
    filter: Option<String>,
}

/// Arguments of `list_scrape_targets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TargetsArgs {
    /// `up`, `down` or `unknown`. Default: all.
    #[serde(default)]
    health: Option<String>,
}

/// Arguments of `summarize_metric`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SummarizeArgs {
    /// A PromQL expression returning one or more series, e.g. `service:error_ratio_rate5m{service="checkout"}`.
    query: String,
    /// Start: RFC 3339 or an offset like `-2h`. Default: `-1h`.
    #[serde(default)]
    start: Option<String>,
    /// End: RFC 3339 or an offset. Default: now.
    #[serde(default)]
    end: Option<String>,
    /// Resolution such as `1m`. Default: about 60 points over the range.
    #[serde(default)]
    step: Option<String>,
}

/// Arguments of `what_changed_around`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChangedArgs {
    /// A PromQL expression returning the series to compare, e.g.
    /// `sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="prod"}[5m]))`.
    query: String,
    /// The moment to look around: RFC 3339 or an offset like `-20m` (a deploy, the alert start).
    time: String,
    /// Length of the window on each side, e.g. `15m`. Default: `15m`.
    #[serde(default)]
    window: Option<String>,
    /// How many series to show, largest change first. Default: 10.
    #[serde(default)]
    top: Option<usize>,
}

#[async_trait]
impl ToolBackend for PrometheusTools {
    fn name(&self) -> &str {
        "prometheus"
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![
            typed::spec::<QueryArgs>(
                "query_prometheus",
                "Evaluate a PromQL expression at one instant (default now) and list the resulting series \
                 with their values. Use it for the current value of a metric, an error ratio, or which \
                 pods/services exceed a threshold (`... > 0.05`).",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<RangeArgs>(
                "query_prometheus_range",
                "Evaluate a PromQL expression over a time range and return, per series, min/max/last and \
                 the values at each step. Use it to see how a metric evolved; prefer summarize_metric for \
                 a digest of what happened.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<MetricNamesArgs>(
                "list_metric_names",
                "List the metric names Prometheus has, optionally filtered. Use it first when you do not \
                 know what a metric is called.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<LabelValuesArgs>(
                "list_label_values",
                "List the values of one label (e.g. every namespace, pod or job), optionally only on \
                 series matching a selector.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<FindSeriesArgs>(
                "find_series",
                "List the label sets of the series matching selectors, to learn which labels a metric \
                 carries before writing a query.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<AlertsArgs>(
                "list_prometheus_alerts",
                "List the alerts Prometheus currently has pending or firing, with labels and since when.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<RulesArgs>(
                "list_alert_rules",
                "List alerting and recording rules with their expressions, state and evaluation errors. \
                 Use it to learn what an alert measures and its threshold.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<TargetsArgs>(
                "list_scrape_targets",
                "List scrape targets with their health and last scrape error. Use it when metrics are \
                 missing or stale, or `up` is 0.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<SummarizeArgs>(
                "summarize_metric",
                "Digest a metric over a range, one line per series: min/mean/max/last, trend, and what \
                 happened when (level shifts such as 'rose from 0.2 to 4.1 at 10:42 (+1950%)', spikes, \
                 outliers). Use it to find when a problem started.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<ChangedArgs>(
                "what_changed_around",
                "Compare each series' mean in the window before a time with the window after it and rank \
                 the series by relative change, with each one's share of the total change. Use it to \
                 find which pods, services or routes moved around a deploy or an alert start.",
                Risk::Read,
                TIMEOUT,
            ),
        ]
        .into_iter()
        .chain(insight::specs())
        .collect()
    }

    async fn call(&self, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        match tool {
            "query_prometheus" => self.query(typed::parse(args)?).await,
            "query_prometheus_range" => self.query_range(typed::parse(args)?).await,
            "list_metric_names" => self.metric_names(typed::parse(args)?).await,
            "list_label_values" => self.label_values(typed::parse(args)?).await,
            "find_series" => self.find_series(typed::parse(args)?).await,
            "list_prometheus_alerts" => self.alerts(typed::parse(args)?).await,
            "list_alert_rules" => self.rules(typed::parse(args)?).await,
            "list_scrape_targets" => self.targets(typed::parse(args)?).await,
            "summarize_metric" => self.summarize(typed::parse(args)?).await,
            "what_changed_around" => self.what_changed(typed::parse(args)?).await,
            other => self.call_insight(other, args).await,
        }
    }
}

pub(super) fn output(text: String, data: serde_json::Value) -> ToolOutput {
    ToolOutput {
        text,
        data,
        truncated: false,
    }
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Lines, at most [`MAX_LINES`], then how many were left out.
pub(super) fn cap(mut lines: Vec<String>, noun: &str) -> String {
    let total = lines.len();
    if total > MAX_LINES {
        lines.truncate(MAX_LINES);
        lines.push(format!(
            "… and {} more {noun} (narrow the selector to see them)",
            total - MAX_LINES
        ));
    }
    lines.join("\n")
}

impl PrometheusTools {
    pub(super) fn time(
        &self,
        text: Option<&str>,
        default: &str,
        field: &str,
    ) -> Result<DateTime<Utc>, ToolError> {
        let text = text.unwrap_or(default).trim();
        let now = self.api.now();
        if text.is_empty() || text == "now" {
            return Ok(now);
        }
        brain::scenario::resolve_time(text, now)
            .map_err(|e| ToolError::InvalidArguments(format!("`{field}`: {e}")))
    }

    pub(super) fn range(
        &self,
        start: Option<&str>,
        end: Option<&str>,
        step: Option<&str>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>, Duration), ToolError> {
        let start = self.time(start, "-1h", "start")?;
        let end = self.time(end, "now", "end")?;
        if end <= start {
            return Err(ToolError::InvalidArguments(
                "`end` must be after `start`".into(),
            ));
        }
        let step = match step {
            Some(s) => typed::parse_duration(s)
                .map_err(|e| ToolError::InvalidArguments(format!("`step`: {e}")))?,
            None => {
                let span = (end - start).num_seconds().max(60) as u64;
                Duration::from_secs(span.div_ceil(60).max(1))
            }
        };
        if step.is_zero() {
            return Err(ToolError::InvalidArguments(
                "`step` must be positive".into(),
            ));
        }
        Ok((start, end, step))
    }

    pub(super) fn clock(&self, span_days: i64) -> impl Fn(DateTime<Utc>) -> String {
        move |t: DateTime<Utc>| {
            if span_days >= 1 {
                t.format("%m-%d %H:%M").to_string()
            } else {
                t.format("%H:%M").to_string()
            }
        }
    }

    async fn query(&self, a: QueryArgs) -> Result<ToolOutput, ToolError> {
        let t = self.time(a.time.as_deref(), "now", "time")?;
        let data = self.api.query(&a.query, t).await?;
        let at = t.format("%Y-%m-%dT%H:%M:%SZ");
        let text = match &data {
            QueryData::Scalar(s) => format!("scalar at {at}: {}", num(s.v)),
            QueryData::String(s) => format!("string at {at}: {}", s.1),
            QueryData::Vector(v) if v.is_empty() => {
                format!("no series at {at} (nothing matched or no sample in the last 5m)")
            }
            QueryData::Vector(v) => {
                let labels: Vec<&Labels> = v.iter().map(|s| &s.metric).collect();
                let (common, names) = abbreviate(&labels);
                let mut order: Vec<usize> = (0..v.len()).collect();
                order.sort_by(|&i, &j| v[j].value.v.total_cmp(&v[i].value.v));
                let lines = order
                    .iter()
                    .map(|&i| format!("{} {}", names[i], num(v[i].value.v)))
                    .collect();
                format!(
                    "{} series at {at}{}\n{}",
                    v.len(),
                    common,
                    cap(lines, "series")
                )
            }
            QueryData::Matrix(m) => {
                let labels: Vec<&Labels> = m.iter().map(|s| &s.metric).collect();
                let (common, names) = abbreviate(&labels);
                let lines = m
                    .iter()
                    .zip(&names)
                    .map(|(s, n)| {
                        let vals: Vec<String> = s.values.iter().map(|x| num(x.v)).collect();
                        format!("{n} [{}]", vals.join(" "))
                    })
                    .collect();
                format!(
                    "{} series (raw samples) at {at}{}\n{}",
                    m.len(),
                    common,
                    cap(lines, "series")
                )
            }
        };
        Ok(output(text, to_json(&data)))
    }

    pub(super) async fn matrix(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<RangeSeries>, ToolError> {
        match self.api.query_range(query, start, end, step).await? {
            QueryData::Matrix(m) => Ok(m),
            other => Err(ToolError::Backend(format!(
                "{} answered a range query with a {} instead of a matrix",
                self.api.describe(),
                match other {
                    QueryData::Vector(_) => "vector",
                    QueryData::Scalar(_) => "scalar",
                    _ => "string",
                }
            ))),
        }
    }

    async fn query_range(&self, a: RangeArgs) -> Result<ToolOutput, ToolError> {
        let (start, end, step) =
            self.range(a.start.as_deref(), a.end.as_deref(), a.step.as_deref())?;
        let m = self.matrix(&a.query, start, end, step).await?;
        let labels: Vec<&Labels> = m.iter().map(|s| &s.metric).collect();
        let (common, names) = abbreviate(&labels);
        let clock = self.clock((end - start).num_days());
        let lines: Vec<String> = m
            .iter()
            .zip(&names)
            .map(|(s, n)| {
                let vals: Vec<f64> = s.values.iter().map(|x| x.v).collect();
                let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
                let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let points: Vec<String> = thin(&vals, 30).iter().map(|v| num(*v)).collect();
                format!(
                    "{n}: min {} max {} last {} ({} points from {}): {}",
                    num(min),
                    num(max),
                    vals.last().map_or("-".into(), |v| num(*v)),
                    vals.len(),
                    s.values.first().map_or("-".into(), |x| clock(x.time())),
                    points.join(" ")
                )
            })
            .collect();
        let text = format!(
            "{} series from {} to {} step {}s{}\n{}",
            m.len(),
            clock(start),
            clock(end),
            step.as_secs(),
            common,
            cap(lines, "series")
        );
        Ok(output(
            text,
            json!({"resultType": "matrix", "result": to_json(&m)}),
        ))
    }

    async fn metric_names(&self, a: MetricNamesArgs) -> Result<ToolOutput, ToolError> {
        let names = self.api.label_values("__name__", &[]).await?;
        let total = names.len();
        let kept: Vec<String> = match a.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            None => names,
            Some(f) => {
                let re = regex::RegexBuilder::new(f)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .ok();
                let lower = f.to_lowercase();
                names
                    .into_iter()
                    .filter(|n| {
                        re.as_ref().is_some_and(|r| r.is_match(n))
                            || n.to_lowercase().contains(&lower)
                    })
                    .collect()
            }
        };
        let text = format!(
            "{} of {total} metric names\n{}",
            kept.len(),
            cap_words(&kept, 300)
        );
        Ok(output(text, json!(kept)))
    }

    async fn label_values(&self, a: LabelValuesArgs) -> Result<ToolOutput, ToolError> {
        let matchers: Vec<String> = a.selector.into_iter().collect();
        let values = self.api.label_values(&a.label, &matchers).await?;
        let text = format!(
            "{} values of {}\n{}",
            values.len(),
            a.label,
            cap_words(&values, 300)
        );
        Ok(output(text, json!(values)))
    }

    async fn find_series(&self, a: FindSeriesArgs) -> Result<ToolOutput, ToolError> {
        if a.selectors.is_empty() {
            return Err(ToolError::InvalidArguments(
                "`selectors` needs at least one selector".into(),
            ));
        }
        let start = self.time(a.start.as_deref(), "-1h", "start")?;
        let end = self.time(a.end.as_deref(), "now", "end")?;
        let series = self.api.series(&a.selectors, start, end).await?;
        let lines = series.iter().map(|l| format_labels(l, &[])).collect();
        let text = format!("{} series\n{}", series.len(), cap(lines, "series"));
        Ok(output(text, to_json(&series)))
    }

    async fn alerts(&self, a: AlertsArgs) -> Result<ToolOutput, ToolError> {
        let mut alerts = self.api.alerts().await?.alerts;
        if let Some(state) = a.state.as_deref() {
            alerts.retain(|al| al.state.eq_ignore_ascii_case(state));
        }
        let lines = alerts
            .iter()
            .map(|al| {
                let since = al
                    .active_at
                    .map(|t| format!(" since {}", t.format("%Y-%m-%dT%H:%M:%SZ")))
                    .unwrap_or_default();
                let summary = al
                    .annotations
                    .get("summary")
                    .map(|s| format!(" — {s}"))
                    .unwrap_or_default();
                let name = al.labels.get("alertname").map_or("", String::as_str);
                format!(
                    "{} {name} {}{since}{summary}",
                    al.state,
                    format_labels(&al.labels, &["alertname"])
                )
            })
            .collect();
        let text = format!("{} alerts\n{}", alerts.len(), cap(lines, "alerts"));
        Ok(output(text, to_json(&alerts)))
    }

    async fn rules(&self, a: RulesArgs) -> Result<ToolOutput, ToolError> {
        let groups = self.api.rules().await?.groups;
        let mut lines = Vec::new();
        let mut kept = Vec::new();
        for g in &groups {
            for r in &g.rules {
                if let Some(f) = a.filter.as_deref()
                    && !r.name.contains(f)
                    && !r.query.contains(f)
                {
                    continue;
                }
                let state = r
                    .state
                    .as_deref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default();
                let error = r
                    .last_error
                    .as_deref()
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(" error: {e}"))
                    .unwrap_or_default();
                let duration = r
                    .duration
                    .filter(|d| *d > 0.0)
                    .map(|d| format!(" for {d}s"))
                    .unwrap_or_default();
                lines.push(format!(
                    "{} {}{state} ({}): {}{duration}{error}",
                    r.kind, r.name, g.name, r.query
                ));
                kept.push(r);
            }
        }
        let text = format!("{} rules\n{}", kept.len(), cap(lines, "rules"));
        Ok(output(text, to_json(&kept)))
    }

    async fn targets(&self, a: TargetsArgs) -> Result<ToolOutput, ToolError> {
        let mut targets = self.api.targets().await?.active_targets;
        if let Some(h) = a.health.as_deref() {
            targets.retain(|t| t.health.eq_ignore_ascii_case(h));
        }
        // Unhealthy first: that is what the agent is looking for.
        targets.sort_by_key(|t| t.health == "up");
        let lines = targets
            .iter()
            .map(|t| {
                let error = if t.last_error.is_empty() {
                    String::new()
                } else {
                    format!(" error: {}", t.last_error)
                };
                format!(
                    "{} {} {}{error}",
                    t.health,
                    format_labels(&t.labels, &[]),
                    t.scrape_url
                )
            })
            .collect();
        let text = format!("{} targets\n{}", targets.len(), cap(lines, "targets"));
        Ok(output(text, to_json(&targets)))
    }

    async fn summarize(&self, a: SummarizeArgs) -> Result<ToolOutput, ToolError> {
        let (start, end, step) =
            self.range(a.start.as_deref(), a.end.as_deref(), a.step.as_deref())?;
        let m = self.matrix(&a.query, start, end, step).await?;
        let labels: Vec<&Labels> = m.iter().map(|s| &s.metric).collect();
        let (common, names) = abbreviate(&labels);
        let clock = self.clock((end - start).num_days());
        let mut rows = Vec::new();
        for (s, name) in m.iter().zip(&names) {
            let samples: Vec<(i64, f64)> = s.values.iter().map(|x| (x.t_ms, x.v)).collect();
            let Some(sum) = analysis::summarize(&samples) else {
                continue;
            };
            let events: Vec<String> = sum
                .events
                .iter()
                .map(|e| analysis::describe(e, &clock))
                .collect();
            let story = if events.is_empty() {
                "no notable change".to_owned()
            } else {
                events.join("; ")
            };
            // Series with events first, then by how much they moved.
            let weight = (
                !sum.events.is_empty(),
                (sum.max - sum.min) / sum.mean.abs().max(f64::MIN_POSITIVE),
            );
            rows.push((
                weight,
                format!(
                    "{name}: {story}. min {} mean {} max {} last {}, {}",
                    num(sum.min),
                    num(sum.mean),
                    num(sum.max),
                    num(sum.last),
                    sum.trend
                ),
                json!({"metric": s.metric, "summary": sum}),
            ));
        }
        rows.sort_by(|a, b| b.0.0.cmp(&a.0.0).then(b.0.1.total_cmp(&a.0.1)));
        let text = format!(
            "{} series from {} to {} (step {}s){}\n{}",
            rows.len(),
            clock(start),
            clock(end),
            step.as_secs(),
            common,
            cap(rows.iter().map(|r| r.1.clone()).collect(), "series")
        );
        Ok(output(
            text,
            serde_json::Value::Array(rows.into_iter().map(|r| r.2).collect()),
        ))
    }

    async fn what_changed(&self, a: ChangedArgs) -> Result<ToolOutput, ToolError> {
        let t = self.time(Some(&a.time), "now", "time")?;
        let window = match a.window.as_deref() {
            Some(w) => typed::parse_duration(w)
                .map_err(|e| ToolError::InvalidArguments(format!("`window`: {e}")))?,
            None => Duration::from_secs(15 * 60),
        };
        let w = chrono::Duration::from_std(window)
            .map_err(|_| ToolError::InvalidArguments("`window` is too long".into()))?;
        if w <= chrono::Duration::zero() {
            return Err(ToolError::InvalidArguments(
                "`window` must be positive".into(),
            ));
        }
        let step = Duration::from_secs((window.as_secs() / 15).max(1));
        let m = self.matrix(&a.query, t - w, t + w, step).await?;
        let mut changes: Vec<(&Labels, analysis::WindowChange)> = m
            .iter()
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s.values.iter().map(|x| (x.t_ms, x.v)).collect();
                analysis::compare_windows(&samples, t.timestamp_millis(), w.num_milliseconds())
                    .map(|c| (&s.metric, c))
            })
            .collect();
        let total_delta: f64 = changes.iter().map(|(_, c)| c.after - c.before).sum();
        changes.sort_by(|a, b| {
            b.1.relative.abs().total_cmp(&a.1.relative.abs()).then(
                (b.1.after - b.1.before)
                    .abs()
                    .total_cmp(&(a.1.after - a.1.before).abs()),
            )
        });
        let top = a.top.unwrap_or(10).clamp(1, MAX_LINES);
        let labels: Vec<&Labels> = changes.iter().map(|c| c.0).collect();
        let (common, names) = abbreviate(&labels);
        let lines: Vec<String> = changes
            .iter()
            .zip(&names)
            .take(top)
            .map(|((_, c), n)| {
                let delta = c.after - c.before;
                let share = if total_delta != 0.0 && changes.len() > 1 {
                    format!(", {:.0}% of the total change", 100.0 * delta / total_delta)
                } else {
                    String::new()
                };
                format!(
                    "{n}: {} → {} ({}{share})",
                    num(c.before),
                    num(c.after),
                    percent(c.relative)
                )
            })
            .collect();
        let left = changes.len().saturating_sub(top);
        let more = if left > 0 {
            format!("\n… and {left} more series with smaller changes")
        } else {
            String::new()
        };
        let text = format!(
            "{} series compared, mean over {}m before vs after {}{}\n{}{more}",
            changes.len(),
            window.as_secs() / 60,
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            common,
            lines.join("\n")
        );
        let data: Vec<serde_json::Value> = changes
            .iter()
            .map(|(l, c)| json!({"metric": l, "before": c.before, "after": c.after, "relative": c.relative.is_finite().then_some(c.relative)}))
            .collect();
        Ok(output(
            text,
            json!({"time": t, "window_s": window.as_secs(), "series": data}),
        ))
    }
}

/// Every `stride`th value so a long range reads as a sketch, last kept.
fn thin(values: &[f64], max: usize) -> Vec<f64> {
    if values.len() <= max {
        return values.to_vec();
    }
    let stride = values.len().div_ceil(max);
    let mut out: Vec<f64> = values.iter().step_by(stride).copied().collect();
    if values.len() % stride != 1
        && let Some(l) = values.last()
    {
        out.push(*l);
    }
    out
}

fn cap_words(words: &[String], max: usize) -> String {
    let mut s = words
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if words.len() > max {
        s.push_str(&format!(" … and {} more (use a filter)", words.len() - max));
    }
    s
}

/// `name{k="v",…}` without the labels in `skip`.
pub(super) fn format_labels(l: &Labels, skip: &[&str]) -> String {
    let name = l.get("__name__").map(String::as_str).unwrap_or("");
    let rest: Vec<String> = l
        .iter()
        .filter(|(k, _)| *k != "__name__" && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if rest.is_empty() {
        if name.is_empty() {
            "{}".into()
        } else {
            name.to_owned()
        }
    } else {
        format!("{name}{{{}}}", rest.join(","))
    }
}

/// Labels every series shares, said once (`; common: namespace=prod`), and
/// each series named by the rest.
pub(super) fn abbreviate(all: &[&Labels]) -> (String, Vec<String>) {
    let mut common: BTreeMap<&str, &str> = BTreeMap::new();
    if all.len() > 1
        && let Some(first) = all.first()
    {
        for (k, v) in first.iter() {
            if all.iter().all(|l| l.get(k) == Some(v)) {
                common.insert(k, v);
            }
        }
    }
    let skip: Vec<&str> = common
        .keys()
        .copied()
        .filter(|k| *k != "__name__")
        .collect();
    let names = all.iter().map(|l| format_labels(l, &skip)).collect();
    let header = if skip.is_empty() {
        String::new()
    } else {
        let kv: Vec<String> = skip
            .iter()
            .map(|k| format!("{k}={}", common.get(k).copied().unwrap_or("")))
            .collect();
        format!("; common labels: {}", kv.join(","))
    };
    (header, names)
}
