//! The insight tools that read several signals at once: the history of
//! `ALERTS`, correlation of candidates with a target, and the SLO burn
//! rate over the workbook's windows.

use super::{AlertHistoryArgs, BurnArgs, CorrelateArgs, ms_time, samples, stamp};
use crate::prometheus::analysis::num;
use crate::prometheus::stats::{self, BURN_POLICIES};
use crate::prometheus::tools::{MAX_LINES, abbreviate, cap, format_labels, output};
use crate::prometheus::{Labels, PrometheusTools, QueryData, RangeSeries};
use brain::backends::{ToolError, ToolOutput};
use serde_json::json;
use std::collections::BTreeMap;

/// The farthest back the alert history reads raw samples.
const MAX_HISTORY_S: i64 = 7 * 86_400;
const MAX_CANDIDATES: usize = 20;
const MAX_CANDIDATE_SERIES: usize = 500;
const BURN_WINDOWS: [(u64, &str); 7] = [
    (300, "5m"),
    (1800, "30m"),
    (3600, "1h"),
    (7200, "2h"),
    (21_600, "6h"),
    (86_400, "1d"),
    (259_200, "3d"),
];

/// One alert's episodes, pending and firing.
#[derive(Default)]
struct History {
    firing: Vec<stats::Episode>,
    pending: Vec<stats::Episode>,
}

/// A PromQL string literal.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl PrometheusTools {
    pub(super) async fn alert_history(&self, a: AlertHistoryArgs) -> Result<ToolOutput, ToolError> {
        let start = self.time(a.start.as_deref(), "-6h", "start")?;
        let end = self.time(a.end.as_deref(), "now", "end")?;
        let span = (end - start).num_seconds();
        if span <= 0 {
            return Err(ToolError::InvalidArguments(
                "`end` must be after `start`".into(),
            ));
        }
        if span > MAX_HISTORY_S {
            return Err(ToolError::InvalidArguments(
                "`start`: the history reads at most 7 days; narrow the window".into(),
            ));
        }
        let selector = match a.alertname.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => format!("ALERTS{{alertname={}}}", quote(n)),
            _ => "ALERTS".to_owned(),
        };
        // Raw samples, not a range query: an alert's end is its last
        // evaluation, not five minutes of lookback later.
        let query = format!("{selector}[{span}s]");
        let series = match self.api.query(&query, end).await? {
            QueryData::Matrix(m) => m,
            QueryData::Vector(v) if v.is_empty() => Vec::new(),
            _ => {
                return Err(ToolError::Backend(format!(
                    "{} answered {query} with something other than a matrix",
                    self.api.describe()
                )));
            }
        };
        let all_times: Vec<i64> = series
            .iter()
            .flat_map(|s| s.values.iter().map(|x| x.t_ms))
            .collect();
        let interval = series
            .iter()
            .filter_map(|s| {
                stats::median_interval(&s.values.iter().map(|x| x.t_ms).collect::<Vec<_>>())
            })
            .min()
            .unwrap_or(60_000)
            .max(1);
        // Rule evaluations are regular: a missed one or two is not an end.
        let max_gap = interval.saturating_mul(5) / 2;
        let mut alerts: BTreeMap<Labels, History> = BTreeMap::new();
        for s in &series {
            let mut id = s.metric.clone();
            id.remove("__name__");
            let state = id.remove("alertstate").unwrap_or_default();
            let times: Vec<i64> = s
                .values
                .iter()
                .filter(|x| x.v.is_finite())
                .map(|x| x.t_ms)
                .collect();
            let h = alerts.entry(id).or_default();
            let eps = stats::episodes(&times, max_gap);
            if state == "pending" {
                h.pending.extend(eps);
            } else {
                h.firing.extend(eps);
            }
        }
        let end_ms = end.timestamp_millis();
        let clock = self.clock((end - start).num_days());
        let hm = |ms: i64| clock(ms_time(ms));
        let mut rows = Vec::new();
        for (id, h) in &alerts {
            let still = h
                .firing
                .last()
                .is_some_and(|e| e.end_ms >= end_ms - max_gap);
            let total: i64 = h.firing.iter().map(|e| e.end_ms - e.start_ms).sum();
            let mut parts: Vec<String> = Vec::new();
            for (i, e) in h.firing.iter().enumerate() {
                let pending = h
                    .pending
                    .iter()
                    .find(|p| p.end_ms <= e.start_ms && e.start_ms - p.end_ms <= max_gap)
                    .map(|p| format!(", pending from {}", hm(p.start_ms)))
                    .unwrap_or_default();
                let open = still && i + 1 == h.firing.len();
                parts.push(if open {
                    format!(
                        "firing since {} (still firing, {} so far{pending})",
                        hm(e.start_ms),
                        stats::human(end_ms - e.start_ms)
                    )
                } else {
                    format!(
                        "firing {}–{} ({}{pending})",
                        hm(e.start_ms),
                        hm(e.end_ms),
                        stats::human(e.end_ms - e.start_ms)
                    )
                });
            }
            let never: Vec<&stats::Episode> = h
                .pending
                .iter()
                .filter(|p| {
                    !h.firing
                        .iter()
                        .any(|f| f.start_ms >= p.end_ms && f.start_ms - p.end_ms <= max_gap)
                })
                .collect();
            for p in &never {
                parts.push(format!(
                    "pending {}–{} ({}), never fired",
                    hm(p.start_ms),
                    hm(p.end_ms),
                    stats::human(p.end_ms - p.start_ms)
                ));
            }
            let flapping = if h.firing.len() >= 3 { " FLAPPING" } else { "" };
            let name = id.get("alertname").map_or("", String::as_str);
            let head = if h.firing.is_empty() {
                format!("{name} {}: never fired", format_labels(id, &["alertname"]))
            } else {
                format!(
                    "{name} {}: fired {} times, {} firing in total{flapping}",
                    format_labels(id, &["alertname"]),
                    h.firing.len(),
                    stats::human(total)
                )
            };
            let last = h
                .firing
                .last()
                .or(h.pending.last())
                .map_or(0, |e| e.start_ms);
            let data = json!({
                "labels": id, "fired": h.firing.len(), "still_firing": still,
                "firing_s": total / 1000, "flapping": h.firing.len() >= 3,
                "firing": h.firing.iter().map(|e| json!({"start": ms_time(e.start_ms), "end": ms_time(e.end_ms), "duration_s": (e.end_ms - e.start_ms) / 1000})).collect::<Vec<_>>(),
                "pending_never_fired": never.iter().map(|e| json!({"start": ms_time(e.start_ms), "end": ms_time(e.end_ms)})).collect::<Vec<_>>(),
            });
            rows.push((still, last, format!("{head}; {}", parts.join("; ")), data));
        }
        rows.sort_by(|x, y| y.0.cmp(&x.0).then(y.1.cmp(&x.1)));
        let text = if rows.is_empty() {
            format!(
                "no alert was pending or firing from {} to {} (no {selector} samples)",
                stamp(start),
                stamp(end)
            )
        } else {
            format!(
                "{} alerts from {} to {} ({} samples, evaluated every {}s)\n{}",
                rows.len(),
                stamp(start),
                stamp(end),
                all_times.len(),
                interval / 1000,
                cap(rows.iter().map(|r| r.2.clone()).collect(), "alerts")
            )
        };
        let data: Vec<serde_json::Value> = rows.into_iter().map(|r| r.3).collect();
        Ok(output(text, json!({"alerts": data})))
    }

    pub(super) async fn correlate(&self, a: CorrelateArgs) -> Result<ToolOutput, ToolError> {
        if a.candidates.is_empty() || a.candidates.len() > MAX_CANDIDATES {
            return Err(ToolError::InvalidArguments(format!(
                "`candidates` needs 1 to {MAX_CANDIDATES} queries, got {}",
                a.candidates.len()
            )));
        }
        let (start, end, step) =
            self.range(a.start.as_deref(), a.end.as_deref(), a.step.as_deref())?;
        let target = self.matrix(&a.target, start, end, step).await?;
        let target = match target.as_slice() {
            [one] => samples(one),
            [] => {
                return Err(ToolError::InvalidArguments(format!(
                    "`target` {} returned no series over the range",
                    a.target
                )));
            }
            many => {
                return Err(ToolError::InvalidArguments(format!(
                    "`target` returned {} series; aggregate it to one, e.g. sum({})",
                    many.len(),
                    a.target
                )));
            }
        };
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
        let max_lag = i64::from(a.max_lag.unwrap_or(5).min(30));
        let min_pairs = (target.len() / 3).clamp(5, 30);
        let mut found: Vec<(f64, i64, RangeSeries, usize)> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let mut flat = 0;
        let mut seen = 0;
        for (qi, q) in a.candidates.iter().enumerate() {
            let m = match self.matrix(q, start, end, step).await {
                Ok(m) => m,
                Err(e) => {
                    notes.push(format!("candidate {} ({q}): {e}", qi + 1));
                    continue;
                }
            };
            for s in m {
                seen += 1;
                if seen > MAX_CANDIDATE_SERIES {
                    break;
                }
                match stats::best_lagged(&target, &samples(&s), step_ms, max_lag, min_pairs) {
                    Some((r, lag)) => found.push((r, lag, s, qi + 1)),
                    None => flat += 1,
                }
            }
        }
        found.sort_by(|x, y| {
            y.0.abs()
                .total_cmp(&x.0.abs())
                .then(x.1.abs().cmp(&y.1.abs()))
        });
        let top = a.top.unwrap_or(10).clamp(1, MAX_LINES);
        let labels: Vec<&Labels> = found.iter().map(|f| &f.2.metric).collect();
        let (common, names) = abbreviate(&labels);
        let step_s = step_ms / 1000;
        let mut lines: Vec<String> = found
            .iter()
            .zip(&names)
            .take(top)
            .map(|((r, lag, _, qi), n)| {
                let when = match lag {
                    0 => "moves with the target".to_owned(),
                    l if *l > 0 => format!(
                        "moves {} BEFORE the target ({l} steps)",
                        stats::human(l * step_ms)
                    ),
                    l => format!(
                        "moves {} after the target ({} steps)",
                        stats::human(-l * step_ms),
                        -l
                    ),
                };
                let sense = if *r < 0.0 { ", inversely" } else { "" };
                format!("{n} (candidate {qi}): r={r:+.2}{sense}, {when}")
            })
            .collect();
        if found.len() > top {
            lines.push(format!("… and {} weaker series", found.len() - top));
        }
        lines.extend(notes.iter().cloned());
        let skipped = if flat > 0 {
            format!(", {flat} constant or too sparse to correlate")
        } else {
            String::new()
        };
        let capped = if seen > MAX_CANDIDATE_SERIES {
            format!(", only the first {MAX_CANDIDATE_SERIES} candidate series were read")
        } else {
            String::new()
        };
        let text = format!(
            "{} candidate series correlated with the target from {} to {} (step {step_s}s, lags up to ±{max_lag} steps){skipped}{capped}{common}\n{}",
            found.len(),
            stamp(start),
            stamp(end),
            lines.join("\n")
        );
        let data: Vec<serde_json::Value> = found
            .iter()
            .map(|(r, lag, s, qi)| json!({"metric": s.metric, "candidate": qi, "r": r, "lag_steps": lag, "lag_s": lag * step_s}))
            .collect();
        Ok(output(
            text,
            json!({"step_s": step_s, "series": data, "errors": notes}),
        ))
    }

    /// `sum(increase(selector[w]))` at `t`; no series is zero.
    async fn increase(
        &self,
        selector: &str,
        w: u64,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<f64, ToolError> {
        let q = format!("sum(increase({selector}[{w}s]))");
        Ok(match self.api.query(&q, t).await? {
            QueryData::Vector(v) => v.iter().map(|s| s.value.v).filter(|v| v.is_finite()).sum(),
            QueryData::Scalar(s) => s.v,
            _ => 0.0,
        })
    }

    pub(super) async fn burn(&self, a: BurnArgs) -> Result<ToolOutput, ToolError> {
        if !(a.slo > 0.0 && a.slo < 1.0) {
            return Err(ToolError::InvalidArguments(format!(
                "`slo` must be a fraction between 0 and 1 such as 0.999, got {}",
                a.slo
            )));
        }
        for (field, sel) in [("errors", &a.errors), ("total", &a.total)] {
            let name = sel.trim().split('{').next().unwrap_or("");
            if sel.trim().is_empty()
                || sel.contains('[')
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return Err(ToolError::InvalidArguments(format!(
                    "`{field}` must be a counter selector like http_requests_total{{code=~\"5..\"}}; \
                     the tool applies sum(increase(…)) itself"
                )));
            }
        }
        let t = self.time(a.time.as_deref(), "now", "time")?;
        let mut burns: BTreeMap<u64, f64> = BTreeMap::new();
        let mut lines = vec!["window  errors  total  error ratio  burn rate".to_owned()];
        let mut rows = Vec::new();
        for (w, label) in BURN_WINDOWS {
            let errors = self.increase(a.errors.trim(), w, t).await?;
            let total = self.increase(a.total.trim(), w, t).await?;
            let burn = stats::burn_rate(errors, total, a.slo);
            if let Some(b) = burn {
                burns.insert(w, b);
            }
            lines.push(match burn {
                Some(b) => format!(
                    "{label:<6}  {}  {}  {:.4}%  {b:.1}x",
                    num(errors),
                    num(total),
                    100.0 * (errors / total).clamp(0.0, 1.0)
                ),
                None => format!("{label:<6}  {}  {}  no traffic", num(errors), num(total)),
            });
            rows.push(json!({"window": label, "window_s": w, "errors": errors, "total": total, "burn_rate": burn}));
        }
        let mut verdicts = Vec::new();
        let mut firing = Vec::new();
        for p in BURN_POLICIES {
            let (Some(long), Some(short)) = (burns.get(&p.long_s), burns.get(&p.short_s)) else {
                continue;
            };
            if *long > p.factor && *short > p.factor {
                let budget = 100.0 * p.factor * p.long_s as f64 / (30.0 * 86_400.0);
                verdicts.push(format!(
                    "{}: burning {long:.1}x over {} and {short:.1}x over {} (> {}x, {budget:.0}% of a 30-day budget in {})",
                    p.severity.to_uppercase(),
                    stats::human(p.long_s as i64 * 1000),
                    stats::human(p.short_s as i64 * 1000),
                    p.factor,
                    stats::human(p.long_s as i64 * 1000),
                ));
                firing.push(json!({"severity": p.severity, "long_s": p.long_s, "short_s": p.short_s, "factor": p.factor}));
            }
        }
        let verdict = if verdicts.is_empty() {
            "verdict: OK, no multi-window burn-rate alert would fire".to_owned()
        } else {
            format!("verdict: {}", verdicts.join("; "))
        };
        let lasts = burns
            .get(&3600)
            .filter(|b| **b > 0.0)
            .map(|b| {
                format!(
                    "\nat the 1h rate a whole 30-day budget lasts {}",
                    stats::human((30.0 * 86_400_000.0 / b) as i64)
                )
            })
            .unwrap_or_default();
        let text = format!(
            "SLO {}% (error budget {}%) at {}\n{}\n{verdict}{lasts}",
            num(100.0 * a.slo),
            num(100.0 * (1.0 - a.slo)),
            stamp(t),
            lines.join("\n")
        );
        Ok(output(
            text,
            json!({"slo": a.slo, "time": t, "windows": rows, "alerts": firing}),
        ))
    }
}
