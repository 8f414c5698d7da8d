//! Slack's Socket Mode, end to end over a real WebSocket: a stand-in for
//! Slack on loopback serves `apps.connections.open` and the Web API, and
//! accepts the WebSocket cerebro opens with the app token (no signing
//! secret, no public endpoint). It greets with `hello` and sends envelopes
//! as Slack does; the test reads the acknowledgements, the decisions in
//! the store and the audit log.

use crate::approvals::held;
use crate::harness::App;
use crate::slack::{CHANNEL, block_actions};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use brain::config::{Approver, Secret};
use brain::domain::ApprovalStatus;
use brain::store::Store;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const APP_TOKEN: &str = "xapp-1-A0CEREBRO-1716084221-0123456789abcdef";

/// What the stand-in saw and will answer.
#[derive(Default)]
struct Seen {
    /// `apps.connections.open` calls: when, and their Authorization.
    opens: Vec<(Instant, String)>,
    /// Web API calls other than that one: method and JSON body.
    calls: Vec<(String, Value)>,
    /// Errors to answer `apps.connections.open` with, before the URLs.
    refusals: VecDeque<&'static str>,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    ws_addr: std::net::SocketAddr,
}

/// A WebSocket cerebro opened, from the stand-in's side.
struct Link {
    ws: WebSocketStream<TcpStream>,
    /// The path and query it connected to (which URL it was given).
    path: String,
}

struct StandIn {
    api: String,
    shared: Shared,
    links: mpsc::Receiver<Link>,
}

async fn web_api(
    State(s): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let mut seen = s.seen.lock().unwrap();
    let method = uri.path().trim_start_matches("/api/").to_owned();
    if method != "apps.connections.open" {
        seen.calls
            .push((method, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        return axum::Json(json!({"ok": true, "channel": CHANNEL, "ts": "1716084221.000100"}));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.opens.push((Instant::now(), auth));
    if let Some(error) = seen.refusals.pop_front() {
        return axum::Json(json!({"ok": false, "error": error}));
    }
    let ticket = seen.opens.len();
    axum::Json(json!({
        "ok": true,
        "url": format!("ws://{}/link/?ticket={ticket}&app_id=A0CEREBRO", s.ws_addr),
    }))
}

/// Accept WebSockets as Slack's link servers do: greet each with hello
/// and hand it to the test.
async fn accept_links(listener: TcpListener, links: mpsc::Sender<Link>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let path = Arc::new(Mutex::new(String::new()));
        let p = path.clone();
        // The error type is tungstenite's, not ours to shrink.
        #[allow(clippy::result_large_err)]
        let record = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                           resp| {
            *p.lock().unwrap() = req.uri().to_string();
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
            continue;
        };
        let hello = json!({
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "applink-7", "build_number": 118, "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0CEREBRO"}
        });
        ws.send(Message::text(hello.to_string())).await.unwrap();
        let path = path.lock().unwrap().clone();
        if links.send(Link { ws, path }).await.is_err() {
            return;
        }
    }
}

async fn stand_in(refusals: &[&'static str]) -> StandIn {
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shared = Shared {
        seen: Arc::default(),
        ws_addr: ws_listener.local_addr().unwrap(),
    };
    shared.seen.lock().unwrap().refusals = refusals.iter().copied().collect();
    let (tx, links) = mpsc::channel(4);
    tokio::spawn(accept_links(ws_listener, tx));
    let app = Router::new().fallback(web_api).with_state(shared.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    StandIn { api, shared, links }
}

impl StandIn {
    /// The next WebSocket cerebro opens.
    async fn link(&mut self) -> Link {
        tokio::time::timeout(Duration::from_secs(20), self.links.recv())
            .await
            .expect("cerebro connected within 20 s")
            .expect("the stand-in accepts")
    }

    fn opens(&self) -> Vec<(Instant, String)> {
        self.shared.seen.lock().unwrap().opens.clone()
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.shared.seen.lock().unwrap().calls.clone()
    }

    /// Wait until the Web API got a call matching `pred`.
    async fn wait_for_call(&self, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((_, body)) = self.calls().into_iter().find(|(m, b)| pred(m, b)) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 20 s: {:?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Link {
    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next JSON message from cerebro; its pings are answered on the
    /// way.
    async fn next_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a message within 10 s")
                .expect("the link is open")
                .unwrap();
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Send an envelope and read its acknowledgement, timed.
    async fn deliver(&mut self, envelope: Value) -> (Value, Duration) {
        let started = Instant::now();
        self.send(envelope.clone()).await;
        let ack = self.next_json().await;
        assert_eq!(ack["envelope_id"], envelope["envelope_id"], "{ack}");
        (ack, started.elapsed())
    }

    /// Whether cerebro closed this link within `secs`.
    async fn closed_within(&mut self, secs: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// A click on Approve, as Slack wraps it in an `interactive` envelope.
fn click(envelope_id: &str, retry_attempt: u64, user: &str, approval: &str) -> Value {
    json!({
        "envelope_id": envelope_id,
        "type": "interactive",
        "accepts_response_payload": false,
        "retry_attempt": retry_attempt,
        "retry_reason": if retry_attempt > 0 { "timeout" } else { "" },
        "payload": block_actions(user, "cerebro_approve", approval, "1716084221.000100"),
    })
}

/// `/cerebro <text>`, as Slack wraps it in a `slash_commands` envelope.
fn command(envelope_id: &str, user: &str, text: &str) -> Value {
    json!({
        "envelope_id": envelope_id,
        "type": "slash_commands",
        "accepts_response_payload": true,
        "payload": {
            "token": "verification-token-unused",
            "team_id": "T0ACME",
            "team_domain": "acme",
            "channel_id": CHANNEL,
            "channel_name": "incidents",
            "user_id": user,
            "user_name": user.to_lowercase(),
            "command": "/cerebro",
            "text": text,
            "api_app_id": "A0CEREBRO",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T0ACME/1/x",
            "trigger_id": "6139042351.2205284112.77aa"
        }
    })
}

/// cerebro with the bot and Socket Mode on, and no signing secret.
async fn app(api: &str) -> App {
    let api = api.to_owned();
    App::start(
        move |c| {
            c.slack.bot_token = Some(Secret::new("xoxb-test-token"));
            c.slack.app_token = Some(Secret::new(APP_TOKEN));
            c.slack.default_channel = Some(CHANNEL.into());
            c.slack.api_url = api;
            c.approvals.approvers = vec![Approver {
                name: "alice".into(),
                token: Secret::new("alice-token-0123456789"),
                slack_user_id: Some("U0ALICE".into()),
            }];
        },
        None,
    )
    .await
}

async fn store_of(app: &App) -> Store {
    let mut config = brain::config::Config::default();
    config.paths.data_dir = app.data_dir().to_owned();
    Store::open(&config).await.unwrap()
}

/// How often the audit log holds (actor, action).
async fn audited(store: &Store, actor: &str, action: &str) -> usize {
    store
        .audit_entries(None)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.actor == actor && e.action == action)
        .count()
}

async fn status_of(store: &Store, approval: &str) -> ApprovalStatus {
    store
        .get_approval(approval.parse().unwrap())
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn a_click_over_socket_mode_is_acknowledged_refused_or_decided_and_never_decided_twice() {
    let mut slack = stand_in(&[]).await;
    let app = app(&slack.api).await;
    let mut link = slack.link().await;
    assert!(link.path.starts_with("/link/?ticket=1"), "{}", link.path);
    let opens = slack.opens();
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].1, format!("Bearer {APP_TOKEN}"));
    // Without a signing secret the public endpoints stay closed.
    let r = reqwest::Client::new()
        .post(app.url("/slack/interactions"))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("slack.signing_secret"));

    let store = store_of(&app).await;
    let approval = held(&app, &store, "socket-click").await;

    // Someone who is not an approver: acknowledged, told privately,
    // audited, nothing decided.
    let (_, took) = link
        .deliver(click("env-mallory", 0, "U0MALLORY", &approval))
        .await;
    assert!(took < Duration::from_secs(3), "Slack waits 3 s: {took:?}");
    let told = slack
        .wait_for_call("the refusal", |m, b| {
            m == "chat.postEphemeral" && b["user"] == "U0MALLORY"
        })
        .await;
    assert_eq!(told["channel"], CHANNEL);
    assert_eq!(status_of(&store, &approval).await, ApprovalStatus::Pending);
    assert_eq!(
        audited(&store, "slack:U0MALLORY", "approval.refused").await,
        1
    );

    // The approver: acknowledged at once, then decided.
    let (ack, took) = link
        .deliver(click("env-alice", 0, "U0ALICE", &approval))
        .await;
    assert!(took < Duration::from_secs(3), "Slack waits 3 s: {took:?}");
    assert_eq!(ack, json!({"envelope_id": "env-alice"}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&store, &approval).await != ApprovalStatus::Approved {
        assert!(Instant::now() < deadline, "not approved within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let decided = store.get_approval(approval.parse().unwrap()).await.unwrap();
    assert_eq!(decided.decided_by.as_deref(), Some("alice"));

    // Slack retries the same envelope: acknowledged, refused as seen
    // before (audited), not decided again, and nobody is told "nothing
    // changed" as a second decision would.
    let (ack, _) = link
        .deliver(click("env-alice", 1, "U0ALICE", &approval))
        .await;
    assert_eq!(ack, json!({"envelope_id": "env-alice"}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while audited(&store, "slack:socket", "slack.request_refused").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the retry was not refused within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(audited(&store, "user:alice", "approval.approve").await, 1);
    assert_eq!(
        audited(&store, "slack:socket", "slack.request_refused").await,
        1
    );
    assert!(
        !slack
            .calls()
            .iter()
            .any(|(m, b)| m == "chat.postEphemeral" && b["user"] == "U0ALICE"),
        "{:?}",
        slack.calls()
    );
    assert!(store.verify_audit().await.unwrap().is_intact());
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn a_cerebro_command_over_socket_mode_is_answered_in_its_acknowledgement() {
    let mut slack = stand_in(&[]).await;
    let app = app(&slack.api).await;
    let mut link = slack.link().await;
    let store = store_of(&app).await;
    let approval = held(&app, &store, "socket-command").await;

    let (ack, took) = link.deliver(command("env-status", "U0BOB", "status")).await;
    assert!(took < Duration::from_secs(3), "Slack waits 3 s: {took:?}");
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    let text = ack["payload"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Open incidents:") && text.contains("checkout 5xx"),
        "{text}"
    );
    // A decision by someone who is not an approver is refused in the
    // answer, and audited.
    let (ack, _) = link
        .deliver(command(
            "env-reject",
            "U0BOB",
            &format!("reject {approval} no"),
        ))
        .await;
    let text = ack["payload"]["text"].as_str().unwrap();
    assert!(text.contains("not an approver"), "{text}");
    assert_eq!(audited(&store, "slack:U0BOB", "approval.refused").await, 1);
    assert_eq!(status_of(&store, &approval).await, ApprovalStatus::Pending);
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn a_refresh_request_opens_a_new_connection_that_is_served() {
    let mut slack = stand_in(&[]).await;
    let app = app(&slack.api).await;
    let mut first = slack.link().await;
    first
        .send(json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "applink-7"}}))
        .await;
    let mut second = slack.link().await;
    assert!(
        second.path.starts_with("/link/?ticket=2"),
        "{}",
        second.path
    );
    assert_eq!(slack.opens().len(), 2, "a fresh URL was asked for");
    assert!(first.closed_within(5).await, "the old link was closed");
    let (ack, _) = second
        .deliver(command("env-after-refresh", "U0ALICE", "status"))
        .await;
    assert_eq!(ack["payload"]["text"], "No open incidents.", "{ack}");
    // Stopping the service closes the link promptly.
    let started = Instant::now();
    app.finish().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(second.closed_within(2).await, "the link was closed on stop");
}

#[tokio::test]
async fn a_silent_link_is_given_up_and_reopened() {
    let mut slack = stand_in(&[]).await;
    let app = app(&slack.api).await;
    // Slack's side goes quiet: it reads nothing (so answers no ping)
    // and sends nothing.
    let mut silent = slack.link().await;
    let started = Instant::now();
    let mut fresh = tokio::time::timeout(Duration::from_secs(60), slack.links.recv())
        .await
        .expect("a new link within 60 s")
        .unwrap();
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(25),
        "given up too early: {after:?}"
    );
    assert_eq!(slack.opens().len(), 2);
    // cerebro had pinged the silent link before giving it up.
    let first = tokio::time::timeout(Duration::from_secs(5), silent.ws.next())
        .await
        .unwrap();
    assert!(matches!(first, Some(Ok(Message::Ping(_)))), "{first:?}");
    let (ack, _) = fresh
        .deliver(command("env-after-silence", "U0ALICE", "status"))
        .await;
    assert_eq!(ack["payload"]["text"], "No open incidents.", "{ack}");
    app.finish().await;
}

#[tokio::test]
async fn a_refused_app_token_is_retried_slowly_while_the_service_keeps_serving() {
    let mut slack = stand_in(&["invalid_auth"]).await;
    let app = app(&slack.api).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while slack.opens().is_empty() {
        assert!(
            Instant::now() < deadline,
            "apps.connections.open not called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    // Retried, not given up: once the token is accepted, the link is up.
    let mut link = slack.link().await;
    let opens = slack.opens();
    assert_eq!(opens.len(), 2);
    let pause = opens[1].0 - opens[0].0;
    assert!(
        pause >= Duration::from_secs(3),
        "a refused token is not retried in a hot loop: {pause:?}"
    );
    let (ack, _) = link.deliver(command("env-ok", "U0ALICE", "help")).await;
    assert!(
        ack["payload"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Usage:"),
        "{ack}"
    );
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    app.finish().await;
}
