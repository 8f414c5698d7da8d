//! The whole registry replayed from each example scenario: every backend
//! answers from the recorded world, and the tool counts per backend are
//! what the docs claim.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use brain::scenario::Scenario;
use brain::vocabulary::Risk;
use serde_json::json;

fn examples() -> Vec<Scenario> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../evals/scenarios/examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            out.push(Scenario::load(&path).unwrap());
        }
    }
    assert_eq!(out.len(), 3, "the three examples of the spec");
    out
}

#[test]
fn every_backend_replays_and_the_counts_hold() {
    let world = &examples()[0].world;
    let registry = tools::world_registry(world).unwrap();
    let counts = registry.counts();
    println!("tools per backend: {counts:?} (total {})", registry.len());
    let observability = counts["prometheus"] + counts["logs"] + counts["changes"];
    assert!(observability >= 20, "observability tools: {observability}");
    assert!(counts["kubernetes"] >= 15, "{counts:?}");
    assert!(counts["aws"] >= 20, "{counts:?}");
    for spec in registry.specs() {
        assert!(
            spec.description.len() >= 40,
            "{} needs a description a model can use",
            spec.name
        );
        assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
        // A tool that acts names its vocabulary action; a read tool none.
        assert_eq!(
            spec.action.is_some(),
            spec.risk != Risk::Read,
            "{}",
            spec.name
        );
        if spec.risk != Risk::Read {
            assert!(
                spec.input_schema["properties"]["dry_run"].is_object(),
                "{} has a dry run",
                spec.name
            );
        }
    }
}

#[tokio::test]
async fn each_example_answers_from_its_world() {
    for s in examples() {
        let r = tools::world_registry(&s.world).unwrap();
        let changes = r
            .call("list_recent_changes", json!({"since": "-3d"}))
            .await
            .unwrap();
        assert!(
            changes.data["total"].as_u64().unwrap() >= 1,
            "{}: {}",
            s.id,
            changes.text
        );
        let pods = r.call("list_pods", json!({})).await.unwrap();
        assert!(!pods.text.is_empty(), "{}", s.id);
        let names = r.call("list_metric_names", json!({})).await.unwrap();
        assert!(!names.text.is_empty(), "{}", s.id);
        // Something the world does not hold is not found, as live.
        let e = r
            .call(
                "describe_pod",
                json!({"namespace": "prod", "name": "no-such-pod-0"}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "not_found", "{}: {e}", s.id);
    }
}
