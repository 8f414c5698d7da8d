//! Slack and PagerDuty, end to end, against stand-ins that record every
//! request (Slack and PagerDuty cannot be reached from here): a PagerDuty
//! incident comes in, the agents hold a high-risk action for approval,
//! Slack gets a message with buttons, PagerDuty a note; forged, stale,
//! replayed and non-approver clicks change nothing and are audited; an
//! approver's signed click runs the action in the world replay, redraws
//! the message, acknowledges and then resolves PagerDuty's incident.

use crate::harness::App;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use brain::config::{Approver, Secret};
use brain::ingest::signature::sign_hex;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const PD_WEBHOOK_SECRET: &str = "pd-webhook-secret";
pub(crate) const CHANNEL: &str = "C0INCIDENTS";
/// PagerDuty's id of the incident in the example scenario.
const PD_INCIDENT: &str = "Q2W8K5V1N0XJ3L";

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Value,
    /// The `ts` a Slack stand-in answered with.
    ts: String,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    fn all(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    /// Wait until a request matching `pred` has arrived.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(r) = self.all().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 90 s; received: {:#?}",
                self.all()
                    .iter()
                    .map(|r| format!("{} {} {}", r.method, r.path, r.body))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Answers as Slack's Web API and PagerDuty's REST and Events APIs do,
/// recording each request.
async fn stand_in(
    State(rec): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let ts = {
        let mut all = rec.0.lock().unwrap();
        let ts = format!("1716084221.{:06}", all.len() + 1);
        all.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            headers,
            body: parsed.clone(),
            ts: ts.clone(),
        });
        ts
    };
    match path.as_str() {
        "/api/chat.postMessage" => (
            StatusCode::OK,
            axum::Json(
                json!({"ok": true, "channel": parsed["channel"], "ts": ts, "message": {"type": "message", "text": parsed["text"], "ts": ts}}),
            ),
        ),
        "/api/chat.update" => (
            StatusCode::OK,
            axum::Json(
                json!({"ok": true, "channel": parsed["channel"], "ts": parsed["ts"], "text": parsed["text"]}),
            ),
        ),
        "/api/chat.postEphemeral" => (
            StatusCode::OK,
            axum::Json(json!({"ok": true, "message_ts": ts})),
        ),
        "/events/v2/enqueue" => (
            StatusCode::ACCEPTED,
            axum::Json(
                json!({"status": "success", "message": "Event processed", "dedup_key": parsed["dedup_key"]}),
            ),
        ),
        p if p.starts_with("/pd/incidents/") && p.ends_with("/notes") => (
            StatusCode::CREATED,
            axum::Json(json!({"note": {"id": "PWL7QXS", "content": parsed["note"]["content"]}})),
        ),
        p if p.starts_with("/pd/incidents/") => (
            StatusCode::OK,
            axum::Json(
                json!({"incident": {"id": PD_INCIDENT, "type": "incident", "status": parsed["incident"]["status"]}}),
            ),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error": "unknown_method"})),
        ),
    }
}

async fn start_stand_in() -> (String, Recorder) {
    let rec = Recorder::default();
    let app = Router::new().fallback(stand_in).with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rec)
}

fn scenario() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../evals/scenarios/examples/aws-rds-connections-orders.yaml")
}

/// A request signed as Slack signs it, at `ts`.
fn slack_headers(body: &str, ts: i64, secret: &str) -> Vec<(&'static str, String)> {
    let sig = sign_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes());
    vec![
        ("X-Slack-Request-Timestamp", ts.to_string()),
        ("X-Slack-Signature", format!("v0={sig}")),
        ("Content-Type", "application/x-www-form-urlencoded".into()),
    ]
}

/// A block_actions interaction: a click on `action` for `approval` in the
/// approval message at `message_ts`, as Slack describes it.
pub(crate) fn block_actions(user: &str, action: &str, approval: &str, message_ts: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T0ACME"},
        "api_app_id": "A0CEREBRO",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL, "is_ephemeral": false},
        "trigger_id": "6139042351.2205284112.5f1a8e9b",
        "team": {"id": "T0ACME", "domain": "acme"},
        "channel": {"id": CHANNEL, "name": "incidents"},
        "response_url": "https://hooks.slack.com/actions/T0ACME/1/abc",
        "actions": [{
            "type": "button",
            "action_id": action,
            "block_id": "approval",
            "text": {"type": "plain_text", "text": "Approve", "emoji": true},
            "value": approval,
            "action_ts": "1716084299.000200"
        }]
    })
}

/// The same click as Slack posts it over HTTP: `payload=<json>`.
fn click(user: &str, action: &str, approval: &str, message_ts: &str) -> String {
    let payload = block_actions(user, action, approval, message_ts);
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

async fn post_slack(
    app: &App,
    path: &str,
    body: &str,
    headers: &[(&'static str, String)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(app.url(path))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The audit log's (actor, action) pairs and the incident's proposals,
/// read from the app's database.
async fn records(app: &App) -> (Vec<(String, String)>, Vec<brain::domain::ActionProposal>) {
    let mut config = brain::config::Config::default();
    config.paths.data_dir = app.data_dir().to_owned();
    let store = brain::store::Store::open(&config).await.unwrap();
    let audit = store.audit_entries(None).await.unwrap();
    let incidents = store
        .list_incidents(&brain::store::IncidentFilter::default())
        .await
        .unwrap();
    let proposals = store.proposals_for_incident(incidents[0].id).await.unwrap();
    store.close().await;
    (
        audit.into_iter().map(|e| (e.actor, e.action)).collect(),
        proposals,
    )
}

#[tokio::test]
async fn an_approval_round_trips_through_slack_and_pagerduty() {
    let (base, rec) = start_stand_in().await;
    let b = base.clone();
    let app = App::start(
        move |c| {
            c.agents.enabled = true;
            c.agents.poll_secs = 1;
            c.agents.llm = false;
            c.agents.verify_secs = 0;
            c.knowledge.index_runbooks = false;
            c.tools.replay = Some(scenario());
            c.server.public_url = Some("https://cerebro.acme.test".into());
            c.ingest.pagerduty_secrets = vec![Secret::new(PD_WEBHOOK_SECRET)];
            c.slack.bot_token = Some(Secret::new("xoxb-test-token"));
            c.slack.signing_secret = Some(Secret::new(SIGNING_SECRET));
            c.slack.default_channel = Some(CHANNEL.into());
            c.slack.api_url = format!("{b}/api");
            c.pagerduty.api_token = Some(Secret::new("pd-rest-token"));
            c.pagerduty.from_email = Some("cerebro@acme.test".into());
            c.pagerduty.routing_key = Some(Secret::new("R0UTINGKEY0000000000000000000000"));
            c.pagerduty.api_url = format!("{b}/pd");
            c.pagerduty.events_url = format!("{b}/events/v2/enqueue");
            c.approvals.approvers = vec![Approver {
                name: "alice".into(),
                token: Secret::new("alice-token-0123456789"),
                slack_user_id: Some("U0ALICE".into()),
            }];
        },
        None,
    )
    .await;

    // PagerDuty's webhook opens the incident.
    let s = brain::scenario::Scenario::load(&scenario()).unwrap();
    let body = serde_json::to_string(&s.trigger.payload).unwrap();
    let sig = format!(
        "v1={}",
        sign_hex(PD_WEBHOOK_SECRET.as_bytes(), body.as_bytes())
    );
    let r = reqwest::Client::new()
        .post(app.url("/webhooks/pagerduty"))
        .header("X-PagerDuty-Signature", sig)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The approval's message: the diagnosis, the action, two buttons.
    let posted = rec
        .wait_for("approval message", |r| {
            r.path == "/api/chat.postMessage"
                && r.body["blocks"].to_string().contains("cerebro_approve")
        })
        .await;
    assert_eq!(posted.headers["authorization"], "Bearer xoxb-test-token");
    assert_eq!(posted.body["channel"], CHANNEL);
    let blocks = posted.body["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks[0]["type"], "header");
    let text = posted.body["blocks"].to_string();
    assert!(
        text.contains("db_connection_exhaustion") && text.contains("aws/rds/orders-db"),
        "{text}"
    );
    assert!(
        text.contains("https://cerebro.acme.test/api/v1/incidents/"),
        "{text}"
    );
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    let approve = &actions["elements"][0];
    let reject = &actions["elements"][1];
    assert_eq!(
        (approve["type"].as_str(), approve["action_id"].as_str()),
        (Some("button"), Some("cerebro_approve"))
    );
    assert_eq!(reject["action_id"], "cerebro_reject");
    assert_eq!(approve["style"], "primary");
    assert_eq!(
        approve["confirm"]["confirm"]["text"], "Approve",
        "{approve}"
    );
    assert_eq!(approve["confirm"]["deny"]["text"], "Cancel");
    let approval = approve["value"].as_str().unwrap().to_owned();
    assert_eq!(reject["value"], approval.as_str());
    let message_ts = posted.ts.clone();

    // PagerDuty heard the diagnosis as a note, with its required headers.
    let note = rec
        .wait_for("diagnosis note", |r| {
            r.path == format!("/pd/incidents/{PD_INCIDENT}/notes")
                && r.body["note"]["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("Proposed:"))
        })
        .await;
    assert_eq!(note.method, "POST");
    assert_eq!(note.headers["authorization"], "Token token=pd-rest-token");
    assert_eq!(note.headers["from"], "cerebro@acme.test");
    assert_eq!(
        note.headers["accept"],
        "application/vnd.pagerduty+json;version=2"
    );

    let pending = || async {
        let v: Value = reqwest::get(app.url("/api/v1/approvals"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["approval"]["id"] == approval.as_str())
    };
    assert!(pending().await);
    let now = chrono::Utc::now().timestamp();
    let approve_click = click("U0ALICE", "cerebro_approve", &approval, &message_ts);

    // A forged signature, a stale timestamp: 401, nothing decided.
    let (s, v) = post_slack(
        &app,
        "/slack/interactions",
        &approve_click,
        &slack_headers(&approve_click, now, "not-the-secret"),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("signature"), "{v}");
    let (s, v) = post_slack(
        &app,
        "/slack/interactions",
        &approve_click,
        &slack_headers(&approve_click, now - 600, SIGNING_SECRET),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("5 minutes"), "{v}");
    // Someone who is not an approver: told so, privately; nothing decided.
    let mallory = click("U0MALLORY", "cerebro_approve", &approval, &message_ts);
    let (s, _) = post_slack(
        &app,
        "/slack/interactions",
        &mallory,
        &slack_headers(&mallory, now, SIGNING_SECRET),
    )
    .await;
    assert_eq!(s, 200);
    let told = rec
        .wait_for("ephemeral refusal", |r| r.path == "/api/chat.postEphemeral")
        .await;
    assert_eq!(
        (told.body["user"].as_str(), told.body["channel"].as_str()),
        (Some("U0MALLORY"), Some(CHANNEL))
    );
    assert!(pending().await, "a refused click decided nothing");

    // The approver's click: answered at once, then the action runs.
    let headers = slack_headers(&approve_click, now, SIGNING_SECRET);
    let started = Instant::now();
    let (s, _) = post_slack(&app, "/slack/interactions", &approve_click, &headers).await;
    assert_eq!(s, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "Slack waits 3 s at most"
    );
    // Its replay is refused.
    let (s, v) = post_slack(&app, "/slack/interactions", &approve_click, &headers).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("already received"),
        "{v}"
    );

    // The message is redrawn: who approved, no buttons left to click.
    let updated = rec
        .wait_for("redrawn message", |r| {
            r.path == "/api/chat.update"
                && r.body["blocks"].to_string().contains("Approved by *alice*")
        })
        .await;
    assert_eq!(updated.body["ts"], message_ts.as_str());
    assert!(
        !updated.body["blocks"]
            .to_string()
            .contains("cerebro_approve"),
        "{}",
        updated.body
    );
    // PagerDuty: acknowledged when the action started, resolved once
    // verification saw the database healthy.
    let status_of = |status: &'static str| {
        move |r: &Recorded| {
            r.method == "PUT"
                && r.path == format!("/pd/incidents/{PD_INCIDENT}")
                && r.body["incident"]["status"] == status
        }
    };
    rec.wait_for("acknowledge", status_of("acknowledged")).await;
    let resolved = rec.wait_for("resolve", status_of("resolved")).await;
    assert_eq!(resolved.body["incident"]["type"], "incident_reference");
    let all = rec.all();
    let ack_at = all
        .iter()
        .position(|r| status_of("acknowledged")(r))
        .unwrap();
    let resolve_at = all.iter().position(|r| status_of("resolved")(r)).unwrap();
    assert!(ack_at < resolve_at);

    // A second click, on the decided approval: nothing changes, and the
    // clicker is told so.
    let again = slack_headers(&approve_click, now + 1, SIGNING_SECRET);
    let (s, _) = post_slack(&app, "/slack/interactions", &approve_click, &again).await;
    assert_eq!(s, 200);
    rec.wait_for("told the approval is decided", |r| {
        r.path == "/api/chat.postEphemeral"
            && r.body["user"] == "U0ALICE"
            && r.body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Nothing changed"))
    })
    .await;

    // /cerebro in Slack: the incident, answered to the caller only; a
    // decision by someone who is not an approver is refused.
    let incidents: Value = reqwest::get(app.url("/api/v1/incidents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = incidents[0]["id"].as_str().unwrap().to_owned();
    let command = |text: &str, user: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("command", "/cerebro")
            .append_pair("text", text)
            .append_pair("user_id", user)
            .append_pair("channel_id", CHANNEL)
            .append_pair(
                "response_url",
                "https://hooks.slack.com/commands/T0ACME/1/x",
            )
            .finish()
    };
    let body = command(&format!("incident {id}"), "U0ALICE");
    let (s, v) = post_slack(
        &app,
        "/slack/commands",
        &body,
        &slack_headers(&body, now + 2, SIGNING_SECRET),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["response_type"], "ephemeral");
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("db_connection_exhaustion") && text.contains("executed"),
        "{text}"
    );
    let body = command(&format!("reject {approval} no"), "U0MALLORY");
    let (s, v) = post_slack(
        &app,
        "/slack/commands",
        &body,
        &slack_headers(&body, now + 3, SIGNING_SECRET),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["text"].as_str().unwrap().contains("not an approver"),
        "{v}"
    );

    // The action ran once, in the replayed world, and everything is audited.
    let (audit, proposals) = records(&app).await;
    let executed: Vec<_> = proposals
        .iter()
        .filter(|p| p.status == brain::domain::ProposalStatus::Executed)
        .collect();
    assert_eq!(executed.len(), 1, "{proposals:#?}");
    assert_eq!(executed[0].target.to_string(), "aws/rds/orders-db");
    let count = |actor: &str, action: &str| {
        audit
            .iter()
            .filter(|(a, b)| a == actor && b == action)
            .count()
    };
    assert_eq!(
        count("slack:unverified", "slack.request_refused"),
        3,
        "{audit:#?}"
    );
    assert_eq!(
        count("slack:U0MALLORY", "approval.refused"),
        2,
        "{audit:#?}"
    );
    assert_eq!(count("user:alice", "approval.approve"), 1, "{audit:#?}");
    assert_eq!(
        audit.iter().filter(|(_, b)| b == "action.execute").count(),
        1,
        "{audit:#?}"
    );
    app.finish().await;
}

/// The answers still to give on each path: (status, Retry-After, body).
type Script =
    std::collections::HashMap<String, std::collections::VecDeque<(u16, Option<u64>, Value)>>;

/// A stand-in that answers each request with the next answer scripted
/// for its path (the worker calls notifiers concurrently, so the order
/// across paths is not fixed), recording the requests.
#[derive(Clone, Default)]
struct Scripted {
    answers: Arc<Mutex<Script>>,
    seen: Recorder,
}

impl Scripted {
    fn then(&self, path: &str, status: u16, retry_after: Option<u64>, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .push_back((status, retry_after, body));
    }
}

async fn scripted(
    State(s): State<Scripted>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    s.seen.0.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        ts: String::new(),
    });
    let next = s
        .answers
        .lock()
        .unwrap()
        .get_mut(uri.path())
        .and_then(|q| q.pop_front());
    let (status, after, body) = next.unwrap_or((500, None, json!({"error": "no answer scripted"})));
    let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    if let Some(a) = after {
        r.headers_mut()
            .insert("retry-after", a.to_string().parse().unwrap());
    }
    r
}

/// Slack rate-limits, then refuses for good; PagerDuty pages a human for
/// an incident it did not open. Each outcome lands in the outbox as the
/// worker recorded it: retried when the 429 said, given up on a refusal,
/// delivered otherwise; nothing is lost or sent twice.
#[tokio::test]
async fn a_rate_limited_or_refusing_notifier_is_retried_or_given_up_and_nothing_is_lost() {
    use brain::backends::{Notification, Notifier};
    use std::collections::BTreeMap;
    let s = Scripted::default();
    let app = Router::new().fallback(scripted).with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut config = brain::config::Config::default();
    config.paths.data_dir = dir.path().to_owned();
    config.slack.bot_token = Some(Secret::new("xoxb-test-token"));
    config.slack.signing_secret = Some(Secret::new(SIGNING_SECRET));
    config.slack.default_channel = Some(CHANNEL.into());
    config.slack.api_url = format!("{base}/api");
    config.pagerduty.routing_key = Some(Secret::new("R0UTINGKEY0000000000000000000000"));
    config.pagerduty.events_url = format!("{base}/events/v2/enqueue");
    let store = brain::store::Store::open(&config).await.unwrap();
    let incident = store
        .create_incident(brain::store::NewIncident {
            org_id: "default".into(),
            title: "checkout p99 above 2s".into(),
            severity: brain::domain::Severity::Critical,
            service: Some("checkout".into()),
            group_key: "checkout".into(),
        })
        .await
        .unwrap();
    let notifiers: BTreeMap<String, Arc<dyn Notifier>> =
        web::notify::notifiers(&config, &store).unwrap();
    assert_eq!(notifiers.keys().collect::<Vec<_>>(), ["pagerduty", "slack"]);
    let outbox = brain::backends::Outbox::new(store.clone(), notifiers.keys().cloned().collect());
    let escalation = Notification::Escalation {
        incident_id: incident.id,
        reason: "nobody decided on kubernetes.rollback in time".into(),
    };
    outbox.notify(&escalation).await.unwrap();
    let notifiers = Arc::new(notifiers);

    // Slack: 429 with Retry-After: 7. PagerDuty: accepted.
    s.then(
        "/api/chat.postMessage",
        429,
        Some(7),
        json!({"ok": false, "error": "ratelimited"}),
    );
    s.then(
        "/events/v2/enqueue",
        202,
        None,
        json!({"status": "success", "dedup_key": format!("cerebro-{}", incident.id)}),
    );
    assert_eq!(
        web::notify::deliver_once(&store, &notifiers).await.unwrap(),
        2
    );
    let sent = s.seen.all();
    let page = sent
        .iter()
        .find(|r| r.path == "/events/v2/enqueue")
        .expect("paged");
    assert_eq!(page.body["event_action"], "trigger");
    assert_eq!(page.body["routing_key"], "R0UTINGKEY0000000000000000000000");
    assert_eq!(page.body["dedup_key"], format!("cerebro-{}", incident.id));
    assert_eq!(page.body["payload"]["severity"], "critical");
    assert_eq!(page.body["payload"]["source"], "cerebro");
    assert!(
        page.body["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("nobody decided")
    );
    let slack = sent
        .iter()
        .find(|r| r.path == "/api/chat.postMessage")
        .expect("tried Slack");
    assert_eq!(slack.body["channel"], CHANNEL);
    // Slack waits its 7 s; PagerDuty's is done.
    assert_eq!(
        store.notification_backlog().await.unwrap(),
        [("slack".to_owned(), 1)]
    );
    assert!(
        store
            .claim_notifications(10, chrono::Duration::seconds(1))
            .await
            .unwrap()
            .is_empty()
    );

    // Seven seconds on, Slack refuses for good: given up, not retried.
    tokio::time::sleep(Duration::from_millis(7100)).await;
    s.then(
        "/api/chat.postMessage",
        200,
        None,
        json!({"ok": false, "error": "channel_not_found"}),
    );
    assert_eq!(
        web::notify::deliver_once(&store, &notifiers).await.unwrap(),
        1
    );
    assert!(store.notification_backlog().await.unwrap().is_empty());
    assert_eq!(
        web::notify::deliver_once(&store, &notifiers).await.unwrap(),
        0
    );
    assert_eq!(
        s.seen.all().len(),
        3,
        "PagerDuty was paged once, Slack tried twice"
    );
    store.close().await;
}
