//! Ingestion in the store — dedup, redelivery, grouping, reopening,
//! suspects, the agents' queue and group commit — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use brain::domain::{AlertStatus, IncidentStatus, Severity};
use brain::ids::IncidentId;
use brain::ingest::{AlertInput, ChangeInput};
use brain::store::{
    AlertOutcome, AlertOutcomeKind, DeliveryKey, IngestItems, IngestOutcome, IngestRequest,
    IngestSettings, IngestWriter, Store, SubmitError,
};
use chrono::{Duration, Utc};
use common::TestDb;

fn alert(fingerprint: &str, service: &str, group: &str, status: AlertStatus) -> AlertInput {
    AlertInput {
        source: "alertmanager",
        fingerprint: fingerprint.into(),
        status,
        severity: Severity::Warning,
        service: Some(service.into()),
        namespace: Some("prod".into()),
        resource: None,
        labels: [("alertname".to_owned(), format!("A-{fingerprint}"))].into(),
        summary: format!("{service} alert {fingerprint}"),
        description: None,
        starts_at: Utc::now(),
        ends_at: (status == AlertStatus::Resolved).then(Utc::now),
        group_key: group.into(),
        raw: brain::ingest::RawJson::from_value(&serde_json::json!({"fingerprint": fingerprint})),
    }
}

fn req(alerts: Vec<AlertInput>) -> IngestRequest {
    IngestRequest {
        org_id: "default".into(),
        delivery: None,
        items: IngestItems::Alerts(alerts),
    }
}

async fn one(s: &Store, settings: &IngestSettings, r: IngestRequest) -> IngestOutcome {
    s.ingest(settings, vec![r]).await.unwrap().pop().unwrap()
}

async fn alerts(s: &Store, settings: &IngestSettings, a: Vec<AlertInput>) -> Vec<AlertOutcome> {
    match one(s, settings, req(a)).await {
        IngestOutcome::Alerts { alerts } => alerts,
        other => panic!("expected alerts, got {other:?}"),
    }
}

fn incident_of(o: &AlertOutcome) -> IncidentId {
    o.incident_id.expect("an incident")
}

on_both!(
    a_repeat_of_a_firing_alert_updates_it_instead_of_adding_one,
    |db| {
        let s = &db.store;
        let st = IngestSettings::default();
        let first = alerts(
            s,
            &st,
            vec![alert("fp1", "checkout", "g1", AlertStatus::Firing)],
        )
        .await;
        assert_eq!(first[0].outcome, AlertOutcomeKind::Opened);
        let again = alerts(
            s,
            &st,
            vec![alert("fp1", "checkout", "g1", AlertStatus::Firing)],
        )
        .await;
        assert_eq!(again[0].outcome, AlertOutcomeKind::Deduplicated);
        assert_eq!(again[0].alert_id, first[0].alert_id);
        let stored = s.alerts_for_incident(incident_of(&first[0])).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].count, 2);
        assert!(stored[0].last_seen >= stored[0].starts_at);
    }
);

on_both!(redelivery_of_the_same_webhook_changes_nothing, |db| {
    let s = &db.store;
    let st = IngestSettings::default();
    let mut r = req(vec![alert("fp2", "checkout", "g2", AlertStatus::Firing)]);
    r.delivery = Some(DeliveryKey {
        source: "alertmanager".into(),
        key: "body-sha-1".into(),
    });
    let first = one(s, &st, r.clone()).await;
    let IngestOutcome::Alerts { alerts: a } = first else {
        panic!("alerts")
    };
    assert_eq!(one(s, &st, r.clone()).await, IngestOutcome::Duplicate);
    assert_eq!(one(s, &st, r).await, IngestOutcome::Duplicate);
    let stored = s.alerts_for_incident(incident_of(&a[0])).await.unwrap();
    assert_eq!(
        stored[0].count, 1,
        "a redelivery must not count as a repeat"
    );
    assert_eq!(s.timeline(incident_of(&a[0])).await.unwrap().len(), 2);
});

on_both!(
    alerts_sharing_a_group_key_or_a_service_join_one_incident,
    |db| {
        let s = &db.store;
        let st = IngestSettings::default();
        let a = alerts(
            s,
            &st,
            vec![
                alert(
                    "fp-a",
                    "checkout",
                    "am:{}:{alertname=\"X\"}",
                    AlertStatus::Firing,
                ),
                alert(
                    "fp-b",
                    "checkout-db",
                    "am:{}:{alertname=\"X\"}",
                    AlertStatus::Firing,
                ),
                alert("fp-c", "checkout", "am:other-group", AlertStatus::Firing),
                alert("fp-d", "payments", "am:third-group", AlertStatus::Firing),
            ],
        )
        .await;
        let kinds: Vec<_> = a.iter().map(|o| o.outcome).collect();
        assert_eq!(
            kinds,
            [
                AlertOutcomeKind::Opened,
                AlertOutcomeKind::Joined,
                AlertOutcomeKind::Joined,
                AlertOutcomeKind::Opened
            ]
        );
        assert_eq!(incident_of(&a[0]), incident_of(&a[1]), "same group key");
        assert_eq!(
            incident_of(&a[0]),
            incident_of(&a[2]),
            "same service within the window"
        );
        assert_ne!(
            incident_of(&a[0]),
            incident_of(&a[3]),
            "another service, another group"
        );
        assert_eq!(
            s.alerts_for_incident(incident_of(&a[0]))
                .await
                .unwrap()
                .len(),
            3
        );
    }
);

on_both!(a_service_outside_the_window_opens_a_new_incident, |db| {
    let s = &db.store;
    let st = IngestSettings {
        group_window: Duration::zero(),
        ..Default::default()
    };
    let a = alerts(
        s,
        &st,
        vec![alert("w1", "search", "g-a", AlertStatus::Firing)],
    )
    .await;
    let b = alerts(
        s,
        &st,
        vec![alert("w2", "search", "g-b", AlertStatus::Firing)],
    )
    .await;
    assert_ne!(incident_of(&a[0]), incident_of(&b[0]));
});

on_both!(the_incident_is_as_severe_as_its_worst_alert, |db| {
    let s = &db.store;
    let st = IngestSettings::default();
    let a = alerts(
        s,
        &st,
        vec![alert("s1", "cart", "g-s", AlertStatus::Firing)],
    )
    .await;
    let mut crit = alert("s2", "cart", "g-s", AlertStatus::Firing);
    crit.severity = Severity::Critical;
    alerts(s, &st, vec![crit]).await;
    let inc = s.get_incident(incident_of(&a[0])).await.unwrap();
    assert_eq!(inc.severity, Severity::Critical);
    let mut info = alert("s3", "cart", "g-s", AlertStatus::Firing);
    info.severity = Severity::Info;
    alerts(s, &st, vec![info]).await;
    let inc = s.get_incident(incident_of(&a[0])).await.unwrap();
    assert_eq!(
        inc.severity,
        Severity::Critical,
        "a milder alert never lowers it"
    );
});

on_both!(
    resolving_every_alert_resolves_the_incident_and_a_refire_in_grace_reopens_it,
    |db| {
        let s = &db.store;
        let st = IngestSettings::default();
        let opened = alerts(
            s,
            &st,
            vec![
                alert("r1", "orders", "g-r", AlertStatus::Firing),
                alert("r2", "orders", "g-r", AlertStatus::Firing),
            ],
        )
        .await;
        let id = incident_of(&opened[0]);
        assert_eq!(
            s.queued_incidents().await.unwrap(),
            vec![id],
            "a new incident waits for the agents"
        );

        alerts(
            s,
            &st,
            vec![alert("r1", "orders", "g-r", AlertStatus::Resolved)],
        )
        .await;
        assert_eq!(
            s.get_incident(id).await.unwrap().status,
            IncidentStatus::Open,
            "r2 still fires"
        );
        let done = alerts(
            s,
            &st,
            vec![alert("r2", "orders", "g-r", AlertStatus::Resolved)],
        )
        .await;
        assert_eq!(done[0].outcome, AlertOutcomeKind::Resolved);
        let inc = s.get_incident(id).await.unwrap();
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert!(inc.resolved_at.is_some());
        assert!(s.queued_incidents().await.unwrap().is_empty());

        let again = alerts(
            s,
            &st,
            vec![alert("r1", "orders", "g-r", AlertStatus::Firing)],
        )
        .await;
        assert_eq!(again[0].outcome, AlertOutcomeKind::Reopened);
        assert_eq!(incident_of(&again[0]), id, "no twin incident");
        assert_eq!(
            s.get_incident(id).await.unwrap().status,
            IncidentStatus::Open
        );
        let timeline = s.timeline(id).await.unwrap();
        assert!(timeline.iter().any(|e| e.message.starts_with("reopened")));
        assert_eq!(s.queued_incidents().await.unwrap(), vec![id]);
    }
);

on_both!(a_refire_after_the_grace_period_opens_a_new_incident, |db| {
    let s = &db.store;
    let st = IngestSettings {
        reopen_grace: Duration::zero(),
        ..Default::default()
    };
    let a = alerts(
        s,
        &st,
        vec![alert("g1", "mail", "g-g", AlertStatus::Firing)],
    )
    .await;
    alerts(
        s,
        &st,
        vec![alert("g1", "mail", "g-g", AlertStatus::Resolved)],
    )
    .await;
    let b = alerts(
        s,
        &st,
        vec![alert("g1", "mail", "g-g", AlertStatus::Firing)],
    )
    .await;
    assert_eq!(b[0].outcome, AlertOutcomeKind::Opened);
    assert_ne!(incident_of(&a[0]), incident_of(&b[0]));
});

on_both!(
    a_resolution_for_an_alert_never_seen_firing_changes_nothing,
    |db| {
        let s = &db.store;
        let st = IngestSettings::default();
        let a = alerts(
            s,
            &st,
            vec![alert("ghost", "x", "g-x", AlertStatus::Resolved)],
        )
        .await;
        assert_eq!(a[0].outcome, AlertOutcomeKind::IgnoredResolution);
        assert!(
            s.list_incidents(&Default::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
);

fn deploy(id: &str, service: &str, minutes_ago: i64) -> IngestRequest {
    IngestRequest {
        org_id: "default".into(),
        delivery: None,
        items: IngestItems::Change(ChangeInput {
            source: "github",
            external_id: id.into(),
            kind: "deploy".into(),
            service: Some(service.into()),
            target: format!("acme/{service}"),
            environment: Some("production".into()),
            description: format!("deploy {id}"),
            author: Some("octocat".into()),
            at: Utc::now() - Duration::minutes(minutes_ago),
            url: None,
        }),
    }
}

on_both!(
    recent_changes_to_the_service_are_attached_as_suspects,
    |db| {
        let s = &db.store;
        let st = IngestSettings::default();
        one(s, &st, deploy("d-recent", "checkout", 10)).await;
        one(s, &st, deploy("d-old", "checkout", 600)).await;
        one(s, &st, deploy("d-other", "payments", 5)).await;
        let a = alerts(
            s,
            &st,
            vec![alert("c1", "checkout", "g-c", AlertStatus::Firing)],
        )
        .await;
        let id = incident_of(&a[0]);
        let suspects = s.suspects_for_incident(id).await.unwrap();
        assert_eq!(
            suspects
                .iter()
                .map(|c| c.external_id.as_str())
                .collect::<Vec<_>>(),
            ["d-recent"]
        );
        assert!(
            s.timeline(id)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == "change_suspected")
        );

        // A deploy that reaches us late still lands on the open incident, once.
        let late = one(s, &st, deploy("d-late", "checkout", 1)).await;
        assert!(
            matches!(&late, IngestOutcome::Change { created: true, attached_to, .. } if attached_to == &vec![id])
        );
        let dup = one(s, &st, deploy("d-late", "checkout", 1)).await;
        assert!(matches!(dup, IngestOutcome::Change { created: false, .. }));
        assert_eq!(s.suspects_for_incident(id).await.unwrap().len(), 2);
        let feed = s
            .list_changes(&brain::store::ChangeFilter {
                service: Some("checkout".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(feed.len(), 3);
    }
);

on_both!(
    a_pagerduty_note_lands_on_the_timeline_of_its_incident,
    |db| {
        let s = &db.store;
        let st = IngestSettings::default();
        let mut a = alert("PD123", "orders", "pagerduty:PD123", AlertStatus::Firing);
        a.source = "pagerduty";
        let o = alerts(s, &st, vec![a]).await;
        let note = IngestRequest {
            org_id: "default".into(),
            delivery: None,
            items: IngestItems::Note {
                source: "pagerduty".into(),
                fingerprint: "PD123".into(),
                content: "rolled back by hand".into(),
                author: Some("Jane".into()),
            },
        };
        assert_eq!(
            one(s, &st, note).await,
            IngestOutcome::Note {
                incident_id: o[0].incident_id
            }
        );
        let t = s.timeline(incident_of(&o[0])).await.unwrap();
        assert!(t.iter().any(|e| e.kind == "note"
            && e.message == "rolled back by hand"
            && e.actor == "pagerduty:Jane"));
    }
);

on_both!(
    a_burst_through_the_group_commit_writer_stores_every_alert,
    |db| {
        let (writer, task) =
            IngestWriter::start(db.store.clone(), IngestSettings::default(), 1 << 20, 64);
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..300 {
            let w = writer.clone();
            jobs.spawn(async move {
                let a = alert(
                    &format!("burst-{i}"),
                    &format!("svc-{}", i % 7),
                    &format!("g-{}", i % 7),
                    AlertStatus::Firing,
                );
                w.submit(req(vec![a]), 500).await
            });
        }
        let mut ok = 0;
        while let Some(r) = jobs.join_next().await {
            assert!(matches!(r.unwrap().unwrap(), IngestOutcome::Alerts { .. }));
            ok += 1;
        }
        assert_eq!(ok, 300);
        let incidents = db.store.list_incidents(&Default::default()).await.unwrap();
        assert_eq!(incidents.len(), 7, "one incident per group");
        let mut total = 0;
        for i in incidents {
            total += db.store.alerts_for_incident(i.id).await.unwrap().len();
        }
        assert_eq!(total, 300);
        drop(writer);
        task.await.unwrap();
    }
);

#[tokio::test]
async fn a_full_queue_refuses_at_once_instead_of_growing() {
    let db = TestDb::sqlite().await;
    let (writer, task) =
        IngestWriter::start(db.store.clone(), IngestSettings::default(), 10_000, 8);
    // All fifty are polled before the writer task runs (one-thread runtime),
    // so exactly the ten that fit in the byte budget are queued.
    let submits = (0..50).map(|i| {
        writer.submit(
            req(vec![alert(&format!("q{i}"), "x", "g", AlertStatus::Firing)]),
            1000,
        )
    });
    let results = futures::future::join_all(submits).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(SubmitError::Overloaded)))
        .count();
    assert_eq!((ok, refused), (10, 40));
    assert_eq!(
        writer.queued_bytes(),
        0,
        "the budget is released after commit"
    );
    assert!(
        writer
            .submit(
                req(vec![alert("later", "x", "g", AlertStatus::Firing)]),
                1000
            )
            .await
            .is_ok()
    );
    drop(writer);
    task.await.unwrap();
    db.finish().await;
}

on_both!(
    delivery_keys_older_than_the_window_are_pruned_and_then_count_again,
    |db| {
        let s = &db.store;
        let st = IngestSettings {
            redelivery_window: Duration::zero(),
            ..Default::default()
        };
        let mut r = req(vec![alert("p1", "svc", "g-p", AlertStatus::Firing)]);
        r.delivery = Some(DeliveryKey {
            source: "alertmanager".into(),
            key: "k".into(),
        });
        one(s, &st, r.clone()).await;
        assert_eq!(s.prune_deliveries(&st).await.unwrap(), 1);
        // Outside the window the same body is a new notification: a repeat.
        let again = one(s, &st, r).await;
        assert!(
            matches!(again, IngestOutcome::Alerts { ref alerts } if alerts[0].outcome == AlertOutcomeKind::Deduplicated)
        );
    }
);

on_both!(
    ingestion_and_other_writers_share_the_database_without_lock_errors,
    |db| {
        let (writer, task) =
            IngestWriter::start(db.store.clone(), IngestSettings::default(), 1 << 20, 64);
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..200 {
            let w = writer.clone();
            jobs.spawn(async move {
                let a = alert(&format!("mix-{i}"), "mixed", "g-mix", AlertStatus::Firing);
                w.submit(req(vec![a]), 100)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        }
        for i in 0..40 {
            let s = db.store.clone();
            jobs.spawn(async move {
                s.append_audit(brain::store::NewAuditEntry {
                    actor: "system".into(),
                    action: "test.concurrent".into(),
                    subject: format!("n{i}"),
                    data: serde_json::json!({}),
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
        }
        while let Some(r) = jobs.join_next().await {
            r.unwrap().unwrap();
        }
        let incidents = db.store.list_incidents(&Default::default()).await.unwrap();
        let id = incidents[0].id;
        db.store
            .transition_incident(id, IncidentStatus::Investigating, "agent:test", "go")
            .await
            .unwrap();
        assert!(db.store.verify_audit().await.unwrap().is_intact());
        drop(writer);
        task.await.unwrap();
    }
);

/// The WAL's checkpoint sequence number (header bytes 12..16): SQLite
/// increments it each time it starts writing the WAL from the top again.
fn wal_restarts(dir: &std::path::Path) -> u32 {
    let header = std::fs::read(dir.join("cerebro.db-wal")).unwrap_or_default();
    header
        .get(12..16)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// An alert storm commits without a pause, so the WAL is never fully copied
/// into the database at a moment when no commit is running; unless the
/// writer finishes the checkpoint itself, SQLite appends forever and the
/// disk fills (1.9 GB in 20 s, measured before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_steady_storm_the_wal_restarts_instead_of_growing() {
    let db = TestDb::sqlite().await;
    let dir = db._dir.as_ref().unwrap().path().to_owned();
    let (writer, task) =
        IngestWriter::start(db.store.clone(), IngestSettings::default(), 1 << 24, 64);
    let stop = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let mut jobs = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let w = writer.clone();
        jobs.spawn(async move {
            let mut n = 0u64;
            while std::time::Instant::now() < stop {
                let a = alert(
                    &format!("storm-{worker}-{n}"),
                    &format!("svc-{}", n % 5),
                    &format!("g-{}", n % 5),
                    AlertStatus::Firing,
                );
                w.submit(req(vec![a]), 500).await.unwrap();
                n += 1;
            }
            n
        });
    }
    let first = {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        wal_restarts(&dir)
    };
    let mut total = 0;
    while let Some(n) = jobs.join_next().await {
        total += n.unwrap();
    }
    let last = wal_restarts(&dir);
    assert!(
        last >= first + 2,
        "the WAL restarted {} times while {total} alerts were committed in 4 s",
        last.wrapping_sub(first)
    );
    drop(writer);
    task.await.unwrap();
}
