//! The service's own agents with the local model: an incident is worked
//! in the background, and once its proposal (here an escalation: the
//! service has no tools configured) is out, the model's summary lands on
//! the timeline marked as model-written, metered against the incident.

use crate::harness::App;
use models::fetch::SMOLLM2_135M;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_service_agents_write_a_model_summary_after_the_proposal() {
    let model = crate::models_common::weights(&SMOLLM2_135M);
    let weights = model.parent().expect("weights dir").to_owned();
    let app = App::start(
        move |c| {
            c.agents.enabled = true;
            c.agents.poll_secs = 1;
            c.paths.weights_dir = weights;
            c.knowledge.index_runbooks = false;
            let fast = c.llm.roles.get_mut("fast").expect("fast role");
            fast.providers = vec!["smollm".into()];
        },
        None,
    )
    .await;
    let client = reqwest::Client::new();
    let r = client
        .post(app.url("/api/v1/alerts"))
        .json(&json!({
            "title": "checkout p99 latency above 2s",
            "severity": "critical",
            "service": "checkout",
            "description": "checkout p99 latency is 3.4s against an SLO of 2s"
        }))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let id = v["alerts"][0]["incident_id"]
        .as_str()
        .expect("incident")
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(180);
    let timeline = loop {
        let d: Value = client
            .get(app.url(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let events = d["timeline"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["kind"] == "summary") {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "no summary within 3 minutes: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let kinds: Vec<&str> = timeline.iter().filter_map(|e| e["kind"].as_str()).collect();
    let escalated = kinds
        .iter()
        .position(|k| *k == "escalated")
        .expect("escalated");
    let summary = kinds.iter().position(|k| *k == "summary").expect("summary");
    assert!(escalated < summary, "the summary comes after: {kinds:?}");
    let s = &timeline[summary];
    assert_eq!(s["actor"], "agent:writer");
    assert_eq!(s["data"]["model_written"], true);
    assert!(s["data"]["tokens_out"].as_u64().unwrap_or(0) > 0, "{s}");
    let text = s["message"].as_str().unwrap_or_default();
    assert!(!text.is_empty() && text.chars().count() <= 701, "{text}");

    // The call was metered against the incident.
    let mut config = brain::config::Config::default();
    config.paths.data_dir = app.data_dir().to_owned();
    let store = brain::store::Store::open(&config).await.expect("store");
    let incident: brain::ids::IncidentId = id.parse().expect("id");
    let usage = store.llm_usage_for_incident(incident).await.expect("usage");
    assert!(usage.calls >= 1, "{usage:?}");
    store.close().await;
    app.finish().await;
}
