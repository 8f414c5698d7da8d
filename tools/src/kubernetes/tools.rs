//! The Kubernetes tools: typed arguments, specs and dispatch. The read
//! tools live in `read.rs`, the ones that act (each one action of the
//! vocabulary, each with a dry run) in `act.rs`.

use super::KubernetesApi;
use crate::typed;
use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use brain::vocabulary::{Action, Risk};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The Kubernetes tools over one API (live or replay).
pub struct KubernetesTools {
    pub(super) api: Arc<dyn KubernetesApi>,
}

impl KubernetesTools {
    pub fn new(api: Arc<dyn KubernetesApi>) -> KubernetesTools {
        KubernetesTools { api }
    }
}

/// Arguments of the list tools over one kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListArgs {
    /// Namespace to look in; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=checkout-svc` or `tier in (web,api)`.
    #[serde(default)]
    pub label_selector: Option<String>,
}

/// Arguments of `list_pods`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListPodsArgs {
    /// Namespace to look in; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=payments-api`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only pods on this node.
    #[serde(default)]
    pub node: Option<String>,
    /// Only pods that are not healthy: not Running/Succeeded, a container
    /// not ready, waiting (CrashLoopBackOff, ImagePullBackOff) or terminating.
    #[serde(default)]
    pub only_unhealthy: bool,
}

/// A namespaced object by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NamedArgs {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// A node by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeArgs {
    /// The node's name, e.g. `ip-10-0-3-17.ec2.internal`.
    pub name: String,
}

/// Arguments of `list_nodes`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListNodesArgs {
    /// Label selector, e.g. `topology.kubernetes.io/zone=us-east-1a`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only nodes that are not Ready, under pressure or cordoned.
    #[serde(default)]
    pub only_unhealthy: bool,
}

/// Arguments of `get_pod_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsArgs {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container; omit for the pod's first container.
    #[serde(default)]
    pub container: Option<String>,
    /// Read the previous (crashed or restarted) instance of the container:
    /// where the cause of a crash loop usually is.
    #[serde(default)]
    pub previous: bool,
    /// Only the last this many lines. Default 200.
    #[serde(default)]
    #[schemars(range(min = 1, max = 5000))]
    pub tail: Option<u32>,
    /// Only lines newer than this, e.g. `15m` or `2h`.
    #[serde(default)]
    pub since: Option<String>,
    /// Only lines containing this text (case-insensitive), e.g. `error`.
    #[serde(default)]
    pub grep: Option<String>,
}

/// Arguments of `list_events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsArgs {
    /// Namespace to look in; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only events about objects of this kind, e.g. `Pod`, `Node`, `Deployment`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only events about the object of this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only `Warning` events.
    #[serde(default)]
    pub only_warnings: bool,
    /// Only events seen within this long, e.g. `1h`. Default: all.
    #[serde(default)]
    pub since: Option<String>,
}

/// Arguments of `get_resource`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourceArgs {
    /// The kind, plural or short name: `Deployment`, `configmaps`, `Certificate`, `ingress`.
    pub kind: String,
    /// The API group/version for custom resources, e.g. `cert-manager.io/v1`;
    /// omit to let discovery find it.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The namespace, for namespaced kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

/// Arguments of `list_resources`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListResourcesArgs {
    /// The kind, plural or short name: `ConfigMap`, `ingresses`, `Certificate`.
    pub kind: String,
    /// The API group/version for custom resources, e.g. `cert-manager.io/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Namespace to look in; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=web`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Field selector, e.g. `metadata.name=web-tls` or `status.phase=Failed`.
    #[serde(default)]
    pub field_selector: Option<String>,
}

/// Arguments of `get_resource_usage`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageArgs {
    /// Namespace of the pods; omit for all namespaces. Ignored for nodes.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `pods` (default) or `nodes`.
    #[serde(default)]
    pub of: Option<String>,
}

/// Kinds a workload tool acts on.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq)]
pub(super) enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// A workload to act on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkloadArgs {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `scale_workload`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleArgs {
    /// `Deployment` (default) or `StatefulSet`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// The new number of replicas.
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: u32,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `rollback_deployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackArgs {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
    /// The revision to go back to (see `get_rollout_history`); omit for the
    /// one before the current.
    #[serde(default)]
    pub to_revision: Option<i64>,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `set_resources`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetResourcesArgs {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// The container to change.
    pub container: String,
    /// New memory limit, e.g. `1Gi`.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// New CPU limit, e.g. `1500m`.
    #[serde(default)]
    pub cpu_limit: Option<String>,
    /// New memory request, e.g. `512Mi`.
    #[serde(default)]
    pub memory_request: Option<String>,
    /// New CPU request, e.g. `250m`.
    #[serde(default)]
    pub cpu_request: Option<String>,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `set_image`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetImageArgs {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// The container to change.
    pub container: String,
    /// The new image, e.g. `registry.example.com/app:1.2.3`.
    pub image: String,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// A node to act on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeActArgs {
    /// The node's name.
    pub name: String,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `delete_pod`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeletePodArgs {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name; its controller replaces it.
    pub name: String,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `patch_hpa`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchHpaArgs {
    /// The HorizontalPodAutoscaler's namespace.
    pub namespace: String,
    /// The HorizontalPodAutoscaler's name.
    pub name: String,
    /// The new maximum number of replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: u32,
    /// Ask the API server to validate the change without applying it.
    #[serde(default)]
    pub dry_run: bool,
}

const READ_TIMEOUT: Duration = Duration::from_secs(20);
const ACT_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

fn read<A: JsonSchema>(name: &str, description: &str) -> ToolSpec {
    typed::spec::<A>(name, description, Risk::Read, READ_TIMEOUT)
}

fn act<A: JsonSchema>(name: &str, description: &str, action: Action) -> ToolSpec {
    typed::action_spec::<A>(name, description, action, ACT_TIMEOUT)
}

#[async_trait]
impl ToolBackend for KubernetesTools {
    fn name(&self) -> &str {
        "kubernetes"
    }

    /// The component a tool that acts would change, named as the spec names
    /// components, for the policy and the approval record.
    fn target(&self, tool: &str, args: &serde_json::Value) -> Option<String> {
        let arg = |k: &str| args.get(k).and_then(serde_json::Value::as_str);
        let (namespace, name) = (arg("namespace"), arg("name")?);
        match tool {
            "cordon_node" | "drain_node" => Some(format!("node/{name}")),
            "delete_pod" => Some(format!("pod/{}/{name}", namespace?)),
            "patch_hpa" => Some(format!("horizontalpodautoscaler/{}/{name}", namespace?)),
            "restart_rollout"
            | "scale_workload"
            | "rollback_deployment"
            | "set_resources"
            | "set_image" => {
                let kind = arg("kind").unwrap_or("Deployment").to_lowercase();
                Some(format!("{kind}/{}/{name}", namespace?))
            }
            _ => None,
        }
    }

    fn tools(&self) -> Vec<ToolSpec> {
        let mut drain = act::<NodeActArgs>(
            "drain_node",
            "Drain a node: cordon it, then evict every pod not owned by a DaemonSet (their controllers reschedule them elsewhere). Use for a failing node.",
            Action::DrainNode,
        );
        drain.timeout = DRAIN_TIMEOUT;
        vec![
            read::<ListPodsArgs>(
                "list_pods",
                "List pods, one line each: status (CrashLoopBackOff, OOMKilled, Pending...), ready containers, restarts, node, age. Use only_unhealthy to find the broken ones.",
            ),
            read::<NamedArgs>(
                "describe_pod",
                "Describe a pod like `kubectl describe pod`, compactly: phase, node, each container's image, state and last state with reason and exit code (OOMKilled = 137), restarts, requests/limits, probes, conditions and the pod's recent events.",
            ),
            read::<LogsArgs>(
                "get_pod_logs",
                "Read a container's logs, newest last. Set previous=true to read the crashed instance of a restarting container. Filter with tail, since and grep.",
            ),
            read::<ListArgs>(
                "list_deployments",
                "List Deployments: desired/ready/updated/available replicas, revision and images.",
            ),
            read::<NamedArgs>(
                "describe_deployment",
                "Describe a Deployment: replicas desired/ready/updated/available, conditions, strategy, containers with images, resources and probes, and its recent events.",
            ),
            read::<NamedArgs>(
                "get_rollout_history",
                "A Deployment's rollout history, oldest first: revision, images, change cause and when. Use it to spot a bad deploy and to choose a rollback revision.",
            ),
            read::<ListArgs>(
                "list_replicasets",
                "List ReplicaSets with their revision, owner, replicas and images.",
            ),
            read::<ListArgs>(
                "list_statefulsets",
                "List StatefulSets: desired/ready/updated replicas and images.",
            ),
            read::<NamedArgs>(
                "describe_statefulset",
                "Describe a StatefulSet: replicas, conditions, containers with images and resources, volume claim templates and recent events.",
            ),
            read::<ListNodesArgs>(
                "list_nodes",
                "List nodes: Ready, pressure conditions, cordoned, taints, allocatable CPU and memory, zone.",
            ),
            read::<NodeArgs>(
                "describe_node",
                "Describe a node: conditions with reasons, taints, allocatable, the pods on it and its recent events.",
            ),
            read::<ListArgs>(
                "list_services",
                "List Services with type, ports, selector and how many selected pods are ready.",
            ),
            read::<ListArgs>(
                "list_hpas",
                "List HorizontalPodAutoscalers: min/max, current/desired replicas, metrics against targets, and whether each is at its maximum.",
            ),
            read::<NamedArgs>(
                "describe_hpa",
                "Describe a HorizontalPodAutoscaler: bounds, current/desired replicas, metrics against targets, conditions (ScalingLimited means pinned at a bound).",
            ),
            read::<ListArgs>(
                "list_pvcs",
                "List PersistentVolumeClaims: phase, capacity, storage class, volume.",
            ),
            read::<EventsArgs>(
                "list_events",
                "List events, newest first: type, reason, object, count, message. Filter by object kind and name, warnings only, or recency.",
            ),
            read::<ResourceArgs>(
                "get_resource",
                "Get any object, including custom resources such as a cert-manager Certificate, as the API returns it (managed fields left out).",
            ),
            read::<ListResourcesArgs>(
                "list_resources",
                "List objects of any kind, including custom resources (e.g. Certificate), with their status conditions.",
            ),
            read::<UsageArgs>(
                "get_resource_usage",
                "Current CPU and memory usage of pods or nodes from metrics-server (metrics.k8s.io), when it is installed.",
            ),
            act::<WorkloadArgs>(
                "restart_rollout",
                "Restart a workload's pods with a rolling update (like `kubectl rollout restart`).",
                Action::RolloutRestart,
            ),
            act::<ScaleArgs>(
                "scale_workload",
                "Set a Deployment's or StatefulSet's replica count. Scaling down needs approval.",
                Action::Scale,
            ),
            act::<RollbackArgs>(
                "rollback_deployment",
                "Roll a Deployment back to an earlier revision's pod template (like `kubectl rollout undo`).",
                Action::Rollback,
            ),
            act::<SetResourcesArgs>(
                "set_resources",
                "Change a container's CPU/memory limits or requests in a workload's pod template (rolls the pods).",
                Action::SetResources,
            ),
            act::<SetImageArgs>(
                "set_image",
                "Change a container's image in a workload's pod template (rolls the pods).",
                Action::SetImage,
            ),
            act::<NodeActArgs>(
                "cordon_node",
                "Mark a node unschedulable; running pods stay.",
                Action::CordonNode,
            ),
            drain,
            act::<DeletePodArgs>(
                "delete_pod",
                "Delete one pod so its controller replaces it.",
                Action::DeletePod,
            ),
            act::<PatchHpaArgs>(
                "patch_hpa",
                "Change a HorizontalPodAutoscaler's maximum replicas.",
                Action::PatchHpa,
            ),
        ]
    }

    async fn call(&self, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        match tool {
            "list_pods" => self.list_pods(typed::parse(args)?).await,
            "describe_pod" => self.describe_pod(typed::parse(args)?).await,
            "get_pod_logs" => self.pod_logs(typed::parse(args)?).await,
            "list_deployments" => self.list_workloads("Deployment", typed::parse(args)?).await,
            "describe_deployment" => {
                self.describe_workload("Deployment", typed::parse(args)?)
                    .await
            }
            "get_rollout_history" => self.rollout_history(typed::parse(args)?).await,
            "list_replicasets" => self.list_replicasets(typed::parse(args)?).await,
            "list_statefulsets" => {
                self.list_workloads("StatefulSet", typed::parse(args)?)
                    .await
            }
            "describe_statefulset" => {
                self.describe_workload("StatefulSet", typed::parse(args)?)
                    .await
            }
            "list_nodes" => self.list_nodes(typed::parse(args)?).await,
            "describe_node" => self.describe_node(typed::parse(args)?).await,
            "list_services" => self.list_services(typed::parse(args)?).await,
            "list_hpas" => self.list_hpas(typed::parse(args)?).await,
            "describe_hpa" => self.describe_hpa(typed::parse(args)?).await,
            "list_pvcs" => self.list_pvcs(typed::parse(args)?).await,
            "list_events" => self.list_events(typed::parse(args)?).await,
            "get_resource" => self.get_resource(typed::parse(args)?).await,
            "list_resources" => self.list_resources(typed::parse(args)?).await,
            "get_resource_usage" => self.resource_usage(typed::parse(args)?).await,
            "restart_rollout" => self.restart_rollout(typed::parse(args)?).await,
            "scale_workload" => self.scale(typed::parse(args)?).await,
            "rollback_deployment" => self.rollback(typed::parse(args)?).await,
            "set_resources" => self.set_resources(typed::parse(args)?).await,
            "set_image" => self.set_image(typed::parse(args)?).await,
            "cordon_node" => self.cordon(typed::parse(args)?).await,
            "drain_node" => self.drain(typed::parse(args)?).await,
            "delete_pod" => self.delete_pod(typed::parse(args)?).await,
            "patch_hpa" => self.patch_hpa(typed::parse(args)?).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}
