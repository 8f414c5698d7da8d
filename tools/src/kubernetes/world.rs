//! The replay: answers from a scenario's `world.kubernetes` as the API
//! server would, with offsets in timestamp fields resolved against
//! `world.now`. Mutations apply to an in-memory copy, so a later read sees
//! them; a dry run changes nothing.

use super::{
    KubernetesApi, LogQuery, ResourceKind, Revision, Selector, history_from_replicasets,
    object_name, plural_of, split_api_version,
};
use async_trait::async_trait;
use brain::backends::ToolError;
use brain::scenario::{World, resolve_time};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A scenario's Kubernetes, in memory.
pub struct WorldKubernetes {
    now: DateTime<Utc>,
    objects: Mutex<Vec<Value>>,
    logs: BTreeMap<String, String>,
    history: BTreeMap<String, Vec<Revision>>,
}

impl WorldKubernetes {
    pub fn new(world: &World) -> WorldKubernetes {
        let k = &world.kubernetes;
        let logs = k
            .get("logs")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(key, v)| Some((key.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let history = k
            .get("rollout_history")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(key, v)| (key.clone(), recorded_history(v, world.now)))
                    .collect()
            })
            .unwrap_or_default();
        WorldKubernetes {
            now: world.now,
            objects: Mutex::new(resolved_objects(world)),
            logs,
            history,
        }
    }

    fn objects(&self) -> Result<std::sync::MutexGuard<'_, Vec<Value>>, ToolError> {
        self.objects
            .lock()
            .map_err(|_| ToolError::Backend("reading the replayed cluster: state poisoned".into()))
    }
}

/// `world.kubernetes.objects` with offsets in timestamp fields resolved:
/// what a cluster holding them would serve.
pub fn resolved_objects(world: &World) -> Vec<Value> {
    let mut objects: Vec<Value> = world
        .kubernetes
        .get("objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for o in &mut objects {
        resolve_times(o, world.now);
    }
    objects
}

/// Keys whose string values are times in API objects.
fn is_time_key(key: &str) -> bool {
    key.ends_with("Timestamp")
        || key.ends_with("Time")
        || key.ends_with("At")
        || matches!(key, "at" | "notAfter" | "notBefore" | "time")
}

/// Replace offsets like `-90m` in time-valued fields by RFC 3339 times.
pub fn resolve_times(v: &mut Value, now: DateTime<Utc>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if is_time_key(k) => {
                        if DateTime::parse_from_rfc3339(s).is_err()
                            && let Ok(t) = resolve_time(s, now)
                        {
                            *s = t.to_rfc3339_opts(SecondsFormat::Secs, true);
                        }
                    }
                    _ => resolve_times(child, now),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| resolve_times(i, now)),
        _ => {}
    }
}

fn recorded_history(v: &Value, now: DateTime<Utc>) -> Vec<Revision> {
    let mut out: Vec<Revision> = v
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            Some(Revision {
                revision: r.get("revision")?.as_i64()?,
                images: r
                    .get("images")
                    .and_then(Value::as_array)
                    .map(|i| {
                        i.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                change_cause: r
                    .get("change_cause")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                at: r
                    .get("at")
                    .and_then(Value::as_str)
                    .and_then(|t| resolve_time(t, now).ok()),
                replicaset: None,
                template: None,
            })
        })
        .collect();
    out.sort_by_key(|r| r.revision);
    out
}

/// RFC 7386 JSON merge patch, as the API server applies
/// `application/merge-patch+json`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn meta<'a>(o: &'a Value, field: &str) -> Option<&'a str> {
    o.get("metadata")?.get(field)?.as_str()
}

fn is_kind(o: &Value, kind: &ResourceKind) -> bool {
    let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    o.get("kind").and_then(Value::as_str) == Some(kind.kind.as_str())
        && split_api_version(api).0 == kind.group
}

fn is_at(o: &Value, namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| meta(o, "namespace") == Some(ns))
}

impl WorldKubernetes {
    fn find(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ToolError> {
        self.objects()?
            .iter()
            .find(|o| is_kind(o, kind) && is_at(o, namespace) && meta(o, "name") == Some(name))
            .cloned()
            .ok_or_else(|| ToolError::NotFound {
                what: object_name(&kind.kind, namespace, name),
            })
    }
}

#[async_trait]
impl KubernetesApi for WorldKubernetes {
    fn describe(&self) -> String {
        "the replayed cluster".into()
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    async fn resolve(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<ResourceKind, ToolError> {
        if let Some(k) = ResourceKind::builtin_in(kind, api_version) {
            return Ok(k);
        }
        let lower = kind.to_ascii_lowercase();
        self.objects()?
            .iter()
            .filter(|o| {
                api_version.is_none_or(|a| o.get("apiVersion").and_then(Value::as_str) == Some(a))
            })
            .find_map(|o| {
                let k = o.get("kind")?.as_str()?;
                (k.eq_ignore_ascii_case(&lower) || plural_of(k) == lower)
                    .then(|| ResourceKind::of_object(o))
                    .flatten()
            })
            .ok_or_else(|| ToolError::NotFound {
                what: format!(
                    "resource type {kind}{}",
                    api_version.map(|a| format!(" in {a}")).unwrap_or_default()
                ),
            })
    }

    async fn get(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ToolError> {
        self.find(kind, namespace.filter(|_| kind.namespaced), name)
    }

    async fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ToolError> {
        let namespace = namespace.filter(|_| kind.namespaced);
        let mut out: Vec<Value> = self
            .objects()?
            .iter()
            .filter(|o| is_kind(o, kind) && is_at(o, namespace) && selector.matches(o))
            .cloned()
            .collect();
        // etcd's key order: namespace, then name.
        out.sort_by(|a, b| {
            (meta(a, "namespace"), meta(a, "name")).cmp(&(meta(b, "namespace"), meta(b, "name")))
        });
        Ok(out)
    }

    async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        query: &LogQuery,
    ) -> Result<String, ToolError> {
        let kind = ResourceKind::builtin("Pod").ok_or_else(|| ToolError::Backend("pod".into()))?;
        let obj = self.find(&kind, Some(namespace), pod)?;
        let container = match &query.container {
            Some(c) => c.clone(),
            None => obj
                .pointer("/spec/containers/0/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let mut key = format!("{namespace}/{pod}/{container}");
        if query.previous {
            key.push_str("#previous");
        }
        let Some(text) = self.logs.get(&key) else {
            return if query.previous {
                Err(ToolError::NotFound {
                    what: format!(
                        "previous terminated container {container:?} in pod {namespace}/{pod}"
                    ),
                })
            } else {
                Ok(String::new())
            };
        };
        let mut lines: Vec<&str> = text.lines().collect();
        if let Some(secs) = query.since_seconds {
            let from = self.now - chrono::Duration::seconds(secs);
            lines.retain(|l| {
                l.split_whitespace()
                    .next()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| t >= from)
            });
        }
        if let Some(n) = query.tail_lines {
            let n = usize::try_from(n.max(0)).unwrap_or(0);
            lines = lines.split_off(lines.len().saturating_sub(n));
        }
        let mut out = lines.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }

    async fn rollout_history(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Result<Vec<Revision>, ToolError> {
        let dk = ResourceKind::builtin("Deployment")
            .ok_or_else(|| ToolError::Backend("deployment".into()))?;
        let rsk = ResourceKind::builtin("ReplicaSet")
            .ok_or_else(|| ToolError::Backend("replicaset".into()))?;
        self.find(&dk, Some(namespace), deployment)?;
        let replicasets = self
            .list(&rsk, Some(namespace), &Selector::everything())
            .await?;
        let from_rs = history_from_replicasets(deployment, &replicasets);
        let Some(recorded) = self.history.get(&format!("{namespace}/{deployment}")) else {
            return Ok(from_rs);
        };
        // The recorded history is the scenario's word; the ReplicaSets add
        // the templates a rollback needs.
        Ok(recorded
            .iter()
            .map(|r| {
                let rs = from_rs.iter().find(|x| x.revision == r.revision);
                Revision {
                    replicaset: rs.and_then(|x| x.replicaset.clone()),
                    template: rs.and_then(|x| x.template.clone()),
                    ..r.clone()
                }
            })
            .collect())
    }

    async fn patch(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let namespace = namespace.filter(|_| kind.namespaced);
        let mut objects = self.objects()?;
        let obj = objects
            .iter_mut()
            .find(|o| is_kind(o, kind) && is_at(o, namespace) && meta(o, "name") == Some(name))
            .ok_or_else(|| ToolError::NotFound {
                what: object_name(&kind.kind, namespace, name),
            })?;
        let mut after = obj.clone();
        merge_patch(&mut after, patch);
        if !dry_run {
            *obj = after.clone();
        }
        Ok(after)
    }

    async fn evict(&self, namespace: &str, pod: &str, dry_run: bool) -> Result<(), ToolError> {
        let kind = ResourceKind::builtin("Pod").ok_or_else(|| ToolError::Backend("pod".into()))?;
        self.delete(&kind, Some(namespace), pod, dry_run).await
    }

    async fn delete(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<(), ToolError> {
        let namespace = namespace.filter(|_| kind.namespaced);
        let mut objects = self.objects()?;
        let at = objects
            .iter()
            .position(|o| is_kind(o, kind) && is_at(o, namespace) && meta(o, "name") == Some(name))
            .ok_or_else(|| ToolError::NotFound {
                what: object_name(&kind.kind, namespace, name),
            })?;
        if !dry_run {
            objects.remove(at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "x": 1});
        merge_patch(
            &mut t,
            &json!({"a": {"b": 5, "c": null}, "l": [3], "y": "n"}),
        );
        assert_eq!(t, json!({"a": {"b": 5}, "l": [3], "x": 1, "y": "n"}));
    }

    #[test]
    fn offsets_resolve_in_time_fields_only() {
        let now = "2026-03-14T10:30:00Z".parse().unwrap();
        let mut o = json!({"lastTimestamp": "-1m", "status": {"allocatable": {"cpu": "3920m"},
            "lastState": {"terminated": {"startedAt": "-4m", "finishedAt": "2026-03-14T10:00:00Z"}}}});
        resolve_times(&mut o, now);
        assert_eq!(o["lastTimestamp"], "2026-03-14T10:29:00Z");
        assert_eq!(o["status"]["allocatable"]["cpu"], "3920m");
        assert_eq!(
            o["status"]["lastState"]["terminated"]["startedAt"],
            "2026-03-14T10:26:00Z"
        );
        assert_eq!(
            o["status"]["lastState"]["terminated"]["finishedAt"],
            "2026-03-14T10:00:00Z"
        );
    }
}
