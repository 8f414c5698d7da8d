//! The orchestrator survives a worker that dies after any step: another
//! worker resumes the incident from the last recorded step, and the action
//! runs exactly once.

use agents::budget::Limits;
use agents::orchestrator::{AgentError, Orchestrator};
use brain::config::Config;
use brain::ids::IncidentId;
use brain::policy::{Policy, PolicyConfig};
use brain::scenario::Scenario;
use brain::store::{RunStep, Store};
use std::sync::Arc;

/// `cart` in the unprotected namespace `shop` cannot reach Redis, whose
/// pods are up: restarting Redis is low risk there and runs at once.
const SCENARIO: &str = r#"
id: redis-refused-cart
title: cart errors because redis refuses connections
trigger:
  source: generic
  payload:
    title: cart 5xx ratio above 5%
    severity: critical
    service: cart
    labels: {namespace: shop, service: cart, alertname: CartErrorRatioHigh}
    description: cart answers 12% of requests with 5xx
world:
  now: "2026-06-01T12:00:00Z"
  kubernetes:
    objects:
      - {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
      - apiVersion: apps/v1
        kind: Deployment
        metadata: {name: cart, namespace: shop, labels: {app: cart}}
        spec:
          replicas: 2
          selector: {matchLabels: {app: cart}}
          template:
            metadata: {labels: {app: cart}}
            spec: {containers: [{name: app, image: "shop/cart:1.4.0"}]}
        status: {replicas: 2, readyReplicas: 2, availableReplicas: 2}
      - apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: redis, namespace: shop, labels: {app: redis}}
        spec:
          replicas: 1
          selector: {matchLabels: {app: redis}}
          template:
            metadata: {labels: {app: redis}}
            spec: {containers: [{name: redis, image: "redis:7.2"}]}
        status: {replicas: 1, readyReplicas: 1}
      - apiVersion: v1
        kind: Pod
        metadata: {name: cart-7d9f8c6b5-abcde, namespace: shop, labels: {app: cart}}
        spec: {nodeName: node-1, containers: [{name: app, image: "shop/cart:1.4.0"}]}
        status: {phase: Running, containerStatuses: [{name: app, ready: true, restartCount: 0, state: {running: {startedAt: -2h}}}]}
      - apiVersion: v1
        kind: Pod
        metadata: {name: redis-0, namespace: shop, labels: {app: redis}}
        spec: {nodeName: node-1, containers: [{name: redis, image: "redis:7.2"}]}
        status: {phase: Running, containerStatuses: [{name: redis, ready: true, restartCount: 0, state: {running: {startedAt: -3d}}}]}
    logs:
      "shop/cart-7d9f8c6b5-abcde/app": |
        2026-06-01T11:55:01Z ERROR add to cart failed: dial tcp redis.shop.svc.cluster.local:6379: connect: connection refused
        2026-06-01T11:55:09Z ERROR add to cart failed: dial tcp redis.shop.svc.cluster.local:6379: connect: connection refused
        2026-06-01T11:56:12Z ERROR get cart failed: dial tcp redis.shop.svc.cluster.local:6379: connect: connection refused
expect:
  root_cause: {category: dependency_failure, component: statefulset/shop/redis}
  remediation:
    accept: [{action: kubernetes.rollout_restart, target: statefulset/shop/redis}]
  approval: not_required
"#;

struct Setup {
    store: Store,
    incident: IncidentId,
    tools: Arc<tools::Registry>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_from(SCENARIO).await
}

/// The shared example: payments-api OOMKilled in prod, where the fix is
/// held for approval.
async fn oomkilled() -> Setup {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/examples/k8s-oomkilled-payments.yaml");
    setup_from(&std::fs::read_to_string(path).expect("example")).await
}

async fn setup_from(yaml: &str) -> Setup {
    let s = Scenario::from_yaml(yaml).expect("scenario");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config::default();
    config.paths.data_dir = dir.path().to_owned();
    let store = Store::open(&config).await.expect("store");
    let incident = evals::scenarios::open_incident(&store, &config, &s)
        .await
        .expect("incident");
    let tools = Arc::new(tools::world_registry(&s.world).expect("registry"));
    Setup {
        store,
        incident,
        tools,
        _dir: dir,
    }
}

fn worker(
    s: &Setup,
    name: &str,
    crash_after: Option<RunStep>,
    lease: chrono::Duration,
) -> Orchestrator {
    Orchestrator {
        store: s.store.clone(),
        tools: s.tools.clone(),
        policy: Policy::new(PolicyConfig::default()).expect("policy"),
        knowledge: None,
        llm: None,
        limits: Limits::default(),
        approval_ttl: chrono::Duration::minutes(60),
        actor: "cerebro".into(),
        worker: name.into(),
        lease,
        crash_after,
        verify_window: std::time::Duration::ZERO,
        four_eyes: false,
    }
}

#[tokio::test]
async fn an_incident_resumes_after_a_worker_dies_after_any_step_and_acts_once() {
    for step in [
        RunStep::Investigated,
        RunStep::Diagnosed,
        RunStep::Proposed,
        RunStep::Done,
    ] {
        let s = setup().await;
        // Worker a dies right after recording `step`; its lease lapses at once.
        let a = worker(&s, "a", Some(step), chrono::Duration::milliseconds(-1));
        match a.handle(s.incident).await {
            Err(AgentError::Crashed(at)) => assert_eq!(at, step),
            other => panic!("{step:?}: expected the crash hook, got {other:?}"),
        }
        let run = s
            .store
            .get_run(s.incident)
            .await
            .expect("run")
            .expect("exists");
        assert_eq!(run.step, step, "the step is recorded before the crash");

        let b = worker(&s, "b", None, chrono::Duration::minutes(5));
        let resumed = b.work_one().await.expect("resume");
        if step == RunStep::Done {
            assert!(resumed.is_none(), "a finished run is not worked again");
        } else {
            let (id, outcome) = resumed.expect("b takes the run over");
            assert_eq!(id, s.incident);
            let p = outcome.proposal.as_ref().expect("a proposal");
            assert_eq!(
                (p.action.as_str(), p.target.to_string().as_str()),
                ("kubernetes.rollout_restart", "statefulset/shop/redis"),
                "{step:?}"
            );
        }
        let run = s
            .store
            .get_run(s.incident)
            .await
            .expect("run")
            .expect("exists");
        assert_eq!(run.step, RunStep::Done, "{step:?}");

        // One diagnosis, one proposal, one execution, whatever the crash.
        let proposals = s
            .store
            .proposals_for_incident(s.incident)
            .await
            .expect("proposals");
        assert_eq!(proposals.len(), 1, "{step:?}: {proposals:#?}");
        assert_eq!(proposals[0].status.as_str(), "executed", "{step:?}");
        let executions = s
            .store
            .audit_entries(None)
            .await
            .expect("audit")
            .into_iter()
            .filter(|e| e.action == "action.execute")
            .count();
        assert_eq!(executions, 1, "{step:?}");
        let evidence = s
            .store
            .evidence_for_incident(s.incident)
            .await
            .expect("evidence");
        let tools_called = run.state["evidence"]["observations"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(
            evidence.len(),
            tools_called,
            "{step:?}: evidence stored once"
        );
        assert!(s.store.verify_audit().await.expect("verify").is_intact());
        // Redis's pods are up after the restart: verified, not escalated.
        let timeline = s.store.timeline(s.incident).await.expect("timeline");
        assert_eq!(
            timeline.iter().filter(|e| e.kind == "verified").count(),
            1,
            "{step:?}: {timeline:#?}"
        );
    }
}

#[tokio::test]
async fn a_run_held_by_a_live_worker_is_not_taken() {
    let s = setup().await;
    s.store.enqueue_run(s.incident).await.expect("enqueue");
    let held = s
        .store
        .claim_run("a", chrono::Duration::minutes(5))
        .await
        .expect("claim")
        .expect("run");
    assert_eq!(held.incident_id, s.incident);
    let b = worker(&s, "b", None, chrono::Duration::minutes(5));
    assert!(b.work_one().await.expect("work").is_none());
    assert!(
        s.store
            .proposals_for_incident(s.incident)
            .await
            .expect("p")
            .is_empty()
    );
}

#[tokio::test]
async fn an_exhausted_budget_escalates_with_the_findings_so_far() {
    let s = setup().await;
    let mut o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.limits = Limits {
        tool_calls: 3,
        ..Limits::default()
    };
    let outcome = o.handle(s.incident).await.expect("handled");
    assert_eq!(outcome.tool_calls, 3);
    assert_eq!(outcome.exhausted.as_deref(), Some("tool calls"));
    // Nothing acts on partial evidence: the incident goes to a human.
    let proposals = s.store.proposals_for_incident(s.incident).await.expect("p");
    assert!(
        proposals.iter().all(|p| p.action.as_str() == "escalate"),
        "{proposals:#?}"
    );
    let timeline = s.store.timeline(s.incident).await.expect("timeline");
    assert!(
        timeline.iter().any(|e| e.kind == "escalated"),
        "{timeline:#?}"
    );
}

#[tokio::test]
async fn a_held_action_runs_only_after_approval_and_only_once() {
    let s = oomkilled().await;
    let o = worker(&s, "a", None, chrono::Duration::minutes(5));
    let outcome = o.handle(s.incident).await.expect("handled");
    let p = outcome.proposal.expect("proposal");
    assert_eq!(p.action.as_str(), "kubernetes.set_resources");
    assert_eq!(p.status.as_str(), "awaiting_approval");
    let limit = |tools: Arc<tools::Registry>| async move {
        let d = tools
            .call(
                "get_resource",
                serde_json::json!({"kind": "Deployment", "namespace": "prod", "name": "payments-api"}),
            )
            .await
            .expect("deployment");
        d.data["object"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(limit(s.tools.clone()).await, "512Mi");
    // Not approved: executing does nothing.
    let still = o.execute_approved(p.id).await.expect("execute");
    assert_eq!(still.status.as_str(), "awaiting_approval");
    assert_eq!(limit(s.tools.clone()).await, "512Mi");

    let approval = s
        .store
        .approval_for_proposal(p.id)
        .await
        .expect("q")
        .expect("approval");
    s.store
        .decide_approval(approval.id, true, "alice", Some("ok"))
        .await
        .expect("approve");
    let ran = o.execute_approved(p.id).await.expect("execute");
    assert_eq!(ran.status.as_str(), "executed");
    let new = limit(s.tools.clone()).await;
    assert_eq!(new, p.params["memory_limit"].as_str().unwrap_or_default());
    assert_ne!(new, "512Mi");
    // A second call (a retried request, another replica) runs nothing.
    let again = o.execute_approved(p.id).await.expect("execute");
    assert_eq!(again.status.as_str(), "executed");
    let runs = s
        .store
        .audit_entries(None)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "action.execute")
        .count();
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn an_approval_nobody_answers_expires_escalates_and_never_runs() {
    let s = oomkilled().await;
    let mut o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.approval_ttl = chrono::Duration::milliseconds(1);
    let p = o
        .handle(s.incident)
        .await
        .expect("handled")
        .proposal
        .expect("proposal");
    assert_eq!(p.status.as_str(), "awaiting_approval");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(o.expire_approvals().await.expect("expire"), 1);
    assert_eq!(o.expire_approvals().await.expect("again"), 0);
    let p = s.store.get_proposal(p.id).await.expect("proposal");
    assert_eq!(p.status.as_str(), "expired");
    let approval = s
        .store
        .approval_for_proposal(p.id)
        .await
        .expect("q")
        .expect("approval");
    assert!(
        s.store
            .decide_approval(approval.id, true, "alice", None)
            .await
            .is_err(),
        "an expired approval cannot be approved"
    );
    assert_eq!(
        o.execute_approved(p.id)
            .await
            .expect("execute")
            .status
            .as_str(),
        "expired"
    );
    let timeline = s.store.timeline(s.incident).await.expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e.kind == "escalated" && e.message.contains("nobody decided")),
        "{timeline:#?}"
    );
}

#[tokio::test]
async fn an_action_whose_target_does_not_recover_is_escalated() {
    // Redis keeps crashing after the restart (the replay does not heal it).
    let sick = SCENARIO.replace(
        "status: {phase: Running, containerStatuses: [{name: redis, ready: true, restartCount: 0, state: {running: {startedAt: -3d}}}]}",
        "status: {phase: Running, containerStatuses: [{name: redis, ready: false, restartCount: 6, state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {reason: Error, exitCode: 1, startedAt: -3h, finishedAt: -2m}}}]}",
    );
    assert_ne!(sick, SCENARIO, "the replacement applied");
    let s = setup_from(&sick).await;
    let o = worker(&s, "a", None, chrono::Duration::minutes(5));
    let outcome = o.handle(s.incident).await.expect("handled");
    let p = outcome.proposal.expect("proposal");
    assert_eq!(p.status.as_str(), "executed", "{p:#?}");
    let timeline = s.store.timeline(s.incident).await.expect("timeline");
    let escalation = timeline
        .iter()
        .find(|e| e.kind == "escalated")
        .unwrap_or_else(|| panic!("{timeline:#?}"));
    assert!(
        escalation.message.contains("has not recovered"),
        "{escalation:#?}"
    );
    assert!(escalation.message.contains("redis-0"), "{escalation:#?}");
    assert!(timeline.iter().all(|e| e.kind != "verified"));
}

#[tokio::test]
async fn four_eyes_asks_two_approvers_for_a_high_risk_action_in_prod() {
    let s = oomkilled().await;
    let mut o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.four_eyes = true;
    let p = o
        .handle(s.incident)
        .await
        .expect("handled")
        .proposal
        .expect("proposal");
    let a = s
        .store
        .approval_for_proposal(p.id)
        .await
        .expect("q")
        .expect("approval");
    assert_eq!(a.approvals_needed, 2);
    s.store
        .decide_approval(a.id, true, "alice", None)
        .await
        .expect("first");
    // One approval of two: executing does nothing.
    assert_eq!(
        o.execute_approved(p.id)
            .await
            .expect("execute")
            .status
            .as_str(),
        "awaiting_approval"
    );
    s.store
        .decide_approval(a.id, true, "bob", None)
        .await
        .expect("second");
    assert_eq!(
        o.execute_approved(p.id)
            .await
            .expect("execute")
            .status
            .as_str(),
        "executed"
    );
}
