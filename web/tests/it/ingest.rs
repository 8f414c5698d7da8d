//! Ingestion over HTTP: every source, signatures, redelivery, grouping and
//! the incident API, on SQLite and PostgreSQL.

use crate::harness::App;
use brain::config::Secret;
use brain::ingest::signature::sign_hex;
use reqwest::Client;
use serde_json::{Value, json};

const AM_FIRING: &str = include_str!("../fixtures/alertmanager-firing.json");
const AM_RESOLVED: &str = include_str!("../fixtures/alertmanager-resolved.json");
const GRAFANA: &str = include_str!("../fixtures/grafana-firing.json");
const PD_TRIGGERED: &str = include_str!("../fixtures/pagerduty-incident-triggered.json");
const GH_DEPLOY: &str = include_str!("../fixtures/github-deployment-status.json");
const GH_MERGED: &str = include_str!("../fixtures/github-pull-request-merged.json");

const PD_SECRET: &str = "pd-webhook-secret";
const GH_SECRET: &str = "gh-webhook-secret";

async fn app(postgres: bool) -> App {
    let secrets = |c: &mut brain::config::Config| {
        c.ingest.pagerduty_secrets = vec![Secret::new("pd-old-secret"), Secret::new(PD_SECRET)];
        c.ingest.github_secrets = vec![Secret::new(GH_SECRET)];
    };
    if postgres {
        let schema = crate::harness::fresh_schema();
        let s = schema.clone();
        App::start(
            move |c| {
                c.database.url = Some(brain::config::DatabaseUrl::new(
                    crate::harness::postgres_url(),
                ));
                c.database.schema = Some(s);
                secrets(c);
            },
            Some(schema),
        )
        .await
    } else {
        App::start(secrets, None).await
    }
}

async fn post(app: &App, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = Client::new().post(app.url(path)).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &App, path: &str) -> (u16, Value) {
    let r = reqwest::get(app.url(path)).await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn alertmanager_round_trip(postgres: bool) {
    let app = app(postgres).await;
    let (s, v) = post(&app, "/webhooks/alertmanager", AM_FIRING, &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alerts"][0]["outcome"], "opened");
    let id = v["alerts"][0]["incident_id"]
        .as_str()
        .expect("incident id")
        .to_owned();

    // Alertmanager retries the same body: nothing changes.
    let (s, v) = post(&app, "/webhooks/alertmanager", AM_FIRING, &[]).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("duplicate")));

    let (_, list) = get(&app, "/api/v1/incidents?status=open").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (_, detail) = get(&app, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(detail["incident"]["service"], "node-exporter");
    assert_eq!(detail["alerts"][0]["count"], 1);
    assert_eq!(
        detail["alerts"][0]["raw"]["generatorURL"]
            .as_str()
            .map(|u| u.contains("19090")),
        Some(true)
    );

    let (s, v) = post(&app, "/webhooks/alertmanager", AM_RESOLVED, &[]).await;
    assert_eq!(
        (s, v["alerts"][0]["outcome"].as_str()),
        (200, Some("resolved"))
    );
    let (_, detail) = get(&app, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(detail["incident"]["status"], "resolved");
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "status_changed",
            "alert_received",
            "alert_resolved",
            "status_changed"
        ]
    );
    app.finish().await;
}

#[tokio::test]
async fn alertmanager_firing_then_resolved_opens_and_resolves_one_incident_on_sqlite() {
    alertmanager_round_trip(false).await;
}

#[tokio::test]
async fn alertmanager_firing_then_resolved_opens_and_resolves_one_incident_on_postgres() {
    alertmanager_round_trip(true).await;
}

#[tokio::test]
async fn a_malformed_webhook_is_a_400_naming_the_field_and_stores_nothing() {
    let app = app(false).await;
    let (s, v) = post(
        &app,
        "/webhooks/alertmanager",
        r#"{"version":"4","status":"firing","alerts":[{"status":"firing"}]}"#,
        &[],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["field"], "alerts[0]");
    let (s, v) = post(&app, "/webhooks/alertmanager", "{not json", &[]).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("body")));
    let (s, v) = post(
        &app,
        "/api/v1/alerts",
        r#"[{"title":"a","severity":"info"},{"title":"b","severity":"loud"}]"#,
        &[],
    )
    .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("[1].severity")));
    let (_, list) = get(&app, "/api/v1/incidents").await;
    assert_eq!(list, json!([]), "a rejected request leaves nothing behind");
    app.finish().await;
}

#[tokio::test]
async fn grafana_alerts_open_an_incident_and_keep_their_dashboard_links() {
    let app = app(false).await;
    let (s, v) = post(&app, "/webhooks/grafana", GRAFANA, &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alerts"][0]["outcome"], "opened");
    assert_eq!(v["alerts"][1]["outcome"], "ignored_resolution");
    let id = v["alerts"][0]["incident_id"].as_str().expect("id");
    let (_, d) = get(&app, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(d["incident"]["severity"], "critical");
    assert!(
        d["alerts"][0]["raw"]["dashboardURL"]
            .as_str()
            .is_some_and(|u| u.ends_with("orgId=1"))
    );
    app.finish().await;
}

#[tokio::test]
async fn pagerduty_requests_without_a_valid_signature_are_401_and_not_stored() {
    let app = app(false).await;
    let wrong = format!(
        "v1={}",
        sign_hex(b"not-our-secret", PD_TRIGGERED.as_bytes())
    );
    let tampered_body = PD_TRIGGERED.replace("orders-api: 5xx", "orders-api: 4xx");
    let right_for_original = format!(
        "v1={}",
        sign_hex(PD_SECRET.as_bytes(), PD_TRIGGERED.as_bytes())
    );
    for (body, headers) in [
        (PD_TRIGGERED, vec![]),
        (
            PD_TRIGGERED,
            vec![("X-PagerDuty-Signature", wrong.as_str())],
        ),
        (
            PD_TRIGGERED,
            vec![("X-PagerDuty-Signature", "v1=zz-not-hex")],
        ),
        (
            tampered_body.as_str(),
            vec![("X-PagerDuty-Signature", right_for_original.as_str())],
        ),
    ] {
        let (s, v) = post(&app, "/webhooks/pagerduty", body, &headers).await;
        assert_eq!(s, 401, "{v}");
        assert!(v["error"].is_string());
    }
    let (_, list) = get(&app, "/api/v1/incidents").await;
    assert_eq!(list, json!([]));
    app.finish().await;
}

#[tokio::test]
async fn a_signed_pagerduty_event_opens_an_incident_once_even_when_redelivered() {
    let app = app(false).await;
    // During a rotation PagerDuty sends a signature per secret.
    let sig = format!(
        "v1={}, v1={}",
        sign_hex(b"rotated-away", PD_TRIGGERED.as_bytes()),
        sign_hex(PD_SECRET.as_bytes(), PD_TRIGGERED.as_bytes())
    );
    let headers = [("X-PagerDuty-Signature", sig.as_str())];
    let (s, v) = post(&app, "/webhooks/pagerduty", PD_TRIGGERED, &headers).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alerts"][0]["outcome"], "opened");
    let (s, v) = post(&app, "/webhooks/pagerduty", PD_TRIGGERED, &headers).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("duplicate")));
    let (_, list) = get(&app, "/api/v1/incidents").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["severity"], "critical");
    assert_eq!(list[0]["service"], "orders-api");
    app.finish().await;
}

#[tokio::test]
async fn a_github_deploy_becomes_a_suspect_of_the_incident_that_follows() {
    let app = app(true).await;
    let sign = |b: &str| format!("sha256={}", sign_hex(GH_SECRET.as_bytes(), b.as_bytes()));
    let (s, _) = post(
        &app,
        "/webhooks/github",
        GH_DEPLOY,
        &[("X-GitHub-Event", "deployment_status")],
    )
    .await;
    assert_eq!(s, 401, "unsigned GitHub events are refused");
    let deploy_sig = sign(GH_DEPLOY);
    let headers = [
        ("X-GitHub-Event", "deployment_status"),
        ("X-GitHub-Delivery", "d-1"),
        ("X-Hub-Signature-256", deploy_sig.as_str()),
    ];
    let (s, v) = post(&app, "/webhooks/github", GH_DEPLOY, &headers).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = post(&app, "/webhooks/github", GH_DEPLOY, &headers).await;
    assert_eq!(v["status"], "duplicate");
    let unmerged = GH_MERGED.replace("\"merged\": true", "\"merged\": false");
    let unmerged_sig = sign(&unmerged);
    let (s, v) = post(
        &app,
        "/webhooks/github",
        &unmerged,
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-Hub-Signature-256", unmerged_sig.as_str()),
        ],
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ignored")));

    let (_, feed) = get(&app, "/api/v1/changes?service=checkout").await;
    assert_eq!(feed.as_array().map(Vec::len), Some(1));
    assert_eq!(feed[0]["kind"], "deploy");

    // The fixture's deploy is from 2026-11-20; an alert that started within
    // the look-back window of it names it as a suspect.
    let alert = json!({"title": "checkout 5xx above 2%", "severity": "critical", "service": "checkout",
        "starts_at": "2026-11-20T09:30:00Z"});
    let (s, v) = post(&app, "/api/v1/alerts", &alert.to_string(), &[]).await;
    assert_eq!(s, 200, "{v}");
    let id = v["alerts"][0]["incident_id"].as_str().expect("id");
    let (_, d) = get(&app, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        d["suspects"][0]["description"]
            .as_str()
            .map(|s| s.contains("v2.14.0")),
        Some(true),
        "{d}"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_incident_api_validates_ids_and_filters_and_resolves_once() {
    let app = app(false).await;
    let (s, v) = get(&app, "/api/v1/incidents/not-a-uuid").await;
    assert_eq!((s, v["field"].as_str()), (400, Some("id")));
    let (s, _) = get(
        &app,
        "/api/v1/incidents/01a20b32-ea29-75b7-9aeb-89e37ed3ce58",
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = get(&app, "/api/v1/incidents?limit=0").await;
    assert_eq!((s, v["field"].as_str()), (400, Some("limit")));
    let (s, v) = get(&app, "/api/v1/incidents?status=on_fire").await;
    assert_eq!((s, v["field"].as_str()), (400, Some("status")));

    let (_, v) = post(
        &app,
        "/api/v1/alerts",
        r#"{"title":"queue lag","severity":"warning","service":"ingest"}"#,
        &[("Idempotency-Key", "k1")],
    )
    .await;
    let id = v["alerts"][0]["incident_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, v) = post(
        &app,
        "/api/v1/alerts",
        r#"{"title":"queue lag","severity":"warning","service":"ingest"}"#,
        &[("Idempotency-Key", "k1")],
    )
    .await;
    assert_eq!(v["status"], "duplicate");
    let (s, v) = post(
        &app,
        &format!("/api/v1/incidents/{id}/resolve"),
        r#"{"reason":"lag drained"}"#,
        &[],
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("resolved")), "{v}");
    let (s, _) = post(&app, &format!("/api/v1/incidents/{id}/resolve"), "", &[]).await;
    assert_eq!(s, 409);
    let (_, d) = get(&app, &format!("/api/v1/incidents/{id}")).await;
    let last = d["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["message"].as_str(), last["actor"].as_str()),
        (Some("lag drained"), Some("api"))
    );
    app.finish().await;
}

#[tokio::test]
async fn metrics_report_the_noise_reduction_per_source() {
    // A process of its own: the metrics registry is process-wide.
    let p = crate::harness::Proc::serve(&[], &[]);
    let client = Client::new();
    let url = |path: &str| format!("http://{}{path}", p.addr);
    for i in 0..6 {
        let body =
            json!({"title": format!("disk {i}"), "severity": "warning", "service": "storage"});
        let r = client
            .post(url("/api/v1/alerts"))
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    let text = client
        .get(url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let line = text
        .lines()
        .find(|l| l.starts_with("cerebro_alert_noise_reduction_ratio{source=\"generic\"}"))
        .unwrap_or_else(|| panic!("no noise gauge in:\n{text}"));
    let ratio: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert_eq!(
        ratio, 6.0,
        "six alerts of one service, one incident: {line}"
    );
    assert!(
        text.contains("cerebro_alerts_received_total{source=\"generic\",outcome=\"joined\"} 5"),
        "{text}"
    );
}

#[tokio::test]
async fn beyond_the_in_flight_limit_senders_get_429_with_retry_after() {
    use tokio::io::AsyncWriteExt;
    let app = App::start(|c| c.ingest.max_in_flight = 1, None).await;
    // One sender holds the only slot by sending its body slowly.
    let mut slow = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let body = r#"{"title":"slow","severity":"info","service":"s"}"#;
    slow.write_all(
        format!(
            "POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..5]
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = Client::new()
        .post(app.url("/api/v1/alerts"))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    // Reads are not limited by ingestion load.
    assert_eq!(
        reqwest::get(app.url("/api/v1/incidents"))
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
    slow.write_all(&body.as_bytes()[5..]).await.expect("finish");
    let mut resp = vec![0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut slow, &mut resp)
        .await
        .expect("read");
    assert!(String::from_utf8_lossy(&resp[..n]).starts_with("HTTP/1.1 200"));
    let r = Client::new()
        .post(app.url("/api/v1/alerts"))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "the slot is free again");
    app.finish().await;
}
