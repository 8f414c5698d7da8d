//! The read tools: compact text for a model, rows in `data`.

use super::summary::{self as sm, age, n, s};
use super::tools::*;
use super::{LogQuery, ResourceKind, Selector, node_metrics_kind, pod_metrics_kind};
use brain::backends::{ToolError, ToolOutput};
use serde_json::{Value, json};

fn kind(name: &str) -> Result<ResourceKind, ToolError> {
    ResourceKind::builtin(name).ok_or_else(|| ToolError::Backend(format!("unknown kind {name}")))
}

fn selector(labels: Option<&str>, fields: Option<&str>) -> Result<Selector, ToolError> {
    Selector::new(labels, fields).map_err(ToolError::InvalidArguments)
}

fn out(text: String, data: Value) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput {
        text,
        data,
        truncated: false,
    })
}

fn scope(ns: Option<&str>) -> String {
    ns.map_or_else(|| "all namespaces".into(), |n| format!("namespace {n}"))
}

fn by_name(rows: &mut [Value]) {
    rows.sort_by(|a, b| {
        (s(a, "/namespace"), s(a, "/name")).cmp(&(s(b, "/namespace"), s(b, "/name")))
    });
}

fn since_seconds(text: Option<&str>, field: &str) -> Result<Option<i64>, ToolError> {
    text.map(|t| {
        crate::typed::parse_duration(t)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .map_err(|e| ToolError::InvalidArguments(format!("`{field}`: {e}")))
    })
    .transpose()
}

impl KubernetesTools {
    pub(super) async fn list_pods(&self, a: ListPodsArgs) -> Result<ToolOutput, ToolError> {
        let fields = a.node.as_ref().map(|n| format!("spec.nodeName={n}"));
        let sel = selector(a.label_selector.as_deref(), fields.as_deref())?;
        let pods = self
            .api
            .list(&kind("Pod")?, a.namespace.as_deref(), &sel)
            .await?;
        let mut rows: Vec<Value> = pods
            .iter()
            .map(sm::pod_row)
            .filter(|r| !a.only_unhealthy || r["healthy"] == false)
            .collect();
        by_name(&mut rows);
        let now = self.api.now();
        let mut text = format!(
            "{} {}pod(s) in {}:",
            rows.len(),
            if a.only_unhealthy { "unhealthy " } else { "" },
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!(
                "\n{}/{} {} ready={} restarts={} node={} age={}",
                s(r, "/namespace"),
                s(r, "/name"),
                s(r, "/status"),
                s(r, "/ready"),
                n(r, "/restarts"),
                s(r, "/node"),
                age(now, s(r, "/created"))
            ));
        }
        out(text, json!({"pods": rows}))
    }

    /// Events about one object, newest first.
    async fn events_for(
        &self,
        namespace: Option<&str>,
        kind_name: &str,
        name: &str,
    ) -> Result<Vec<Value>, ToolError> {
        let sel = Selector::fields(&format!(
            "involvedObject.kind={kind_name},involvedObject.name={name}"
        ));
        let mut rows: Vec<Value> = self
            .api
            .list(&kind("Event")?, namespace, &sel)
            .await?
            .iter()
            .map(sm::event_row)
            .collect();
        rows.sort_by(|a, b| s(b, "/last").cmp(s(a, "/last")));
        rows.truncate(10);
        Ok(rows)
    }

    fn events_text(&self, text: &mut String, events: &[Value]) {
        let now = self.api.now();
        if events.is_empty() {
            text.push_str("\nevents: none");
        } else {
            text.push_str("\nevents:");
            for e in events {
                text.push_str(&format!("\n  {}", sm::event_text(now, e)));
            }
        }
    }

    pub(super) async fn describe_pod(&self, a: NamedArgs) -> Result<ToolOutput, ToolError> {
        let pod = self
            .api
            .get(&kind("Pod")?, Some(&a.namespace), &a.name)
            .await?;
        let row = sm::pod_row(&pod);
        let containers = sm::containers(&pod);
        let conditions = sm::conditions(&pod);
        let events = self.events_for(Some(&a.namespace), "Pod", &a.name).await?;
        let owner = pod
            .pointer("/metadata/ownerReferences/0")
            .map(|o| format!("{}/{}", s(o, "/kind"), s(o, "/name")))
            .unwrap_or_else(|| "-".into());
        let mut text = format!(
            "pod {}/{}: {} (phase {}), node {}, owner {}, ip {}",
            a.namespace,
            a.name,
            s(&row, "/status"),
            s(&row, "/phase"),
            s(&row, "/node"),
            owner,
            s(&pod, "/status/podIP")
        );
        for c in &containers {
            text.push_str(&format!(
                "\ncontainer {}: image {} ready={} restarts={} state={} last={} requests={} limits={}",
                s(c, "/name"),
                s(c, "/image"),
                c["ready"],
                n(c, "/restarts"),
                sm::state_text(&c["state"]),
                sm::state_text(&c["last_state"]),
                compact(&c["requests"]),
                compact(&c["limits"]),
            ));
            for (p, label) in [
                ("liveness_probe", "liveness"),
                ("readiness_probe", "readiness"),
            ] {
                if let Some(probe) = c[p].as_str() {
                    text.push_str(&format!(" {label}={probe}"));
                }
            }
        }
        if !conditions.is_empty() {
            let c: Vec<String> = conditions.iter().map(sm::condition_text).collect();
            text.push_str(&format!("\nconditions: {}", c.join(", ")));
        }
        self.events_text(&mut text, &events);
        out(
            text,
            json!({"pod": row, "containers": containers, "conditions": conditions, "events": events, "owner": owner}),
        )
    }

    pub(super) async fn pod_logs(&self, a: LogsArgs) -> Result<ToolOutput, ToolError> {
        let tail = i64::from(a.tail.unwrap_or(200).clamp(1, 5000));
        let query = LogQuery {
            container: a.container.clone(),
            previous: a.previous,
            // One more than asked, to know whether older lines were left out.
            tail_lines: Some(tail + 1),
            since_seconds: since_seconds(a.since.as_deref(), "since")?,
        };
        let text = self.api.logs(&a.namespace, &a.pod, &query).await?;
        let mut lines: Vec<&str> = text.lines().collect();
        let cut = lines.len() as i64 > tail;
        if cut {
            lines.remove(0);
        }
        let total = lines.len();
        if let Some(g) = a.grep.as_deref().map(str::to_lowercase) {
            lines.retain(|l| l.to_lowercase().contains(&g));
        }
        let which = format!(
            "{}logs of {}/{}{}",
            if a.previous { "previous " } else { "" },
            a.namespace,
            a.pod,
            a.container
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
        let mut body = if lines.is_empty() {
            format!("{which}: no lines")
        } else {
            format!("{which}, {} line(s):", lines.len())
        };
        if cut {
            body.push_str(&format!(
                "\n[older lines cut: showing the last {tail}; raise `tail` or set `since` to see more]"
            ));
        }
        for l in &lines {
            body.push('\n');
            body.push_str(l);
        }
        out(
            body,
            json!({"lines": lines, "matched": lines.len(), "read": total, "cut": cut}),
        )
    }

    pub(super) async fn list_workloads(
        &self,
        kind_name: &str,
        a: ListArgs,
    ) -> Result<ToolOutput, ToolError> {
        let sel = selector(a.label_selector.as_deref(), None)?;
        let items = self
            .api
            .list(&kind(kind_name)?, a.namespace.as_deref(), &sel)
            .await?;
        let mut rows: Vec<Value> = items.iter().map(sm::workload_row).collect();
        by_name(&mut rows);
        let mut text = format!(
            "{} {}(s) in {}:",
            rows.len(),
            kind_name.to_lowercase(),
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!("\n{}", workload_line(r)));
        }
        out(text, json!({"items": rows}))
    }

    pub(super) async fn describe_workload(
        &self,
        kind_name: &str,
        a: NamedArgs,
    ) -> Result<ToolOutput, ToolError> {
        let w = self
            .api
            .get(&kind(kind_name)?, Some(&a.namespace), &a.name)
            .await?;
        let row = sm::workload_row(&w);
        let conditions = sm::conditions(&w);
        let events = self
            .events_for(Some(&a.namespace), kind_name, &a.name)
            .await?;
        let template =
            json!({"spec": w.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null)});
        let containers = sm::containers(&template);
        let strategy = w
            .pointer("/spec/strategy")
            .or_else(|| w.pointer("/spec/updateStrategy"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut text = workload_line(&row);
        text.push_str(&format!("\nstrategy: {}", compact(&strategy)));
        if let Some(cause) = w
            .pointer("/metadata/annotations/kubernetes.io~1change-cause")
            .and_then(Value::as_str)
        {
            text.push_str(&format!("\nchange cause: {cause}"));
        }
        if !conditions.is_empty() {
            let c: Vec<String> = conditions.iter().map(sm::condition_text).collect();
            text.push_str(&format!("\nconditions: {}", c.join(", ")));
        }
        for c in &containers {
            text.push_str(&format!(
                "\ncontainer {}: image {} requests={} limits={}",
                s(c, "/name"),
                s(c, "/image"),
                compact(&c["requests"]),
                compact(&c["limits"])
            ));
            for (p, label) in [
                ("liveness_probe", "liveness"),
                ("readiness_probe", "readiness"),
            ] {
                if let Some(probe) = c[p].as_str() {
                    text.push_str(&format!(" {label}={probe}"));
                }
            }
        }
        // A StatefulSet's volumes: the claim each replica gets, and its size.
        let claims: Vec<Value> = w
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        json!({
                            "name": s(t, "/metadata/name"),
                            "storage": s(t, "/spec/resources/requests/storage"),
                            "storage_class": s(t, "/spec/storageClassName"),
                            "access_modes": t.pointer("/spec/accessModes").cloned().unwrap_or(Value::Null),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        for c in &claims {
            text.push_str(&format!(
                "
volume claim template {}: {} class={}",
                s(c, "/name"),
                s(c, "/storage"),
                s(c, "/storage_class")
            ));
        }
        self.events_text(&mut text, &events);
        out(
            text,
            json!({"workload": row, "conditions": conditions, "containers": containers, "strategy": strategy,
                   "volume_claim_templates": claims, "events": events}),
        )
    }

    pub(super) async fn rollout_history(&self, a: NamedArgs) -> Result<ToolOutput, ToolError> {
        let history = self.api.rollout_history(&a.namespace, &a.name).await?;
        let now = self.api.now();
        let mut text = format!(
            "rollout history of deployment {}/{} ({} revision(s), oldest first):",
            a.namespace,
            a.name,
            history.len()
        );
        for r in &history {
            text.push_str(&format!(
                "\nrevision {} {} ago: {} — {}",
                r.revision,
                r.at.map(|t| age(now, &t.to_rfc3339()))
                    .unwrap_or_else(|| "?".into()),
                r.images.join(", "),
                r.change_cause.as_deref().unwrap_or("(no change cause)")
            ));
        }
        out(text, json!({"revisions": history}))
    }

    pub(super) async fn list_replicasets(&self, a: ListArgs) -> Result<ToolOutput, ToolError> {
        let sel = selector(a.label_selector.as_deref(), None)?;
        let items = self
            .api
            .list(&kind("ReplicaSet")?, a.namespace.as_deref(), &sel)
            .await?;
        let mut rows: Vec<Value> = items
            .iter()
            .map(|rs| {
                let mut r = sm::workload_row(rs);
                r["owner"] = json!(s(rs, "/metadata/ownerReferences/0/name"));
                r
            })
            .collect();
        by_name(&mut rows);
        let mut text = format!(
            "{} replicaset(s) in {}:",
            rows.len(),
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!("\n{} owner={}", workload_line(r), s(r, "/owner")));
        }
        out(text, json!({"items": rows}))
    }

    pub(super) async fn list_nodes(&self, a: ListNodesArgs) -> Result<ToolOutput, ToolError> {
        let sel = selector(a.label_selector.as_deref(), None)?;
        let items = self.api.list(&kind("Node")?, None, &sel).await?;
        let mut rows: Vec<Value> = items
            .iter()
            .map(sm::node_row)
            .filter(|r| {
                !a.only_unhealthy
                    || r["ready"] == false
                    || r["cordoned"] == true
                    || r["pressure"].as_array().is_some_and(|p| !p.is_empty())
            })
            .collect();
        by_name(&mut rows);
        let mut text = format!("{} node(s):", rows.len());
        for r in &rows {
            text.push_str(&format!("\n{}", node_line(r)));
        }
        out(text, json!({"nodes": rows}))
    }

    pub(super) async fn describe_node(&self, a: NodeArgs) -> Result<ToolOutput, ToolError> {
        let node = self.api.get(&kind("Node")?, None, &a.name).await?;
        let row = sm::node_row(&node);
        let conditions = sm::conditions(&node);
        let pods = self
            .api
            .list(
                &kind("Pod")?,
                None,
                &Selector::fields(&format!("spec.nodeName={}", a.name)),
            )
            .await?;
        let mut pod_rows: Vec<Value> = pods.iter().map(sm::pod_row).collect();
        by_name(&mut pod_rows);
        let events = self.events_for(None, "Node", &a.name).await?;
        let mut text = node_line(&row);
        let c: Vec<String> = conditions.iter().map(sm::condition_text).collect();
        text.push_str(&format!("\nconditions: {}", c.join(", ")));
        text.push_str(&format!("\npods ({}):", pod_rows.len()));
        for p in &pod_rows {
            text.push_str(&format!(
                " {}/{}[{}]",
                s(p, "/namespace"),
                s(p, "/name"),
                s(p, "/status")
            ));
        }
        self.events_text(&mut text, &events);
        out(
            text,
            json!({"node": row, "conditions": conditions, "pods": pod_rows, "events": events}),
        )
    }

    pub(super) async fn list_services(&self, a: ListArgs) -> Result<ToolOutput, ToolError> {
        let sel = selector(a.label_selector.as_deref(), None)?;
        let services = self
            .api
            .list(&kind("Service")?, a.namespace.as_deref(), &sel)
            .await?;
        let pods = self
            .api
            .list(
                &kind("Pod")?,
                a.namespace.as_deref(),
                &Selector::everything(),
            )
            .await?;
        let mut rows = Vec::new();
        for svc in &services {
            let ns = s(svc, "/metadata/namespace");
            let selector_map = svc.pointer("/spec/selector").and_then(Value::as_object);
            let labels: Vec<String> = selector_map
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", sm::plain(v)))
                        .collect()
                })
                .unwrap_or_default();
            // Endpoints as the endpoints controller computes them: the
            // selected pods, ready or not.
            let (mut ready, mut total) = (0, 0);
            if !labels.is_empty() {
                let sel = selector(Some(&labels.join(",")), None)?;
                for p in pods
                    .iter()
                    .filter(|p| s(p, "/metadata/namespace") == ns && sel.matches(p))
                {
                    total += 1;
                    if sm::pod_row(p)["healthy"] == true {
                        ready += 1;
                    }
                }
            }
            let ports: Vec<String> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!("{}->{}", sm::plain(&p["port"]), sm::plain(&p["targetPort"]))
                        })
                        .collect()
                })
                .unwrap_or_default();
            rows.push(json!({
                "namespace": ns, "name": s(svc, "/metadata/name"),
                "type": s(svc, "/spec/type"), "cluster_ip": s(svc, "/spec/clusterIP"),
                "ports": ports, "selector": labels.join(","),
                "ready_endpoints": ready, "endpoints": total,
            }));
        }
        by_name(&mut rows);
        let mut text = format!(
            "{} service(s) in {}:",
            rows.len(),
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!(
                "\n{}/{} {} {} ports={} selector={} endpoints ready {}/{}",
                s(r, "/namespace"),
                s(r, "/name"),
                s(r, "/type"),
                s(r, "/cluster_ip"),
                compact(&r["ports"]),
                s(r, "/selector"),
                n(r, "/ready_endpoints"),
                n(r, "/endpoints")
            ));
        }
        out(text, json!({"services": rows}))
    }

    pub(super) async fn list_hpas(&self, a: ListArgs) -> Result<ToolOutput, ToolError> {
        let sel = selector(a.label_selector.as_deref(), None)?;
        let items = self
            .api
            .list(&kind("hpa")?, a.namespace.as_deref(), &sel)
            .await?;
        let mut rows: Vec<Value> = items.iter().map(sm::hpa_row).collect();
        by_name(&mut rows);
        let mut text = format!(
            "{} autoscaler(s) in {}:",
            rows.len(),
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!("\n{}", hpa_line(r)));
        }
        out(text, json!({"hpas": rows}))
    }

    pub(super) async fn describe_hpa(&self, a: NamedArgs) -> Result<ToolOutput, ToolError> {
        let h = self
            .api
            .get(&kind("hpa")?, Some(&a.namespace), &a.name)
            .await?;
        let row = sm::hpa_row(&h);
        let conditions = sm::conditions(&h);
        let events = self
            .events_for(Some(&a.namespace), "HorizontalPodAutoscaler", &a.name)
            .await?;
        let mut text = hpa_line(&row);
        for c in &conditions {
            text.push_str(&format!(
                "\ncondition {}: {}",
                sm::condition_text(c),
                s(c, "/message")
            ));
        }
        self.events_text(&mut text, &events);
        out(
            text,
            json!({"hpa": row, "conditions": conditions, "events": events}),
        )
    }

    pub(super) async fn list_pvcs(&self, a: ListArgs) -> Result<ToolOutput, ToolError> {
        let sel = selector(a.label_selector.as_deref(), None)?;
        let items = self
            .api
            .list(&kind("pvc")?, a.namespace.as_deref(), &sel)
            .await?;
        let mut rows: Vec<Value> = items
            .iter()
            .map(|p| {
                json!({
                    "namespace": s(p, "/metadata/namespace"), "name": s(p, "/metadata/name"),
                    "phase": s(p, "/status/phase"),
                    "capacity": s(p, "/status/capacity/storage"),
                    "requested": s(p, "/spec/resources/requests/storage"),
                    "storage_class": s(p, "/spec/storageClassName"),
                    "volume": s(p, "/spec/volumeName"),
                })
            })
            .collect();
        by_name(&mut rows);
        let mut text = format!(
            "{} claim(s) in {}:",
            rows.len(),
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!(
                "\n{}/{} {} capacity={} requested={} class={} volume={}",
                s(r, "/namespace"),
                s(r, "/name"),
                s(r, "/phase"),
                s(r, "/capacity"),
                s(r, "/requested"),
                s(r, "/storage_class"),
                s(r, "/volume")
            ));
        }
        out(text, json!({"pvcs": rows}))
    }

    pub(super) async fn list_events(&self, a: EventsArgs) -> Result<ToolOutput, ToolError> {
        let mut fields = Vec::new();
        if let Some(k) = &a.kind {
            let canonical = ResourceKind::builtin(k).map_or_else(|| k.clone(), |r| r.kind);
            fields.push(format!("involvedObject.kind={canonical}"));
        }
        if let Some(nm) = &a.name {
            fields.push(format!("involvedObject.name={nm}"));
        }
        if a.only_warnings {
            fields.push("type=Warning".into());
        }
        let sel = selector(None, Some(&fields.join(",")))?;
        let since = since_seconds(a.since.as_deref(), "since")?;
        let now = self.api.now();
        let items = self
            .api
            .list(&kind("Event")?, a.namespace.as_deref(), &sel)
            .await?;
        let mut rows: Vec<Value> = items
            .iter()
            .map(sm::event_row)
            .filter(|r| {
                since.is_none_or(|secs| {
                    chrono::DateTime::parse_from_rfc3339(s(r, "/last"))
                        .is_ok_and(|t| (now - t.to_utc()).num_seconds() <= secs)
                })
            })
            .collect();
        rows.sort_by(|a, b| s(b, "/last").cmp(s(a, "/last")));
        let mut text = format!(
            "{} event(s) in {}, newest first:",
            rows.len(),
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            text.push_str(&format!("\n{}", sm::event_text(now, r)));
        }
        out(text, json!({"events": rows}))
    }

    pub(super) async fn get_resource(&self, a: ResourceArgs) -> Result<ToolOutput, ToolError> {
        let k = self.api.resolve(&a.kind, a.api_version.as_deref()).await?;
        if k.namespaced && a.namespace.is_none() {
            return Err(ToolError::InvalidArguments(format!(
                "`namespace`: {} is namespaced; say which namespace",
                k.kind
            )));
        }
        let mut obj = self.api.get(&k, a.namespace.as_deref(), &a.name).await?;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        let text = format!(
            "{} {}:\n{}",
            k.kind,
            a.name,
            serde_json::to_string(&obj).unwrap_or_default()
        );
        out(text, json!({"kind": k, "object": obj}))
    }

    pub(super) async fn list_resources(
        &self,
        a: ListResourcesArgs,
    ) -> Result<ToolOutput, ToolError> {
        let k = self.api.resolve(&a.kind, a.api_version.as_deref()).await?;
        let sel = selector(a.label_selector.as_deref(), a.field_selector.as_deref())?;
        let items = self.api.list(&k, a.namespace.as_deref(), &sel).await?;
        let mut rows: Vec<Value> = items
            .iter()
            .map(|o| {
                let conds: Vec<String> = sm::conditions(o).iter().map(sm::condition_text).collect();
                json!({"namespace": s(o, "/metadata/namespace"), "name": s(o, "/metadata/name"),
                       "conditions": conds, "created": s(o, "/metadata/creationTimestamp")})
            })
            .collect();
        by_name(&mut rows);
        let mut text = format!(
            "{} {} in {}:",
            rows.len(),
            k.plural,
            scope(a.namespace.as_deref())
        );
        for r in &rows {
            let ns = s(r, "/namespace");
            text.push_str(&format!(
                "\n{}{}{} {}",
                ns,
                if ns.is_empty() { "" } else { "/" },
                s(r, "/name"),
                r["conditions"]
                    .as_array()
                    .map(|c| c.iter().map(sm::plain).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            ));
        }
        out(text, json!({"kind": k, "items": rows}))
    }

    pub(super) async fn resource_usage(&self, a: UsageArgs) -> Result<ToolOutput, ToolError> {
        let nodes = match a.of.as_deref().unwrap_or("pods") {
            "pods" | "pod" => false,
            "nodes" | "node" => true,
            other => {
                return Err(ToolError::InvalidArguments(format!(
                    "`of`: {other:?} is neither `pods` nor `nodes`"
                )));
            }
        };
        let wanted = if nodes {
            node_metrics_kind()
        } else {
            pod_metrics_kind()
        };
        let k = match self
            .api
            .resolve(&wanted.kind, Some(&wanted.api_version()))
            .await
        {
            Ok(k) => k,
            Err(ToolError::NotFound { .. }) => {
                return out(
                    "metrics-server is not installed (no metrics.k8s.io API): no live CPU/memory usage; use Prometheus (container_memory_working_set_bytes, container_cpu_usage_seconds_total) instead".into(),
                    json!({"available": false}),
                );
            }
            Err(e) => return Err(e),
        };
        let ns = if nodes { None } else { a.namespace.as_deref() };
        let items = self.api.list(&k, ns, &Selector::everything()).await?;
        let mut rows: Vec<Value> = items
            .iter()
            .map(|m| {
                let usage: Vec<Value> = if nodes {
                    vec![json!({"name": "", "cpu": s(m, "/usage/cpu"), "memory": s(m, "/usage/memory")})]
                } else {
                    m.get("containers")
                        .and_then(Value::as_array)
                        .map(|cs| {
                            cs.iter()
                                .map(|c| json!({"name": s(c, "/name"), "cpu": s(c, "/usage/cpu"), "memory": s(c, "/usage/memory")}))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                json!({"namespace": s(m, "/metadata/namespace"), "name": s(m, "/metadata/name"), "usage": usage})
            })
            .collect();
        by_name(&mut rows);
        let mut text = format!(
            "usage of {} {}:",
            rows.len(),
            if nodes { "node(s)" } else { "pod(s)" }
        );
        for r in &rows {
            let u: Vec<String> = r["usage"]
                .as_array()
                .map(|us| {
                    us.iter()
                        .map(|c| {
                            format!(
                                "{} cpu={} mem={}",
                                s(c, "/name"),
                                s(c, "/cpu"),
                                s(c, "/memory")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            text.push_str(&format!("\n{} {}", s(r, "/name"), u.join("; ")));
        }
        out(text, json!({"available": true, "items": rows}))
    }
}

/// A JSON value on one line.
pub(super) fn compact(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        other => other.to_string().replace('"', ""),
    }
}

fn workload_line(r: &Value) -> String {
    let rev = s(r, "/revision");
    format!(
        "{}/{} desired={} ready={} updated={} available={}{} images={}",
        s(r, "/namespace"),
        s(r, "/name"),
        n(r, "/desired"),
        n(r, "/ready"),
        n(r, "/updated"),
        n(r, "/available"),
        if rev.is_empty() {
            String::new()
        } else {
            format!(" revision={rev}")
        },
        compact(&r["images"])
    )
}

fn node_line(r: &Value) -> String {
    format!(
        "{} ready={}{}{} pressure={} taints={} allocatable cpu={} mem={} zone={}",
        s(r, "/name"),
        s(r, "/ready_status"),
        if r["cordoned"] == true {
            " CORDONED"
        } else {
            ""
        },
        if s(r, "/instance_type").is_empty() {
            String::new()
        } else {
            format!(" type={}", s(r, "/instance_type"))
        },
        compact(&r["pressure"]),
        compact(&r["taints"]),
        s(r, "/cpu"),
        s(r, "/memory"),
        s(r, "/zone")
    )
}

fn hpa_line(r: &Value) -> String {
    format!(
        "{}/{} -> {} min={} max={} current={} desired={}{} metrics={} targets={}",
        s(r, "/namespace"),
        s(r, "/name"),
        s(r, "/target"),
        n(r, "/min"),
        n(r, "/max"),
        n(r, "/current"),
        n(r, "/desired"),
        if r["at_max"] == true { " AT MAX" } else { "" },
        compact(&r["metrics"]),
        compact(&r["targets"])
    )
}
