//! Repository tests, each run on SQLite and on PostgreSQL.
//!
//! PostgreSQL comes from `CEREBRO_TEST_POSTGRES_URL` (default: the local
//! server, database `test`); every test gets a schema of its own.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use brain::domain::*;
use brain::ids::*;
use brain::store::{
    IncidentFilter, NewAuditEntry, NewDocument, NewIncident, Store, StoreError, Upsert,
};
use brain::taxonomy::RootCause;
use brain::vocabulary::{Action, Risk};
use common::{TestDb, postgres_url};
use serde_json::json;

fn new_incident(key: &str) -> NewIncident {
    NewIncident {
        org_id: "default".into(),
        title: format!("checkout latency ({key})"),
        severity: Severity::Critical,
        service: Some("checkout".into()),
        group_key: key.into(),
    }
}

on_both!(migrations_are_applied_and_the_store_reports_ready, |db| {
    let r = db.store.readiness().await;
    assert!(r.is_ready(), "{r:?}");
    assert!(r.migrations_expected >= 1);
    // Running them again is a no-op, not an error.
    db.store.migrate().await.expect("second migrate");
    assert!(db.store.readiness().await.is_ready());
});

on_both!(
    an_incident_walks_its_lifecycle_and_every_step_lands_on_the_timeline,
    |db| {
        let s = &db.store;
        let inc = s.create_incident(new_incident("g1")).await.expect("create");
        assert_eq!(inc.status, IncidentStatus::Open);
        assert_eq!(s.get_incident(inc.id).await.expect("get"), inc);

        for to in [
            IncidentStatus::Investigating,
            IncidentStatus::AwaitingApproval,
            IncidentStatus::Remediating,
            IncidentStatus::Resolved,
        ] {
            let got = s
                .transition_incident(inc.id, to, "agent:orchestrator", "step")
                .await
                .expect("transition");
            assert_eq!(got.status, to);
        }
        let resolved = s.get_incident(inc.id).await.expect("get");
        assert!(resolved.resolved_at.is_some());

        let timeline = s.timeline(inc.id).await.expect("timeline");
        let steps: Vec<_> = timeline
            .iter()
            .map(|e| e.data["to"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            steps,
            [
                "open",
                "investigating",
                "awaiting_approval",
                "remediating",
                "resolved"
            ]
        );
        assert_eq!(timeline[1].actor, "agent:orchestrator");
        assert!(timeline.windows(2).all(|w| w[0].seq < w[1].seq));
    }
);

on_both!(
    a_transition_the_lifecycle_forbids_is_refused_and_changes_nothing,
    |db| {
        let s = &db.store;
        let inc = s.create_incident(new_incident("g2")).await.expect("create");
        let err = s
            .transition_incident(
                inc.id,
                IncidentStatus::Remediating,
                "user:mallory",
                "skip ahead",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(
            s.get_incident(inc.id).await.expect("get").status,
            IncidentStatus::Open
        );
        assert_eq!(s.timeline(inc.id).await.expect("timeline").len(), 1);

        let missing = s
            .transition_incident(
                IncidentId::new(),
                IncidentStatus::Investigating,
                "system",
                "x",
            )
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
    }
);

on_both!(
    incidents_are_listed_newest_first_and_filtered_by_status_and_service,
    |db| {
        let s = &db.store;
        let a = s.create_incident(new_incident("a")).await.expect("a");
        let mut other = new_incident("b");
        other.service = Some("payments".into());
        let b = s.create_incident(other).await.expect("b");
        s.transition_incident(a.id, IncidentStatus::Investigating, "system", "go")
            .await
            .expect("t");

        let all = s
            .list_incidents(&IncidentFilter::default())
            .await
            .expect("list");
        assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), [b.id, a.id]);
        let open = s
            .list_incidents(&IncidentFilter {
                status: Some(IncidentStatus::Open),
                ..Default::default()
            })
            .await
            .expect("list open");
        assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), [b.id]);
        let checkout = s
            .list_incidents(&IncidentFilter {
                service: Some("checkout".into()),
                ..Default::default()
            })
            .await
            .expect("list checkout");
        assert_eq!(checkout.iter().map(|i| i.id).collect::<Vec<_>>(), [a.id]);
    }
);

fn alert(incident: IncidentId, fingerprint: &str, status: AlertStatus) -> Alert {
    let at = brain::store::timestamp();
    Alert {
        id: AlertId::new(),
        incident_id: Some(incident),
        source: "alertmanager".into(),
        fingerprint: fingerprint.into(),
        status,
        severity: Severity::Warning,
        service: Some("checkout".into()),
        namespace: Some("prod".into()),
        resource: Some("pod/checkout-1".into()),
        labels: [("alertname".to_owned(), "HighLatency".to_owned())].into(),
        summary: "p99 above 2s".into(),
        description: Some("it's \"slow\" — ünïcode too".into()),
        starts_at: at,
        ends_at: None,
        last_seen: at,
        count: 1,
        raw: json!({"labels": {"alertname": "HighLatency"}, "nested": [1, 2.5, null]}),
    }
}

on_both!(an_alert_round_trips_with_labels_and_raw_payload, |db| {
    let s = &db.store;
    let inc = s.create_incident(new_incident("g3")).await.expect("create");
    let a = alert(inc.id, "fp1", AlertStatus::Firing);
    s.insert_alert(&a).await.expect("insert");
    assert_eq!(s.get_alert(a.id).await.expect("get"), a);
    assert_eq!(s.alerts_for_incident(inc.id).await.expect("list"), vec![a]);
});

on_both!(
    a_second_firing_alert_with_the_same_fingerprint_is_a_conflict,
    |db| {
        let s = &db.store;
        let inc = s.create_incident(new_incident("g4")).await.expect("create");
        s.insert_alert(&alert(inc.id, "fp", AlertStatus::Firing))
            .await
            .expect("first");
        let err = s
            .insert_alert(&alert(inc.id, "fp", AlertStatus::Firing))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        // Resolved history with the same fingerprint is fine.
        s.insert_alert(&alert(inc.id, "fp", AlertStatus::Resolved))
            .await
            .expect("resolved copy");
        assert_eq!(s.alerts_for_incident(inc.id).await.expect("list").len(), 2);
    }
);

on_both!(evidence_diagnoses_and_proposals_round_trip, |db| {
    let s = &db.store;
    let inc = s.create_incident(new_incident("g5")).await.expect("create");
    let ev = Evidence {
        id: EvidenceId::new(),
        incident_id: inc.id,
        tool: "get_pod_logs".into(),
        args: json!({"namespace": "prod", "pod": "checkout-1", "previous": true}),
        summary: "OOMKilled, exit 137".into(),
        data: json!({"lines": ["killed"]}),
        collected_at: brain::store::timestamp(),
    };
    s.add_evidence(&ev).await.expect("evidence");
    assert_eq!(
        s.evidence_for_incident(inc.id).await.expect("list"),
        vec![ev.clone()]
    );

    let d = Diagnosis {
        id: DiagnosisId::new(),
        incident_id: inc.id,
        category: RootCause::OomKilled,
        component: "deployment/prod/checkout".parse().expect("component"),
        confidence: 0.87,
        explanation: "container exceeded its 512Mi limit".into(),
        citations: vec![
            format!("evidence:{}", ev.id),
            "runbook:oom-killed#confirm".into(),
        ],
        created_at: brain::store::timestamp(),
    };
    s.add_diagnosis(&d).await.expect("diagnosis");
    assert_eq!(
        s.latest_diagnosis(inc.id).await.expect("latest"),
        Some(d.clone())
    );

    let p = ActionProposal {
        id: ProposalId::new(),
        incident_id: Some(inc.id),
        diagnosis_id: Some(d.id),
        action: Action::SetResources,
        target: d.component.clone(),
        params: json!({"container": "api", "memory_limit": "1Gi"}),
        risk: Risk::High,
        rationale: "peak usage 700Mi".into(),
        status: ProposalStatus::Proposed,
        created_at: brain::store::timestamp(),
        tool: None,
        requested_by: "agent".into(),
    };
    s.add_proposal(&p).await.expect("proposal");
    assert_eq!(s.get_proposal(p.id).await.expect("get"), p);
    assert_eq!(
        s.proposals_for_incident(inc.id).await.expect("list"),
        vec![p]
    );

    let orphan = Evidence {
        id: EvidenceId::new(),
        incident_id: IncidentId::new(),
        ..ev
    };
    let err = s.add_evidence(&orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
});

async fn proposal(s: &Store) -> ActionProposal {
    let inc = s
        .create_incident(new_incident("appr"))
        .await
        .expect("create");
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
        tool: None,
        requested_by: "agent".into(),
    };
    s.add_proposal(&p).await.expect("proposal");
    p
}

on_both!(
    an_approval_is_decided_once_and_a_second_decision_changes_nothing,
    |db| {
        let s = &db.store;
        let p = proposal(s).await;
        let a = s
            .request_approval(p.id, chrono::Duration::minutes(30))
            .await
            .expect("request");
        assert_eq!(
            s.get_proposal(p.id).await.expect("get").status,
            ProposalStatus::AwaitingApproval
        );
        assert_eq!(
            s.pending_approvals().await.expect("pending"),
            vec![a.clone()]
        );

        let decided = s
            .decide_approval(a.id, true, "user:alice", Some("looks right"))
            .await
            .expect("approve");
        assert_eq!(decided.status, ApprovalStatus::Approved);
        assert_eq!(decided.decided_by.as_deref(), Some("user:alice"));
        assert_eq!(
            s.get_proposal(p.id).await.expect("get").status,
            ProposalStatus::Approved
        );

        let again = s
            .decide_approval(a.id, false, "user:bob", None)
            .await
            .unwrap_err();
        assert!(again.to_string().contains("already approved"), "{again}");
        let stored = s.get_approval(a.id).await.expect("get");
        assert_eq!(stored.decided_by.as_deref(), Some("user:alice"));
        assert!(s.pending_approvals().await.expect("pending").is_empty());

        let twice = s
            .request_approval(p.id, chrono::Duration::minutes(5))
            .await
            .unwrap_err();
        assert!(matches!(twice, StoreError::Conflict { .. }), "{twice}");
    }
);

on_both!(an_expired_approval_cannot_be_approved_and_is_swept, |db| {
    let s = &db.store;
    let p = proposal(s).await;
    let a = s
        .request_approval(p.id, chrono::Duration::milliseconds(-1))
        .await
        .expect("request");
    let err = s
        .decide_approval(a.id, true, "user:alice", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let swept = s.expire_approvals().await.expect("expire");
    assert_eq!(swept.iter().map(|x| x.id).collect::<Vec<_>>(), [a.id]);
    assert_eq!(
        s.get_approval(a.id).await.expect("get").status,
        ApprovalStatus::Expired
    );
    assert_eq!(
        s.get_proposal(p.id).await.expect("get").status,
        ProposalStatus::Expired
    );
});

on_both!(an_approval_about_to_expire_is_reminded_once, |db| {
    let s = &db.store;
    let soon = proposal(s).await;
    let later = proposal(s).await;
    let a = s
        .request_approval(soon.id, chrono::Duration::minutes(10))
        .await
        .expect("request");
    s.request_approval(later.id, chrono::Duration::hours(2))
        .await
        .expect("request");
    // Within 15 minutes of expiry: only the first, and only once.
    let due = s
        .due_approval_reminders(chrono::Duration::minutes(15))
        .await
        .expect("due");
    assert_eq!(due.iter().map(|x| x.id).collect::<Vec<_>>(), [a.id]);
    assert!(
        s.due_approval_reminders(chrono::Duration::minutes(15))
            .await
            .expect("due")
            .is_empty()
    );
    // A decided approval is never reminded.
    s.decide_approval(a.id, true, "user:alice", None)
        .await
        .expect("decide");
    let due = s
        .due_approval_reminders(chrono::Duration::hours(3))
        .await
        .expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].proposal_id, later.id);
});

on_both!(
    the_outbox_delivers_in_order_per_incident_and_retries,
    |db| {
        let s = &db.store;
        let one = s
            .create_incident(new_incident("one"))
            .await
            .expect("create")
            .id;
        let two = s
            .create_incident(new_incident("two"))
            .await
            .expect("create")
            .id;
        let lease = chrono::Duration::seconds(30);
        s.enqueue_notification(
            &["slack", "pagerduty"],
            one,
            &json!({"kind": "approval_requested"}),
        )
        .await
        .expect("enqueue");
        s.enqueue_notification(&["slack"], one, &json!({"kind": "timeline_update"}))
            .await
            .expect("enqueue");
        s.enqueue_notification(&["slack"], two, &json!({"kind": "escalation"}))
            .await
            .expect("enqueue");
        // The oldest of each (notifier, incident): the thread reply waits for
        // the message it replies to.
        let first = s.claim_notifications(10, lease).await.expect("claim");
        let got: Vec<(&str, IncidentId, &str)> = first
            .iter()
            .map(|i| {
                (
                    i.notifier.as_str(),
                    i.incident_id,
                    i.notification["kind"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("slack", one, "approval_requested"),
                ("pagerduty", one, "approval_requested"),
                ("slack", two, "escalation"),
            ]
        );
        assert!(first.iter().all(|i| i.attempts == 1));
        // Claimed items are leased: nobody else gets them meanwhile.
        assert!(
            s.claim_notifications(10, lease)
                .await
                .expect("claim")
                .is_empty()
        );
        // Slack's first message went out; PagerDuty's must be retried later.
        s.notification_delivered(first[0].seq)
            .await
            .expect("delivered");
        s.notification_failed(
            first[1].seq,
            "503",
            Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .await
        .expect("failed");
        s.notification_failed(first[2].seq, "channel_not_found", None)
            .await
            .expect("given up");
        let second = s.claim_notifications(10, lease).await.expect("claim");
        let got: Vec<(&str, &str, i64)> = second
            .iter()
            .map(|i| {
                (
                    i.notifier.as_str(),
                    i.notification["kind"].as_str().unwrap_or_default(),
                    i.attempts,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("pagerduty", "approval_requested", 2),
                ("slack", "timeline_update", 1)
            ]
        );
        assert_eq!(
            s.notification_backlog().await.expect("backlog"),
            [("pagerduty".to_owned(), 1), ("slack".to_owned(), 1)]
        );

        // What a notifier remembers, replaced in place.
        assert_eq!(
            s.notifier_ref("slack", "approval:x").await.expect("ref"),
            None
        );
        s.set_notifier_ref("slack", "approval:x", "C1/1.1")
            .await
            .expect("set");
        s.set_notifier_ref("slack", "approval:x", "C1/2.2")
            .await
            .expect("set");
        assert_eq!(
            s.notifier_ref("slack", "approval:x")
                .await
                .expect("ref")
                .as_deref(),
            Some("C1/2.2")
        );
    }
);

fn audit(i: usize) -> NewAuditEntry {
    NewAuditEntry {
        actor: format!("user:u{i}"),
        action: "approval.decided".into(),
        subject: format!("approval:{i}"),
        data: json!({"approved": i.is_multiple_of(2), "amount": 1.5, "note": "ok"}),
    }
}

on_both!(
    concurrent_audit_appends_form_one_gapless_verified_chain,
    |db| {
        let s = &db.store;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..24 {
            let s = s.clone();
            tasks.spawn(async move { s.append_audit(audit(i)).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("join").expect("append");
        }
        let entries = s.audit_entries(None).await.expect("entries");
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=24).collect::<Vec<_>>()
        );
        let v = s.verify_audit().await.expect("verify");
        assert!(v.is_intact(), "{v:?}");
        assert_eq!(v.entries, 24);
        assert_eq!(
            s.audit_entries(Some("approval:3"))
                .await
                .expect("by subject")
                .len(),
            1
        );
    }
);

on_both!(
    the_audit_log_refuses_edits_and_verification_catches_a_bypassed_edit,
    |db| {
        let s = &db.store;
        for i in 0..5 {
            s.append_audit(audit(i)).await.expect("append");
        }
        let postgres = matches!(s.dialect(), brain::store::Dialect::Postgres);
        // The trigger refuses an ordinary UPDATE.
        let refused = raw_exec(
            db,
            "UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3",
        )
        .await;
        assert!(refused.is_err(), "update should be refused");
        // Someone with enough rights disables the guard and edits a row anyway.
        if postgres {
            raw_exec(db, "ALTER TABLE audit_log DISABLE TRIGGER USER")
                .await
                .expect("disable");
        } else {
            raw_exec(db, "DROP TRIGGER audit_log_no_update")
                .await
                .expect("drop");
        }
        raw_exec(
            db,
            "UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3",
        )
        .await
        .expect("tamper");
        let v = s.verify_audit().await.expect("verify");
        assert_eq!(v.first_broken.as_ref().map(|b| b.0), Some(3), "{v:?}");
        assert!(
            v.first_broken
                .as_ref()
                .is_some_and(|b| b.1.contains("edited"))
        );
    }
);

on_both!(deleting_an_audit_entry_is_detected, |db| {
    let s = &db.store;
    for i in 0..4 {
        s.append_audit(audit(i)).await.expect("append");
    }
    if matches!(s.dialect(), brain::store::Dialect::Postgres) {
        raw_exec(db, "ALTER TABLE audit_log DISABLE TRIGGER USER")
            .await
            .expect("disable");
    } else {
        raw_exec(db, "DROP TRIGGER audit_log_no_delete")
            .await
            .expect("drop");
    }
    raw_exec(db, "DELETE FROM audit_log WHERE seq = 2")
        .await
        .expect("delete");
    let v = s.verify_audit().await.expect("verify");
    assert_eq!(v.first_broken.as_ref().map(|b| b.0), Some(3), "{v:?}");
});

/// Run raw SQL against the test database on a separate connection, as an
/// operator with a SQL shell would.
async fn raw_exec(db: &TestDb, sql: &'static str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    match &db.schema {
        Some(schema) => {
            let mut conn = sqlx::PgConnection::connect(&postgres_url()).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SET search_path TO \"{schema}\""
            )))
            .execute(&mut conn)
            .await?;
            sqlx::query(sql).execute(&mut conn).await?;
        }
        None => {
            let path = db
                ._dir
                .as_ref()
                .expect("sqlite dir")
                .path()
                .join("cerebro.db");
            let mut conn =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
            sqlx::query(sql).execute(&mut conn).await?;
        }
    }
    Ok(())
}

on_both!(llm_calls_are_recorded_and_totalled_per_incident, |db| {
    let s = &db.store;
    let inc = s
        .create_incident(new_incident("llm"))
        .await
        .expect("create");
    for (i, outcome) in [LlmOutcome::Ok, LlmOutcome::Timeout, LlmOutcome::Ok]
        .into_iter()
        .enumerate()
    {
        let n = i as i64 + 1;
        s.record_llm_call(&LlmCall {
            id: LlmCallId::new(),
            incident_id: Some(inc.id),
            role: "fast".into(),
            provider: "local".into(),
            model: "qwen2.5-coder-0.5b".into(),
            tokens_in: 100 * n,
            tokens_out: 10 * n,
            cost_usd: 0.001 * n as f64,
            latency_ms: 250,
            outcome,
            at: brain::store::timestamp(),
        })
        .await
        .expect("record");
    }
    let calls = s.llm_calls_for_incident(inc.id).await.expect("calls");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].outcome, LlmOutcome::Timeout);
    let usage = s.llm_usage_for_incident(inc.id).await.expect("usage");
    assert_eq!(
        (usage.calls, usage.tokens_in, usage.tokens_out),
        (3, 600, 60)
    );
    assert!((usage.cost_usd - 0.006).abs() < 1e-9);
    let none = s
        .llm_usage_for_incident(IncidentId::new())
        .await
        .expect("empty usage");
    assert_eq!(none.calls, 0);
});

on_both!(llm_tokens_since_a_time_count_only_later_calls, |db| {
    let s = &db.store;
    let now = brain::store::timestamp();
    let call = |tokens_in: i64, at| LlmCall {
        id: LlmCallId::new(),
        incident_id: None,
        role: "fast".into(),
        provider: "local".into(),
        model: "m".into(),
        tokens_in,
        tokens_out: 1,
        cost_usd: 0.0,
        latency_ms: 1,
        outcome: LlmOutcome::Ok,
        at,
    };
    assert_eq!(s.llm_tokens_since(now).await.expect("empty"), 0);
    s.record_llm_call(&call(1000, now - chrono::Duration::hours(30)))
        .await
        .expect("record");
    s.record_llm_call(&call(40, now)).await.expect("record");
    s.record_llm_call(&call(9, now + chrono::Duration::seconds(1)))
        .await
        .expect("record");
    let since = now - chrono::Duration::hours(1);
    assert_eq!(s.llm_tokens_since(since).await.expect("sum"), 51);
});

on_both!(
    documents_are_upserted_by_path_skipped_when_unchanged_and_deleted,
    |db| {
        let s = &db.store;
        let doc = |hash: &str| NewDocument {
            id: brain::ids::DocumentId::new(),
            org_id: "default".into(),
            source: "runbook".into(),
            path: "runbooks/oom-killed.md".into(),
            title: "OOMKilled pods".into(),
            mime: "text/markdown".into(),
            content_hash: hash.into(),
            size_bytes: 2048,
            doc_type: "runbook".into(),
            services: vec!["payments-api".into()],
            categories: vec!["oom_killed".into()],
            chunks: 4,
        };
        let (d1, o1) = s.upsert_document(doc("aaa")).await.expect("create");
        assert_eq!(o1, Upsert::Created);
        let (d2, o2) = s.upsert_document(doc("aaa")).await.expect("same");
        assert_eq!(
            (o2, d2.id, d2.updated_at),
            (Upsert::Unchanged, d1.id, d1.updated_at)
        );
        let (d3, o3) = s.upsert_document(doc("bbb")).await.expect("update");
        assert_eq!((o3, d3.id), (Upsert::Updated, d1.id));
        let found = s
            .find_document("default", "runbook", "runbooks/oom-killed.md")
            .await
            .expect("find")
            .expect("present");
        assert_eq!(
            (
                found.services,
                found.categories,
                found.doc_type,
                found.chunks
            ),
            (
                vec!["payments-api".to_owned()],
                vec!["oom_killed".to_owned()],
                "runbook".to_owned(),
                4
            )
        );
        assert!(
            s.find_document("default", "runbook", "runbooks/none.md")
                .await
                .expect("find")
                .is_none()
        );
        assert_eq!(
            s.get_document(d1.id).await.expect("get").content_hash,
            "bbb"
        );
        assert_eq!(
            s.list_documents("default", Some("runbook"))
                .await
                .expect("list")
                .len(),
            1
        );
        assert!(
            s.list_documents("other-org", None)
                .await
                .expect("list")
                .is_empty()
        );
        s.delete_document(d1.id).await.expect("delete");
        assert!(matches!(
            s.get_document(d1.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.delete_document(d1.id).await,
            Err(StoreError::NotFound { .. })
        ));
    }
);

on_both!(
    a_run_is_claimed_by_one_worker_and_taken_over_when_its_lease_lapses,
    |db| {
        use brain::store::RunStep;
        let s = &db.store;
        let inc = s
            .create_incident(new_incident("runs"))
            .await
            .expect("create");
        assert!(s.enqueue_run(inc.id).await.expect("enqueue"));
        assert!(!s.enqueue_run(inc.id).await.expect("again"), "queued twice");

        let lease = chrono::Duration::seconds(60);
        let a = s
            .claim_run("worker-a", lease)
            .await
            .expect("claim")
            .expect("a run");
        assert_eq!(
            (a.incident_id, a.step, a.attempts),
            (inc.id, RunStep::Queued, 1)
        );
        // Held: nobody else gets it.
        assert!(
            s.claim_run("worker-b", lease)
                .await
                .expect("claim")
                .is_none()
        );
        let state = json!({"evidence": {"n": 3}});
        assert!(
            s.advance_run(
                inc.id,
                "worker-a",
                RunStep::Queued,
                RunStep::Investigated,
                &state
            )
            .await
            .expect("advance")
        );
        // Only the holder advances it, and only from the step it is at.
        assert!(
            !s.advance_run(
                inc.id,
                "worker-b",
                RunStep::Investigated,
                RunStep::Diagnosed,
                &state
            )
            .await
            .expect("advance")
        );
        assert!(
            !s.advance_run(
                inc.id,
                "worker-a",
                RunStep::Queued,
                RunStep::Investigated,
                &state
            )
            .await
            .expect("advance")
        );

        // worker-a dies; once its lease lapses, worker-b resumes where it was.
        s.release_run(inc.id, "nobody").await.expect("release");
        assert!(
            s.claim_run("worker-b", lease)
                .await
                .expect("claim")
                .is_none()
        );
        let short = s
            .claim_run("worker-c", chrono::Duration::seconds(60))
            .await
            .expect("claim");
        assert!(short.is_none());
        s.release_run(inc.id, "worker-a").await.expect("release");
        let b = s
            .claim_run("worker-b", lease)
            .await
            .expect("claim")
            .expect("taken over");
        assert_eq!((b.step, b.attempts), (RunStep::Investigated, 2));
        assert_eq!(b.state, state);
        assert!(
            s.advance_run(
                inc.id,
                "worker-b",
                RunStep::Investigated,
                RunStep::Done,
                &state
            )
            .await
            .expect("advance")
        );
        s.release_run(inc.id, "worker-b").await.expect("release");
        assert!(
            s.claim_run("worker-a", lease)
                .await
                .expect("claim")
                .is_none(),
            "done runs stay done"
        );

        // A lapsed lease is taken without a release.
        let inc2 = s
            .create_incident(new_incident("runs-2"))
            .await
            .expect("create");
        s.enqueue_run(inc2.id).await.expect("enqueue");
        s.claim_run("worker-a", chrono::Duration::milliseconds(-1))
            .await
            .expect("claim")
            .expect("run");
        let again = s
            .claim_run("worker-b", lease)
            .await
            .expect("claim")
            .expect("lapsed");
        assert_eq!(
            (again.incident_id, again.lease_owner.as_deref()),
            (inc2.id, Some("worker-b"))
        );
        assert!(
            !s.advance_run(
                inc2.id,
                "worker-a",
                RunStep::Queued,
                RunStep::Investigated,
                &state
            )
            .await
            .expect("advance"),
            "the old holder lost it"
        );
    }
);

on_both!(
    four_eyes_needs_two_different_approvers_and_one_rejection_ends_it,
    |db| {
        let s = &db.store;
        let p = proposal(s).await;
        let a = s
            .request_approvals(p.id, chrono::Duration::minutes(30), 2)
            .await
            .expect("request");
        assert_eq!(a.approvals_needed, 2);
        let first = s
            .decide_approval(a.id, true, "alice", Some("looks right"))
            .await
            .expect("first");
        assert_eq!(first.status, ApprovalStatus::Pending);
        assert_eq!(first.first_approver.as_deref(), Some("alice"));
        assert_eq!(
            s.get_proposal(p.id).await.expect("p").status,
            ProposalStatus::AwaitingApproval,
            "one approval of two does not release the action"
        );
        let again = s.decide_approval(a.id, true, "alice", None).await;
        assert!(
            matches!(again, Err(StoreError::Conflict { .. })),
            "{again:?}"
        );
        let second = s
            .decide_approval(a.id, true, "bob", Some("agreed"))
            .await
            .expect("second");
        assert_eq!(second.status, ApprovalStatus::Approved);
        assert_eq!(
            (
                second.decided_by.as_deref(),
                second.first_approver.as_deref()
            ),
            (Some("bob"), Some("alice"))
        );
        assert_eq!(
            s.get_proposal(p.id).await.expect("p").status,
            ProposalStatus::Approved
        );

        // A rejection needs only one person.
        let p2 = proposal(s).await;
        let b = s
            .request_approvals(p2.id, chrono::Duration::minutes(30), 2)
            .await
            .expect("request");
        let r = s
            .decide_approval(b.id, false, "carol", Some("wrong target"))
            .await
            .expect("reject");
        assert_eq!(r.status, ApprovalStatus::Rejected);
    }
);

on_both!(
    a_request_is_seen_once_across_handles_until_it_is_forgotten,
    |db| {
        let s = &db.store;
        let window = chrono::Duration::minutes(10);
        assert!(
            s.first_sighting("slack", "v0=abc", window)
                .await
                .expect("first")
        );
        // Another replica shares the database: the same request is a replay.
        let other = s.clone();
        assert!(
            !other
                .first_sighting("slack", "v0=abc", window)
                .await
                .expect("again")
        );
        assert!(
            s.first_sighting("slack", "v0=def", window)
                .await
                .expect("another")
        );
        // Outside the window it is forgotten (and a replay that old fails the
        // timestamp check anyway).
        assert!(
            s.first_sighting("slack", "v0=abc", chrono::Duration::zero())
                .await
                .expect("forgotten")
        );
        // What notifiers remember is not touched by the forgetting.
        s.set_notifier_ref("slack", "approval:x", "C1 1.1")
            .await
            .expect("set");
        assert!(
            s.first_sighting("slack", "v0=ghi", chrono::Duration::zero())
                .await
                .expect("new")
        );
        assert_eq!(
            s.notifier_ref("slack", "approval:x")
                .await
                .expect("ref")
                .as_deref(),
            Some("C1 1.1")
        );
    }
);
