//! The insight tools over any [`PrometheusApi`](super::PrometheusApi):
//! label discovery, a window against the same window a day or a week ago,
//! a linear forecast to a threshold, the history of `ALERTS`, correlation
//! with lag, and the SLO burn rate over the SRE workbook's windows. The
//! arithmetic is in [`stats`](super::stats).

use super::analysis::num;
use super::stats;
use super::tools::{TIMEOUT, abbreviate, cap, format_labels, output};
use super::{Labels, PrometheusTools, RangeSeries};
use crate::typed;
use brain::backends::{ToolError, ToolOutput, ToolSpec};
use brain::vocabulary::Risk;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Arguments of `list_label_names`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LabelNamesArgs {
    /// Only labels present on series matching this selector, e.g.
    /// `http_requests_total` or `{namespace="prod"}`. Default: every series.
    #[serde(default)]
    selector: Option<String>,
}

/// Arguments of `compare_metric_to_baseline`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BaselineArgs {
    /// A PromQL expression, e.g. `sum by (service) (rate(http_requests_total[5m]))`.
    query: String,
    /// Length of the recent window, ending at `end`, e.g. `30m`. Default: `1h`.
    #[serde(default)]
    window: Option<String>,
    /// End of the recent window: RFC 3339 or an offset like `-10m`. Default: now.
    #[serde(default)]
    end: Option<String>,
    /// How far back the baseline window is: `1d` (same time yesterday) or
    /// `7d` (same time last week, for weekly seasonality). Default: `1d`.
    #[serde(default)]
    ago: Option<String>,
    /// Resolution such as `1m`. Default: about 60 points per window.
    #[serde(default)]
    step: Option<String>,
}

/// Arguments of `forecast_metric`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ForecastArgs {
    /// A PromQL expression, e.g. `100 * (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes)`
    /// or `node_filesystem_avail_bytes{mountpoint="/"}`.
    query: String,
    /// The value whose crossing matters, e.g. `100` (percent full) or `0` (free bytes).
    threshold: f64,
    /// How much recent history the straight line is fitted to, e.g. `6h`. Default: `1h`.
    #[serde(default)]
    lookback: Option<String>,
    /// Resolution such as `1m`. Default: about 60 points over the lookback.
    #[serde(default)]
    step: Option<String>,
}

/// Arguments of `get_alert_history`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AlertHistoryArgs {
    /// Only this alert, e.g. `HighErrorRate`. Default: every alert.
    #[serde(default)]
    alertname: Option<String>,
    /// Start: RFC 3339 or an offset like `-6h`; at most 7 days back. Default: `-6h`.
    #[serde(default)]
    start: Option<String>,
    /// End: RFC 3339 or an offset. Default: now.
    #[serde(default)]
    end: Option<String>,
}

/// Arguments of `find_correlated_metrics`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CorrelateArgs {
    /// A PromQL expression returning the one series to explain, e.g.
    /// `sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m]))`.
    target: String,
    /// PromQL expressions whose series are the suspects, e.g.
    /// `["sum by (pod) (rate(container_cpu_usage_seconds_total{namespace=\"prod\"}[5m]))", "pg_stat_activity_count"]`.
    /// At most 20; each may return many series.
    candidates: Vec<String>,
    /// Start: RFC 3339 or an offset like `-2h`. Default: `-1h`.
    #[serde(default)]
    start: Option<String>,
    /// End: RFC 3339 or an offset. Default: now.
    #[serde(default)]
    end: Option<String>,
    /// Resolution such as `1m`. Default: about 60 points over the range.
    #[serde(default)]
    step: Option<String>,
    /// Also try shifting candidates up to this many steps earlier or later,
    /// to find one that moves before the target. Default 5, at most 30.
    #[serde(default)]
    max_lag: Option<u32>,
    /// How many series to show, strongest correlation first. Default: 10.
    #[serde(default)]
    top: Option<usize>,
}

/// Arguments of `get_error_budget_burn`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BurnArgs {
    /// Counter selector of failed requests (the tool applies `sum(increase(…))`),
    /// e.g. `http_requests_total{service="checkout",code=~"5.."}`.
    errors: String,
    /// Counter selector of all requests, e.g. `http_requests_total{service="checkout"}`.
    total: String,
    /// The SLO target as a fraction, e.g. `0.999` for 99.9% of requests succeeding.
    slo: f64,
    /// When to evaluate: RFC 3339 or an offset like `-30m`. Default: now.
    #[serde(default)]
    time: Option<String>,
}

pub(super) fn specs() -> Vec<ToolSpec> {
    vec![
        typed::spec::<LabelNamesArgs>(
            "list_label_names",
            "List the label names Prometheus has (job, namespace, pod, le…), optionally only those on \
             series matching a selector. Use it to learn how a metric can be filtered or grouped \
             before writing `by (…)` or `{label=…}`.",
            Risk::Read,
            TIMEOUT,
        ),
        typed::spec::<BaselineArgs>(
            "compare_metric_to_baseline",
            "Compare a recent window of a metric with the same window a day ago (or `ago: 7d` for the \
             same time last week): per series mean and max now vs then, the ratio, and UNUSUAL when \
             now is outside what the baseline saw. Use it to tell a real anomaly from the daily or \
             weekly traffic pattern.",
            Risk::Read,
            TIMEOUT,
        ),
        typed::spec::<ForecastArgs>(
            "forecast_metric",
            "Fit a straight line to each series' recent history (like PromQL predict_linear) and say \
             when it crosses a threshold at the current rate: 'reaches 100 in ~3h10m'. Use it for disk, \
             memory, connection pools, quotas or queues filling up (or free space reaching 0).",
            Risk::Read,
            TIMEOUT,
        ),
        typed::spec::<AlertHistoryArgs>(
            "get_alert_history",
            "Tell the history of alerts over a window from Prometheus' ALERTS series: when each alert \
             went pending and firing and stopped, for how long, how many times it fired (FLAPPING), \
             and which are still firing. Use it to learn when an incident began and whether an alert \
             is new or chronic.",
            Risk::Read,
            TIMEOUT,
        ),
        typed::spec::<CorrelateArgs>(
            "find_correlated_metrics",
            "Rank candidate series by how closely they follow a target series over a range (Pearson \
             correlation, also shifted up to a few steps), and say which move before the target. Use \
             it to find the suspect behind a symptom: which pod's CPU, which dependency's latency or \
             which queue tracks the error rate.",
            Risk::Read,
            TIMEOUT,
        ),
        typed::spec::<BurnArgs>(
            "get_error_budget_burn",
            "Compute the SLO error-budget burn rate from error and total request counters over 5m, \
             30m, 1h, 2h, 6h, 1d and 3d, and apply the Google SRE workbook's multi-window alerts (page \
             at 14.4x over 1h and 5m or 6x over 6h and 30m; ticket at 3x or 1x). Use it to judge how \
             urgent an incident is for users.",
            Risk::Read,
            TIMEOUT,
        ),
    ]
}

fn samples(s: &RangeSeries) -> Vec<(i64, f64)> {
    s.values.iter().map(|x| (x.t_ms, x.v)).collect()
}

fn duration_arg(text: Option<&str>, default: u64, field: &str) -> Result<Duration, ToolError> {
    let d = match text {
        Some(t) => typed::parse_duration(t)
            .map_err(|e| ToolError::InvalidArguments(format!("`{field}`: {e}")))?,
        None => Duration::from_secs(default),
    };
    if d.is_zero() {
        return Err(ToolError::InvalidArguments(format!(
            "`{field}` must be positive"
        )));
    }
    if d > Duration::from_secs(400 * 86_400) {
        return Err(ToolError::InvalidArguments(format!(
            "`{field}` is longer than 400 days"
        )));
    }
    Ok(d)
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ms_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Mean, min and max of the finite values.
fn stats_of(s: &[(i64, f64)]) -> Option<(f64, f64, f64)> {
    let v: Vec<f64> = s.iter().map(|x| x.1).filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((mean, min, max))
}

impl PrometheusTools {
    pub(super) async fn call_insight(
        &self,
        tool: &str,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        match tool {
            "list_label_names" => self.label_names(typed::parse(args)?).await,
            "compare_metric_to_baseline" => self.baseline(typed::parse(args)?).await,
            "forecast_metric" => self.forecast(typed::parse(args)?).await,
            "get_alert_history" => self.alert_history(typed::parse(args)?).await,
            "find_correlated_metrics" => self.correlate(typed::parse(args)?).await,
            "get_error_budget_burn" => self.burn(typed::parse(args)?).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }

    async fn label_names(&self, a: LabelNamesArgs) -> Result<ToolOutput, ToolError> {
        let matchers: Vec<String> = a
            .selector
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let names = self.api.label_names(&matchers).await?;
        let on = matchers
            .first()
            .map(|s| format!(" on series matching {s}"))
            .unwrap_or_default();
        let text = format!("{} label names{on}\n{}", names.len(), names.join(" "));
        Ok(output(text, json!(names)))
    }

    async fn baseline(&self, a: BaselineArgs) -> Result<ToolOutput, ToolError> {
        let window = duration_arg(a.window.as_deref(), 3600, "window")?;
        let ago = duration_arg(a.ago.as_deref(), 86_400, "ago")?;
        let end = self.time(a.end.as_deref(), "now", "end")?;
        let step = match a.step.as_deref() {
            Some(_) => duration_arg(a.step.as_deref(), 60, "step")?,
            None => Duration::from_secs(window.as_secs().div_ceil(60).max(1)),
        };
        let (w, back) = (chrono(window), chrono(ago));
        let now_m = self.matrix(&a.query, end - w, end, step).await?;
        let then_m = self
            .matrix(&a.query, end - back - w, end - back, step)
            .await?;
        let then: BTreeMap<&Labels, Vec<(i64, f64)>> =
            then_m.iter().map(|s| (&s.metric, samples(s))).collect();
        let period = if ago.as_secs() >= 7 * 86_400 {
            "time of week"
        } else {
            "time of day"
        };
        let ago_text = stats::human(ago.as_millis() as i64);
        let mut rows = Vec::new();
        for s in &now_m {
            let Some((mean, _, max)) = stats_of(&samples(s)) else {
                continue;
            };
            let base = then.get(&s.metric).and_then(|b| stats_of(b));
            let (line, unusual, ratio) = match base {
                None => (
                    format!(
                        "now mean {} max {}; absent {ago_text} ago (NEW)",
                        num(mean),
                        num(max)
                    ),
                    true,
                    f64::INFINITY,
                ),
                Some((bmean, bmin, bmax)) => {
                    let ratio = if bmean != 0.0 {
                        mean / bmean
                    } else if mean == 0.0 {
                        1.0
                    } else {
                        f64::INFINITY
                    };
                    let far = !(0.67..=1.5).contains(&ratio);
                    let outside = mean > bmax || mean < bmin;
                    let unusual = far && outside;
                    let flag = if unusual {
                        format!(" UNUSUAL for this {period}")
                    } else {
                        String::new()
                    };
                    let r = if ratio.is_finite() {
                        format!("x{ratio:.2}")
                    } else {
                        "from 0".into()
                    };
                    (
                        format!(
                            "now mean {} max {} vs {ago_text} ago mean {} max {} ({r}){flag}",
                            num(mean),
                            num(max),
                            num(bmean),
                            num(bmax)
                        ),
                        unusual,
                        ratio,
                    )
                }
            };
            let score = if ratio.is_finite() && ratio > 0.0 {
                ratio.ln().abs()
            } else {
                f64::INFINITY
            };
            rows.push((unusual, score, &s.metric, line, base, mean, max));
        }
        let gone: Vec<&Labels> = then_m
            .iter()
            .filter(|b| !now_m.iter().any(|s| s.metric == b.metric))
            .map(|b| &b.metric)
            .collect();
        rows.sort_by(|x, y| y.0.cmp(&x.0).then(y.1.total_cmp(&x.1)));
        let labels: Vec<&Labels> = rows.iter().map(|r| r.2).collect();
        let (common, names) = abbreviate(&labels);
        let mut lines: Vec<String> = rows
            .iter()
            .zip(&names)
            .map(|(r, n)| format!("{n}: {}", r.3))
            .collect();
        lines.extend(gone.iter().map(|l| {
            format!(
                "{}: present {ago_text} ago, absent now (GONE)",
                format_labels(l, &[])
            )
        }));
        let unusual = rows.iter().filter(|r| r.0).count();
        let text = format!(
            "{} series, {unusual} unusual: {} to {} vs the same window {ago_text} earlier{common}\n{}",
            rows.len(),
            stamp(end - w),
            stamp(end),
            cap(lines, "series")
        );
        let data: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({"metric": r.2, "now_mean": r.5, "now_max": r.6,
                    "baseline_mean": r.4.map(|b| b.0), "baseline_max": r.4.map(|b| b.2),
                    "unusual": r.0})
            })
            .collect();
        Ok(output(
            text,
            json!({"ago_s": ago.as_secs(), "window_s": window.as_secs(), "series": data, "gone": gone}),
        ))
    }

    async fn forecast(&self, a: ForecastArgs) -> Result<ToolOutput, ToolError> {
        if !a.threshold.is_finite() {
            return Err(ToolError::InvalidArguments(
                "`threshold` must be a finite number".into(),
            ));
        }
        let lookback = duration_arg(a.lookback.as_deref(), 3600, "lookback")?;
        let end = self.api.now();
        let (start, end, step) = self.range(
            Some(&stamp(end - chrono(lookback))),
            Some(&stamp(end)),
            a.step.as_deref(),
        )?;
        let m = self.matrix(&a.query, start, end, step).await?;
        let now_ms = end.timestamp_millis();
        let th = a.threshold;
        let mut rows = Vec::new();
        for s in &m {
            let pts = samples(s);
            let Some(line) = stats::fit_line(&pts) else {
                continue;
            };
            let last = pts.iter().rev().map(|x| x.1).find(|v| v.is_finite());
            let per_h = line.slope_per_s * 3600.0;
            let rising = line.slope_per_s > 0.0;
            let past =
                last.is_some_and(|l| (rising && l >= th) || (!rising && per_h != 0.0 && l <= th));
            let at = line.crossing(th, now_ms);
            let (order, story) = if past {
                (
                    0,
                    format!(
                        "already past {} (last {})",
                        num(th),
                        last.map_or("-".into(), num)
                    ),
                )
            } else if let Some(t) = at {
                (
                    1,
                    format!(
                        "reaches {} in ~{} (at {}) at {}{}/h",
                        num(th),
                        stats::human(t - now_ms),
                        stamp(ms_time(t)),
                        if rising { "+" } else { "" },
                        num(per_h)
                    ),
                )
            } else {
                (
                    2,
                    format!(
                        "not heading toward {} (trend {}{}/h)",
                        num(th),
                        if rising { "+" } else { "" },
                        num(per_h)
                    ),
                )
            };
            let fit = if line.r2 < 0.5 {
                format!(
                    "; the line fits poorly (r²={:.2}), treat the estimate as rough",
                    line.r2
                )
            } else {
                format!("; r²={:.2}", line.r2)
            };
            let story = format!("{story}, last {}{fit}", last.map_or("-".into(), num));
            rows.push((order, at.unwrap_or(i64::MAX), &s.metric, story, line, last));
        }
        rows.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
        let labels: Vec<&Labels> = rows.iter().map(|r| r.2).collect();
        let (common, names) = abbreviate(&labels);
        let lines = rows
            .iter()
            .zip(&names)
            .map(|(r, n)| format!("{n}: {}", r.3))
            .collect();
        let text = format!(
            "{} series, a straight line fitted over {} to {}{common}\n{}",
            rows.len(),
            stamp(start),
            stamp(end),
            cap(lines, "series")
        );
        let data: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let crosses = (r.1 != i64::MAX).then(|| ms_time(r.1));
                json!({"metric": r.2, "slope_per_s": r.4.slope_per_s, "r2": r.4.r2,
                    "last": r.5, "already_past": r.0 == 0, "crosses_at": crosses,
                    "eta_s": crosses.map(|_| (r.1 - now_ms) / 1000)})
            })
            .collect();
        Ok(output(text, json!({"threshold": th, "series": data})))
    }
}

mod signals;
