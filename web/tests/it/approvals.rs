//! The approval queue over HTTP: only a configured approver decides, the
//! name recorded is the token's owner, a rejection needs a reason, and a
//! decision is made once.

use crate::harness::App;
use brain::config::{Approver, Secret};
use brain::domain::{ActionProposal, ProposalStatus};
use brain::ids::ProposalId;
use brain::store::{NewIncident, Store};
use brain::vocabulary::{Action, Risk};
use serde_json::{Value, json};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789ab";

async fn app() -> App {
    App::start(
        |c| {
            c.approvals.approvers = vec![
                Approver {
                    name: "alice".into(),
                    token: Secret::new(ALICE),
                    slack_user_id: None,
                },
                Approver {
                    name: "bob".into(),
                    token: Secret::new(BOB),
                    slack_user_id: None,
                },
            ];
        },
        None,
    )
    .await
}

/// A held rollback, written to the app's own database.
pub(crate) async fn held(app: &App, store: &Store, key: &str) -> String {
    let inc = store
        .create_incident(NewIncident {
            org_id: "default".into(),
            title: "checkout 5xx".into(),
            severity: brain::domain::Severity::Critical,
            service: Some("checkout".into()),
            group_key: key.into(),
        })
        .await
        .expect("incident");
    let p = ActionProposal {
        id: ProposalId::new(),
        incident_id: Some(inc.id),
        diagnosis_id: None,
        action: Action::Rollback,
        target: "deployment/prod/checkout".parse().expect("component"),
        params: json!({"to_revision": 13}),
        risk: Risk::High,
        rationale: "errors began with revision 14".into(),
        status: ProposalStatus::Proposed,
        created_at: brain::store::timestamp(),
        tool: Some("rollback_deployment".into()),
        requested_by: "agent:orchestrator".into(),
    };
    store.add_proposal(&p).await.expect("proposal");
    let a = store
        .request_approval(p.id, chrono::Duration::minutes(30))
        .await
        .expect("request");
    let _ = app;
    a.id.to_string()
}

async fn post(app: &App, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = reqwest::Client::new().post(app.url(path)).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn only_an_approver_decides_once_and_is_recorded_by_token() {
    let app = app().await;
    let mut config = brain::config::Config::default();
    config.paths.data_dir = app.data_dir().to_owned();
    let store = Store::open(&config).await.expect("store");
    let id = held(&app, &store, "a").await;

    let pending: Vec<Value> = reqwest::get(app.url("/api/v1/approvals"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["approval"]["id"], id.as_str());
    assert_eq!(pending[0]["proposal"]["action"], "kubernetes.rollback");

    let approve = format!("/api/v1/approvals/{id}/approve");
    let (status, e) = post(&app, &approve, None, json!({})).await;
    assert_eq!(status, 401, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("Authorization")),
        "{e}"
    );
    let (status, _) = post(&app, &approve, Some("not-a-token-at-all"), json!({})).await;
    assert_eq!(status, 401);
    // The body cannot name the approver.
    let (status, e) = post(&app, &approve, Some(ALICE), json!({"decided_by": "bob"})).await;
    assert_eq!(status, 400, "{e}");

    let (status, d) = post(
        &app,
        &approve,
        Some(ALICE),
        json!({"reason": "matches the runbook"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["approval"]["status"], "approved");
    assert_eq!(d["approval"]["decided_by"], "alice");
    // This service has no Kubernetes configured: the action is attempted
    // once and recorded as failed, not retried.
    assert_eq!(d["proposal"]["status"], "failed", "{d}");

    let (status, e) = post(&app, &approve, Some(BOB), json!({})).await;
    assert_eq!(status, 409, "{e}");
    let reject = format!("/api/v1/approvals/{id}/reject");
    let (status, _) = post(&app, &reject, Some(BOB), json!({"reason": "too late"})).await;
    assert_eq!(status, 409);

    let audit = store.audit_entries(None).await.expect("audit");
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert!(
        actions.contains(&("user:alice", "approval.approve")),
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|(_, a)| *a == "action.execute")
            .count(),
        1,
        "{actions:?}"
    );
    assert!(store.verify_audit().await.expect("verify").is_intact());
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_nothing_runs() {
    let app = app().await;
    let mut config = brain::config::Config::default();
    config.paths.data_dir = app.data_dir().to_owned();
    let store = Store::open(&config).await.expect("store");
    let id = held(&app, &store, "b").await;
    let reject = format!("/api/v1/approvals/{id}/reject");
    let (status, e) = post(&app, &reject, Some(BOB), json!({})).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("reason")), "{e}");
    let (status, d) = post(
        &app,
        &reject,
        Some(BOB),
        json!({"reason": "wrong revision"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["proposal"]["status"], "rejected");
    assert_eq!(d["approval"]["decided_by"], "bob");
    let (status, e) = post(&app, "/api/v1/approvals/nope/approve", Some(BOB), json!({})).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("id")), "{e}");
    store.close().await;
    app.finish().await;
}
