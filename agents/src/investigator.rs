//! The investigator: deterministic collection playbooks. From the alerts
//! of an incident it works out what they are about (the subject), then
//! reads what an SRE would read first, with the same tools the MCP
//! server offers: the workloads and pods named, their crashed containers'
//! logs, events, rollout history, autoscalers, volumes, nodes, the
//! change feed, the namespace's metrics, and the AWS resources in alarm.
//!
//! Every tool call becomes an [`Observation`] that keeps the call (tool
//! and arguments) next to what it returned, so each finding of the
//! diagnostician points back at the call that produced it.

use crate::budget::Budget;
use brain::domain::Alert;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tools::Registry;

/// One tool call and its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observation {
    pub tool: String,
    pub args: Value,
    /// What the tool said, as the model would read it.
    pub text: String,
    /// The same, structured.
    pub data: Value,
    /// Set when the call failed (not found, timeout, bad arguments).
    pub error: Option<String>,
}

impl Observation {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// A string argument of the call.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.get(name).and_then(Value::as_str)
    }
}

/// What the alerts are about, as far as their labels and text tell.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Subject {
    /// The alert names (`alertname`, or the summary's first words).
    pub names: Vec<String>,
    /// Every label of every alert; the first value wins.
    pub labels: BTreeMap<String, String>,
    /// Summaries, descriptions and label values, lower-cased: where
    /// services and resources are mentioned by name.
    pub text: String,
    pub namespace: Option<String>,
    pub service: Option<String>,
    pub pod: Option<String>,
    pub node: Option<String>,
    /// When the first alert started firing.
    pub started: Option<DateTime<Utc>>,
}

/// How long before the alert (in minutes) a change still counts as a
/// suspect, and how long after: three hours back, five minutes on.
pub const SUSPECT_WINDOW: std::ops::RangeInclusive<i64> = -5..=180;

impl Subject {
    /// Minutes from `at` (RFC 3339 text) to the first alert's start:
    /// positive when `at` came first.
    pub fn minutes_before(&self, at: &Value) -> Option<i64> {
        let at: DateTime<Utc> = at.as_str()?.parse().ok()?;
        Some((self.started? - at).num_minutes())
    }

    /// Whether `at` falls in [`SUSPECT_WINDOW`] around the alert.
    pub fn is_suspect_time(&self, at: &Value) -> bool {
        self.minutes_before(at)
            .is_some_and(|m| SUSPECT_WINDOW.contains(&m))
    }

    pub fn from_alerts(alerts: &[Alert]) -> Subject {
        let mut s = Subject::default();
        let mut text = Vec::new();
        for a in alerts {
            for (k, v) in &a.labels {
                s.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if let Some(name) = a.labels.get("alertname") {
                s.names.push(name.clone());
            }
            text.push(a.summary.clone());
            text.extend(a.description.clone());
            text.extend(a.labels.values().cloned());
            s.namespace = s.namespace.take().or_else(|| a.namespace.clone());
            s.service = s.service.take().or_else(|| a.service.clone());
            if let Some(r) = &a.resource {
                text.push(r.clone());
            }
            s.started = Some(s.started.map_or(a.starts_at, |t| t.min(a.starts_at)));
        }
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| s.labels.get(*k).filter(|v| !v.is_empty()).cloned())
        };
        s.namespace = s
            .namespace
            .clone()
            .or_else(|| label(&["namespace", "kubernetes_namespace", "exported_namespace"]));
        s.pod = label(&["pod", "pod_name", "kubernetes_pod_name"]);
        s.node = label(&["node", "kubernetes_node", "nodename"]);
        s.service = s.service.clone().or_else(|| {
            label(&[
                "service",
                "deployment",
                "statefulset",
                "daemonset",
                "app",
                "app_kubernetes_io_name",
                "job_name",
                "container",
            ])
        });
        s.text = text.join("\n").to_lowercase();
        s
    }

    /// Whether `name` is mentioned as a word of the alerts' text.
    pub fn mentions(&self, name: &str) -> bool {
        mentioned(&self.text, &name.to_lowercase())
    }
}

/// `name` occurs in `text` with no name character on either side, so
/// `api` is not found in `payments-api-v2`'s middle but `payments-api` is.
pub fn mentioned(text: &str, name: &str) -> bool {
    if name.len() < 3 {
        return false;
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let start = from + i;
        let end = start + name.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let bounded_before = before.is_none_or(|c| !is_name(c));
        // A pod name (`name-6c9f7b8d4-x2k9p`) still names its workload.
        // A full stop ends a sentence, not a name, when nothing follows it.
        let rest = &text[end..];
        let sentence_end = rest.starts_with('.')
            && rest[1..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric());
        let bounded_after = after.is_none_or(|c| !is_name(c) || c == '-') || sentence_end;
        if bounded_before && bounded_after {
            return true;
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

/// A Kubernetes workload found while looking around.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Workload {
    /// `deployment` or `statefulset`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Workload {
    pub fn component(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Everything the playbooks collected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evidence {
    pub subject: Subject,
    pub observations: Vec<Observation>,
    /// Workloads the alerts name, most likely first.
    pub focus: Vec<Workload>,
    /// Namespaces looked into.
    pub namespaces: Vec<String>,
}

impl Evidence {
    /// The successful observations of `tool`.
    pub fn of<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = &'a Observation> + 'a {
        self.observations
            .iter()
            .filter(move |o| o.tool == tool && o.ok())
    }

    /// Every workload seen in a listing.
    pub fn workloads(&self) -> Vec<Workload> {
        let mut out = BTreeSet::new();
        for tool in ["list_deployments", "list_statefulsets"] {
            for o in self.of(tool) {
                for w in o.data["items"].as_array().into_iter().flatten() {
                    let kind = w["kind"].as_str().unwrap_or(if tool == "list_deployments" {
                        "Deployment"
                    } else {
                        "StatefulSet"
                    });
                    out.insert(Workload {
                        kind: kind.to_lowercase(),
                        namespace: w["namespace"].as_str().unwrap_or_default().to_owned(),
                        name: w["name"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        out.into_iter().collect()
    }

    /// The workload a pod belongs to: the longest workload name in its
    /// namespace that prefixes the pod's name (`api-6c9f7b8d4-x2k9p` →
    /// `api`, `redis-0` → `redis`).
    pub fn owner_of(&self, namespace: &str, pod: &str) -> Option<Workload> {
        self.workloads()
            .into_iter()
            .filter(|w| {
                w.namespace == namespace
                    && pod
                        .strip_prefix(w.name.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|w| w.name.len())
    }
}

/// Calls tools within a budget and records each call.
struct Collector<'a> {
    tools: &'a Registry,
    budget: &'a mut Budget,
    out: Vec<Observation>,
    seen: BTreeSet<String>,
}

impl Collector<'_> {
    /// Call `tool` once per distinct arguments; `None` when the budget is
    /// spent or the call failed.
    async fn call(&mut self, tool: &str, args: Value) -> Option<Value> {
        let key = format!("{tool} {args}");
        if !self.seen.insert(key) || self.tools.spec(tool).is_none() {
            return None;
        }
        if !self.budget.take_tool_call() {
            return None;
        }
        let result = self.tools.call(tool, args.clone()).await;
        let (text, data, error) = match result {
            Ok(out) => (out.text, out.data, None),
            Err(e) => (String::new(), Value::Null, Some(e.to_string())),
        };
        self.out.push(Observation {
            tool: tool.to_owned(),
            args,
            text,
            data: data.clone(),
            error: error.clone(),
        });
        error.is_none().then_some(data)
    }
}

/// Pods worth a closer look: unhealthy ones first, those of the focus
/// workloads before others.
fn pods_to_describe(pods: &[Value], focus: &[Workload], limit: usize) -> Vec<(String, String)> {
    let mut ranked: Vec<(i64, String, String)> = pods
        .iter()
        .map(|p| {
            let ns = p["namespace"].as_str().unwrap_or_default().to_owned();
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let unhealthy = p["healthy"] == false;
            let restarts = p["restarts"].as_i64().unwrap_or(0);
            let focused = focus.iter().any(|w| {
                w.namespace == ns
                    && name
                        .strip_prefix(w.name.as_str())
                        .is_some_and(|r| r.starts_with('-'))
            });
            let score = i64::from(unhealthy) * 100 + i64::from(focused) * 50 + restarts.min(40);
            (score, ns, name)
        })
        .filter(|(score, ..)| *score >= 50)
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
    // At most two pods per workload-looking prefix, so one crash-looping
    // deployment does not hide another.
    let mut per_prefix: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (_, ns, name) in ranked {
        let prefix = name.rsplitn(3, '-').last().unwrap_or(&name).to_owned();
        let n = per_prefix.entry(format!("{ns}/{prefix}")).or_default();
        if *n >= 2 {
            continue;
        }
        *n += 1;
        out.push((ns, name));
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// Collect the evidence for an incident.
pub async fn investigate(tools: &Registry, alerts: &[Alert], budget: &mut Budget) -> Evidence {
    let subject = Subject::from_alerts(alerts);
    let mut c = Collector {
        tools,
        budget,
        out: Vec::new(),
        seen: BTreeSet::new(),
    };
    let since = "-3h";

    // What exists: workloads everywhere, so the alert's words can be
    // linked to them, and the nodes.
    c.call("list_deployments", json!({})).await;
    c.call("list_statefulsets", json!({})).await;
    c.call("list_nodes", json!({})).await;
    let mut ev = Evidence {
        subject: subject.clone(),
        observations: std::mem::take(&mut c.out),
        ..Evidence::default()
    };
    let focus = link_workloads(&ev);
    let mut namespaces: Vec<String> = Vec::new();
    for ns in subject
        .namespace
        .iter()
        .cloned()
        .chain(focus.iter().map(|w| w.namespace.clone()))
    {
        if !namespaces.contains(&ns) {
            namespaces.push(ns);
        }
    }
    namespaces.truncate(3);

    // Pods: the namespaces in question, and anything unhealthy anywhere.
    let mut pods: Vec<Value> = Vec::new();
    for ns in &namespaces {
        if let Some(d) = c.call("list_pods", json!({"namespace": ns})).await {
            pods.extend(d["pods"].as_array().cloned().unwrap_or_default());
        }
    }
    if let Some(d) = c.call("list_pods", json!({"only_unhealthy": true})).await {
        for p in d["pods"].as_array().cloned().unwrap_or_default() {
            if !namespaces.iter().any(|n| p["namespace"] == n.as_str()) {
                pods.push(p);
            }
        }
    }
    for (ns, pod) in pods_to_describe(&pods, &focus, 6) {
        let Some(d) = c
            .call("describe_pod", json!({"namespace": ns, "name": pod}))
            .await
        else {
            continue;
        };
        for container in d["containers"].as_array().cloned().unwrap_or_default() {
            let name = container["name"].as_str().unwrap_or_default();
            let crashed = container["restarts"].as_i64().unwrap_or(0) > 0
                || container["last_state"]["state"] == "terminated";
            if crashed {
                c.call(
                    "get_pod_logs",
                    json!({"namespace": ns, "pod": pod, "container": name, "previous": true, "tail": 60}),
                )
                .await;
            }
            if container["state"]["state"] == "running" || !crashed {
                c.call(
                    "get_pod_logs",
                    json!({"namespace": ns, "pod": pod, "container": name, "tail": 60}),
                )
                .await;
            }
        }
    }
    // A healthy-looking workload the alert names may be a victim: its
    // logs say what it cannot reach.
    for w in focus.iter().take(3) {
        let running = pods.iter().find(|p| {
            p["namespace"] == w.namespace.as_str()
                && p["name"]
                    .as_str()
                    .and_then(|n| n.strip_prefix(w.name.as_str()))
                    .is_some_and(|r| r.starts_with('-'))
        });
        if let Some(p) = running {
            let pod = p["name"].as_str().unwrap_or_default();
            c.call(
                "get_pod_logs",
                json!({"namespace": w.namespace, "pod": pod, "tail": 80}),
            )
            .await;
        }
        let describe = if w.kind == "statefulset" {
            "describe_statefulset"
        } else {
            "describe_deployment"
        };
        c.call(describe, json!({"namespace": w.namespace, "name": w.name}))
            .await;
        c.call(
            "get_rollout_history",
            json!({"namespace": w.namespace, "name": w.name}),
        )
        .await;
    }
    for ns in &namespaces {
        c.call(
            "list_events",
            json!({"namespace": ns, "only_warnings": true, "since": since}),
        )
        .await;
        c.call("list_hpas", json!({"namespace": ns})).await;
        c.call("list_pvcs", json!({"namespace": ns})).await;
        c.call("list_services", json!({"namespace": ns})).await;
        c.call("get_resource", json!({"kind": "Namespace", "name": ns}))
            .await;
    }
    // Cluster-wide warnings (nodes, other namespaces) and sick nodes.
    c.call(
        "list_events",
        json!({"only_warnings": true, "since": since}),
    )
    .await;
    let nodes = ev
        .of("list_nodes")
        .flat_map(|o| o.data["nodes"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    for n in nodes.iter().filter(|n| {
        n["ready"] == false
            || n["pressure"].as_array().is_some_and(|p| !p.is_empty())
            || n["cordoned"] == true
    }) {
        if let Some(name) = n["name"].as_str() {
            c.call("describe_node", json!({"name": name})).await;
        }
    }
    // Certificates, where cert-manager is installed.
    c.call("list_resources", json!({"kind": "certificates"}))
        .await;
    c.call("list_resources", json!({"kind": "networkpolicies"}))
        .await;

    // The change feed around the start, and what the workloads changed
    // shortly before it are logging: a scale-up or a deploy elsewhere is
    // often the cause of a victim's alert.
    if let Some(d) = c
        .call("list_recent_changes", json!({"since": "-24h"}))
        .await
    {
        let mut changed: Vec<(String, String)> = Vec::new();
        for ch in d["changes"].as_array().into_iter().flatten() {
            let recent = subject.is_suspect_time(&ch["at"]);
            let target = ch["target"].as_str().unwrap_or_default();
            let mut parts = target.splitn(3, '/');
            if let (true, Some("deployment" | "statefulset"), Some(ns), Some(name)) =
                (recent, parts.next(), parts.next(), parts.next())
            {
                changed.push((ns.to_owned(), name.to_owned()));
            }
        }
        for (ns, name) in changed.into_iter().take(3) {
            let rows = match pods.iter().any(|p| p["namespace"] == ns.as_str()) {
                true => pods.clone(),
                false => c
                    .call("list_pods", json!({"namespace": ns}))
                    .await
                    .and_then(|d| d["pods"].as_array().cloned())
                    .unwrap_or_default(),
            };
            let pod = rows.iter().find_map(|p| {
                let n = p["name"].as_str()?;
                (p["namespace"] == ns.as_str()
                    && n.strip_prefix(name.as_str())
                        .is_some_and(|r| r.starts_with('-')))
                .then(|| n.to_owned())
            });
            if let Some(pod) = pod {
                c.call(
                    "get_pod_logs",
                    json!({"namespace": ns, "pod": pod, "tail": 60}),
                )
                .await;
            }
        }
    }

    // Metrics of the namespaces and services in question.
    for ns in &namespaces {
        c.call(
            "summarize_metric",
            json!({"query": format!("{{namespace=\"{ns}\"}}"), "start": "-1h"}),
        )
        .await;
    }
    let mut services: Vec<String> = subject.service.iter().cloned().collect();
    for w in &focus {
        if !services.contains(&w.name) {
            services.push(w.name.clone());
        }
    }
    for svc in services.iter().take(3) {
        c.call(
            "summarize_metric",
            json!({"query": format!("{{service=\"{svc}\"}}"), "start": "-1h"}),
        )
        .await;
        // Consumer lag is exported by consumer group, outside the
        // consumer's namespace.
        c.call(
            "summarize_metric",
            json!({"query": format!("{{consumergroup=\"{svc}\"}}"), "start": "-1h"}),
        )
        .await;
    }

    // AWS: what is in alarm, the databases and instances, their events.
    c.call("list_cloudwatch_alarms", json!({})).await;
    if let Some(d) = c.call("list_rds_instances", json!({})).await {
        let ids = ids_in(&d, &["DBInstanceIdentifier", "id", "identifier"]);
        for id in ids.iter().take(4) {
            c.call(
                "describe_rds_instance",
                json!({"db_instance_identifier": id}),
            )
            .await;
        }
        if !ids.is_empty() {
            c.call("list_rds_events", json!({"start": "-6h"})).await;
        }
    }
    if let Some(d) = c.call("list_ec2_instances", json!({})).await
        && !ids_in(&d, &["InstanceId", "id", "instance_id"]).is_empty()
    {
        c.call("get_ec2_status_checks", json!({})).await;
        c.call("list_autoscaling_groups", json!({})).await;
    }
    if let Some(d) = c.call("list_s3_buckets", json!({})).await {
        for b in ids_in(&d, &["Name", "name", "bucket"]).iter().take(3) {
            c.call(
                "get_s3_request_metrics",
                json!({"bucket": b, "start": "-2h"}),
            )
            .await;
        }
    }
    if let Some(d) = c.call("list_log_groups", json!({})).await {
        for g in ids_in(&d, &["logGroupName", "name", "log_group"])
            .iter()
            .take(4)
        {
            c.call(
                "query_cloudwatch_logs",
                json!({"log_group": g, "start": "-2h", "limit": 40}),
            )
            .await;
        }
    }
    // The metrics behind alarms that fire.
    let alarms: Vec<Value> = c
        .out
        .iter()
        .filter(|o| o.tool == "list_cloudwatch_alarms" && o.ok())
        .flat_map(|o| array_in(&o.data))
        .collect();
    for a in alarms
        .iter()
        .filter(|a| a["StateValue"] == "ALARM" || a["state"] == "ALARM")
    {
        let ns = a["Namespace"].as_str().or(a["namespace"].as_str());
        let metric = a["MetricName"].as_str().or(a["metric"].as_str());
        if let (Some(ns), Some(metric)) = (ns, metric) {
            let dims: BTreeMap<String, String> = a["Dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    Some((
                        d["Name"].as_str()?.to_owned(),
                        d["Value"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            c.call(
                "get_cloudwatch_metric",
                json!({"namespace": ns, "metric_name": metric, "dimensions": dims, "start": "-2h"}),
            )
            .await;
        }
    }

    ev.observations.append(&mut c.out);
    ev.focus = focus;
    ev.namespaces = namespaces;
    ev
}

/// An autoscaler row's first metric and its target, in percent
/// (`["cpu 158%"]` against `["cpu 65%"]`).
pub fn hpa_utilisation(h: &Value) -> Option<(f64, f64)> {
    let percent = |v: &Value| -> Option<f64> {
        v.as_array()?
            .first()?
            .as_str()?
            .split_whitespace()
            .last()?
            .trim_end_matches('%')
            .parse()
            .ok()
    };
    Some((percent(&h["metrics"])?, percent(&h["targets"])?))
}

/// The first array found in a tool's data: the rows of a listing.
pub fn array_in(data: &Value) -> Vec<Value> {
    match data {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m
            .values()
            .find_map(|v| v.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The values of the first of `keys` present in each row of a listing.
pub fn ids_in(data: &Value, keys: &[&str]) -> Vec<String> {
    array_in(data)
        .iter()
        .filter_map(|row| {
            keys.iter()
                .find_map(|k| row.get(*k).and_then(Value::as_str))
                .map(str::to_owned)
        })
        .collect()
}

/// The workloads the alerts name, best match first: a label naming the
/// workload or its pod beats a mention in free text; the alert's
/// namespace breaks ties.
fn link_workloads(ev: &Evidence) -> Vec<Workload> {
    let s = &ev.subject;
    let mut scored: Vec<(i64, Workload)> = ev
        .workloads()
        .into_iter()
        .filter_map(|w| {
            let mut score = 0;
            if s.service.as_deref() == Some(w.name.as_str()) {
                score += 100;
            }
            if s.pod
                .as_deref()
                .and_then(|p| p.strip_prefix(w.name.as_str()))
                .is_some_and(|r| r.starts_with('-'))
            {
                score += 120;
            }
            if s.labels.values().any(|v| v == &w.name) {
                score += 60;
            }
            if s.mentions(&w.name) {
                score += 40 + i64::try_from(w.name.len()).unwrap_or(0);
            }
            if score == 0 {
                return None;
            }
            if s.namespace.as_deref() == Some(w.namespace.as_str()) || s.mentions(&w.namespace) {
                score += 30;
            }
            Some((score, w))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, w)| w).take(4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_mentioned_only_as_a_whole_word_or_a_pod_prefix() {
        let text = "pod prod/payments-api-6c9f7b8d4-x2k9p (api) is crashlooping; see orders.";
        assert!(mentioned(text, "payments-api"));
        assert!(mentioned(text, "orders"));
        assert!(!mentioned(text, "ments-api"));
        assert!(!mentioned(text, "api-6c9"));
        assert!(!mentioned(text, "pi"));
    }
}
