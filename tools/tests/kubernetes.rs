//! The Kubernetes tools against the replay and against kube-rs talking to
//! kmock (a stateful Kubernetes API emulator, started on loopback by each
//! test from `CEREBRO_KMOCK_PYTHON`), seeded with the same objects: both
//! must give the same `data`.

mod common;
use common::{call, call_err};

use brain::scenario::{Scenario, World};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::Registry;
use tools::kubernetes::live::KubeSource;
use tools::kubernetes::world::resolved_objects;
use tools::kubernetes::{KubernetesTools, LiveKubernetes, ResourceKind, WorldKubernetes};

const SCENARIOS: [&str; 3] = [
    "k8s-oomkilled-payments",
    "k8s-bad-deploy-checkout",
    "aws-rds-connections-orders",
];

fn world(name: &str) -> World {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../evals/scenarios/examples")
        .join(format!("{name}.yaml"));
    Scenario::load(&path).expect("scenario loads").world
}

fn world_registry(w: &World) -> Registry {
    let mut r = Registry::new();
    r.add(Arc::new(KubernetesTools::new(Arc::new(
        WorldKubernetes::new(w),
    ))))
    .expect("registry");
    r
}

/// kmock on a free loopback port, seeded from a world; killed on drop.
struct Kmock {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Kmock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The objects of `w` as a cluster would hold them, plus a ReplicaSet for
/// each recorded revision that has none (kmock has no controllers, and a
/// real cluster keeps history in ReplicaSets).
fn seed_objects(w: &World) -> Vec<Value> {
    let mut objects = resolved_objects(w);
    let Some(history) = w
        .kubernetes
        .get("rollout_history")
        .and_then(Value::as_object)
    else {
        return objects;
    };
    for (key, revisions) in history {
        let (ns, name) = key.split_once('/').expect("ns/name");
        let labels = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
            .map(|d| d["spec"]["selector"]["matchLabels"].clone())
            .unwrap_or(json!({}));
        for r in revisions.as_array().expect("list") {
            let rev = r["revision"].as_i64().expect("revision");
            let mut at = json!({"creationTimestamp": r["at"].clone()});
            tools::kubernetes::world::resolve_times(&mut at, w.now);
            let cause = r["change_cause"].clone();
            let existing = objects.iter_mut().find(|o| {
                o["kind"] == "ReplicaSet"
                    && o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        == json!(rev.to_string())
                    && o["metadata"]["ownerReferences"][0]["name"] == name
            });
            if let Some(rs) = existing {
                rs["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause;
                continue;
            }
            let containers: Vec<Value> = r["images"]
                .as_array()
                .expect("images")
                .iter()
                .enumerate()
                .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
                .collect();
            objects.push(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{name}-rev{rev}"), "namespace": ns, "labels": labels,
                    "creationTimestamp": at["creationTimestamp"],
                    "annotations": {"deployment.kubernetes.io/revision": rev.to_string(), "kubernetes.io/change-cause": cause},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "controller": true}]},
                "spec": {"replicas": 0, "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}},
            }));
        }
    }
    objects
}

fn kmock_python() -> String {
    common::peers::python("kmock", "CEREBRO_KMOCK_PYTHON")
}

fn start_kmock(w: &World) -> Kmock {
    let python = kmock_python();
    let objects = seed_objects(w);
    let mut resources: Vec<ResourceKind> = Vec::new();
    for k in [
        "Pod",
        "Node",
        "Event",
        "Service",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "hpa",
        "pvc",
        "Namespace",
    ] {
        resources.push(ResourceKind::builtin(k).expect("builtin"));
    }
    let mut seeded = Vec::new();
    for o in &objects {
        let k = ResourceKind::of_object(o).expect("kind");
        if !resources.contains(&k) {
            resources.push(k.clone());
        }
        seeded.push(
            json!({"group": k.group, "version": k.version, "plural": k.plural,
            "namespace": o["metadata"]["namespace"], "object": o}),
        );
    }
    let seed = json!({
        "resources": resources.iter().map(|k| json!({"group": k.group, "version": k.version,
            "plural": k.plural, "kind": k.kind, "namespaced": k.namespaced})).collect::<Vec<_>>(),
        "objects": seeded,
        "logs": w.kubernetes.get("logs").cloned().unwrap_or(json!({})),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).expect("seed");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kmock_server.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&seed_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting kmock with {python}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("kmock prints its port within 30 s");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("kmock did not print its port: {line:?}"));
    // Keep stdin open: the server exits when it closes.
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.flush();
    }
    Kmock {
        child,
        port,
        _dir: dir,
    }
}

async fn live_registry(port: u16) -> Registry {
    let live = LiveKubernetes::connect(
        KubeSource::Url(&format!("http://127.0.0.1:{port}")),
        Duration::from_secs(5),
    )
    .await
    .expect("client");
    let mut r = Registry::new();
    r.add(Arc::new(KubernetesTools::new(Arc::new(live))))
        .expect("registry");
    r
}

/// The calls both backends must answer alike, per scenario.
fn table(name: &str) -> Vec<(&'static str, Value)> {
    let mut calls = vec![
        ("list_pods", json!({})),
        ("list_pods", json!({"only_unhealthy": true})),
        ("list_deployments", json!({})),
        ("list_nodes", json!({})),
        ("list_events", json!({})),
        ("list_events", json!({"only_warnings": true, "kind": "Pod"})),
        ("list_services", json!({})),
        ("list_hpas", json!({})),
        ("list_pvcs", json!({})),
        // kmock 0.8 cannot list `/api/v1/namespaces` (it reads it as a namespace path).
        ("list_resources", json!({"kind": "nodes"})),
        ("get_resource_usage", json!({})),
    ];
    match name {
        "k8s-oomkilled-payments" => calls.extend([
            ("describe_pod", json!({"namespace": "prod", "name": "payments-api-6c9f7b8d4-x2k9p"})),
            ("get_pod_logs", json!({"namespace": "prod", "pod": "payments-api-6c9f7b8d4-x2k9p", "previous": true})),
            ("get_pod_logs", json!({"namespace": "prod", "pod": "payments-api-6c9f7b8d4-x2k9p", "container": "api", "tail": 1})),
            ("describe_deployment", json!({"namespace": "prod", "name": "payments-api"})),
            ("describe_node", json!({"name": "ip-10-0-3-17.ec2.internal"})),
            ("get_rollout_history", json!({"namespace": "prod", "name": "payments-api"})),
            ("list_pods", json!({"label_selector": "app=payments-api", "node": "ip-10-0-3-17.ec2.internal"})),
        ]),
        "k8s-bad-deploy-checkout" => calls.extend([
            ("describe_deployment", json!({"namespace": "prod", "name": "checkout-svc"})),
            ("get_rollout_history", json!({"namespace": "prod", "name": "checkout-svc"})),
            ("get_pod_logs", json!({"namespace": "prod", "pod": "checkout-svc-6f7d9c8b5d-4xk2m", "grep": "NullPointer"})),
        ]),
        _ => calls.extend([
            ("describe_hpa", json!({"namespace": "orders", "name": "orders-api"})),
            ("get_resource", json!({"kind": "hpa", "namespace": "orders", "name": "orders-api"})),
        ]),
    }
    calls
}

/// Rollout history as both sides know it: revision, images, cause, time.
fn comparable(tool: &str, mut data: Value) -> Value {
    if tool == "get_rollout_history" {
        for r in data["revisions"].as_array_mut().into_iter().flatten() {
            r.as_object_mut().map(|m| m.remove("replicaset"));
        }
    }
    data
}

#[tokio::test]
async fn live_and_replay_agree_on_every_example_scenario() {
    for name in SCENARIOS {
        let w = world(name);
        let kmock = start_kmock(&w);
        let live = live_registry(kmock.port).await;
        let replay = world_registry(&w);
        for (tool, args) in table(name) {
            let a = replay.call(tool, args.clone()).await;
            let b = live.call(tool, args.clone()).await;
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(
                    comparable(tool, a.data),
                    comparable(tool, b.data),
                    "{name}: {tool} {args}\nreplay: {}\nlive: {}",
                    a.text,
                    b.text
                ),
                (a, b) => panic!("{name}: {tool} {args}: replay {a:?}, live {b:?}"),
            }
        }
    }
}

#[tokio::test]
async fn the_oomkilled_pod_shows_its_reason_exit_code_and_crashed_log() {
    let r = world_registry(&world("k8s-oomkilled-payments"));
    let d = call(
        &r,
        "describe_pod",
        json!({"namespace": "prod", "name": "payments-api-6c9f7b8d4-x2k9p"}),
    )
    .await;
    let last = &d.data["containers"][0]["last_state"];
    assert_eq!(last["reason"], "OOMKilled");
    assert_eq!(last["exit_code"], 137);
    assert_eq!(last["finished"], "2026-03-14T10:27:00Z", "offset resolved");
    assert!(
        d.text.contains("terminated[OOMKilled exit=137]"),
        "{}",
        d.text
    );
    assert!(d.text.contains("BackOff"), "its events: {}", d.text);
    let logs = call(
        &r,
        "get_pod_logs",
        json!({"namespace": "prod", "pod": "payments-api-6c9f7b8d4-x2k9p", "previous": true}),
    )
    .await;
    assert!(logs.text.contains("heap usage 489MiB"), "{}", logs.text);
    let unhealthy = call(
        &r,
        "list_pods",
        json!({"namespace": "prod", "only_unhealthy": true}),
    )
    .await;
    assert_eq!(unhealthy.data["pods"].as_array().unwrap().len(), 2);
    assert!(
        unhealthy.text.contains("CrashLoopBackOff"),
        "{}",
        unhealthy.text
    );
    let h = call(
        &r,
        "get_rollout_history",
        json!({"namespace": "prod", "name": "payments-api"}),
    )
    .await;
    assert_eq!(
        h.data["revisions"][1]["change_cause"],
        "enable FEATURE_BATCH_EXPORT"
    );
}

#[tokio::test]
async fn the_bad_deploy_is_the_newest_revision_and_its_logs_show_the_exception() {
    let r = world_registry(&world("k8s-bad-deploy-checkout"));
    let h = call(
        &r,
        "get_rollout_history",
        json!({"namespace": "prod", "name": "checkout-svc"}),
    )
    .await;
    let revs: Vec<i64> = h.data["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revs, [25, 26, 27]);
    assert_eq!(
        h.data["revisions"][2]["images"][0],
        "registry.example.com/storefront/checkout-svc:3.4.0"
    );
    assert!(h.text.contains("revision 27 20m ago"), "{}", h.text);
    let logs = call(
        &r,
        "get_pod_logs",
        json!({"namespace": "prod", "pod": "checkout-svc-6f7d9c8b5d-4xk2m", "grep": "nullpointer"}),
    )
    .await;
    assert!(logs.data["matched"].as_u64().unwrap() >= 2, "{}", logs.text);
    let cut = call(
        &r,
        "get_pod_logs",
        json!({"namespace": "prod", "pod": "checkout-svc-6f7d9c8b5d-4xk2m", "tail": 2}),
    )
    .await;
    assert!(cut.text.contains("[older lines cut"), "{}", cut.text);
}

#[tokio::test]
async fn the_orders_hpa_is_at_its_maximum() {
    let r = world_registry(&world("aws-rds-connections-orders"));
    let h = call(
        &r,
        "describe_hpa",
        json!({"namespace": "orders", "name": "orders-api"}),
    )
    .await;
    assert_eq!(h.data["hpa"]["at_max"], true);
    assert!(
        h.text.contains("AT MAX") && h.text.contains("TooManyReplicas"),
        "{}",
        h.text
    );
    let u = call(&r, "get_resource_usage", json!({})).await;
    assert!(
        u.text.contains("metrics-server is not installed"),
        "{}",
        u.text
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_a_real_scale_does_live_and_replayed() {
    let w = world("k8s-oomkilled-payments");
    let kmock = start_kmock(&w);
    let live = live_registry(kmock.port).await;
    let replay = world_registry(&w);
    for (side, r) in [("live", &live), ("replay", &replay)] {
        let target = json!({"namespace": "prod", "name": "payments-api"});
        let dry = call(
            r,
            "scale_workload",
            json!({"namespace": "prod", "name": "payments-api", "replicas": 6, "dry_run": true}),
        )
        .await;
        assert_eq!(dry.data["changes"][0]["after"], 6, "{side}: {}", dry.text);
        assert!(
            dry.text.starts_with("dry run (nothing changed)"),
            "{side}: {}",
            dry.text
        );
        let d = call(r, "describe_deployment", target.clone()).await;
        assert_eq!(
            d.data["workload"]["desired"], 3,
            "{side}: dry run left replicas alone"
        );
        let real = call(
            r,
            "scale_workload",
            json!({"namespace": "prod", "name": "payments-api", "replicas": 5}),
        )
        .await;
        assert_eq!(real.data["changes"][0]["before"], 3, "{side}");
        let d = call(r, "describe_deployment", target.clone()).await;
        assert_eq!(d.data["workload"]["desired"], 5, "{side}: {}", d.text);
        let restart = call(r, "restart_rollout", target.clone()).await;
        assert!(
            restart.data["changes"][0]["after"].is_string(),
            "{side}: {}",
            restart.text
        );
        let got = call(
            r,
            "get_resource",
            json!({"kind": "Deployment", "namespace": "prod", "name": "payments-api"}),
        )
        .await;
        assert!(
            got.data["object"]["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
            "{side}"
        );
        // A dry-run drain cordons nothing and evicts nothing.
        let drain = call(
            r,
            "drain_node",
            json!({"name": "ip-10-0-3-17.ec2.internal", "dry_run": true}),
        )
        .await;
        assert_eq!(
            drain.data["details"]["evicted"].as_array().unwrap().len(),
            2,
            "{side}: {}",
            drain.text
        );
        let pods = call(r, "list_pods", json!({"namespace": "prod"})).await;
        assert_eq!(pods.data["pods"].as_array().unwrap().len(), 3, "{side}");
        let node = call(
            r,
            "describe_node",
            json!({"name": "ip-10-0-3-17.ec2.internal"}),
        )
        .await;
        assert_eq!(node.data["node"]["cordoned"], false, "{side}");
        // A real one does both.
        call(
            r,
            "drain_node",
            json!({"name": "ip-10-0-3-17.ec2.internal"}),
        )
        .await;
        let pods = call(r, "list_pods", json!({"namespace": "prod"})).await;
        assert_eq!(
            pods.data["pods"].as_array().unwrap().len(),
            1,
            "{side}: {}",
            pods.text
        );
        let node = call(
            r,
            "describe_node",
            json!({"name": "ip-10-0-3-17.ec2.internal"}),
        )
        .await;
        assert_eq!(node.data["node"]["cordoned"], true, "{side}");
        // Rollback to 13 with only images known; set_resources; patch_hpa errors name the object.
        let rb = call(r, "rollback_deployment", json!({"namespace": "prod", "name": "payments-api", "to_revision": 13, "dry_run": true})).await;
        assert_eq!(rb.data["details"]["to_revision"], 13, "{side}");
        let sr = call(r, "set_resources", json!({"namespace": "prod", "name": "payments-api", "container": "api", "memory_limit": "1Gi"})).await;
        assert_eq!(sr.data["changes"][0]["before"], "512Mi", "{side}");
        assert_eq!(sr.data["changes"][0]["after"], "1Gi", "{side}");
    }
}

#[tokio::test]
async fn missing_objects_are_not_found_by_name_live_and_replayed() {
    let w = world("k8s-oomkilled-payments");
    let kmock = start_kmock(&w);
    let live = live_registry(kmock.port).await;
    let replay = world_registry(&w);
    for (side, r) in [("live", &live), ("replay", &replay)] {
        let e = call_err(
            r,
            "describe_pod",
            json!({"namespace": "prod", "name": "nope-123"}),
        )
        .await;
        assert_eq!(e.kind(), "not_found", "{side}: {e}");
        assert!(e.to_string().contains("pod prod/nope-123"), "{side}: {e}");
        let e = call_err(
            r,
            "scale_workload",
            json!({"namespace": "prod", "name": "ghost", "replicas": 2}),
        )
        .await;
        assert!(
            e.to_string().contains("deployment prod/ghost"),
            "{side}: {e}"
        );
        let e = call_err(
            r,
            "get_pod_logs",
            json!({"namespace": "prod", "pod": "payments-api-6c9f7b8d4-m4n8b", "previous": true}),
        )
        .await;
        assert_eq!(e.kind(), "not_found", "{side}: {e}");
        let e = call_err(
            r,
            "get_resource",
            json!({"kind": "Certificate", "namespace": "prod", "name": "x"}),
        )
        .await;
        assert_eq!(e.kind(), "not_found", "{side}: {e}");
        let empty = call(r, "list_pods", json!({"namespace": "staging"})).await;
        assert_eq!(empty.data["pods"], json!([]), "{side}");
    }
}

#[tokio::test]
async fn custom_resources_are_served_by_the_generic_tools() {
    let mut w = world("k8s-bad-deploy-checkout");
    w.kubernetes["objects"].as_array_mut().unwrap().push(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "checkout-tls", "namespace": "prod"},
        "status": {"notAfter": "-2h", "conditions": [{"type": "Ready", "status": "False", "reason": "Expired"}]}
    }));
    let kmock = start_kmock(&w);
    let live = live_registry(kmock.port).await;
    let replay = world_registry(&w);
    let mut answers = Vec::new();
    for r in [&replay, &live] {
        let l = call(
            r,
            "list_resources",
            json!({"kind": "certificates", "namespace": "prod"}),
        )
        .await;
        assert!(
            l.text.contains("checkout-tls Ready=False(Expired)"),
            "{}",
            l.text
        );
        let g = call(r, "get_resource", json!({"kind": "Certificate", "api_version": "cert-manager.io/v1", "namespace": "prod", "name": "checkout-tls"})).await;
        assert_eq!(
            g.data["object"]["status"]["notAfter"],
            "2026-04-07T13:42:00Z"
        );
        answers.push((l.data, g.data));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_readable_backend_error() {
    let live = live_registry(1).await;
    let e = live.call("list_pods", json!({})).await.unwrap_err();
    assert_eq!(e.kind(), "backend", "{e}");
    assert!(
        e.to_string()
            .contains("listing pods at http://127.0.0.1:1/"),
        "{e}"
    );
    assert!(e.to_string().contains("cannot reach the API server"), "{e}");
}

#[tokio::test]
async fn list_pods_through_the_registry_against_kmock_is_fast() {
    let w = world("k8s-bad-deploy-checkout");
    let kmock = start_kmock(&w);
    let live = live_registry(kmock.port).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        live.call("list_pods", json!({"namespace": "prod"}))
            .await
            .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[10];
    println!(
        "list_pods via kube-rs against kmock: median {median:?} over 20 calls (min {:?}, max {:?})",
        times[0], times[19]
    );
    assert!(median < Duration::from_secs(1), "{median:?}");
}
