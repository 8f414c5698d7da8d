//! The Prometheus API answered from a scenario's `world.prometheus.series`,
//! in the shapes the live API returns, with `now` = `world.now`.
//!
//! Alerts come from `ALERTS` series and targets from `up` series when the
//! world records them (as a real Prometheus derives both); the world has no
//! rule files, so the rule list is empty.

use super::eval::{self, LOOKBACK_MS, MAX_POINTS, StoredSeries, Value};
use super::promql::{self, Expr, Matcher};
use super::{
    Alert, AlertsData, InstantSample, Labels, PrometheusApi, QueryData, RangeSeries, RulesData,
    Sample, Target, TargetsData,
};
use async_trait::async_trait;
use brain::backends::ToolError;
use brain::scenario::World;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A recorded world's series, queried as if live.
#[derive(Debug, Clone)]
pub struct WorldPrometheus {
    now: DateTime<Utc>,
    series: Vec<StoredSeries>,
}

impl WorldPrometheus {
    pub fn from_world(world: &World) -> WorldPrometheus {
        let series = world
            .prometheus
            .series
            .iter()
            .map(|s| StoredSeries {
                labels: s.labels.clone(),
                samples: s
                    .samples()
                    .map(|(t, v)| (t.timestamp_millis(), v))
                    .collect(),
            })
            .collect();
        WorldPrometheus::new(world.now, series)
    }

    /// Series given directly; samples are sorted here, and series with the
    /// same labels are merged.
    pub fn new(now: DateTime<Utc>, series: Vec<StoredSeries>) -> WorldPrometheus {
        let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        for s in series {
            merged.entry(s.labels).or_default().extend(s.samples);
        }
        let series = merged
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|(t, _)| *t);
                samples.dedup_by_key(|(t, _)| *t);
                StoredSeries { labels, samples }
            })
            .collect();
        WorldPrometheus { now, series }
    }

    fn matching(&self, selectors: &[String]) -> Result<Vec<&StoredSeries>, ToolError> {
        if selectors.is_empty() {
            return Ok(self.series.iter().collect());
        }
        let mut keep = vec![false; self.series.len()];
        for sel in selectors {
            let matchers = parse_selector(sel)?;
            for (i, s) in self.series.iter().enumerate() {
                if eval::select(std::slice::from_ref(s), &matchers)
                    .next()
                    .is_some()
                    && let Some(k) = keep.get_mut(i)
                {
                    *k = true;
                }
            }
        }
        Ok(self
            .series
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(s, _)| s)
            .collect())
    }

    fn latest(&self, name: &str) -> impl Iterator<Item = (&Labels, f64)> {
        let now = self.now.timestamp_millis();
        self.series.iter().filter_map(move |s| {
            if s.labels.get("__name__").map(String::as_str) != Some(name) {
                return None;
            }
            let &(_, v) = s
                .samples
                .iter()
                .rev()
                .find(|(t, _)| *t <= now && *t >= now - LOOKBACK_MS)?;
            Some((&s.labels, v))
        })
    }
}

fn parse_query(query: &str) -> Result<Expr, ToolError> {
    promql::parse(query).map_err(|e| ToolError::InvalidArguments(format!("{query:?}: {e}")))
}

fn parse_selector(sel: &str) -> Result<Vec<Matcher>, ToolError> {
    match parse_query(sel)? {
        Expr::Selector(m) => Ok(m),
        _ => Err(ToolError::InvalidArguments(format!(
            "{sel:?} is not a series selector like up{{job=\"api\"}}"
        ))),
    }
}

fn eval_at(expr: &Expr, store: &[StoredSeries], t: i64) -> Result<Value, ToolError> {
    eval::eval(expr, store, t).map_err(ToolError::InvalidArguments)
}

#[async_trait]
impl PrometheusApi for WorldPrometheus {
    fn describe(&self) -> String {
        "the scenario's recorded Prometheus".into()
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    async fn query(&self, query: &str, time: DateTime<Utc>) -> Result<QueryData, ToolError> {
        let expr = parse_query(query)?;
        let t = time.timestamp_millis();
        Ok(match eval_at(&expr, &self.series, t)? {
            Value::Scalar(v) => QueryData::Scalar(Sample { t_ms: t, v }),
            Value::Vector(v) => QueryData::Vector(
                v.into_iter()
                    .map(|(metric, v)| InstantSample {
                        metric,
                        value: Sample { t_ms: t, v },
                    })
                    .collect(),
            ),
            Value::Matrix(m) => QueryData::Matrix(
                m.into_iter()
                    .map(|(metric, values)| RangeSeries {
                        metric,
                        values: values
                            .into_iter()
                            .map(|(t_ms, v)| Sample { t_ms, v })
                            .collect(),
                    })
                    .collect(),
            ),
        })
    }

    async fn query_range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryData, ToolError> {
        let expr = parse_query(query)?;
        let (start, end) = (start.timestamp_millis(), end.timestamp_millis());
        let step = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
        if end < start {
            return Err(ToolError::InvalidArguments(
                "end timestamp must not be before start time".into(),
            ));
        }
        if step <= 0 {
            return Err(ToolError::InvalidArguments(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if (end - start) / step > MAX_POINTS {
            return Err(ToolError::InvalidArguments(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            match eval_at(&expr, &self.series, t)? {
                Value::Scalar(v) => out
                    .entry(Labels::new())
                    .or_default()
                    .push(Sample { t_ms: t, v }),
                Value::Vector(v) => {
                    for (labels, v) in v {
                        out.entry(labels).or_default().push(Sample { t_ms: t, v });
                    }
                }
                Value::Matrix(_) => {
                    return Err(ToolError::InvalidArguments(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                            .into(),
                    ));
                }
            }
            t += step;
        }
        Ok(QueryData::Matrix(
            out.into_iter()
                .map(|(metric, values)| RangeSeries { metric, values })
                .collect(),
        ))
    }

    async fn series(
        &self,
        matchers: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Labels>, ToolError> {
        if matchers.is_empty() {
            return Err(ToolError::InvalidArguments(
                "no match[] parameter provided".into(),
            ));
        }
        let (start, end) = (start.timestamp_millis(), end.timestamp_millis());
        let mut out: Vec<Labels> = self
            .matching(matchers)?
            .into_iter()
            .filter(|s| s.samples.iter().any(|(t, _)| *t >= start && *t <= end))
            .map(|s| s.labels.clone())
            .collect();
        out.sort();
        Ok(out)
    }

    async fn label_names(&self, matchers: &[String]) -> Result<Vec<String>, ToolError> {
        let names: BTreeSet<String> = self
            .matching(matchers)?
            .into_iter()
            .flat_map(|s| s.labels.keys().cloned())
            .collect();
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        label: &str,
        matchers: &[String],
    ) -> Result<Vec<String>, ToolError> {
        let values: BTreeSet<String> = self
            .matching(matchers)?
            .into_iter()
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        Ok(values.into_iter().collect())
    }

    async fn alerts(&self) -> Result<AlertsData, ToolError> {
        let alerts = self
            .latest("ALERTS")
            .map(|(labels, _)| {
                let mut labels = labels.clone();
                labels.remove("__name__");
                let state = labels
                    .remove("alertstate")
                    .unwrap_or_else(|| "firing".into());
                Alert {
                    labels,
                    annotations: Labels::new(),
                    state,
                    active_at: None,
                    value: String::new(),
                }
            })
            .collect();
        Ok(AlertsData { alerts })
    }

    async fn rules(&self) -> Result<RulesData, ToolError> {
        Ok(RulesData::default())
    }

    async fn targets(&self) -> Result<TargetsData, ToolError> {
        let active_targets = self
            .latest("up")
            .map(|(labels, v)| {
                let mut labels = labels.clone();
                labels.remove("__name__");
                Target {
                    scrape_pool: labels.get("job").cloned().unwrap_or_default(),
                    scrape_url: String::new(),
                    health: if v == 1.0 { "up".into() } else { "down".into() },
                    last_error: String::new(),
                    last_scrape: Some(self.now),
                    last_scrape_duration: None,
                    labels,
                }
            })
            .collect();
        Ok(TargetsData { active_targets })
    }
}
