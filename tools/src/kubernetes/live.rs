//! The live cluster over kube-rs: generic kinds through `DynamicObject`
//! and `ApiResource` (custom resources found by discovery), logs and
//! evictions through the typed `Pod` API, every call under a timeout.

use super::{
    KubernetesApi, LogQuery, ResourceKind, Revision, Selector, history_from_replicasets,
    object_name, split_api_version,
};
use async_trait::async_trait;
use brain::backends::ToolError;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, EvictParams, ListParams, LogParams, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::{Client, Config};
use serde_json::Value;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// A cluster reached through kube-rs.
#[derive(Clone)]
pub struct LiveKubernetes {
    client: Client,
    server: String,
    timeout: Duration,
}

impl std::fmt::Debug for LiveKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKubernetes")
            .field("server", &self.server)
            .finish()
    }
}

/// Where the cluster's address and credentials come from.
#[derive(Debug, Clone)]
pub enum KubeSource<'a> {
    /// A kubeconfig file (its current context).
    Kubeconfig(&'a Path),
    /// `$KUBECONFIG`, `~/.kube/config`, or the in-cluster service account.
    Infer,
    /// An API server URL without credentials (emulators, `kubectl proxy`).
    Url(&'a str),
}

impl LiveKubernetes {
    /// Connect as `source` says; each API call is cut at `timeout`.
    pub async fn connect(
        source: KubeSource<'_>,
        timeout: Duration,
    ) -> Result<LiveKubernetes, ToolError> {
        let bad = |what: String| ToolError::Backend(what);
        let mut config = match source {
            KubeSource::Kubeconfig(path) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| bad(format!("reading the kubeconfig {}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| bad(format!("loading the kubeconfig {}: {e}", path.display())))?
            }
            KubeSource::Infer => Config::infer()
                .await
                .map_err(|e| bad(format!("finding a kubeconfig or in-cluster config: {e}")))?,
            KubeSource::Url(url) => Config::new(
                url.parse()
                    .map_err(|e| bad(format!("parsing the API server URL {url}: {e}")))?,
            ),
        };
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .map_err(|e| bad(format!("building a client for {server}: {e}")))?;
        Ok(LiveKubernetes {
            client,
            server,
            timeout,
        })
    }

    /// Run `call` under the timeout, mapping errors for `op` on `what`.
    async fn run<T>(
        &self,
        op: &str,
        what: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ToolError> {
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(ToolError::Timeout(self.timeout)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_error(op, what, e)),
        }
    }

    fn map_error(&self, op: &str, what: impl FnOnce() -> String, e: kube::Error) -> ToolError {
        match e {
            kube::Error::Api(s) if s.code == 404 => ToolError::NotFound { what: what() },
            kube::Error::Api(s) if s.code == 429 || s.code == 503 => {
                ToolError::Unavailable(format!("{op} at {}: {} {}", self.server, s.code, s.message))
            }
            kube::Error::Api(s) => ToolError::Backend(format!(
                "{op} at {}: {} {}: {}",
                self.server, s.code, s.reason, s.message
            )),
            other => {
                // The chain carries the useful part ("connection refused").
                let mut text = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                ToolError::Backend(format!(
                    "{op} at {}: cannot reach the API server: {text}",
                    self.server
                ))
            }
        }
    }

    fn api(&self, kind: &ResourceKind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = ApiResource {
            group: kind.group.clone(),
            version: kind.version.clone(),
            api_version: kind.api_version(),
            kind: kind.kind.clone(),
            plural: kind.plural.clone(),
        };
        match namespace.filter(|_| kind.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }
}

fn to_value(o: DynamicObject) -> Result<Value, ToolError> {
    serde_json::to_value(o).map_err(|e| ToolError::Backend(format!("encoding an object: {e}")))
}

#[async_trait]
impl KubernetesApi for LiveKubernetes {
    fn describe(&self) -> String {
        format!("the Kubernetes API at {}", self.server)
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn resolve(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<ResourceKind, ToolError> {
        if let Some(k) = ResourceKind::builtin_in(kind, api_version) {
            return Ok(k);
        }
        let mut discovery = Discovery::new(self.client.clone());
        if let Some(a) = api_version {
            discovery = discovery.filter(&[split_api_version(a).0]);
        }
        let what = || {
            format!(
                "resource type {kind}{}",
                api_version.map(|a| format!(" in {a}")).unwrap_or_default()
            )
        };
        let not_found = || ToolError::NotFound { what: what() };
        let discovery = self
            .run("discovering API resources", what, discovery.run())
            .await?;
        let lower = kind.to_ascii_lowercase();
        discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| {
                (ar.kind.eq_ignore_ascii_case(&lower) || ar.plural == lower)
                    && api_version.is_none_or(|a| ar.api_version == a)
            })
            .map(|(ar, caps)| ResourceKind {
                group: ar.group,
                version: ar.version,
                kind: ar.kind,
                plural: ar.plural,
                namespaced: caps.scope == Scope::Namespaced,
            })
            .ok_or_else(not_found)
    }

    async fn get(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ToolError> {
        let ns = namespace.filter(|_| kind.namespaced);
        let o = self
            .run(
                &format!("getting {}", kind.plural),
                || object_name(&kind.kind, ns, name),
                self.api(kind, ns).get(name),
            )
            .await?;
        to_value(o)
    }

    async fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ToolError> {
        let lp = ListParams {
            label_selector: selector.labels.clone(),
            field_selector: selector.fields.clone(),
            ..ListParams::default()
        };
        let list = self
            .run(
                &format!("listing {}", kind.plural),
                || format!("resource type {}", kind.plural),
                self.api(kind, namespace).list(&lp),
            )
            .await?;
        list.items
            .into_iter()
            .map(to_value)
            .filter(|o| o.as_ref().map_or(true, |o| selector.matches(o)))
            .collect()
    }

    async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        query: &LogQuery,
    ) -> Result<String, ToolError> {
        let lp = LogParams {
            container: query.container.clone(),
            previous: query.previous,
            tail_lines: query.tail_lines,
            since_seconds: query.since_seconds,
            ..LogParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let container = query.container.clone().unwrap_or_default();
        match tokio::time::timeout(self.timeout, api.logs(pod, &lp)).await {
            Err(_) => Err(ToolError::Timeout(self.timeout)),
            Ok(Ok(text)) => Ok(text),
            // The API answers 400 for a container with no previous instance.
            Ok(Err(kube::Error::Api(s))) if s.code == 400 && query.previous => {
                Err(ToolError::NotFound {
                    what: format!(
                        "previous terminated container {container:?} in pod {namespace}/{pod}"
                    ),
                })
            }
            Ok(Err(e)) => Err(self.map_error(
                "reading pod logs",
                || object_name("Pod", Some(namespace), pod),
                e,
            )),
        }
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
        let d = self.get(&dk, Some(namespace), deployment).await?;
        let labels: Vec<String> = d
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        let selector = Selector::new(Some(&labels.join(",")), None)
            .map_err(|e| ToolError::Backend(format!("reading the deployment's selector: {e}")))?;
        let replicasets = self.list(&rsk, Some(namespace), &selector).await?;
        Ok(history_from_replicasets(deployment, &replicasets))
    }

    async fn patch(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        dry_run: bool,
    ) -> Result<Value, ToolError> {
        let ns = namespace.filter(|_| kind.namespaced);
        let pp = PatchParams {
            dry_run,
            field_manager: Some("cerebro".into()),
            ..PatchParams::default()
        };
        let o = self
            .run(
                &format!("patching {}", kind.plural),
                || object_name(&kind.kind, ns, name),
                self.api(kind, ns).patch(name, &pp, &Patch::Merge(patch)),
            )
            .await?;
        to_value(o)
    }

    async fn evict(&self, namespace: &str, pod: &str, dry_run: bool) -> Result<(), ToolError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let ep = EvictParams {
            delete_options: None,
            post_options: PostParams {
                dry_run,
                field_manager: None,
            },
        };
        self.run(
            "evicting a pod",
            || object_name("Pod", Some(namespace), pod),
            api.evict(pod, &ep),
        )
        .await
        .map(|_| ())
    }

    async fn delete(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<(), ToolError> {
        let ns = namespace.filter(|_| kind.namespaced);
        let dp = DeleteParams {
            dry_run,
            ..DeleteParams::default()
        };
        self.run(
            &format!("deleting {}", kind.plural),
            || object_name(&kind.kind, ns, name),
            self.api(kind, ns).delete(name, &dp),
        )
        .await
        .map(|_| ())
    }
}
