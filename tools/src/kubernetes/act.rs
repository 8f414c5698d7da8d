//! The tools that act: each reads the object, applies a JSON merge patch
//! (or an eviction or delete) and says what changed, before → after. With
//! `dry_run` the API server validates the change and stores nothing.

use super::summary::{n, s};
use super::tools::*;
use super::{ResourceKind, Selector, object_name};
use brain::backends::{ToolError, ToolOutput};
use chrono::SecondsFormat;
use serde_json::{Value, json};

fn kind(name: &str) -> Result<ResourceKind, ToolError> {
    ResourceKind::builtin(name).ok_or_else(|| ToolError::Backend(format!("unknown kind {name}")))
}

/// One changed field.
struct Change {
    field: String,
    before: Value,
    after: Value,
}

fn report(
    verb: &str,
    target: &str,
    dry_run: bool,
    changes: &[Change],
    extra: Value,
) -> Result<ToolOutput, ToolError> {
    let mut text = format!(
        "{}{verb} {target}",
        if dry_run {
            "dry run (nothing changed): would have "
        } else {
            ""
        }
    );
    for c in changes {
        text.push_str(&format!(
            "\n{}: {} -> {}",
            c.field,
            super::read::compact(&c.before),
            super::read::compact(&c.after)
        ));
    }
    let changes: Vec<Value> = changes
        .iter()
        .map(|c| json!({"field": c.field, "before": c.before, "after": c.after}))
        .collect();
    Ok(ToolOutput {
        text,
        data: json!({"target": target, "dry_run": dry_run, "changes": changes, "details": extra}),
        truncated: false,
    })
}

/// The containers of a workload's pod template, with `name`'s changed by `f`.
fn edit_container(
    w: &Value,
    container: &str,
    f: impl FnOnce(&mut Value),
) -> Result<(Value, Vec<Value>), ToolError> {
    let mut containers: Vec<Value> = w
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(c) = containers.iter_mut().find(|c| s(c, "/name") == container) else {
        let names: Vec<&str> = w
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| s(c, "/name")).collect())
            .unwrap_or_default();
        return Err(ToolError::InvalidArguments(format!(
            "`container`: no container {container:?}; the pod template has {names:?}"
        )));
    };
    let before = c.clone();
    f(c);
    Ok((before, containers))
}

fn template_containers_patch(containers: Vec<Value>) -> Value {
    json!({"spec": {"template": {"spec": {"containers": containers}}}})
}

impl KubernetesTools {
    pub(super) async fn restart_rollout(&self, a: WorkloadArgs) -> Result<ToolOutput, ToolError> {
        let k = kind(a.kind.name())?;
        let w = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        let key = "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt";
        let before = w.pointer(key).cloned().unwrap_or(Value::Null);
        let at = self.api.now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}});
        let after = self
            .api
            .patch(&k, Some(&a.namespace), &a.name, &patch, a.dry_run)
            .await?;
        report(
            "restarted",
            &object_name(&k.kind, Some(&a.namespace), &a.name),
            a.dry_run,
            &[Change {
                field: "template annotation kubectl.kubernetes.io/restartedAt".into(),
                before,
                after: after.pointer(key).cloned().unwrap_or(Value::Null),
            }],
            Value::Null,
        )
    }

    pub(super) async fn scale(&self, a: ScaleArgs) -> Result<ToolOutput, ToolError> {
        if a.kind == WorkloadKind::DaemonSet {
            return Err(ToolError::InvalidArguments(
                "`kind`: a DaemonSet runs one pod per node and cannot be scaled".into(),
            ));
        }
        let k = kind(a.kind.name())?;
        let w = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        let before = w.pointer("/spec/replicas").cloned().unwrap_or(Value::Null);
        let after = self
            .api
            .patch(
                &k,
                Some(&a.namespace),
                &a.name,
                &json!({"spec": {"replicas": a.replicas}}),
                a.dry_run,
            )
            .await?;
        report(
            "scaled",
            &object_name(&k.kind, Some(&a.namespace), &a.name),
            a.dry_run,
            &[Change {
                field: "replicas".into(),
                before,
                after: after
                    .pointer("/spec/replicas")
                    .cloned()
                    .unwrap_or(Value::Null),
            }],
            Value::Null,
        )
    }

    pub(super) async fn rollback(&self, a: RollbackArgs) -> Result<ToolOutput, ToolError> {
        let k = kind("Deployment")?;
        let d = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        let history = self.api.rollout_history(&a.namespace, &a.name).await?;
        let current = s(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .parse::<i64>()
        .ok()
        .or_else(|| history.last().map(|r| r.revision))
        .unwrap_or(0);
        let target = match a.to_revision {
            Some(r) => history.iter().find(|h| h.revision == r),
            None => history.iter().rev().find(|h| h.revision < current),
        };
        let known: Vec<i64> = history.iter().map(|h| h.revision).collect();
        let Some(target) = target else {
            return Err(ToolError::InvalidArguments(format!(
                "`to_revision`: no {} revision to roll back to; known revisions {known:?}, current {current}",
                a.to_revision
                    .map_or_else(|| "earlier".to_owned(), |r| r.to_string())
            )));
        };
        let before_images = super::summary::images(d.pointer("/spec/template/spec"));
        let patch = match &target.template {
            Some(t) => json!({"spec": {"template": t}}),
            None => {
                // Only the images are known for this revision.
                let mut containers: Vec<Value> = d
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (c, image) in containers.iter_mut().zip(&target.images) {
                    c["image"] = json!(image);
                }
                template_containers_patch(containers)
            }
        };
        let after = self
            .api
            .patch(&k, Some(&a.namespace), &a.name, &patch, a.dry_run)
            .await?;
        report(
            &format!("rolled back to revision {}", target.revision),
            &object_name("Deployment", Some(&a.namespace), &a.name),
            a.dry_run,
            &[Change {
                field: "images".into(),
                before: json!(before_images),
                after: json!(super::summary::images(after.pointer("/spec/template/spec"))),
            }],
            json!({"from_revision": current, "to_revision": target.revision}),
        )
    }

    pub(super) async fn set_resources(&self, a: SetResourcesArgs) -> Result<ToolOutput, ToolError> {
        let wanted = [
            ("limits", "memory", &a.memory_limit),
            ("limits", "cpu", &a.cpu_limit),
            ("requests", "memory", &a.memory_request),
            ("requests", "cpu", &a.cpu_request),
        ];
        if wanted.iter().all(|(_, _, v)| v.is_none()) {
            return Err(ToolError::InvalidArguments(
                "give at least one of `memory_limit`, `cpu_limit`, `memory_request`, `cpu_request`"
                    .into(),
            ));
        }
        let k = kind(a.kind.name())?;
        let w = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        let (before, containers) = edit_container(&w, &a.container, |c| {
            for (section, res, v) in &wanted {
                if let Some(v) = v {
                    c["resources"][*section][*res] = json!(v);
                }
            }
        })?;
        let after = self
            .api
            .patch(
                &k,
                Some(&a.namespace),
                &a.name,
                &template_containers_patch(containers),
                a.dry_run,
            )
            .await?;
        let (_, after_c) = edit_container(&after, &a.container, |_| {})?;
        let changes: Vec<Change> = wanted
            .iter()
            .filter(|(_, _, v)| v.is_some())
            .map(|(section, res, _)| {
                let p = format!("/resources/{section}/{res}");
                Change {
                    field: format!("{} {section}.{res}", a.container),
                    before: before.pointer(&p).cloned().unwrap_or(Value::Null),
                    after: after_c
                        .iter()
                        .find(|c| s(c, "/name") == a.container)
                        .and_then(|c| c.pointer(&p).cloned())
                        .unwrap_or(Value::Null),
                }
            })
            .collect();
        report(
            "set resources of",
            &object_name(&k.kind, Some(&a.namespace), &a.name),
            a.dry_run,
            &changes,
            Value::Null,
        )
    }

    pub(super) async fn set_image(&self, a: SetImageArgs) -> Result<ToolOutput, ToolError> {
        let k = kind(a.kind.name())?;
        let w = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        let (before, containers) =
            edit_container(&w, &a.container, |c| c["image"] = json!(a.image))?;
        let after = self
            .api
            .patch(
                &k,
                Some(&a.namespace),
                &a.name,
                &template_containers_patch(containers),
                a.dry_run,
            )
            .await?;
        let (_, after_c) = edit_container(&after, &a.container, |_| {})?;
        let after_image = after_c
            .iter()
            .find(|c| s(c, "/name") == a.container)
            .map(|c| c["image"].clone())
            .unwrap_or(Value::Null);
        report(
            "set the image of",
            &object_name(&k.kind, Some(&a.namespace), &a.name),
            a.dry_run,
            &[Change {
                field: format!("{} image", a.container),
                before: before["image"].clone(),
                after: after_image,
            }],
            Value::Null,
        )
    }

    async fn cordon_change(&self, name: &str, dry_run: bool) -> Result<Change, ToolError> {
        let k = kind("Node")?;
        let node = self.api.get(&k, None, name).await?;
        let before = node
            .pointer("/spec/unschedulable")
            .cloned()
            .unwrap_or(json!(false));
        let after = self
            .api
            .patch(
                &k,
                None,
                name,
                &json!({"spec": {"unschedulable": true}}),
                dry_run,
            )
            .await?;
        Ok(Change {
            field: "unschedulable".into(),
            before,
            after: after
                .pointer("/spec/unschedulable")
                .cloned()
                .unwrap_or(json!(false)),
        })
    }

    pub(super) async fn cordon(&self, a: NodeActArgs) -> Result<ToolOutput, ToolError> {
        let change = self.cordon_change(&a.name, a.dry_run).await?;
        report(
            "cordoned",
            &object_name("Node", None, &a.name),
            a.dry_run,
            &[change],
            Value::Null,
        )
    }

    pub(super) async fn drain(&self, a: NodeActArgs) -> Result<ToolOutput, ToolError> {
        let change = self.cordon_change(&a.name, a.dry_run).await?;
        let pods = self
            .api
            .list(
                &kind("Pod")?,
                None,
                &Selector::fields(&format!("spec.nodeName={}", a.name)),
            )
            .await?;
        let (mut evicted, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for p in &pods {
            let ns = s(p, "/metadata/namespace");
            let name = s(p, "/metadata/name");
            let id = format!("{ns}/{name}");
            let daemon = p
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|o| s(o, "/kind") == "DaemonSet"));
            let mirror = p
                .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                .is_some();
            if daemon || mirror {
                skipped.push(id);
                continue;
            }
            match self.api.evict(ns, name, a.dry_run).await {
                Ok(()) => evicted.push(id),
                Err(e) => failed.push(format!("{id}: {e}")),
            }
        }
        let mut out = report(
            "drained",
            &object_name("Node", None, &a.name),
            a.dry_run,
            &[change],
            json!({"evicted": evicted, "skipped_daemonset_or_mirror": skipped, "failed": failed}),
        )?;
        out.text.push_str(&format!(
            "\nevicted {} pod(s): {}\nleft (DaemonSet or mirror pods): {}",
            evicted.len(),
            evicted.join(", "),
            if skipped.is_empty() {
                "none".into()
            } else {
                skipped.join(", ")
            }
        ));
        if !failed.is_empty() {
            out.text
                .push_str(&format!("\nfailed to evict: {}", failed.join("; ")));
        }
        Ok(out)
    }

    pub(super) async fn delete_pod(&self, a: DeletePodArgs) -> Result<ToolOutput, ToolError> {
        let k = kind("Pod")?;
        let pod = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        self.api
            .delete(&k, Some(&a.namespace), &a.name, a.dry_run)
            .await?;
        report(
            "deleted",
            &object_name("Pod", Some(&a.namespace), &a.name),
            a.dry_run,
            &[Change {
                field: "pod".into(),
                before: json!(s(&pod, "/status/phase")),
                after: json!(if a.dry_run { "unchanged" } else { "deleted" }),
            }],
            json!({"owner": pod.pointer("/metadata/ownerReferences/0/name")}),
        )
    }

    pub(super) async fn patch_hpa(&self, a: PatchHpaArgs) -> Result<ToolOutput, ToolError> {
        let k = kind("hpa")?;
        let h = self.api.get(&k, Some(&a.namespace), &a.name).await?;
        let min = h
            .pointer("/spec/minReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if i64::from(a.max_replicas) < min {
            return Err(ToolError::InvalidArguments(format!(
                "`max_replicas`: {} is below the autoscaler's minReplicas {min}",
                a.max_replicas
            )));
        }
        let before = n(&h, "/spec/maxReplicas");
        let after = self
            .api
            .patch(
                &k,
                Some(&a.namespace),
                &a.name,
                &json!({"spec": {"maxReplicas": a.max_replicas}}),
                a.dry_run,
            )
            .await?;
        report(
            "patched",
            &object_name("HorizontalPodAutoscaler", Some(&a.namespace), &a.name),
            a.dry_run,
            &[Change {
                field: "maxReplicas".into(),
                before: json!(before),
                after: json!(n(&after, "/spec/maxReplicas")),
            }],
            Value::Null,
        )
    }
}
