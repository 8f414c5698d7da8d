//! The tools no other test called, each through the whole replayed registry
//! (`tools::world_registry`) on an example scenario or on a small world
//! written here when the examples lack the objects: what each answers, and
//! for the tools that act, that a dry run changes nothing and a real call
//! changes what the matching read tool shows. The last test holds the line:
//! every tool in the registry is named by some test.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
use common::{call, call_err};

use brain::backends::{ToolError, ToolOutput};
use brain::scenario::{Scenario, World};
use serde_json::{Value, json};
use std::path::Path;
use tools::Registry;

fn example(name: &str) -> World {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../evals/scenarios/examples")
        .join(format!("{name}.yaml"));
    Scenario::load(&path).unwrap().world
}

fn registry(world: &World) -> Registry {
    tools::world_registry(world).unwrap()
}

/// The rows of `list` whose `name` is `name`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

// ---- Kubernetes: StatefulSets and ReplicaSets ---------------------------

/// A StatefulSet one replica short (its third claim is pending), another
/// healthy one elsewhere, and the warning about the first.
const STATEFUL_WORLD: &str = r#"
now: "2026-06-01T12:00:00Z"
kubernetes:
  objects:
    - apiVersion: v1
      kind: Namespace
      metadata: {name: data}
    - apiVersion: apps/v1
      kind: StatefulSet
      metadata: {name: pg, namespace: data, labels: {app: pg}}
      spec:
        replicas: 3
        serviceName: pg
        selector: {matchLabels: {app: pg}}
        updateStrategy: {type: RollingUpdate}
        template:
          metadata: {labels: {app: pg}}
          spec:
            containers:
              - name: postgres
                image: "postgres:16.3"
                resources: {limits: {memory: 4Gi}, requests: {cpu: 500m}}
        volumeClaimTemplates:
          - metadata: {name: pgdata}
            spec:
              accessModes: [ReadWriteOnce]
              storageClassName: gp3
              resources: {requests: {storage: 100Gi}}
      status: {replicas: 3, readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2}
    - apiVersion: apps/v1
      kind: StatefulSet
      metadata: {name: redis, namespace: cache, labels: {app: redis}}
      spec:
        replicas: 1
        selector: {matchLabels: {app: redis}}
        template:
          metadata: {labels: {app: redis}}
          spec:
            containers:
              - {name: redis, image: "redis:7.2"}
      status: {replicas: 1, readyReplicas: 1, updatedReplicas: 1, availableReplicas: 1}
    - apiVersion: v1
      kind: Event
      metadata: {name: pg.18a4c0d7e1b2f389, namespace: data}
      involvedObject: {apiVersion: apps/v1, kind: StatefulSet, name: pg, namespace: data}
      type: Warning
      reason: FailedCreate
      message: "create Pod pg-2 in StatefulSet pg failed: persistentvolumeclaim pgdata-pg-2 is pending"
      count: 4
      lastTimestamp: -10m
"#;

#[tokio::test]
async fn list_statefulsets_shows_each_statefulset_with_ready_and_desired_replicas() {
    let r = registry(&World::from_yaml(STATEFUL_WORLD).unwrap());
    let all = call(&r, "list_statefulsets", json!({})).await;
    let items = &all.data["items"];
    assert_eq!(items.as_array().unwrap().len(), 2, "{}", all.text);
    let pg = named(items, "pg");
    assert_eq!(pg["namespace"], "data");
    assert_eq!(pg["desired"], 3);
    assert_eq!(pg["ready"], 2);
    assert_eq!(pg["healthy"], false, "two of three ready is not healthy");
    assert_eq!(pg["images"], json!(["postgres:16.3"]));
    assert_eq!(named(items, "redis")["healthy"], true);
    assert!(
        all.text.contains("data/pg desired=3 ready=2"),
        "{}",
        all.text
    );

    let data = call(&r, "list_statefulsets", json!({"namespace": "data"})).await;
    assert_eq!(
        data.data["items"].as_array().unwrap().len(),
        1,
        "{}",
        data.text
    );
    let by_label = call(
        &r,
        "list_statefulsets",
        json!({"label_selector": "app=redis"}),
    )
    .await;
    assert_eq!(
        by_label.data["items"][0]["name"], "redis",
        "{}",
        by_label.text
    );
    assert_eq!(by_label.data["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn describe_statefulset_shows_replicas_containers_and_its_warnings() {
    let r = registry(&World::from_yaml(STATEFUL_WORLD).unwrap());
    let d = call(
        &r,
        "describe_statefulset",
        json!({"namespace": "data", "name": "pg"}),
    )
    .await;
    assert_eq!(d.data["workload"]["desired"], 3, "{}", d.text);
    assert_eq!(d.data["workload"]["ready"], 2, "{}", d.text);
    let c = &d.data["containers"][0];
    assert_eq!(c["name"], "postgres", "{}", d.text);
    assert_eq!(c["image"], "postgres:16.3", "{}", d.text);
    assert!(d.text.contains("limits="), "{}", d.text);
    assert!(d.text.contains("4Gi"), "{}", d.text);
    assert_eq!(d.data["events"][0]["reason"], "FailedCreate", "{}", d.text);
    assert!(d.text.contains("pgdata-pg-2 is pending"), "{}", d.text);
    assert_eq!(d.data["strategy"]["type"], "RollingUpdate", "{}", d.text);

    // Another namespace's StatefulSet is not found by this one's name.
    let e = call_err(
        &r,
        "describe_statefulset",
        json!({"namespace": "cache", "name": "pg"}),
    )
    .await;
    assert_eq!(e.kind(), "not_found", "{e}");
}

#[tokio::test]
async fn describe_statefulset_shows_its_volume_claim_templates() {
    let r = registry(&World::from_yaml(STATEFUL_WORLD).unwrap());
    let d = call(
        &r,
        "describe_statefulset",
        json!({"namespace": "data", "name": "pg"}),
    )
    .await;
    assert!(d.text.contains("pgdata"), "{}", d.text);
    assert!(d.text.contains("100Gi"), "{}", d.text);
}

#[tokio::test]
async fn list_replicasets_shows_each_revision_with_owner_replicas_and_images() {
    let r = registry(&example("k8s-bad-deploy-checkout"));
    let out = call(&r, "list_replicasets", json!({"namespace": "prod"})).await;
    let items = &out.data["items"];
    assert_eq!(items.as_array().unwrap().len(), 2, "{}", out.text);
    let new = named(items, "checkout-svc-6f7d9c8b5d");
    assert_eq!(new["revision"], "27");
    assert_eq!(new["owner"], "checkout-svc");
    assert_eq!(new["desired"], 6);
    assert_eq!(new["ready"], 6);
    assert_eq!(
        new["images"],
        json!(["registry.example.com/storefront/checkout-svc:3.4.0"])
    );
    let old = named(items, "checkout-svc-58b4c6d7f9");
    assert_eq!(old["revision"], "26");
    assert_eq!(old["desired"], 0, "the old revision is scaled to zero");
    assert_eq!(
        old["images"],
        json!(["registry.example.com/storefront/checkout-svc:3.3.2"])
    );
    assert!(
        out.text.contains("revision=26") && out.text.contains("owner=checkout-svc"),
        "{}",
        out.text
    );

    let one = call(
        &r,
        "list_replicasets",
        json!({"label_selector": "pod-template-hash=58b4c6d7f9"}),
    )
    .await;
    assert_eq!(
        one.data["items"].as_array().unwrap().len(),
        1,
        "{}",
        one.text
    );
    assert_eq!(one.data["items"][0]["name"], "checkout-svc-58b4c6d7f9");
    let none = call(&r, "list_replicasets", json!({"namespace": "staging"})).await;
    assert_eq!(none.data["items"], json!([]), "{}", none.text);
}

// ---- Kubernetes: the tools that act --------------------------------------

#[tokio::test]
async fn set_image_changes_the_container_image_and_a_dry_run_does_not() {
    let r = registry(&example("k8s-oomkilled-payments"));
    let target = json!({"namespace": "prod", "name": "payments-api"});
    let image = |d: &ToolOutput| d.data["containers"][0]["image"].clone();
    let old = "registry.example.com/payments-api:2.8.1";
    let new = "registry.example.com/payments-api:2.8.2";
    let args =
        json!({"namespace": "prod", "name": "payments-api", "container": "api", "image": new});

    let mut dry_args = args.clone();
    dry_args["dry_run"] = json!(true);
    let dry = call(&r, "set_image", dry_args).await;
    assert_eq!(dry.data["dry_run"], true);
    assert_eq!(dry.data["changes"][0]["before"], old, "{}", dry.text);
    assert_eq!(dry.data["changes"][0]["after"], new, "{}", dry.text);
    let d = call(&r, "describe_deployment", target.clone()).await;
    assert_eq!(image(&d), old, "a dry run changes nothing");

    let done = call(&r, "set_image", args).await;
    assert_eq!(
        done.data["target"], "deployment prod/payments-api",
        "{}",
        done.text
    );
    assert_eq!(done.data["dry_run"], false);
    let d = call(&r, "describe_deployment", target).await;
    assert_eq!(image(&d), new, "{}", d.text);

    // A container the template lacks is refused, naming the ones it has.
    let e = call_err(
        &r,
        "set_image",
        json!({"namespace": "prod", "name": "payments-api", "container": "sidecar", "image": new}),
    )
    .await;
    assert!(
        matches!(e, ToolError::InvalidArguments(ref m) if m.contains("sidecar") && m.contains("api")),
        "{e}"
    );
    assert_eq!(
        r.target(
            "set_image",
            &json!({"namespace": "prod", "name": "payments-api"})
        ),
        Some("deployment/prod/payments-api".to_owned())
    );
}

#[tokio::test]
async fn cordon_node_marks_the_node_unschedulable_and_a_dry_run_does_not() {
    let r = registry(&example("k8s-oomkilled-payments"));
    let node = "ip-10-0-3-17.ec2.internal";
    let cordoned = |list: &ToolOutput| named(&list.data["nodes"], node)["cordoned"].clone();
    let pods_before = call(&r, "describe_node", json!({"name": node})).await.data["pods"].clone();
    assert!(!pods_before.as_array().unwrap().is_empty());

    let dry = call(&r, "cordon_node", json!({"name": node, "dry_run": true})).await;
    assert_eq!(dry.data["changes"][0]["before"], false, "{}", dry.text);
    assert_eq!(dry.data["changes"][0]["after"], true, "{}", dry.text);
    assert_eq!(cordoned(&call(&r, "list_nodes", json!({})).await), false);

    let done = call(&r, "cordon_node", json!({"name": node})).await;
    assert!(
        done.text.starts_with(&format!("cordoned node {node}")),
        "{}",
        done.text
    );
    let nodes = call(&r, "list_nodes", json!({})).await;
    assert_eq!(cordoned(&nodes), true, "{}", nodes.text);
    assert!(
        nodes.text.contains(&format!("{node} ready=True CORDONED")),
        "{}",
        nodes.text
    );
    // The other node is untouched, and a cordoned node counts as unhealthy.
    assert_eq!(
        named(&nodes.data["nodes"], "ip-10-0-4-52.ec2.internal")["cordoned"],
        false
    );
    let unhealthy = call(&r, "list_nodes", json!({"only_unhealthy": true})).await;
    assert_eq!(
        unhealthy.data["nodes"].as_array().unwrap().len(),
        1,
        "{}",
        unhealthy.text
    );
    let d = call(&r, "describe_node", json!({"name": node})).await;
    assert_eq!(d.data["node"]["cordoned"], true, "{}", d.text);
    assert_eq!(d.data["pods"], pods_before, "running pods stay");

    let e = call_err(
        &r,
        "cordon_node",
        json!({"name": "ip-10-9-9-9.ec2.internal"}),
    )
    .await;
    assert_eq!(e.kind(), "not_found", "{e}");
}

#[tokio::test]
async fn delete_pod_removes_the_pod_and_a_dry_run_keeps_it() {
    let r = registry(&example("k8s-oomkilled-payments"));
    let pod = json!({"namespace": "prod", "name": "payments-api-6c9f7b8d4-x2k9p"});
    let listed = |out: &ToolOutput| {
        out.data["pods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "payments-api-6c9f7b8d4-x2k9p")
    };

    let mut dry_args = pod.clone();
    dry_args["dry_run"] = json!(true);
    let dry = call(&r, "delete_pod", dry_args).await;
    assert_eq!(dry.data["dry_run"], true, "{}", dry.text);
    call(&r, "describe_pod", pod.clone()).await;
    assert!(listed(
        &call(&r, "list_pods", json!({"namespace": "prod"})).await
    ));

    let done = call(&r, "delete_pod", pod.clone()).await;
    assert_eq!(
        done.data["details"]["owner"], "payments-api-6c9f7b8d4",
        "{}",
        done.text
    );
    assert_eq!(done.data["changes"][0]["after"], "deleted", "{}", done.text);
    let e = call_err(&r, "describe_pod", pod.clone()).await;
    assert_eq!(e.kind(), "not_found", "{e}");
    let pods = call(&r, "list_pods", json!({"namespace": "prod"})).await;
    assert!(!listed(&pods), "{}", pods.text);
    assert_eq!(
        pods.data["pods"].as_array().unwrap().len(),
        2,
        "the other two stay"
    );
    let e = call_err(&r, "delete_pod", pod).await;
    assert_eq!(e.kind(), "not_found", "deleting twice: {e}");
}

#[tokio::test]
async fn patch_hpa_changes_max_replicas_and_a_dry_run_does_not() {
    let r = registry(&example("aws-rds-connections-orders"));
    let hpa = json!({"namespace": "orders", "name": "orders-api"});
    let row = |d: &ToolOutput| d.data["hpa"].clone();
    let before = row(&call(&r, "describe_hpa", hpa.clone()).await);
    assert_eq!(before["max"], 12);
    assert_eq!(before["at_max"], true);

    let dry = call(
        &r,
        "patch_hpa",
        json!({"namespace": "orders", "name": "orders-api", "max_replicas": 20, "dry_run": true}),
    )
    .await;
    assert_eq!(dry.data["changes"][0]["before"], 12, "{}", dry.text);
    assert_eq!(dry.data["changes"][0]["after"], 20, "{}", dry.text);
    assert!(
        dry.text.starts_with("dry run (nothing changed)"),
        "{}",
        dry.text
    );
    assert_eq!(row(&call(&r, "describe_hpa", hpa.clone()).await), before);

    call(
        &r,
        "patch_hpa",
        json!({"namespace": "orders", "name": "orders-api", "max_replicas": 20}),
    )
    .await;
    let after = call(&r, "describe_hpa", hpa).await;
    assert_eq!(row(&after)["max"], 20, "{}", after.text);
    assert_eq!(row(&after)["at_max"], false, "12 replicas are below 20 now");
    let listed = call(&r, "list_hpas", json!({"namespace": "orders"})).await;
    assert!(listed.text.contains("max=20"), "{}", listed.text);

    // Below minReplicas (4) is refused, naming the bound.
    let e = call_err(
        &r,
        "patch_hpa",
        json!({"namespace": "orders", "name": "orders-api", "max_replicas": 3}),
    )
    .await;
    assert!(
        matches!(e, ToolError::InvalidArguments(ref m) if m.contains("minReplicas 4")),
        "{e}"
    );
    assert_eq!(
        r.target(
            "patch_hpa",
            &json!({"namespace": "orders", "name": "orders-api"})
        ),
        Some("horizontalpodautoscaler/orders/orders-api".to_owned())
    );
}

// ---- Prometheus --------------------------------------------------------

#[tokio::test]
async fn query_prometheus_range_returns_the_planted_samples_at_their_times() {
    let world = example("k8s-oomkilled-payments");
    let now = world.now.timestamp();
    let r = registry(&world);
    let query = r#"kube_pod_container_status_restarts_total{pod="payments-api-6c9f7b8d4-x2k9p"}"#;
    let out = call(
        &r,
        "query_prometheus_range",
        json!({"query": query, "start": "-60m", "end": "0s", "step": "5m"}),
    )
    .await;
    let result = out.data["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{}", out.text);
    assert_eq!(result[0]["metric"]["container"], "api");
    let samples: Vec<(i64, String)> = result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_f64().unwrap() as i64,
                s[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Planted at -60m every 5m: 0, 0, 0, 0, 1, ..., 9.
    let planted = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let expected: Vec<(i64, String)> = planted
        .iter()
        .enumerate()
        .map(|(i, v)| (now - 3600 + 300 * i as i64, v.to_string()))
        .collect();
    assert_eq!(samples, expected, "{}", out.text);
    assert!(
        out.text.contains("min 0 max 9 last 9 (13 points"),
        "{}",
        out.text
    );

    // A window inside the series returns only its samples.
    let part = call(
        &r,
        "query_prometheus_range",
        json!({"query": query, "start": "-20m", "end": "-10m", "step": "5m"}),
    )
    .await;
    let values: Vec<&str> = part.data["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[1].as_str().unwrap())
        .collect();
    assert_eq!(values, ["5", "6", "7"], "{}", part.text);

    // Bad PromQL is a readable error, not a crash.
    let e = call_err(&r, "query_prometheus_range", json!({"query": "sum(("})).await;
    assert_eq!(e.kind(), "invalid_arguments", "{e}");
}

#[tokio::test]
async fn find_series_returns_the_label_sets_of_the_matching_series() {
    let r = registry(&example("k8s-bad-deploy-checkout"));
    let out = call(
        &r,
        "find_series",
        json!({"selectors": [r#"{__name__=~"service:http_server_requests.*", service="checkout-svc"}"#]}),
    )
    .await;
    let mut names: Vec<&str> = out
        .data
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["__name__"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "service:http_server_requests:error_ratio_rate5m",
            "service:http_server_requests:rate5m",
            "service:http_server_requests_seconds:p99",
        ],
        "{}",
        out.text
    );
    for labels in out.data.as_array().unwrap() {
        assert_eq!(
            labels,
            &json!({"__name__": labels["__name__"], "namespace": "prod", "service": "checkout-svc"})
        );
    }

    // Two selectors: the union; a selector nothing matches: none.
    let two = call(
        &r,
        "find_series",
        json!({"selectors": ["kube_pod_container_status_restarts_total", r#"{service="payments-gateway"}"#]}),
    )
    .await;
    assert_eq!(two.data.as_array().unwrap().len(), 2, "{}", two.text);
    let none = call(
        &r,
        "find_series",
        json!({"selectors": [r#"up{job="nope"}"#]}),
    )
    .await;
    assert_eq!(none.data, json!([]), "{}", none.text);
    let e = call_err(&r, "find_series", json!({"selectors": []})).await;
    assert_eq!(e.kind(), "invalid_arguments", "{e}");
}

#[tokio::test]
async fn list_label_values_lists_each_value_once_and_honours_the_selector() {
    let r = registry(&example("k8s-bad-deploy-checkout"));
    let services = call(&r, "list_label_values", json!({"label": "service"})).await;
    assert_eq!(
        services.data,
        json!(["checkout-svc", "payments-gateway"]),
        "{}",
        services.text
    );
    assert!(
        services.text.starts_with("2 values of service"),
        "{}",
        services.text
    );
    let pods = call(&r, "list_label_values", json!({"label": "pod"})).await;
    assert_eq!(
        pods.data,
        json!(["checkout-svc-6f7d9c8b5d-4xk2m"]),
        "{}",
        pods.text
    );
    let only = call(
        &r,
        "list_label_values",
        json!({"label": "service", "selector": r#"{__name__=~".*upstream.*"}"#}),
    )
    .await;
    assert_eq!(only.data, json!(["payments-gateway"]), "{}", only.text);
    let none = call(&r, "list_label_values", json!({"label": "no_such_label"})).await;
    assert_eq!(none.data, json!([]), "{}", none.text);
}

/// Alerts and targets as a real Prometheus derives them: from the `ALERTS`
/// and `up` series, current ones only.
const ALERTS_WORLD: &str = r#"
now: "2026-06-01T12:00:00Z"
prometheus:
  series:
    - labels: {__name__: ALERTS, alertname: HighErrorRate, alertstate: firing, severity: critical, service: checkout}
      start: -10m
      step: 1m
      values: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    - labels: {__name__: ALERTS, alertname: DiskFilling, alertstate: pending, severity: warning}
      start: -3m
      step: 1m
      values: [1, 1, 1, 1]
    - labels: {__name__: ALERTS, alertname: ResolvedLongAgo, alertstate: firing, severity: warning}
      start: -60m
      step: 1m
      values: [1, 1, 1]
    - labels: {__name__: up, job: api, instance: "10.0.0.1:8080"}
      start: -2m
      step: 1m
      values: [1, 1, 1]
    - labels: {__name__: up, job: api, instance: "10.0.0.2:8080"}
      start: -2m
      step: 1m
      values: [1, 0, 0]
"#;

#[tokio::test]
async fn the_replay_derives_current_alerts_and_target_health_from_the_recorded_series() {
    let r = registry(&World::from_yaml(ALERTS_WORLD).unwrap());
    let names = |out: &ToolOutput| -> Vec<String> {
        let mut v: Vec<String> = out
            .data
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let alerts = call(&r, "list_prometheus_alerts", json!({})).await;
    assert_eq!(
        names(&alerts),
        ["DiskFilling", "HighErrorRate"],
        "an alert whose series ended an hour ago is not active: {}",
        alerts.text
    );
    assert!(
        alerts.text.contains("firing HighErrorRate"),
        "{}",
        alerts.text
    );
    let firing = call(&r, "list_prometheus_alerts", json!({"state": "firing"})).await;
    assert_eq!(names(&firing), ["HighErrorRate"], "{}", firing.text);
    assert_eq!(firing.data[0]["labels"]["severity"], "critical");

    let targets = call(&r, "list_scrape_targets", json!({})).await;
    let health: Vec<(&str, &str)> = targets
        .data
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["labels"]["instance"].as_str().unwrap(),
                t["health"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        health,
        [("10.0.0.2:8080", "down"), ("10.0.0.1:8080", "up")],
        "unhealthy first: {}",
        targets.text
    );
    let down = call(&r, "list_scrape_targets", json!({"health": "down"})).await;
    assert_eq!(down.data.as_array().unwrap().len(), 1, "{}", down.text);

    // A recorded world holds no rule files: an empty list, not an error.
    let rules = call(&r, "list_alert_rules", json!({})).await;
    assert_eq!(rules.data, json!([]), "{}", rules.text);
    assert!(rules.text.starts_with("0 rules"), "{}", rules.text);
}

// ---- The change feed -----------------------------------------------------

#[tokio::test]
async fn find_changes_near_lists_the_changes_in_the_window_closest_first() {
    let r = registry(&example("aws-rds-connections-orders"));
    let describe = |out: &ToolOutput| -> Vec<(String, i64)> {
        out.data["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["change"]["kind"].as_str().unwrap().to_owned(),
                    c["seconds_from_time"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    // Changes at -36m (feature flag), -5h (HPA config), -2d (deploy).
    let near = call(
        &r,
        "find_changes_near",
        json!({"time": "-30m", "window": "1h"}),
    )
    .await;
    assert_eq!(
        describe(&near),
        [("feature_flag".to_owned(), -360)],
        "{}",
        near.text
    );
    assert!(near.text.contains("6m before"), "{}", near.text);

    let wide = call(
        &r,
        "find_changes_near",
        json!({"time": "-30m", "window": "6h"}),
    )
    .await;
    assert_eq!(
        describe(&wide),
        [
            ("feature_flag".to_owned(), -360),
            ("config".to_owned(), -16200)
        ],
        "{}",
        wide.text
    );
    let orders = call(
        &r,
        "find_changes_near",
        json!({"time": "-30m", "window": "6h", "service": "orders-api"}),
    )
    .await;
    assert_eq!(
        describe(&orders),
        [("config".to_owned(), -16200)],
        "{}",
        orders.text
    );
    let quiet = call(
        &r,
        "find_changes_near",
        json!({"time": "-20h", "window": "1h"}),
    )
    .await;
    assert_eq!(quiet.data["changes"], json!([]), "{}", quiet.text);
    let e = call_err(&r, "find_changes_near", json!({"time": "yesterday"})).await;
    assert_eq!(e.kind(), "invalid_arguments", "{e}");
}

#[tokio::test]
async fn list_recent_changes_lists_newest_first_and_filters_by_kind_and_service() {
    let r = registry(&example("aws-rds-connections-orders"));
    let kinds = |out: &ToolOutput| -> Vec<String> {
        out.data["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let day = call(&r, "list_recent_changes", json!({})).await;
    assert_eq!(kinds(&day), ["feature_flag", "config"], "{}", day.text);
    let all = call(&r, "list_recent_changes", json!({"since": "-3d"})).await;
    assert_eq!(
        kinds(&all),
        ["feature_flag", "config", "deploy"],
        "{}",
        all.text
    );
    let deploys = call(
        &r,
        "list_recent_changes",
        json!({"since": "-3d", "kinds": ["deploy"]}),
    )
    .await;
    assert_eq!(
        deploys.data["changes"][0]["target"], "deployment/orders/orders-api",
        "{}",
        deploys.text
    );
    assert_eq!(deploys.data["total"], 1);
    let one = call(
        &r,
        "list_recent_changes",
        json!({"since": "-3d", "limit": 1}),
    )
    .await;
    assert_eq!(kinds(&one), ["feature_flag"], "{}", one.text);
    assert_eq!(one.data["total"], 3, "the total counts what was left out");
}

// ---- AWS -------------------------------------------------------------------

/// What the RDS example lacks: instances with status checks, a group with
/// scaling activities, Lambda functions, S3 request metrics, CloudTrail.
const AWS_WORLD: &str = r#"
now: "2026-06-01T12:00:00Z"
aws:
  region: us-east-1
  ec2:
    instances:
      - {InstanceId: i-0aaa0000000000001, InstanceType: m5.large, State: {Name: running, Code: 16}, LaunchTime: -3d}
      - {InstanceId: i-0bbb0000000000002, InstanceType: m5.large, State: {Name: running, Code: 16}, LaunchTime: -3d}
    instance_status:
      - InstanceId: i-0aaa0000000000001
        InstanceState: {Name: running, Code: 16}
        SystemStatus: {Status: ok}
        InstanceStatus: {Status: ok}
      - InstanceId: i-0bbb0000000000002
        InstanceState: {Name: running, Code: 16}
        SystemStatus: {Status: impaired, Details: [{Name: reachability, Status: failed}]}
        InstanceStatus: {Status: ok}
        Events: [{Code: system-reboot, Description: "scheduled reboot for host maintenance"}]
  autoscaling:
    groups:
      - {AutoScalingGroupName: web-asg, MinSize: 1, MaxSize: 6, DesiredCapacity: 2, Instances: []}
    activities:
      - {ActivityId: a1, AutoScalingGroupName: web-asg, Description: "Launching a new EC2 instance: i-0aaa0000000000001", Cause: "capacity from 1 to 2", StartTime: -3h, StatusCode: Successful}
      - {ActivityId: a2, AutoScalingGroupName: web-asg, Description: "Terminating EC2 instance: i-0ccc0000000000003", Cause: "health check failed", StartTime: -1h, StatusCode: Successful}
      - {ActivityId: a3, AutoScalingGroupName: web-asg, Description: "Launching a new EC2 instance: i-0bbb0000000000002", Cause: "replacing unhealthy instance", StartTime: -2h, StatusCode: Successful}
      - {ActivityId: b1, AutoScalingGroupName: other-asg, Description: "Launching", Cause: "other", StartTime: -30m, StatusCode: Successful}
  lambda:
    functions:
      - {FunctionName: checkout-handler, Runtime: python3.12, MemorySize: 512, Timeout: 30, State: Active, LastModified: -2d}
      - {FunctionName: image-resizer, Runtime: nodejs20.x, MemorySize: 1024, Timeout: 60, State: Active, LastModified: -9d}
  s3:
    buckets:
      - {Name: segments-bucket, CreationDate: -400d}
      - {Name: other-bucket, CreationDate: -100d}
  cloudwatch:
    metrics:
      - {namespace: AWS/S3, name: AllRequests, dimensions: {BucketName: segments-bucket, FilterId: EntireBucket}, start: -20m, step: 5m, values: [100, 100, 100, 100]}
      - {namespace: AWS/S3, name: 4xxErrors, dimensions: {BucketName: segments-bucket, FilterId: EntireBucket}, start: -20m, step: 5m, values: [1, 1, 1, 1]}
      - {namespace: AWS/S3, name: 5xxErrors, dimensions: {BucketName: segments-bucket, FilterId: EntireBucket}, start: -20m, step: 5m, values: [0, 0, 10, 30]}
      - {namespace: AWS/S3, name: AllRequests, dimensions: {BucketName: other-bucket, FilterId: EntireBucket}, start: -20m, step: 5m, values: [50, 50, 50, 50]}
      - {namespace: AWS/S3, name: 5xxErrors, dimensions: {BucketName: other-bucket, FilterId: EntireBucket}, start: -20m, step: 5m, values: [50, 50, 50, 50]}
  cloudtrail:
    events:
      - {EventId: e1, EventName: ModifyDBInstance, EventSource: rds.amazonaws.com, Username: alice, EventTime: -3h, Resources: [{ResourceType: "AWS::RDS::DBInstance", ResourceName: orders-db}]}
      - {EventId: e2, EventName: RebootInstances, EventSource: ec2.amazonaws.com, Username: bob, EventTime: -1h, Resources: [{ResourceType: "AWS::EC2::Instance", ResourceName: i-0bbb0000000000002}]}
      - {EventId: e3, EventName: UpdateAutoScalingGroup, EventSource: autoscaling.amazonaws.com, Username: carol, EventTime: -2h, Resources: [{ResourceType: "AWS::AutoScaling::AutoScalingGroup", ResourceName: web-asg}]}
      - {EventId: e4, EventName: DeleteBucket, EventSource: s3.amazonaws.com, Username: dave, EventTime: -3d, Resources: [{ResourceType: "AWS::S3::Bucket", ResourceName: old-bucket}]}
"#;

fn aws_world() -> Registry {
    registry(&World::from_yaml(AWS_WORLD).unwrap())
}

fn field<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn get_ec2_status_checks_shows_each_instance_and_only_impaired_keeps_the_failing_one() {
    let r = aws_world();
    let all = call(&r, "get_ec2_status_checks", json!({})).await;
    assert_eq!(
        field(&all.data["statuses"], "InstanceId"),
        ["i-0aaa0000000000001", "i-0bbb0000000000002"],
        "{}",
        all.text
    );
    let bad = call(&r, "get_ec2_status_checks", json!({"only_impaired": true})).await;
    assert_eq!(
        field(&bad.data["statuses"], "InstanceId"),
        ["i-0bbb0000000000002"],
        "{}",
        bad.text
    );
    assert!(bad.text.contains("impaired"), "{}", bad.text);
    assert!(
        bad.text.contains("scheduled reboot for host maintenance"),
        "{}",
        bad.text
    );
    let one = call(
        &r,
        "get_ec2_status_checks",
        json!({"instance_ids": ["i-0aaa0000000000001"]}),
    )
    .await;
    assert_eq!(
        one.data["statuses"].as_array().unwrap().len(),
        1,
        "{}",
        one.text
    );
}

#[tokio::test]
async fn list_autoscaling_activities_lists_the_groups_activities_newest_first() {
    let r = aws_world();
    let out = call(
        &r,
        "list_autoscaling_activities",
        json!({"name": "web-asg"}),
    )
    .await;
    assert_eq!(
        field(&out.data["activities"], "ActivityId"),
        ["a2", "a3", "a1"],
        "{}",
        out.text
    );
    assert!(out.text.contains("health check failed"), "{}", out.text);
    let two = call(
        &r,
        "list_autoscaling_activities",
        json!({"name": "web-asg", "limit": 2}),
    )
    .await;
    assert_eq!(field(&two.data["activities"], "ActivityId"), ["a2", "a3"]);

    // Setting the desired capacity is recorded as the newest activity.
    call(
        &r,
        "set_asg_desired_capacity",
        json!({"name": "web-asg", "desired": 3}),
    )
    .await;
    let after = call(
        &r,
        "list_autoscaling_activities",
        json!({"name": "web-asg"}),
    )
    .await;
    assert!(
        after.data["activities"][0]["Description"]
            .as_str()
            .unwrap()
            .contains("Setting desired capacity of web-asg to 3"),
        "{}",
        after.text
    );
}

#[tokio::test]
async fn list_lambda_functions_lists_the_functions_and_filters_by_name() {
    let r = aws_world();
    let all = call(&r, "list_lambda_functions", json!({})).await;
    assert_eq!(
        field(&all.data["functions"], "FunctionName"),
        ["checkout-handler", "image-resizer"],
        "{}",
        all.text
    );
    assert!(
        all.text.contains("checkout-handler python3.12 512 MB 30 s"),
        "{}",
        all.text
    );
    let one = call(
        &r,
        "list_lambda_functions",
        json!({"name_contains": "resize"}),
    )
    .await;
    assert_eq!(
        field(&one.data["functions"], "FunctionName"),
        ["image-resizer"],
        "{}",
        one.text
    );
}

#[tokio::test]
async fn get_s3_request_metrics_sums_the_buckets_requests_and_error_rates() {
    let r = aws_world();
    let out = call(
        &r,
        "get_s3_request_metrics",
        json!({"bucket": "segments-bucket"}),
    )
    .await;
    assert_eq!(out.data["AllRequests"]["total"], 400.0, "{}", out.text);
    assert_eq!(out.data["5xxErrors"]["total"], 40.0, "{}", out.text);
    assert_eq!(out.data["5xxErrors"]["peak"], 30.0, "{}", out.text);
    assert_eq!(out.data["rate_5xx"], 0.1, "{}", out.text);
    assert_eq!(out.data["rate_4xx"], 0.01, "{}", out.text);
    assert!(
        out.text
            .starts_with("segments-bucket: 4xx 1.00% 5xx 10.00% of requests"),
        "{}",
        out.text
    );
    // A window before the samples sees none.
    let before = call(
        &r,
        "get_s3_request_metrics",
        json!({"bucket": "segments-bucket", "start": "-2h", "end": "-1h"}),
    )
    .await;
    assert_eq!(before.data["AllRequests"]["total"], 0.0, "{}", before.text);
}

#[tokio::test]
async fn lookup_cloudtrail_events_lists_the_windows_events_newest_first_and_by_resource() {
    let r = aws_world();
    let day = call(&r, "lookup_cloudtrail_events", json!({})).await;
    assert_eq!(
        field(&day.data["events"], "EventName"),
        [
            "RebootInstances",
            "UpdateAutoScalingGroup",
            "ModifyDBInstance"
        ],
        "the last 24 hours, newest first: {}",
        day.text
    );
    assert!(
        day.text
            .contains("ec2.amazonaws.com RebootInstances by bob on i-0bbb0000000000002"),
        "{}",
        day.text
    );
    let db = call(
        &r,
        "lookup_cloudtrail_events",
        json!({"resource_name": "orders-db"}),
    )
    .await;
    assert_eq!(
        field(&db.data["events"], "Username"),
        ["alice"],
        "{}",
        db.text
    );
    let week = call(
        &r,
        "lookup_cloudtrail_events",
        json!({"start": "-7d", "limit": 2}),
    )
    .await;
    assert_eq!(
        field(&week.data["events"], "EventId"),
        ["e2", "e3"],
        "{}",
        week.text
    );
    let old = call(
        &r,
        "lookup_cloudtrail_events",
        json!({"start": "-7d", "resource_name": "old-bucket"}),
    )
    .await;
    assert_eq!(
        field(&old.data["events"], "EventName"),
        ["DeleteBucket"],
        "{}",
        old.text
    );
}

#[tokio::test]
async fn reboot_ec2_instance_requests_the_reboot_and_names_an_unknown_instance() {
    let r = aws_world();
    let out = call(
        &r,
        "reboot_ec2_instance",
        json!({"instance_id": "i-0bbb0000000000002"}),
    )
    .await;
    assert_eq!(out.data["dry_run"], false, "{}", out.text);
    assert_eq!(out.data["target"], "aws/ec2/i-0bbb0000000000002");
    assert_eq!(out.data["state_before"], "running");
    assert!(
        out.text
            .contains("reboot of i-0bbb0000000000002 requested (was running)"),
        "{}",
        out.text
    );
    let e = call_err(
        &r,
        "reboot_ec2_instance",
        json!({"instance_id": "i-0fff0000000000009"}),
    )
    .await;
    assert!(
        matches!(e, ToolError::NotFound { ref what } if what.contains("i-0fff0000000000009")),
        "{e}"
    );
}

// ---- The line held -----------------------------------------------------------

/// Every tool of the replayed registry is named, quoted, by some test under
/// `tools/tests`: a new tool comes with a test of what it answers.
#[test]
fn every_tool_in_the_registry_is_named_by_some_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut sources = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let r = registry(&example("aws-rds-connections-orders"));
    let untested: Vec<&str> = r
        .specs()
        .map(|s| s.name.as_str())
        .filter(|name| !sources.contains(&format!("\"{name}\"")))
        .collect();
    assert!(r.len() >= 70, "{}", r.len());
    assert!(untested.is_empty(), "tools no test calls: {untested:?}");
}
