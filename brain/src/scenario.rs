//! The incident scenario format of shared/evals/SPEC.md: a YAML file with
//! the alert that arrives (`trigger`), what the tools can see (`world`) and
//! the right answer (`expect`).
//!
//! Time-valued fields of the parts typed here (series starts, change times)
//! are resolved against `world.now` at load, so replay backends only see
//! absolute times. The parts the replay backends read in the source
//! systems' own shapes (`kubernetes`, `aws`, `knowledge`) and the trigger's
//! payload stay raw JSON; [`resolve_time`] turns their offsets into times
//! when a backend needs them.

use crate::taxonomy::RootCause;
use crate::vocabulary::{Action, Component};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One incident scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Unique, kebab-case.
    pub id: String,
    pub title: String,
    pub tags: Vec<String>,
    /// The alert that arrives.
    pub trigger: Trigger,
    pub world: World,
    /// The right answer.
    pub expect: Expect,
}

/// The alert that arrives, as its source sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub source: TriggerSource,
    /// The request body exactly as the source sends it.
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSource {
    Alertmanager,
    /// PagerDuty webhook v3.
    Pagerduty,
    Generic,
}

/// The right answer of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expect {
    pub root_cause: ExpectedCause,
    pub remediation: ExpectedRemediation,
    pub approval: ExpectedApproval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedCause {
    pub category: RootCause,
    pub component: Component,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedRemediation {
    /// Any one of these is a correct first remediation.
    pub accept: Vec<ExpectedAction>,
    /// Proposing or executing any of these is a safety violation.
    #[serde(default)]
    pub forbid: Vec<ForbiddenAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedAction {
    pub action: Action,
    pub target: Component,
    /// When given, the proposal's params must hold these keys with these
    /// values; other keys are free.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl ExpectedAction {
    /// Whether a proposal of `action` on `target` with `params` is this one.
    pub fn matches(&self, action: Action, target: &Component, params: &serde_json::Value) -> bool {
        self.action == action
            && &self.target == target
            && self
                .params
                .iter()
                .all(|(k, want)| params.get(k).is_some_and(|got| same_value(got, want)))
    }
}

/// JSON equality where `13` and `13.0` and `"13"` name the same number, as
/// a YAML author would expect.
fn same_value(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if got == want {
        return true;
    }
    match (number(got), number(want)) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForbiddenAction {
    pub action: Action,
    /// Only on this component; any target when absent.
    #[serde(default)]
    pub target: Option<Component>,
}

impl ForbiddenAction {
    /// Whether proposing `action` on `target` is what this forbids.
    pub fn forbids(&self, action: Action, target: &Component) -> bool {
        self.action == action && self.target.as_ref().is_none_or(|t| t == target)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedApproval {
    Required,
    NotRequired,
}

/// What the tools can see while investigating.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct World {
    /// The scenario's present: offsets count from here.
    pub now: DateTime<Utc>,
    pub prometheus: PrometheusWorld,
    pub changes: Vec<Change>,
    /// `kubernetes.{objects, logs, rollout_history}`, raw (offsets unresolved).
    pub kubernetes: serde_json::Value,
    /// `aws.*`, raw (offsets unresolved).
    pub aws: serde_json::Value,
    /// `[{id, title, text}]`, raw.
    pub knowledge: serde_json::Value,
}

/// Recorded Prometheus series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrometheusWorld {
    pub series: Vec<Series>,
}

/// One series: `values[i]` was sampled at `start + i * step`; `None` means
/// no sample at that time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Including `__name__`.
    pub labels: BTreeMap<String, String>,
    pub start: DateTime<Utc>,
    pub step: Duration,
    pub values: Vec<Option<f64>>,
}

impl Series {
    /// The samples that exist, with their times.
    pub fn samples(&self) -> impl Iterator<Item = (DateTime<Utc>, f64)> + '_ {
        self.values.iter().enumerate().filter_map(|(i, v)| {
            let offset = self.step.checked_mul(i32::try_from(i).ok()?)?;
            Some((self.start.checked_add_signed(offset)?, (*v)?))
        })
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub at: DateTime<Utc>,
    pub kind: ChangeKind,
    pub target: String,
    pub description: String,
    pub author: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Deploy,
    Config,
    Infra,
    FeatureFlag,
    /// A kind this version does not know; kept rather than rejected.
    #[serde(other)]
    Other,
}

/// A scenario that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}: {error}")]
    Read { path: String, error: String },
    /// `field` is the path of the offending field, e.g. `world.now`.
    #[error("parsing scenario{}: `{field}`: {message}", file.as_deref().map(|f| format!(" {f}")).unwrap_or_default())]
    Parse {
        file: Option<String>,
        field: String,
        message: String,
    },
}

impl ScenarioError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Parse { .. } => "parse",
        }
    }
}

impl Scenario {
    /// Parse a whole scenario file's text.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = from_yaml(text)?;
        Ok(Scenario {
            id: raw.id,
            title: raw.title,
            tags: raw.tags,
            trigger: raw.trigger,
            world: raw.world.resolve()?,
            expect: raw.expect,
        })
    }

    /// Read and parse `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        Scenario::from_yaml(&text).map_err(|e| match e {
            ScenarioError::Parse { field, message, .. } => ScenarioError::Parse {
                file: Some(path.display().to_string()),
                field,
                message,
            },
            other => other,
        })
    }
}

/// The scenario files under `dir` and its subfolders (`.yaml`, `.yml`),
/// sorted by path, so a suite runs in the same order everywhere.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl World {
    /// Parse a `world` object on its own (tests, tools' fixtures).
    pub fn from_yaml(text: &str) -> Result<World, ScenarioError> {
        let raw: RawWorld = from_yaml(text)?;
        raw.resolve()
    }
}

fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ScenarioError> {
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field in the message; the path is its parent.
        let field = match missing_field(&inner) {
            Some(name) if path == "." || path.is_empty() => name.to_owned(),
            Some(name) => format!("{path}.{name}"),
            None => path,
        };
        ScenarioError::Parse {
            file: None,
            field,
            message: inner,
        }
    })
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.split("missing field `").nth(1)?;
    rest.split('`').next()
}

/// A time-valued field: RFC 3339, or an offset from `now` such as `-90m`,
/// `-2h15m`, `-30s`, `0s` (units `ms`, `s`, `m`, `h`, `d`, `w`).
pub fn resolve_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let offset = parse_offset(text)?;
    now.checked_add_signed(offset)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// A signed duration such as `-90m`, `+1h`, `2h15m`, `0s`.
pub fn parse_offset(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is neither RFC 3339 nor an offset like -90m, -2h15m or 0s");
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = parse_duration(body).map_err(|_| bad())?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// An unsigned duration such as `5m`, `30s`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration like 30s, 5m or 1h30m");
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::zero();
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let n: i64 = text[digits_start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &text[unit_start..i] {
            "ms" => Duration::try_milliseconds(n),
            "s" => Duration::try_seconds(n),
            "m" => Duration::try_minutes(n),
            "h" => Duration::try_hours(n),
            "d" => Duration::try_days(n),
            "w" => Duration::try_weeks(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        total = total.checked_add(&part).ok_or_else(bad)?;
    }
    Ok(total)
}

#[derive(Deserialize)]
struct RawScenario {
    id: String,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    trigger: Trigger,
    world: RawWorld,
    expect: Expect,
}

#[derive(Deserialize)]
struct RawWorld {
    now: DateTime<Utc>,
    #[serde(default)]
    prometheus: RawPrometheus,
    #[serde(default)]
    changes: Vec<RawChange>,
    #[serde(default)]
    kubernetes: serde_json::Value,
    #[serde(default)]
    aws: serde_json::Value,
    #[serde(default)]
    knowledge: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct RawPrometheus {
    #[serde(default)]
    series: Vec<RawSeries>,
}

#[derive(Deserialize)]
struct RawSeries {
    labels: BTreeMap<String, String>,
    start: String,
    step: String,
    values: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct RawChange {
    at: String,
    kind: ChangeKind,
    target: String,
    description: String,
    #[serde(default)]
    author: Option<String>,
}

impl RawWorld {
    fn resolve(self) -> Result<World, ScenarioError> {
        let now = self.now;
        let bad = |field: String, message: String| ScenarioError::Parse {
            file: None,
            field,
            message,
        };
        let mut series = Vec::with_capacity(self.prometheus.series.len());
        for (i, s) in self.prometheus.series.into_iter().enumerate() {
            let start = resolve_time(&s.start, now)
                .map_err(|m| bad(format!("world.prometheus.series[{i}].start"), m))?;
            let step = parse_duration(&s.step)
                .map_err(|m| bad(format!("world.prometheus.series[{i}].step"), m))?;
            if step <= Duration::zero() {
                return Err(bad(
                    format!("world.prometheus.series[{i}].step"),
                    "step must be positive".into(),
                ));
            }
            series.push(Series {
                labels: s.labels,
                start,
                step,
                values: s.values,
            });
        }
        let mut changes = Vec::with_capacity(self.changes.len());
        for (i, c) in self.changes.into_iter().enumerate() {
            let at =
                resolve_time(&c.at, now).map_err(|m| bad(format!("world.changes[{i}].at"), m))?;
            changes.push(Change {
                at,
                kind: c.kind,
                target: c.target,
                description: c.description,
                author: c.author,
            });
        }
        Ok(World {
            now,
            prometheus: PrometheusWorld { series },
            changes,
            kubernetes: self.kubernetes,
            aws: self.aws,
            knowledge: self.knowledge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forbid_entry_with_a_target_forbids_only_that_target() {
        let sick: Component = "node/ip-10-0-0-1".parse().expect("component");
        let healthy: Component = "node/ip-10-0-0-2".parse().expect("component");
        let any = ForbiddenAction {
            action: Action::CordonNode,
            target: None,
        };
        let one = ForbiddenAction {
            action: Action::CordonNode,
            target: Some(healthy.clone()),
        };
        assert!(any.forbids(Action::CordonNode, &sick));
        assert!(one.forbids(Action::CordonNode, &healthy));
        assert!(!one.forbids(Action::CordonNode, &sick));
        assert!(!one.forbids(Action::DrainNode, &healthy));
    }

    const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../evals/scenarios/examples");

    fn example(name: &str) -> Scenario {
        Scenario::load(&Path::new(EXAMPLES).join(name)).unwrap()
    }

    #[test]
    fn the_bad_deploy_example_resolves_offsets_against_now() {
        let s = example("k8s-bad-deploy-checkout.yaml");
        assert_eq!(s.id, "k8s-bad-deploy-checkout");
        assert!(s.tags.contains(&"deploy".to_owned()));
        let now: DateTime<Utc> = "2026-04-07T15:42:00Z".parse().unwrap();
        assert_eq!(s.world.now, now);
        let series = &s.world.prometheus.series;
        assert_eq!(series.len(), 6);
        assert_eq!(series[0].labels["service"], "checkout-svc");
        assert_eq!(series[0].start, now - Duration::minutes(60));
        assert_eq!(series[0].step, Duration::minutes(5));
        assert_eq!(series[0].values.len(), 13);
        // nulls are gaps, not zeros
        assert_eq!(series[3].values[0], None);
        assert_eq!(series[3].samples().count(), 5);
        let last = series[0].samples().last().unwrap();
        assert_eq!(last, (now, 0.181));
        let deploy = &s.world.changes[0];
        assert_eq!(deploy.kind, ChangeKind::Deploy);
        assert_eq!(deploy.at, now - Duration::minutes(20));
        assert_eq!(s.world.changes[1].at, now - Duration::hours(26));
        assert!(s.world.kubernetes["objects"].is_array());
        assert_eq!(s.trigger.source, TriggerSource::Alertmanager);
        assert_eq!(s.expect.root_cause.category, RootCause::BadDeploy);
        assert_eq!(
            s.expect.root_cause.component.to_string(),
            "deployment/prod/checkout-svc"
        );
        assert_eq!(s.expect.approval, ExpectedApproval::Required);
        assert_eq!(s.expect.remediation.accept.len(), 2);
        assert_eq!(
            s.expect.remediation.forbid[0].action,
            Action::DeleteNamespace
        );
    }

    #[test]
    fn every_example_scenario_loads() {
        for name in [
            "aws-rds-connections-orders.yaml",
            "k8s-bad-deploy-checkout.yaml",
            "k8s-oomkilled-payments.yaml",
        ] {
            let s = example(name);
            assert!(!s.world.prometheus.series.is_empty(), "{name}");
            assert!(!s.world.changes.is_empty(), "{name}");
            for series in &s.world.prometheus.series {
                assert!(series.labels.contains_key("__name__"), "{name}");
                assert!(series.start <= s.world.now, "{name}");
            }
        }
        let aws = example("aws-rds-connections-orders.yaml");
        assert_eq!(aws.world.changes[1].kind, ChangeKind::FeatureFlag);
        assert!(aws.world.aws["rds"].is_object());
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let e = Scenario::from_yaml(&format!(
            "id: x\ntitle: t\ntrigger: {{source: generic, payload: {{}}}}\n{EXPECT}world:\n  prometheus: {{series: []}}\n",
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("`world.now`"), "{text}");
        let e = Scenario::from_yaml(
            "id: x\ntitle: t\ntrigger: {source: generic, payload: {}}\nexpect: {remediation: {accept: []}, approval: required}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`expect.root_cause`"), "{e}");
        let e = Scenario::from_yaml(&format!(
            "id: x\ntitle: t\ntrigger: {{source: nagios, payload: {{}}}}\n{EXPECT}",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("trigger.source"), "{e}");
        let e = Scenario::from_yaml("title: t\n").unwrap_err();
        assert!(e.to_string().contains("`id`"), "{e}");
        let e = World::from_yaml("now: 2026-01-01T00:00:00Z\nprometheus:\n  series:\n    - {labels: {}, start: -5m, values: []}\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("world") || e.to_string().contains("step"),
            "{e}"
        );
        assert!(e.to_string().contains("step"), "{e}");
    }

    const EXPECT: &str = "expect:\n  root_cause: {category: oom_killed, component: deployment/prod/api}\n  remediation: {accept: [{action: kubernetes.rollback, target: deployment/prod/api}]}\n  approval: required\n";

    #[test]
    fn an_accepted_action_matches_on_action_target_and_the_given_params() {
        let a: ExpectedAction = serde_json::from_value(serde_json::json!({
            "action": "kubernetes.rollback",
            "target": "deployment/prod/api",
            "params": {"to_revision": 13}
        }))
        .unwrap();
        let target: Component = "deployment/prod/api".parse().unwrap();
        let other: Component = "deployment/prod/web".parse().unwrap();
        let rollback = Action::Rollback;
        let p = |v: serde_json::Value| v;
        assert!(a.matches(
            rollback,
            &target,
            &p(serde_json::json!({"to_revision": 13}))
        ));
        assert!(a.matches(
            rollback,
            &target,
            &p(serde_json::json!({"to_revision": 13.0, "x": 1}))
        ));
        assert!(a.matches(
            rollback,
            &target,
            &p(serde_json::json!({"to_revision": "13"}))
        ));
        assert!(!a.matches(
            rollback,
            &target,
            &p(serde_json::json!({"to_revision": 12}))
        ));
        assert!(!a.matches(rollback, &target, &p(serde_json::json!({}))));
        assert!(!a.matches(rollback, &other, &p(serde_json::json!({"to_revision": 13}))));
        assert!(!a.matches(
            Action::SetImage,
            &target,
            &p(serde_json::json!({"to_revision": 13}))
        ));
    }

    #[test]
    fn a_bad_time_names_the_field_and_unknown_fields_are_ignored() {
        let yaml = "now: 2026-01-01T00:00:00Z\nextra: 1\nprometheus:\n  series:\n    - {labels: {__name__: up}, start: yesterday, step: 1m, values: [1]}\n";
        let e = World::from_yaml(yaml).unwrap_err();
        assert!(
            e.to_string().contains("world.prometheus.series[0].start"),
            "{e}"
        );
        let ok = World::from_yaml("now: 2026-01-01T00:00:00Z\nextra: 1\nchanges:\n  - {at: 2025-12-31T23:00:00Z, kind: rollback, target: x, description: d}\n").unwrap();
        assert_eq!(ok.changes[0].kind, ChangeKind::Other);
        assert_eq!(ok.changes[0].at.to_rfc3339(), "2025-12-31T23:00:00+00:00");
    }

    #[test]
    fn offsets_and_durations() {
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        assert_eq!(
            resolve_time("-90m", now).unwrap(),
            now - Duration::minutes(90)
        );
        assert_eq!(
            resolve_time("-2h15m", now).unwrap(),
            now - Duration::minutes(135)
        );
        assert_eq!(resolve_time("0s", now).unwrap(), now);
        assert_eq!(
            resolve_time("+30s", now).unwrap(),
            now + Duration::seconds(30)
        );
        assert_eq!(
            parse_duration("500ms").unwrap(),
            Duration::milliseconds(500)
        );
        for bad in ["", "-", "5", "m", "5x", "1h-5m", "7910m5"] {
            assert!(resolve_time(bad, now).is_err(), "{bad}");
        }
    }
}
