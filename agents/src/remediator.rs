//! The remediator: from the diagnosis, candidate actions of the
//! vocabulary with their parameters worked out from the evidence (the
//! revision to roll back to, a memory limit from observed usage, the
//! replicas before a scale-up), best first. Each target is checked to
//! exist, and the policy engine — code, not the model — classifies each
//! one: forbidden actions are never proposed.

use crate::diagnostician::Findings;
use crate::investigator::{Evidence, SUSPECT_WINDOW, array_in, hpa_utilisation};
use brain::policy::{Decision, Policy, TargetFacts};
use brain::taxonomy::RootCause;
use brain::vocabulary::{Action, Component};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tools::Registry;

/// An action worth proposing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub action: Action,
    pub target: Component,
    pub params: Value,
    pub rationale: String,
}

/// A candidate the policy has classified.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub candidate: Candidate,
    pub decision: Decision,
    /// Whether the target is protected (prod namespaces, labels, tags).
    pub protected: bool,
}

/// Candidates for the winning hypothesis, best first. Always ends with an
/// escalation to a human on the component at fault.
pub fn candidates(findings: &Findings, ev: &Evidence) -> Vec<Candidate> {
    let Some(h) = findings.best() else {
        return Vec::new();
    };
    let Ok(target) = h.component.parse::<Component>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |action: Action, target: &Component, params: Value, why: String| {
        out.push(Candidate {
            action,
            target: target.clone(),
            params,
            rationale: why,
        });
    };
    let workload = match &target {
        Component::Kubernetes {
            kind,
            namespace: Some(ns),
            name,
        } if kind == "deployment" || kind == "statefulset" => {
            Some((kind.clone(), ns.clone(), name.clone()))
        }
        _ => None,
    };
    // Whatever the category: a culprit scaled to zero comes back first.
    if let Some((kind, ns, name)) = &workload
        && desired_replicas(ev, kind, ns, name) == Some(0)
    {
        let to = replicas_before_zero(ev, &target).unwrap_or(2);
        push(
            Action::Scale,
            &target,
            json!({"replicas": to}),
            format!("{name} is scaled to 0 replicas; scale it back to {to}"),
        );
    }
    match (h.category, &workload) {
        (RootCause::OomKilled, Some((_, ns, name))) => {
            if let Some((container, limit)) = memory_limit(ev, ns, name) {
                push(
                    Action::SetResources,
                    &target,
                    json!({"container": container, "memory_limit": limit}),
                    format!(
                        "raise {container}'s memory limit to {limit}, above the usage it was killed at"
                    ),
                );
            }
            if let Some(rev) = previous_revision(ev, ns, name) {
                push(
                    Action::Rollback,
                    &target,
                    json!({"to_revision": rev}),
                    format!("go back to revision {rev}, before the change that raised memory use"),
                );
            }
        }
        (
            RootCause::BadDeploy
            | RootCause::CrashloopConfig
            | RootCause::ImagePull
            | RootCause::ProbeMisconfig,
            Some((kind, ns, name)),
        ) => {
            let recent = h.category == RootCause::BadDeploy || recently_changed(ev, ns, name);
            if kind == "deployment" && recent {
                match previous_revision(ev, ns, name) {
                    Some(rev) => push(
                        Action::Rollback,
                        &target,
                        json!({"to_revision": rev}),
                        format!("roll back to revision {rev}, the last one before the change"),
                    ),
                    None => push(
                        Action::Rollback,
                        &target,
                        json!({}),
                        "roll back to the previous revision".into(),
                    ),
                }
            }
        }
        (RootCause::CpuThrottling, Some((_, ns, name))) => {
            if let Some((container, limit)) = cpu_limit(ev, ns, name) {
                push(
                    Action::SetResources,
                    &target,
                    json!({"container": container, "cpu_limit": limit}),
                    format!("raise {container}'s CPU limit to {limit} so it is not throttled"),
                );
            }
        }
        (RootCause::CapacitySaturation, Some((_, ns, name))) => {
            if let Some((hpa, max, need)) = hpa_at_max(ev, ns, name) {
                // What the autoscaler would ask for at the target
                // utilisation, at least a step above today's ceiling.
                let new = need.max(max + (max / 4).max(2));
                push(
                    Action::PatchHpa,
                    &Component::Kubernetes {
                        kind: "horizontalpodautoscaler".into(),
                        namespace: Some(ns.clone()),
                        name: hpa.clone(),
                    },
                    json!({"max_replicas": new}),
                    format!("raise autoscaler {hpa}'s ceiling from {max} to {new}"),
                );
            } else if let Some(now) = replicas(ev, ns, name) {
                let new = now + (now / 2).max(1);
                push(
                    Action::Scale,
                    &target,
                    json!({"replicas": new}),
                    format!("scale from {now} to {new} replicas"),
                );
            }
        }
        // A restart helps pods that run but hang; pods that cannot be
        // scheduled or pulled need a human.
        (RootCause::DependencyFailure, Some((_, ns, name))) if !pods_stuck(ev, ns, name) => {
            push(
                Action::RolloutRestart,
                &target,
                json!({}),
                "restart the failing dependency's pods".into(),
            );
        }
        (RootCause::NodeFailure, _) => match &target {
            Component::Kubernetes { kind, name, .. } if kind == "node" => {
                push(
                    Action::CordonNode,
                    &target,
                    json!({}),
                    format!("cordon {name} so nothing new lands on it"),
                );
            }
            Component::Aws { service, id } if service == "ec2" => {
                push(
                    Action::Ec2Reboot,
                    &target,
                    json!({}),
                    format!("reboot {id}, whose status checks fail"),
                );
            }
            _ => {}
        },
        (RootCause::DiskPressure, _) => {
            if let Component::Aws { service, id } = &target
                && service == "rds"
                && let Some(gb) = rds_storage(ev, id)
            {
                let new = gb + (gb / 2).max(10);
                push(
                    Action::RdsModify,
                    &target,
                    json!({"allocated_storage": new}),
                    format!("grow {id}'s storage from {gb} GiB to {new} GiB"),
                );
            }
        }
        (RootCause::RateLimited | RootCause::DbConnectionExhaustion, _) => {
            // A client scaled up shortly before: scale it back first.
            if let Some((w, before, after)) = recent_scale_up(ev) {
                let too_many = if h.category == RootCause::RateLimited {
                    "sends more requests than the provider allows"
                } else {
                    "opened more connections than the database allows"
                };
                push(
                    Action::Scale,
                    &w,
                    json!({"replicas": before}),
                    format!(
                        "scale {w} back from {after} to {before} replicas: the scale-up {too_many}"
                    ),
                );
            }
            if let Component::Aws { service, id } = &target
                && service == "rds"
                && h.category == RootCause::DbConnectionExhaustion
            {
                let now = rds_connections_peak(ev, id);
                let params = match now {
                    Some(n) => json!({"max_connections": (n * 3 / 2).max(n + 50)}),
                    None => json!({}),
                };
                push(
                    Action::RdsModify,
                    &target,
                    params,
                    format!("raise {id}'s connection limit"),
                );
            }
        }
        _ => {}
    }
    push(
        Action::Escalate,
        &target,
        json!({}),
        format!(
            "hand {} on {} to a human with the evidence",
            h.category.as_str(),
            h.component
        ),
    );
    out
}

/// The workload's container with the largest share of throttled CPU
/// periods (from the period counters), or the highest throttling ratio
/// series.
fn most_throttled(ev: &Evidence, ns: &str, name: &str) -> Option<String> {
    let rows: Vec<Value> = ev
        .of("summarize_metric")
        .flat_map(|o| o.data.as_array().cloned().unwrap_or_default())
        .filter(|row| {
            let m = &row["metric"];
            m["namespace"] == ns
                && m["container"].is_string()
                && m["pod"]
                    .as_str()
                    .is_none_or(|p| p.starts_with(&format!("{name}-")))
        })
        .collect();
    let delta = |row: &Value| {
        row["summary"]["last"].as_f64().unwrap_or(0.0)
            - row["summary"]["first"].as_f64().unwrap_or(0.0)
    };
    // (throttled, total) per container, over its pods.
    let mut per: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut ratio_series: Option<(String, f64)> = None;
    for row in &rows {
        let metric = row["metric"]["__name__"].as_str().unwrap_or_default();
        let container = row["metric"]["container"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if metric.contains("throttled_periods") && metric.ends_with("_total") {
            per.entry(container).or_default().0 += delta(row);
        } else if metric.contains("cfs_periods") && metric.ends_with("_total") {
            per.entry(container).or_default().1 += delta(row);
        } else if metric.contains("throttl") {
            let max = row["summary"]["max"].as_f64().unwrap_or(0.0);
            if ratio_series.as_ref().is_none_or(|(_, m)| max > *m) {
                ratio_series = Some((container, max));
            }
        }
    }
    per.into_iter()
        .filter(|(_, (_, total))| *total > 0.0)
        .max_by(|a, b| (a.1.0 / a.1.1).total_cmp(&(b.1.0 / b.1.1)))
        .map(|(c, _)| c)
        .or(ratio_series.map(|(c, _)| c))
}

/// Whether any pod of the workload is Pending or cannot start its image.
fn pods_stuck(ev: &Evidence, ns: &str, name: &str) -> bool {
    ev.of("list_pods").any(|o| {
        o.data["pods"].as_array().into_iter().flatten().any(|p| {
            p["namespace"] == ns
                && p["name"]
                    .as_str()
                    .and_then(|n| n.strip_prefix(name))
                    .is_some_and(|r| r.starts_with('-'))
                && (p["phase"] == "Pending"
                    || [
                        "ImagePullBackOff",
                        "ErrImagePull",
                        "Pending",
                        "ContainerCreating",
                    ]
                    .contains(&p["status"].as_str().unwrap_or_default()))
        })
    })
}

/// The latest revision before the newest one of a workload.
fn previous_revision(ev: &Evidence, ns: &str, name: &str) -> Option<i64> {
    ev.of("get_rollout_history")
        .filter(|o| o.arg("namespace") == Some(ns) && o.arg("name") == Some(name))
        .find_map(|o| {
            let revs = o.data["revisions"].as_array()?;
            let n = revs.len();
            (n >= 2).then(|| revs[n - 2]["revision"].as_i64()).flatten()
        })
}

/// Whether the workload changed (rollout or change feed) in the last 3 h
/// before the alert.
fn recently_changed(ev: &Evidence, ns: &str, name: &str) -> bool {
    let near = |t: &Value| ev.subject.is_suspect_time(t);
    let history = ev
        .of("get_rollout_history")
        .filter(|o| o.arg("namespace") == Some(ns) && o.arg("name") == Some(name))
        .any(|o| {
            o.data["revisions"]
                .as_array()
                .and_then(|r| r.last())
                .is_some_and(|r| near(&r["at"]))
        });
    let feed = ev.of("list_recent_changes").any(|o| {
        o.data["changes"].as_array().into_iter().flatten().any(|c| {
            c["target"]
                .as_str()
                .is_some_and(|t| t.ends_with(&format!("/{ns}/{name}")) || t == name)
                && near(&c["at"])
        })
    });
    history || feed
}

/// Containers of the workload's pods that `describe_pod` looked at.
fn described_containers(ev: &Evidence, ns: &str, name: &str) -> Vec<Value> {
    ev.of("describe_pod")
        .filter(|o| {
            o.arg("namespace") == Some(ns)
                && o.arg("name")
                    .and_then(|p| p.strip_prefix(name))
                    .is_some_and(|r| r.starts_with('-'))
        })
        .flat_map(|o| o.data["containers"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Bytes from a Kubernetes quantity (`512Mi`, `1Gi`, `500M`, `1073741824`).
pub fn bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    Some(n * mult)
}

/// CPU cores from a quantity (`500m`, `1`, `1.5`).
pub fn cores(q: &str) -> Option<f64> {
    let q = q.trim();
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok().map(|v| v / 1000.0),
        None => q.parse().ok(),
    }
}

/// The OOMKilled container and a new memory limit: twice the old one, or
/// 1.5 times the peak observed, whichever is more, in Mi.
fn memory_limit(ev: &Evidence, ns: &str, name: &str) -> Option<(String, String)> {
    let mut container = None;
    let mut limit: f64 = 0.0;
    for c in &described_containers(ev, ns, name) {
        let killed =
            c["last_state"]["reason"] == "OOMKilled" || c["state"]["reason"] == "OOMKilled";
        let l = c["limits"]["memory"]
            .as_str()
            .and_then(bytes)
            .unwrap_or(0.0);
        if killed || container.is_none() && l > 0.0 {
            container = c["name"].as_str().map(str::to_owned);
            limit = limit.max(l);
        }
    }
    let container = container?;
    let peak = memory_peak(ev, ns, name);
    let want = (limit * 2.0).max(peak * 1.5).max(256.0 * 1048576.0);
    let mi = (want / 1048576.0 / 64.0).ceil() as u64 * 64;
    Some((container, format!("{mi}Mi")))
}

fn memory_peak(ev: &Evidence, ns: &str, name: &str) -> f64 {
    ev.of("summarize_metric")
        .flat_map(|o| o.data.as_array().cloned().unwrap_or_default())
        .filter(|row| {
            let m = &row["metric"];
            m["__name__"]
                .as_str()
                .is_some_and(|n| n.contains("memory_working_set") || n.contains("memory_usage"))
                && m["namespace"] == ns
                && m["pod"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&format!("{name}-")))
        })
        .filter_map(|row| row["summary"]["max"].as_f64())
        .fold(0.0, f64::max)
}

/// The throttled container and twice its CPU limit.
fn cpu_limit(ev: &Evidence, ns: &str, name: &str) -> Option<(String, String)> {
    let throttled = most_throttled(ev, ns, name);
    let mut best: Option<(String, f64)> = None;
    for c in &described_containers(ev, ns, name) {
        if let Some(t) = &throttled
            && c["name"] != t.as_str()
        {
            continue;
        }
        let l = c["limits"]["cpu"].as_str().and_then(cores).unwrap_or(0.0);
        if best.as_ref().is_none_or(|(_, b)| l > *b) {
            best = Some((c["name"].as_str().unwrap_or_default().to_owned(), l));
        }
    }
    // Without a described pod, the container label of a throttling series.
    let (container, limit) = match best {
        Some(b) if !b.0.is_empty() => b,
        _ => {
            let c = ev
                .of("summarize_metric")
                .flat_map(|o| o.data.as_array().cloned().unwrap_or_default())
                .find_map(|row| {
                    let m = &row["metric"];
                    (m["__name__"]
                        .as_str()
                        .is_some_and(|n| n.contains("throttl"))
                        && m["namespace"] == ns)
                        .then(|| m["container"].as_str().map(str::to_owned))
                        .flatten()
                })?;
            (c, 0.0)
        }
    };
    let new = if limit > 0.0 { limit * 2.0 } else { 2.0 };
    let millis = (new * 1000.0).round() as u64;
    let text = if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    };
    Some((container, text))
}

/// An autoscaler over the workload that sits at its maximum: its name,
/// its maximum, and the replicas its own rule asks for
/// (`ceil(current × utilisation / target)`).
fn hpa_at_max(ev: &Evidence, ns: &str, name: &str) -> Option<(String, i64, i64)> {
    ev.of("list_hpas").find_map(|o| {
        o.data["hpas"].as_array()?.iter().find_map(|h| {
            let target = h["target"].as_str()?;
            if !(h["namespace"] == ns
                && target.ends_with(&format!("/{name}"))
                && h["at_max"] == true)
            {
                return None;
            }
            let max = h["max"].as_i64()?;
            let current = h["current"].as_i64().unwrap_or(max);
            let need = match hpa_utilisation(h) {
                Some((now, goal)) if goal > 0.0 => (current as f64 * now / goal).ceil() as i64,
                _ => max,
            };
            Some((h["name"].as_str()?.to_owned(), max, need))
        })
    })
}

fn replicas(ev: &Evidence, ns: &str, name: &str) -> Option<i64> {
    ev.of("list_deployments")
        .chain(ev.of("list_statefulsets"))
        .find_map(|o| {
            o.data["items"].as_array()?.iter().find_map(|w| {
                (w["namespace"] == ns && w["name"] == name)
                    .then(|| w["desired"].as_i64())
                    .flatten()
            })
        })
}

/// A workload scaled up shortly before the alert, from the change feed
/// (`scaled from 4 to 40 replicas`): the workload, before, after.
fn recent_scale_up(ev: &Evidence) -> Option<(Component, i64, i64)> {
    ev.of("list_recent_changes").find_map(|o| {
        o.data["changes"].as_array()?.iter().find_map(|c| {
            if !SUSPECT_WINDOW.contains(&ev.subject.minutes_before(&c["at"])?) {
                return None;
            }
            let text = c["description"].as_str()?.to_lowercase();
            if !(text.contains("replica") || text.contains("scale")) {
                return None;
            }
            let (from, to) = scale_numbers(&text)?;
            if to <= from {
                return None;
            }
            let target: Component = c["target"].as_str()?.parse().ok()?;
            matches!(&target, Component::Kubernetes { kind, .. } if kind == "deployment" || kind == "statefulset")
                .then_some((target, from, to))
        })
    })
}

/// The desired replicas of a workload, as listed.
fn desired_replicas(ev: &Evidence, kind: &str, ns: &str, name: &str) -> Option<i64> {
    let tool = if kind == "statefulset" {
        "list_statefulsets"
    } else {
        "list_deployments"
    };
    ev.of(tool).find_map(|o| {
        o.data["items"]
            .as_array()?
            .iter()
            .find(|w| w["namespace"] == ns && w["name"] == name)?["desired"]
            .as_i64()
    })
}

/// The replicas a change scaled `target` down to zero from, when the
/// change feed says.
fn replicas_before_zero(ev: &Evidence, target: &Component) -> Option<i64> {
    let shown = target.to_string();
    ev.of("list_recent_changes").find_map(|o| {
        o.data["changes"].as_array()?.iter().find_map(|c| {
            if c["target"].as_str()? != shown {
                return None;
            }
            let text = c["description"].as_str()?.to_lowercase();
            let (from, to) = scale_numbers(&text)?;
            (to == 0 && from > 0).then_some(from)
        })
    })
}

/// The replica counts a scaling change names: `--replicas=24 (was 4)`,
/// `from 4 to 24`, `4 -> 24`; (before, after).
fn scale_numbers(text: &str) -> Option<(i64, i64)> {
    let number_after = |key: &str| -> Option<i64> {
        let i = text.find(key)? + key.len();
        let digits: String = text[i..]
            .trim_start_matches([' ', '=', ':'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let before = number_after("was").or_else(|| number_after("from"));
    let after = number_after("replicas=")
        .or_else(|| number_after("replicas"))
        .or_else(|| number_after(" to "))
        .or_else(|| number_after("->"))
        .or_else(|| number_after("→"));
    Some((before?, after?))
}

fn rds_instance(ev: &Evidence, id: &str) -> Option<Value> {
    ev.of("describe_rds_instance")
        .find_map(|o| {
            (o.data["instance"]["DBInstanceIdentifier"] == id).then(|| o.data["instance"].clone())
        })
        .or_else(|| {
            ev.of("list_rds_instances")
                .flat_map(|o| array_in(&o.data))
                .find(|d| d["DBInstanceIdentifier"] == id)
        })
}

fn rds_storage(ev: &Evidence, id: &str) -> Option<i64> {
    rds_instance(ev, id)?["AllocatedStorage"].as_i64()
}

fn rds_connections_peak(ev: &Evidence, id: &str) -> Option<i64> {
    ev.of("get_cloudwatch_metric")
        .filter(|o| {
            o.arg("metric_name") == Some("DatabaseConnections")
                && o.args["dimensions"]["DBInstanceIdentifier"] == id
        })
        .find_map(|o| o.data["summary"]["max"].as_f64())
        .map(|v| v as i64)
}

/// What the policy needs to know about a target: the labels of it and of
/// its namespace, AWS tags, current replicas. Read with the tools; a
/// target that cannot be read does not exist.
pub async fn facts(tools: &Registry, target: &Component) -> Result<TargetFacts, String> {
    let mut f = TargetFacts::default();
    match target {
        Component::Kubernetes {
            kind,
            namespace,
            name,
        } => {
            let mut args = json!({"kind": kind, "name": name});
            if let Some(ns) = namespace {
                args["namespace"] = json!(ns);
            }
            let obj = tools
                .call("get_resource", args)
                .await
                .map_err(|e| e.to_string())?;
            let obj = &obj.data["object"];
            labels_into(&mut f.labels, &obj["metadata"]["labels"]);
            f.current_replicas = obj["spec"]["replicas"].as_u64();
            if let Some(ns) = namespace
                && let Ok(n) = tools
                    .call("get_resource", json!({"kind": "Namespace", "name": ns}))
                    .await
            {
                labels_into(&mut f.labels, &n.data["object"]["metadata"]["labels"]);
            }
        }
        Component::Aws { service, id } => {
            let (tool, args, ptr) = match service.as_str() {
                "rds" => (
                    "describe_rds_instance",
                    json!({"db_instance_identifier": id}),
                    "/instance/TagList",
                ),
                "ec2" => (
                    "describe_ec2_instance",
                    json!({"instance_id": id}),
                    "/instance/Tags",
                ),
                "asg" => (
                    "describe_autoscaling_group",
                    json!({"name": id}),
                    "/group/Tags",
                ),
                "s3" => {
                    let out = tools
                        .call("list_s3_buckets", json!({}))
                        .await
                        .map_err(|e| e.to_string())?;
                    if !array_in(&out.data).iter().any(|b| b["Name"] == id.as_str()) {
                        return Err(format!("no S3 bucket {id}"));
                    }
                    return Ok(f);
                }
                other => return Err(format!("no tool reads aws/{other}")),
            };
            let out = tools.call(tool, args).await.map_err(|e| e.to_string())?;
            if out
                .data
                .pointer(&ptr[..ptr.rfind('/').unwrap_or(0)])
                .is_none_or(Value::is_null)
            {
                return Err(format!("{target} not found"));
            }
            for t in out
                .data
                .pointer(ptr)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(k), Some(v)) = (t["Key"].as_str(), t["Value"].as_str()) {
                    f.tags.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Component::External { .. } => {}
    }
    Ok(f)
}

fn labels_into(out: &mut BTreeMap<String, String>, labels: &Value) {
    for (k, v) in labels.as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            out.entry(k.clone()).or_insert_with(|| v.to_owned());
        }
    }
}

/// Classify the candidates in order; drop those whose target does not
/// exist and those the policy forbids. The first of the result is what
/// gets proposed.
pub async fn classify(
    tools: &Registry,
    policy: &Policy,
    candidates: Vec<Candidate>,
) -> (Vec<Proposal>, Vec<String>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    for c in candidates {
        let facts = match (&c.action, &c.target) {
            // Escalating names the component at fault; it need not be a
            // resource (an external API).
            (Action::Escalate, _) => TargetFacts::default(),
            _ => match facts(tools, &c.target).await {
                Ok(f) => f,
                Err(e) => {
                    dropped.push(format!(
                        "{} on {}: target unreadable ({e})",
                        c.action.as_str(),
                        c.target
                    ));
                    continue;
                }
            },
        };
        let decision = policy.decide(c.action, &c.target, &c.params, &facts);
        if let Decision::Forbidden { reason } = &decision {
            dropped.push(format!(
                "{} on {}: forbidden ({reason})",
                c.action.as_str(),
                c.target
            ));
            continue;
        }
        let protected = policy.is_protected(&c.target, &facts);
        out.push(Proposal {
            candidate: c,
            decision,
            protected,
        });
    }
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(bytes("512Mi"), Some(512.0 * 1048576.0));
        assert_eq!(bytes("1Gi"), Some(1073741824.0));
        assert_eq!(bytes("500M"), Some(5e8));
        assert_eq!(bytes("x"), None);
        assert_eq!(cores("500m"), Some(0.5));
        assert_eq!(cores("2"), Some(2.0));
        assert_eq!(
            scale_numbers("kubectl scale --replicas=24 (was 4) to finish"),
            Some((4, 24))
        );
        assert_eq!(
            scale_numbers("scaled export-worker from 4 to 40 replicas"),
            Some((4, 40))
        );
        assert_eq!(scale_numbers("enable feature x"), None);
    }
}
