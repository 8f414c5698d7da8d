//! Kubernetes: the API as a trait ([`KubernetesApi`]) of a few generic
//! operations on objects in API shape, with a live client over kube-rs
//! ([`LiveKubernetes`]) and a scenario replay ([`WorldKubernetes`]), and the
//! tools an agent calls over either ([`KubernetesTools`]).
//!
//! Objects travel as `serde_json::Value` exactly as the API server sends
//! them, so one set of summaries serves both, custom resources included.

pub mod live;
pub mod selector;
pub mod summary;
pub mod tools;
pub mod world;

mod act;
mod read;

pub use live::LiveKubernetes;
pub use selector::Selector;
pub use tools::KubernetesTools;
pub use world::WorldKubernetes;

use async_trait::async_trait;
use brain::backends::ToolError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// A resource type: what the API server's discovery says about a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceKind {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    /// PascalCase, e.g. `Deployment`.
    pub kind: String,
    /// e.g. `deployments`.
    pub plural: String,
    pub namespaced: bool,
}

impl ResourceKind {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn new(api_version: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceKind {
        let (group, version) = split_api_version(api_version);
        ResourceKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
        }
    }

    /// A built-in kind by name, if `api_version` (when given) is its group's.
    pub fn builtin_in(name: &str, api_version: Option<&str>) -> Option<ResourceKind> {
        ResourceKind::builtin(name)
            .filter(|k| api_version.is_none_or(|a| split_api_version(a).0 == k.group))
    }

    /// The built-in kind called `name` (`Deployment`, `deployments`,
    /// `deploy`...), if it is one the tools know without discovery.
    pub fn builtin(name: &str) -> Option<ResourceKind> {
        let n = name.to_ascii_lowercase();
        BUILTIN.iter().find_map(|(api, kind, plural, ns, short)| {
            let hit = kind.eq_ignore_ascii_case(&n)
                || *plural == n
                || short.split(',').any(|s| !s.is_empty() && s == n);
            hit.then(|| ResourceKind::new(api, kind, plural, *ns))
        })
    }

    /// The resource of an object in API shape: a built-in kind, or a
    /// guess from its `apiVersion` and `kind` (lower-case plural, scope
    /// from `metadata.namespace`) for a kind discovery has not named.
    pub fn of_object(obj: &Value) -> Option<ResourceKind> {
        let kind = obj.get("kind")?.as_str()?;
        let api = obj.get("apiVersion")?.as_str()?;
        if let Some(k) = ResourceKind::builtin(kind).filter(|k| k.api_version() == api) {
            return Some(k);
        }
        let namespaced = obj.pointer("/metadata/namespace").is_some();
        Some(ResourceKind::new(api, kind, &plural_of(kind), namespaced))
    }
}

/// `kind` → its lower-case plural, the API's naming rule for most kinds.
pub fn plural_of(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") {
        format!("{k}es")
    } else if let Some(stem) = k
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// (apiVersion, kind, plural, namespaced, short names).
const BUILTIN: &[(&str, &str, &str, bool, &str)] = &[
    ("v1", "Pod", "pods", true, "po,pod"),
    ("v1", "Node", "nodes", false, "no,node"),
    ("v1", "Namespace", "namespaces", false, "ns"),
    ("v1", "Service", "services", true, "svc"),
    ("v1", "Endpoints", "endpoints", true, "ep"),
    ("v1", "Event", "events", true, "ev"),
    ("v1", "ConfigMap", "configmaps", true, "cm"),
    ("v1", "Secret", "secrets", true, ""),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        "pvc",
    ),
    ("v1", "PersistentVolume", "persistentvolumes", false, "pv"),
    ("v1", "ServiceAccount", "serviceaccounts", true, "sa"),
    ("apps/v1", "Deployment", "deployments", true, "deploy"),
    ("apps/v1", "ReplicaSet", "replicasets", true, "rs"),
    ("apps/v1", "StatefulSet", "statefulsets", true, "sts"),
    ("apps/v1", "DaemonSet", "daemonsets", true, "ds"),
    ("batch/v1", "Job", "jobs", true, ""),
    ("batch/v1", "CronJob", "cronjobs", true, "cj"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        "hpa",
    ),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true, "ing"),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        "netpol",
    ),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "endpointslices",
        true,
        "",
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        "pdb",
    ),
    (
        "storage.k8s.io/v1",
        "StorageClass",
        "storageclasses",
        false,
        "sc",
    ),
];

/// The kinds of metrics-server's `metrics.k8s.io` API.
pub fn pod_metrics_kind() -> ResourceKind {
    ResourceKind::new("metrics.k8s.io/v1beta1", "PodMetrics", "pods", true)
}

pub fn node_metrics_kind() -> ResourceKind {
    ResourceKind::new("metrics.k8s.io/v1beta1", "NodeMetrics", "nodes", false)
}

/// What `pods/{name}/log` is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub container: Option<String>,
    /// The previous (crashed) instance of the container.
    pub previous: bool,
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
}

/// One revision of a Deployment's rollout history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Revision {
    pub revision: i64,
    pub images: Vec<String>,
    pub change_cause: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// The ReplicaSet holding this revision, when known.
    pub replicaset: Option<String>,
    /// Its pod template, when known: what a rollback restores.
    #[serde(skip)]
    pub template: Option<Value>,
}

/// The Kubernetes API, as much of it as the tools use.
#[async_trait]
pub trait KubernetesApi: Send + Sync {
    /// Where answers come from, for messages.
    fn describe(&self) -> String;
    /// The present: the wall clock live, `world.now` in a replay.
    fn now(&self) -> DateTime<Utc>;
    /// The resource type called `kind` (a kind, plural or short name),
    /// in `api_version` when given; discovery for kinds not built in.
    async fn resolve(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<ResourceKind, ToolError>;
    /// One object; `NotFound` naming it when absent.
    async fn get(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ToolError>;
    /// Objects of a kind in a namespace (all namespaces when `None`) that
    /// match the selectors; an empty list when none do.
    async fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ToolError>;
    /// `pods/{name}/log`.
    async fn logs(&self, namespace: &str, pod: &str, query: &LogQuery)
    -> Result<String, ToolError>;
    /// A Deployment's revisions, oldest first.
    async fn rollout_history(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Result<Vec<Revision>, ToolError>;
    /// A JSON merge patch (RFC 7386); returns the object after it. With
    /// `dry_run` the server computes the answer and stores nothing.
    async fn patch(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        dry_run: bool,
    ) -> Result<Value, ToolError>;
    /// `pods/{name}/eviction`.
    async fn evict(&self, namespace: &str, pod: &str, dry_run: bool) -> Result<(), ToolError>;
    async fn delete(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<(), ToolError>;
}

/// `kind ns/name` or `kind name`, for messages.
pub fn object_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{} {ns}/{name}", kind.to_ascii_lowercase()),
        None => format!("{} {name}", kind.to_ascii_lowercase()),
    }
}

/// The revisions held by a Deployment's ReplicaSets (the ones it owns),
/// oldest first: what `kubectl rollout history` shows.
pub fn history_from_replicasets(deployment: &str, replicasets: &[Value]) -> Vec<Revision> {
    let mut out: Vec<Revision> = replicasets
        .iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|owners| {
                    owners.iter().any(|o| {
                        o.get("kind").and_then(Value::as_str) == Some("Deployment")
                            && o.get("name").and_then(Value::as_str) == Some(deployment)
                    })
                })
        })
        .filter_map(|rs| {
            let annotations = rs.pointer("/metadata/annotations");
            let revision = annotations?
                .get("deployment.kubernetes.io/revision")?
                .as_str()?
                .parse()
                .ok()?;
            let mut template = rs.pointer("/spec/template").cloned();
            if let Some(labels) = template
                .as_mut()
                .and_then(|t| t.pointer_mut("/metadata/labels"))
                .and_then(Value::as_object_mut)
            {
                labels.remove("pod-template-hash");
            }
            Some(Revision {
                revision,
                images: summary::images(rs.pointer("/spec/template/spec")),
                change_cause: annotations
                    .and_then(|a| a.get("kubernetes.io/change-cause"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                at: rs
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                replicaset: rs
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                template,
            })
        })
        .collect();
    out.sort_by_key(|r| r.revision);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_by_kind_plural_or_short_name() {
        for name in ["Deployment", "deployments", "deploy"] {
            let k = ResourceKind::builtin(name).unwrap();
            assert_eq!(k.api_version(), "apps/v1");
            assert_eq!(k.plural, "deployments");
        }
        assert!(!ResourceKind::builtin("node").unwrap().namespaced);
        assert_eq!(ResourceKind::builtin("hpa").unwrap().group, "autoscaling");
        assert!(ResourceKind::builtin("Certificate").is_none());
        assert_eq!(plural_of("Certificate"), "certificates");
        assert_eq!(plural_of("Ingress"), "ingresses");
        assert_eq!(plural_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural_of("Gateway"), "gateways");
    }
}
