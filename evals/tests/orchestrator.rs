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

/// The incident's timeline and its first entry of `kind`; fails the test
/// with the whole timeline when there is none.
async fn first_event(
    s: &Setup,
    kind: &str,
) -> (
    Vec<brain::domain::TimelineEvent>,
    brain::domain::TimelineEvent,
) {
    let timeline = s.store.timeline(s.incident).await.expect("timeline");
    let event = timeline
        .iter()
        .find(|e| e.kind == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} entry: {timeline:#?}"));
    (timeline, event)
}

fn worker(
    s: &Setup,
    name: &str,
    crash_after: Option<RunStep>,
    lease: chrono::Duration,
) -> Orchestrator {
    Orchestrator {
        actor: "cerebro".into(),
        worker: name.into(),
        lease,
        crash_after,
        ..Orchestrator::new(
            s.store.clone(),
            s.tools.clone(),
            Policy::new(PolicyConfig::default()).expect("policy"),
        )
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
    let heard = Arc::new(Recorder::default());
    let mut o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.notifiers = vec![heard.clone()];
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
    let got = heard.0.lock().expect("lock");
    assert!(
        got.iter().any(|n| matches!(n, brain::backends::Notification::Escalation { reason, .. } if reason.contains("nobody decided"))),
        "{got:#?}"
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
    let (timeline, escalation) = first_event(&s, "escalated").await;
    assert!(
        escalation.message.contains("has not brought recovery"),
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

/// A stand-in model for the orchestration around the model (the local
/// model's own answers are measured by `cerebro eval --llm`). Asked for
/// JSON (a pick), it gives the next of `picks` (then "none"); otherwise
/// `summary`.
struct Scripted {
    picks: std::sync::Mutex<std::collections::VecDeque<&'static str>>,
    summary: &'static str,
    seen: std::sync::Mutex<Vec<brain::backends::ChatRequest>>,
}

#[async_trait::async_trait]
impl brain::backends::LlmProvider for Scripted {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn model(&self) -> &str {
        "scripted"
    }
    async fn chat(
        &self,
        req: brain::backends::ChatRequest,
    ) -> Result<brain::backends::ChatResponse, brain::backends::LlmError> {
        use brain::backends::{ChatResponse, ResponseFormat, Usage};
        let content = if matches!(req.format, ResponseFormat::JsonSchema { .. }) {
            let pick = self
                .picks
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or("none");
            format!(r#"{{"choice": "{pick}"}}"#)
        } else {
            self.summary.to_owned()
        };
        self.seen.lock().expect("lock").push(req);
        Ok(ChatResponse {
            content,
            tool_calls: Vec::new(),
            usage: Usage {
                input_tokens: 300,
                output_tokens: 5,
            },
            model: "scripted".into(),
        })
    }
}

fn scripted_gateway(
    picks: Vec<&'static str>,
    summary: &'static str,
) -> (Arc<models::gateway::Gateway>, Arc<Scripted>) {
    let model = Arc::new(Scripted {
        picks: std::sync::Mutex::new(picks.into()),
        summary,
        seen: std::sync::Mutex::new(Vec::new()),
    });
    let mut c = brain::config::LlmConfig::default();
    c.providers.clear();
    c.roles.clear();
    c.providers.insert(
        "scripted".into(),
        brain::config::ProviderConfig {
            model: "scripted".into(),
            ..brain::config::ProviderConfig::default()
        },
    );
    c.roles.insert(
        "fast".into(),
        brain::config::RoleConfig {
            providers: vec!["scripted".into()],
            ..brain::config::RoleConfig::default()
        },
    );
    let gw = models::gateway::GatewayBuilder::new(c)
        .chat("scripted", model.clone())
        .build()
        .expect("gateway");
    (Arc::new(gw), model)
}

/// Records what it is told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<brain::backends::Notification>>);

#[async_trait::async_trait]
impl brain::backends::Notifier for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn notify(
        &self,
        n: &brain::backends::Notification,
    ) -> Result<(), brain::backends::NotifyError> {
        self.0.lock().expect("lock").push(n.clone());
        Ok(())
    }
}

#[tokio::test]
async fn on_a_weak_diagnosis_the_model_picks_more_reads_from_a_menu_of_reads() {
    // Without cart's logs the playbooks find no cause.
    let bare = SCENARIO[..SCENARIO.find("    logs:").expect("logs")].to_owned()
        + &SCENARIO[SCENARIO.find("expect:").expect("expect")..];
    let s = setup_from(&bare).await;
    let (gw, model) = scripted_gateway(vec!["2", "none"], "");
    let mut o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.llm = Some(gw);
    let outcome = o.handle(s.incident).await.expect("handled");
    let ex = &outcome.explored;
    assert_eq!(ex.calls, 2, "{ex:#?}");
    assert_eq!(ex.ran.len(), 1, "{ex:#?}");
    let seen = model.seen.lock().expect("lock").clone();
    let menu = &seen[0].messages[1].content;
    // The second entry of the menu the model saw is what ran.
    let second = menu
        .lines()
        .find_map(|l| l.strip_prefix("2. "))
        .unwrap_or_else(|| panic!("{menu}"));
    assert!(second.starts_with(&ex.ran[0]), "{second} vs {}", ex.ran[0]);
    // Every entry is a read-only tool with arguments written by code.
    let entries: Vec<&str> = menu
        .lines()
        .filter(|l| {
            l.split_once(". ")
                .is_some_and(|(n, _)| n.parse::<u8>().is_ok())
        })
        .collect();
    assert!(!entries.is_empty(), "{menu}");
    for e in &entries {
        let tool = e.split_whitespace().nth(1).expect("tool");
        assert_eq!(
            s.tools.spec(tool).expect("spec").risk,
            brain::vocabulary::Risk::Read,
            "{e}"
        );
    }
    // The second turn shows the first read's answer, fenced, and no
    // longer offers it.
    let again = &seen[1].messages[1].content;
    assert!(again.contains("Earlier read:"), "{again}");
    assert!(!again.contains(second), "{again}");
    // The model's read is evidence like any other, budgeted like any other.
    let rows = s
        .store
        .evidence_for_incident(s.incident)
        .await
        .expect("evidence");
    assert!(
        rows.iter()
            .any(|e| format!("{} {}", e.tool, e.args) == outcome.explored.ran[0]),
        "{rows:#?}"
    );
    assert_eq!(
        outcome.tool_calls as usize,
        outcome.evidence.observations.len()
    );
}

#[tokio::test]
async fn the_summary_approval_reminder_and_escalation_reach_the_notifiers() {
    let s = oomkilled().await;
    let (gw, _) = scripted_gateway(
        vec!["1"],
        "payments-api in prod was OOMKilled at its 512Mi limit; a higher limit awaits approval.",
    );
    let heard = Arc::new(Recorder::default());
    let mut o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.llm = Some(gw);
    o.summarize = true;
    o.notifiers = vec![heard.clone()];
    o.approval_ttl = chrono::Duration::minutes(30);
    o.remind_before = chrono::Duration::minutes(10);
    let outcome = o.handle(s.incident).await.expect("handled");
    let p = outcome.proposal.expect("proposal");
    assert_eq!(p.status.as_str(), "awaiting_approval");
    let (_, summary) = first_event(&s, "summary").await;
    assert!(
        summary
            .message
            .starts_with("payments-api in prod was OOMKilled")
    );
    assert_eq!(summary.data["model_written"], true);
    {
        use brain::backends::Notification as N;
        let got = heard.0.lock().expect("lock");
        // The diagnosis with what is proposed (a PagerDuty note), then
        // the approval request (the Slack message with buttons).
        assert!(
            matches!(&got[0], N::Diagnosed { summary, .. } if summary.contains("Proposed: kubernetes.set_resources")),
            "{got:#?}"
        );
        assert!(
            matches!(&got[1], N::ApprovalRequested { summary, .. } if summary.contains("set_resources")),
            "{got:#?}"
        );
        assert!(
            matches!(&got[2], N::TimelineUpdate { message, .. } if message.contains("OOMKilled")),
            "{got:#?}"
        );
    }
    // Not yet within ten minutes of expiry: no reminder.
    assert_eq!(o.remind_approvals().await.expect("remind"), 0);
    // Within it: one reminder, once.
    o.remind_before = chrono::Duration::minutes(45);
    assert_eq!(o.remind_approvals().await.expect("remind"), 1);
    assert_eq!(o.remind_approvals().await.expect("remind"), 0);
    let got = heard.0.lock().expect("lock").clone();
    assert!(
        matches!(&got[3], brain::backends::Notification::ApprovalReminder { expires_in_minutes, .. } if (25..=30).contains(expires_in_minutes)),
        "{got:#?}"
    );
    assert_eq!(got.len(), 4, "{got:#?}");
}

/// The redis scenario fired by Prometheus through Alertmanager, with the
/// alert's expression in its `generatorURL` and `connected` as the value
/// of cart's redis connection gauge that the expression tests.
fn fired_by_prometheus(connected: u32) -> String {
    let trigger = r#"trigger:
  source: alertmanager
  payload:
    version: "4"
    groupKey: '{}:{alertname="CartRedisDown"}'
    status: firing
    receiver: cerebro
    groupLabels: {alertname: CartRedisDown}
    commonLabels: {alertname: CartRedisDown, namespace: shop, service: cart, severity: critical}
    commonAnnotations: {summary: cart cannot reach redis}
    externalURL: http://alertmanager:9093
    alerts:
      - status: firing
        labels: {alertname: CartRedisDown, namespace: shop, service: cart, severity: critical}
        annotations: {summary: cart cannot reach redis, description: cart 5xx ratio 12%}
        startsAt: "2026-06-01T11:55:00Z"
        endsAt: "0001-01-01T00:00:00Z"
        generatorURL: http://prometheus:9090/graph?g0.expr=cart_redis_connected%7Bnamespace%3D%22shop%22%7D+%3C+1&g0.tab=1
        fingerprint: 5c1d2e3f4a5b6c7d
world:"#;
    let series = format!(
        r#"  prometheus:
    series:
      - labels: {{__name__: cart_redis_connected, namespace: shop, service: cart}}
        start: -30m
        step: 5m
        values: [1, 1, 1, 1, 1, 0, {connected}]
expect:"#
    );
    let start = SCENARIO.find("trigger:").expect("trigger");
    let end = SCENARIO.find("world:").expect("world");
    let yaml = format!(
        "{}{}{}",
        &SCENARIO[..start],
        trigger,
        &SCENARIO[end + "world:".len()..]
    );
    yaml.replacen("expect:", &series, 1)
}

#[tokio::test]
async fn verification_watches_the_alerts_own_expression_not_only_the_target() {
    // Still firing: redis' pods look fine after the restart, but the
    // expression that fired still returns a series.
    let s = setup_from(&fired_by_prometheus(0)).await;
    let o = worker(&s, "a", None, chrono::Duration::minutes(5));
    let p = o
        .handle(s.incident)
        .await
        .expect("handled")
        .proposal
        .expect("proposal");
    assert_eq!(p.status.as_str(), "executed", "{p:#?}");
    let (timeline, escalation) = first_event(&s, "escalated").await;
    assert!(
        escalation
            .message
            .contains("`cart_redis_connected{namespace=\"shop\"} < 1` still returns 1 series"),
        "{escalation:#?}"
    );
    assert!(timeline.iter().all(|e| e.kind != "verified"));

    // Cleared: the expression returns nothing and the pods are healthy.
    let s = setup_from(&fired_by_prometheus(1)).await;
    let o = worker(&s, "a", None, chrono::Duration::minutes(5));
    o.handle(s.incident).await.expect("handled");
    let (_, verified) = first_event(&s, "verified").await;
    assert!(
        verified.message.contains("returns nothing now"),
        "{verified:#?}"
    );
}
