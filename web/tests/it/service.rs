//! The service in-process: routes, error shapes, layers.

use crate::harness::App;
use serde_json::Value;

async fn get(app: &App, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(app.url(path)).await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

async fn ready_on(app: App, kind: &str) {
    let (status, _, body) = get(&app, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["database"]["kind"], kind);
    assert_eq!(
        v["database"]["migrations_applied"],
        v["database"]["migrations_expected"]
    );
    app.finish().await;
}

#[tokio::test]
async fn readiness_reports_a_migrated_sqlite_database() {
    ready_on(App::sqlite().await, "sqlite").await;
}

#[tokio::test]
async fn readiness_reports_a_migrated_postgres_database() {
    ready_on(App::postgres().await, "postgres").await;
}

#[tokio::test]
async fn readiness_fails_when_the_schema_loses_its_migrations() {
    let app = App::postgres().await;
    let schema = app.schema.clone().expect("schema");
    crate::harness::drop_schema(&schema).await;
    let (status, _, body) = get(&app, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "not_ready");
    app.finish().await;
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route() {
    let app = App::sqlite().await;
    let (status, _, body) = get(&app, "/api/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/config/validate"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());

    let (status, headers, page) = get(&app, "/api/docs").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(page.contains("/api/v1/config/validate") && page.contains("ErrorBody"));
    assert!(
        !page.contains("<script"),
        "the reference page must work without scripts or a CDN"
    );
    app.finish().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_not_raw_path() {
    let app = App::sqlite().await;
    for _ in 0..3 {
        get(&app, "/healthz").await;
    }
    get(&app, "/no/such/path/123").await;
    let (status, headers, text) = get(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let healthz = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .expect("healthz counter");
    let n: f64 = healthz
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(n >= 3.0, "{healthz}");
    assert!(text.contains("route=\"unmatched\""));
    assert!(
        !text.contains("/no/such/path"),
        "raw paths must not become labels"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    app.finish().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_unknown_routes_answer_json_404() {
    let app = App::sqlite().await;
    let (status, headers, body) = get(&app, "/api/v1/nothing").await;
    assert_eq!(status, 404);
    assert!(headers.contains_key("x-request-id"));
    let v: Value = serde_json::from_str(&body).expect("json body");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("/api/v1/nothing"))
    );

    let client = reqwest::Client::new();
    let r = client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("request");
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    app.finish().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_naming_the_body() {
    let app = App::start(|c| c.server.body_limit_bytes = 4096, None).await;
    let client = reqwest::Client::new();
    let r = client
        .post(app.url("/api/v1/config/validate"))
        .body(vec![b'#'; 10_000])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["field"], "body");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("4096")),
        "{v}"
    );
    app.finish().await;
}

#[tokio::test]
async fn config_validation_names_the_bad_key_and_accepts_a_good_file() {
    let app = App::sqlite().await;
    let client = reqwest::Client::new();
    let post = |body: &'static str| {
        client
            .post(app.url("/api/v1/config/validate"))
            .body(body)
            .send()
    };
    let bad: Value = post("[database]\nmax_connections = 0\n")
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["key"], "database.max_connections");
    let typo: Value = post("[server]\nlisen = \"x\"\n")
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert!(
        typo["error"]
            .as_str()
            .is_some_and(|e| e.contains("lisen") && e.contains("line 2")),
        "{typo}"
    );
    let good: Value = post("[server]\nrequest_timeout_secs = 10\n")
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(good["valid"], true);
    let binary = client
        .post(app.url("/api/v1/config/validate"))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .expect("req");
    assert_eq!(binary.status().as_u16(), 400);
    app.finish().await;
}

#[test]
fn a_5xx_body_carries_only_an_error_id() {
    use axum::response::IntoResponse;
    let resp = web::ApiError::Internal(anyhow::anyhow!("password=hunter2 at db.internal:5432"))
        .into_response();
    assert_eq!(resp.status().as_u16(), 500);
    let body =
        futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 10_000)).expect("body");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"], "internal");
    assert!(v["error_id"].as_str().is_some_and(|id| id.len() == 32));
    assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_fast_503_until_a_slot_frees() {
    let app = App::start(|c| c.server.max_connections = 1, None).await;
    // The first connection takes the only slot, idle.
    let hog = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let quick = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("client");
    // Over the cap, a client is told at once to come back, with a body it
    // can read, rather than left to time out in the backlog.
    let refused = quick
        .post(app.url("/api/v1/alerts"))
        .json(&serde_json::json!({"alerts": [{"labels": {"alertname": "X"}}]}))
        .send()
        .await
        .expect("an answer, not a timeout");
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = refused.json().await.expect("json body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("server.max_connections")),
        "{body}"
    );
    drop(hog);
    let mut served = false;
    for _ in 0..20 {
        let r = quick.get(app.url("/healthz")).send().await.expect("answer");
        if r.status().is_success() {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "once the slot frees, the next connection is served");
    let metrics = quick
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("cerebro_connections_refused_total"),
        "refusals are counted"
    );
    app.finish().await;
}
