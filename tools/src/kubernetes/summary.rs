//! Compact summaries of objects in API shape: one JSON row per object for
//! `data`, and the one-line text a model reads. Missing fields read as
//! absent, never as errors: scenarios and clusters omit much.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The string at a JSON pointer, or ``.
pub fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, or 0.
pub fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The images of a pod spec's containers.
pub fn images(pod_spec: Option<&Value>) -> Vec<String> {
    pod_spec
        .map(|p| arr(p, "/containers"))
        .unwrap_or_default()
        .iter()
        .map(|c| s(c, "/image").to_owned())
        .collect()
}

/// `1h35m` since the RFC 3339 time `ts`, or `?`.
pub fn age(now: DateTime<Utc>, ts: &str) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(ts) else {
        return "?".into();
    };
    let d = now - t.with_timezone(&Utc);
    let m = d.num_minutes();
    match m {
        i64::MIN..=-1 => "future".into(),
        0 => format!("{}s", d.num_seconds().max(0)),
        1..=59 => format!("{m}m"),
        60..=2879 => format!("{}h{:02}m", m / 60, m % 60),
        _ => format!("{}d", m / 1440),
    }
}

/// A pod as `kubectl get pods` shows it.
pub fn pod_row(pod: &Value) -> Value {
    let statuses = arr(pod, "/status/containerStatuses");
    let total = arr(pod, "/spec/containers").len().max(statuses.len());
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
    let phase = s(pod, "/status/phase");
    // The reason kubectl shows: a waiting or terminated container's reason
    // wins over the phase.
    let reason = statuses
        .iter()
        .find_map(|c| {
            let w = s(c, "/state/waiting/reason");
            let t = s(c, "/state/terminated/reason");
            [w, t].into_iter().find(|r| !r.is_empty())
        })
        .or_else(|| Some(s(pod, "/status/reason")).filter(|r| !r.is_empty()))
        .unwrap_or(if phase.is_empty() { "Unknown" } else { phase });
    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
    let healthy = !deleting
        && (phase == "Succeeded" || (phase == "Running" && ready == total && reason == "Running"));
    json!({
        "namespace": s(pod, "/metadata/namespace"),
        "name": s(pod, "/metadata/name"),
        "phase": phase,
        "status": if deleting { "Terminating" } else { reason },
        "ready": format!("{ready}/{total}"),
        "restarts": restarts,
        "node": s(pod, "/spec/nodeName"),
        "created": s(pod, "/metadata/creationTimestamp"),
        "healthy": healthy,
    })
}

/// One container of a pod with its status, like `kubectl describe pod`.
pub fn containers(pod: &Value) -> Vec<Value> {
    let statuses = arr(pod, "/status/containerStatuses");
    arr(pod, "/spec/containers")
        .iter()
        .map(|c| {
            let name = s(c, "/name");
            let st = statuses
                .iter()
                .find(|x| s(x, "/name") == name)
                .cloned()
                .unwrap_or(Value::Null);
            json!({
                "name": name,
                "image": s(c, "/image"),
                "ready": st.get("ready").and_then(Value::as_bool).unwrap_or(false),
                "restarts": n(&st, "/restartCount"),
                "state": state(st.get("state")),
                "last_state": state(st.get("lastState")),
                "requests": c.pointer("/resources/requests").cloned().unwrap_or(Value::Null),
                "limits": c.pointer("/resources/limits").cloned().unwrap_or(Value::Null),
                "liveness_probe": c.get("livenessProbe").map(probe),
                "readiness_probe": c.get("readinessProbe").map(probe),
            })
        })
        .collect()
}

/// `{state: waiting|running|terminated, reason, exit_code, started, finished}`.
fn state(st: Option<&Value>) -> Value {
    let Some(map) = st.and_then(Value::as_object) else {
        return Value::Null;
    };
    let Some((which, d)) = map.iter().next() else {
        return Value::Null;
    };
    json!({
        "state": which,
        "reason": d.get("reason"),
        "exit_code": d.get("exitCode"),
        "message": d.get("message"),
        "started": d.get("startedAt"),
        "finished": d.get("finishedAt"),
    })
}

/// `http-get :8080/healthz delay=40s period=10s #fail=3`.
fn probe(p: &Value) -> String {
    let how = if let Some(h) = p.get("httpGet") {
        format!(
            "http-get :{}{}",
            h.get("port").map(plain).unwrap_or_default(),
            s(h, "/path")
        )
    } else if let Some(t) = p.get("tcpSocket") {
        format!("tcp :{}", t.get("port").map(plain).unwrap_or_default())
    } else if p.get("exec").is_some() {
        "exec".into()
    } else {
        "other".into()
    };
    let mut out = how;
    for (field, label) in [
        ("initialDelaySeconds", "delay"),
        ("timeoutSeconds", "timeout"),
        ("periodSeconds", "period"),
    ] {
        if let Some(v) = p.get(field).and_then(Value::as_i64) {
            out.push_str(&format!(" {label}={v}s"));
        }
    }
    if let Some(v) = p.get("failureThreshold").and_then(Value::as_i64) {
        out.push_str(&format!(" #fail={v}"));
    }
    out
}

/// A JSON scalar as text, without quotes.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `state[reason exit=137]` of a container row's state.
pub fn state_text(st: &Value) -> String {
    if st.is_null() {
        return "-".into();
    }
    let mut out = s(st, "/state").to_owned();
    let reason = s(st, "/reason");
    let code = st.get("exit_code").and_then(Value::as_i64);
    if !reason.is_empty() || code.is_some() {
        out.push('[');
        out.push_str(reason);
        if let Some(c) = code {
            out.push_str(&format!(
                "{}exit={c}",
                if reason.is_empty() { "" } else { " " }
            ));
        }
        out.push(']');
    }
    out
}

/// A Deployment or StatefulSet's replica counts and images.
pub fn workload_row(w: &Value) -> Value {
    let desired = w
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    json!({
        "namespace": s(w, "/metadata/namespace"),
        "name": s(w, "/metadata/name"),
        "kind": s(w, "/kind"),
        "desired": desired,
        "ready": n(w, "/status/readyReplicas"),
        "updated": n(w, "/status/updatedReplicas"),
        "available": n(w, "/status/availableReplicas"),
        "revision": s(w, "/metadata/annotations/deployment.kubernetes.io~1revision"),
        "images": images(w.pointer("/spec/template/spec")),
        "healthy": n(w, "/status/readyReplicas") >= desired,
    })
}

/// Conditions as `Type=Status(Reason)`.
pub fn conditions(v: &Value) -> Vec<Value> {
    arr(v, "/status/conditions")
        .iter()
        .map(|c| {
            json!({
                "type": s(c, "/type"),
                "status": s(c, "/status"),
                "reason": s(c, "/reason"),
                "message": s(c, "/message"),
                "since": s(c, "/lastTransitionTime"),
            })
        })
        .collect()
}

pub fn condition_text(c: &Value) -> String {
    let reason = s(c, "/reason");
    if reason.is_empty() {
        format!("{}={}", s(c, "/type"), s(c, "/status"))
    } else {
        format!("{}={}({reason})", s(c, "/type"), s(c, "/status"))
    }
}

/// A node: readiness, pressure conditions, cordon, taints, allocatable.
pub fn node_row(node: &Value) -> Value {
    let conds = arr(node, "/status/conditions");
    let ready = conds
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map_or("Unknown", |c| s(c, "/status"));
    let problems: Vec<String> = conds
        .iter()
        .filter(|c| s(c, "/type") != "Ready" && s(c, "/status") == "True")
        .map(|c| s(c, "/type").to_owned())
        .collect();
    let taints: Vec<String> = arr(node, "/spec/taints")
        .iter()
        .map(|t| format!("{}:{}", s(t, "/key"), s(t, "/effect")))
        .collect();
    json!({
        "name": s(node, "/metadata/name"),
        "ready": ready == "True",
        "ready_status": ready,
        "cordoned": node.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false),
        "pressure": problems,
        "taints": taints,
        "cpu": s(node, "/status/allocatable/cpu"),
        "memory": s(node, "/status/allocatable/memory"),
        "zone": s(node, "/metadata/labels/topology.kubernetes.io~1zone"),
        "instance_type": s(node, "/metadata/labels/node.kubernetes.io~1instance-type"),
    })
}

/// An event: when, what, why.
pub fn event_row(e: &Value) -> Value {
    let last = [
        "/lastTimestamp",
        "/eventTime",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(e, p))
    .find(|t| !t.is_empty())
    .unwrap_or("");
    json!({
        "namespace": s(e, "/metadata/namespace"),
        "type": s(e, "/type"),
        "reason": s(e, "/reason"),
        "object": format!("{}/{}", s(e, "/involvedObject/kind"), s(e, "/involvedObject/name")),
        "message": s(e, "/message"),
        "count": e.get("count").and_then(Value::as_i64).unwrap_or(1),
        "last": last,
    })
}

pub fn event_text(now: DateTime<Utc>, e: &Value) -> String {
    format!(
        "{} ago {} {} {} (x{}): {}",
        age(now, s(e, "/last")),
        s(e, "/type"),
        s(e, "/reason"),
        s(e, "/object"),
        n(e, "/count"),
        s(e, "/message")
    )
}

/// An HPA: bounds, current and desired replicas, whether it is pinned at
/// its maximum.
pub fn hpa_row(h: &Value) -> Value {
    let max = n(h, "/spec/maxReplicas");
    let current = n(h, "/status/currentReplicas");
    let desired = n(h, "/status/desiredReplicas");
    let metrics: Vec<String> = arr(h, "/status/currentMetrics")
        .iter()
        .map(|m| {
            let name = s(m, "/resource/name");
            let util = m.pointer("/resource/current/averageUtilization");
            match util {
                Some(u) => format!("{name} {}%", plain(u)),
                None => format!("{name} {}", s(m, "/resource/current/averageValue")),
            }
        })
        .collect();
    let targets: Vec<String> = arr(h, "/spec/metrics")
        .iter()
        .map(|m| {
            let name = s(m, "/resource/name");
            match m.pointer("/resource/target/averageUtilization") {
                Some(u) => format!("{name} {}%", plain(u)),
                None => format!("{name} {}", s(m, "/resource/target/averageValue")),
            }
        })
        .collect();
    json!({
        "namespace": s(h, "/metadata/namespace"),
        "name": s(h, "/metadata/name"),
        "target": format!("{}/{}", s(h, "/spec/scaleTargetRef/kind"), s(h, "/spec/scaleTargetRef/name")),
        "min": h.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1),
        "max": max,
        "current": current,
        "desired": desired,
        "at_max": max > 0 && (current >= max || desired >= max),
        "metrics": metrics,
        "targets": targets,
    })
}
