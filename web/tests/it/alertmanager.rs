//! A real Alertmanager (the Debian package) with cerebro as its webhook
//! receiver: alerts posted to Alertmanager's API open an incident in cerebro,
//! and their resolution resolves it.

use crate::harness::App;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn poll<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn alerts_through_a_real_alertmanager_open_and_resolve_an_incident() {
    let app = App::sqlite().await;
    let dir = tempfile::tempdir().expect("dir");
    let (_am, am) =
        evals::services::start_alertmanager(dir.path(), &app.url("/webhooks/alertmanager"))
            .await
            .expect("start alertmanager");
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let alert = |ends: chrono::DateTime<chrono::Utc>| {
        json!([{
            "labels": {"alertname": "CheckoutErrorBudgetBurn", "service": "checkout", "namespace": "prod", "severity": "critical"},
            "annotations": {"summary": "checkout is burning its error budget 14x", "description": "5xx ratio 7% over 5m"},
            "startsAt": now.to_rfc3339(),
            "endsAt": ends.to_rfc3339(),
        }])
    };
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(now + chrono::Duration::hours(1)))
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());

    let incident: Value = poll("the incident", 60, async || {
        let list: Value = client
            .get(app.url("/api/v1/incidents"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(incident["service"], "checkout");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(
        incident["title"],
        "checkout is burning its error budget 14x"
    );
    assert_eq!(incident["status"], "open");
    let id = incident["id"].as_str().expect("id").to_owned();

    // Ending the alert makes Alertmanager send the resolved notification.
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(chrono::Utc::now()))
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success());
    let detail: Value = poll("the resolution", 60, async || {
        let d: Value = client
            .get(app.url(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (d["incident"]["status"] == "resolved").then_some(d)
    })
    .await;
    assert_eq!(
        detail["alerts"].as_array().map(Vec::len),
        Some(1),
        "one alert, deduplicated across notifications"
    );
    assert_eq!(detail["alerts"][0]["status"], "resolved");
    let lists: Value = client
        .get(app.url("/api/v1/incidents"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(lists.as_array().map(Vec::len), Some(1), "no twin incident");
    app.finish().await;
}
