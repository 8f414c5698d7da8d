//! The observability tools an SRE leans on during an incident, through the
//! registry over a world replay with planted answers: a disk filling at a
//! known rate, an alert that flapped, a metric that leads the errors by
//! three minutes, an SLO burning fast, a rate unusual for the time of day,
//! and log lines whose error rate jumps at a known minute.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tools::Registry;
use tools::logs::LogsBackend;
use tools::prometheus::eval::StoredSeries;
use tools::prometheus::{PrometheusTools, WorldPrometheus};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 7, 11, 0, 0).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Minutes relative to now, as ms.
fn at(min: i64) -> i64 {
    (now() + Duration::minutes(min)).timestamp_millis()
}

fn series(
    pairs: &[(&str, &str)],
    minutes: impl Iterator<Item = i64>,
    f: impl Fn(i64) -> f64,
) -> StoredSeries {
    StoredSeries {
        labels: labels(pairs),
        samples: minutes.map(|m| (at(m), f(m))).collect(),
    }
}

fn alerts(name: &str, state: &str, minutes: impl Iterator<Item = i64>) -> StoredSeries {
    series(
        &[
            ("__name__", "ALERTS"),
            ("alertname", name),
            ("alertstate", state),
            ("service", "checkout"),
        ],
        minutes,
        |_| 1.0,
    )
}

/// A deterministic wiggle, so series are not constant.
fn wave(m: i64) -> f64 {
    (m.rem_euclid(11) * 37 % 11) as f64 + if m.rem_euclid(4) == 0 { 5.0 } else { 0.0 }
}

fn world() -> WorldPrometheus {
    let hour = -60..=0;
    let mut s = vec![
        // 50% at -60m, +0.25 points a minute: 65% now, 100% in 140 minutes.
        series(
            &[("__name__", "disk_used_percent"), ("mountpoint", "/data")],
            hour.clone(),
            |m| 50.0 + 0.25 * (m + 60) as f64,
        ),
        // Free bytes draining: 1000 now, -10 a minute, zero in 100 minutes.
        series(
            &[("__name__", "disk_free_bytes"), ("mountpoint", "/data")],
            hour.clone(),
            |m| 1000.0 - 10.0 * m as f64,
        ),
        series(
            &[("__name__", "disk_used_percent"), ("mountpoint", "/")],
            hour.clone(),
            |_| 40.0,
        ),
        // The target repeats the pool usage three minutes later.
        series(
            &[("__name__", "db_pool_in_use"), ("service", "checkout")],
            -70..=0,
            wave,
        ),
        series(
            &[("__name__", "errors_per_s"), ("service", "checkout")],
            hour.clone(),
            |m| 2.0 * wave(m - 3) + 1.0,
        ),
        series(
            &[("__name__", "cpu_seconds"), ("service", "checkout")],
            hour.clone(),
            |m| ((m * 7919).rem_euclid(13)) as f64,
        ),
        series(
            &[("__name__", "replicas"), ("service", "checkout")],
            hour.clone(),
            |_| 3.0,
        ),
        // HighErrorRate: pending 2m, firing 10:00–10:20, again 10:30–10:35,
        // and from 10:50 on; DiskFilling pending 10:40–10:42 only.
        alerts("HighErrorRate", "pending", -62..=-61),
        alerts(
            "HighErrorRate",
            "firing",
            (-60..=-40).chain(-30..=-25).chain(-10..=0),
        ),
        alerts("DiskFilling", "pending", -20..=-18),
    ];
    // Requests per second of two services over two days: `a` is 100
    // yesterday and 100 then 400 in the last half hour today; `b` is
    // steady.
    let two_days = -(49 * 60)..=0;
    s.push(series(
        &[("__name__", "rps"), ("service", "a")],
        two_days.clone(),
        |m| if m > -30 { 400.0 } else { 100.0 },
    ));
    s.push(series(
        &[("__name__", "rps"), ("service", "b")],
        two_days,
        |m| 50.0 + (m.rem_euclid(5)) as f64,
    ));
    // Counters over three days and an hour: 100 ok/s throughout, 5 errors/s
    // in the last 30 minutes.
    let counter = |code: &str, per_s: &dyn Fn(i64) -> f64| {
        let mut total = 0.0;
        let mut samples = Vec::new();
        for m in -(73 * 60)..=0 {
            samples.push((at(m), total));
            total += per_s(m + 1) * 60.0;
        }
        StoredSeries {
            labels: labels(&[("__name__", "req_total"), ("code", code)]),
            samples,
        }
    };
    s.push(counter("200", &|_| 100.0));
    s.push(counter("500", &|m| if m > -30 { 5.0 } else { 0.0 }));
    WorldPrometheus::new(now(), s)
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Arc::new(PrometheusTools::new(Arc::new(world()))))
        .unwrap();
    r.add(Arc::new(LogsBackend::default())).unwrap();
    r
}

fn by_label<'a>(data: &'a serde_json::Value, key: &str, value: &str) -> &'a serde_json::Value {
    data["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"][key] == value)
        .unwrap_or_else(|| panic!("no series with {key}={value} in {data}"))
}

#[tokio::test]
async fn forecast_says_when_the_disk_fills_within_minutes_of_the_truth() {
    let r = registry();
    let out = r
        .call(
            "forecast_metric",
            json!({"query": "disk_used_percent", "threshold": 100, "lookback": "1h", "step": "1m"}),
        )
        .await
        .unwrap();
    let data = by_label(&out.data, "mountpoint", "/data");
    let eta = data["eta_s"].as_i64().unwrap();
    assert!((eta - 140 * 60).abs() <= 180, "eta {eta}s\n{}", out.text);
    assert!(out.text.contains("reaches 100 in ~2h20m"), "{}", out.text);
    // The flat disk never reaches it, and comes after the filling one.
    let root = by_label(&out.data, "mountpoint", "/");
    assert!(root["crosses_at"].is_null());
    assert_eq!(out.data["series"][0]["metric"]["mountpoint"], "/data");
    // Falling free bytes reach zero.
    let free = r
        .call(
            "forecast_metric",
            json!({"query": "disk_free_bytes", "threshold": 0, "step": "1m"}),
        )
        .await
        .unwrap();
    let eta = free.data["series"][0]["eta_s"].as_i64().unwrap();
    assert!((eta - 100 * 60).abs() <= 180, "{}", free.text);
}

#[tokio::test]
async fn alert_history_tells_episodes_durations_and_flapping() {
    let r = registry();
    let out = r
        .call("get_alert_history", json!({"start": "-2h"}))
        .await
        .unwrap();
    let list = out.data["alerts"].as_array().unwrap();
    let high = list
        .iter()
        .find(|a| a["labels"]["alertname"] == "HighErrorRate")
        .unwrap();
    assert_eq!(high["fired"], 3, "{}", out.text);
    assert_eq!(high["still_firing"], true);
    assert_eq!(high["flapping"], true);
    assert_eq!(high["firing"][0]["duration_s"], 20 * 60);
    assert_eq!(high["firing"][1]["duration_s"], 5 * 60);
    assert!(
        out.text
            .contains("firing 10:00–10:20 (20m, pending from 09:58)"),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("still firing, 10m so far"),
        "{}",
        out.text
    );
    let disk = list
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFilling")
        .unwrap();
    assert_eq!(disk["fired"], 0);
    assert_eq!(disk["pending_never_fired"].as_array().unwrap().len(), 1);
    // The one still firing comes first.
    assert_eq!(list[0]["labels"]["alertname"], "HighErrorRate");
    // Filtered by name.
    let only = r
        .call(
            "get_alert_history",
            json!({"start": "-2h", "alertname": "DiskFilling"}),
        )
        .await
        .unwrap();
    assert_eq!(only.data["alerts"].as_array().unwrap().len(), 1);
    let none = r
        .call(
            "get_alert_history",
            json!({"start": "-2h", "alertname": "Nope\"}"}),
        )
        .await
        .unwrap();
    assert!(
        none.text.starts_with("no alert was pending or firing"),
        "{}",
        none.text
    );
}

#[tokio::test]
async fn the_metric_that_leads_the_errors_is_ranked_first_with_its_lead() {
    let r = registry();
    let out = r
        .call(
            "find_correlated_metrics",
            json!({
                "target": "errors_per_s",
                "candidates": ["cpu_seconds", "replicas", "db_pool_in_use"],
                "step": "1m",
            }),
        )
        .await
        .unwrap();
    let first = &out.data["series"][0];
    assert_eq!(
        first["metric"]["__name__"], "db_pool_in_use",
        "{}",
        out.text
    );
    assert_eq!(first["lag_steps"], 3);
    assert!(first["r"].as_f64().unwrap() > 0.99);
    assert!(
        out.text.contains("moves 3m BEFORE the target"),
        "{}",
        out.text
    );
    // The constant replica count is said to be uncorrelatable, not ranked.
    assert!(
        out.text.contains("1 constant or too sparse"),
        "{}",
        out.text
    );
    // A target of many series is a readable error.
    let e = r
        .call(
            "find_correlated_metrics",
            json!({"target": "disk_used_percent", "candidates": ["cpu_seconds"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_arguments");
    assert!(e.to_string().contains("aggregate it to one"), "{e}");
}

#[tokio::test]
async fn a_fast_burn_pages_by_the_workbook_windows() {
    let r = registry();
    let out = r
        .call(
            "get_error_budget_burn",
            json!({"errors": "req_total{code=\"500\"}", "total": "req_total", "slo": 0.999}),
        )
        .await
        .unwrap();
    let windows = out.data["windows"].as_array().unwrap();
    let burn = |w: &str| {
        windows.iter().find(|x| x["window"] == w).unwrap()["burn_rate"]
            .as_f64()
            .unwrap()
    };
    // 5 errors in 105 requests a second: 47.6x; over the hour half that.
    assert!((burn("5m") - 47.6).abs() < 3.0, "{}", out.text);
    assert!((burn("1h") - 24.4).abs() < 2.0, "{}", out.text);
    assert!(burn("3d") < 1.0, "{}", out.text);
    assert!(out.text.contains("verdict: PAGE: burning"), "{}", out.text);
    let alerts = out.data["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "only the 1h/5m page: {}", out.text);
    // Before the errors began, all is well.
    let calm = r
        .call(
            "get_error_budget_burn",
            json!({"errors": "req_total{code=\"500\"}", "total": "req_total", "slo": 0.999, "time": "-40m"}),
        )
        .await
        .unwrap();
    assert!(calm.text.contains("verdict: OK"), "{}", calm.text);
    for bad in [
        json!({"errors": "rate(req_total[5m])", "total": "req_total", "slo": 0.999}),
        json!({"errors": "req_total", "total": "req_total", "slo": 99.9}),
    ] {
        let e = r.call("get_error_budget_burn", bad).await.unwrap_err();
        assert_eq!(e.kind(), "invalid_arguments", "{e}");
    }
}

#[tokio::test]
async fn a_rate_unusual_for_the_time_of_day_is_flagged_and_a_steady_one_is_not() {
    let r = registry();
    let out = r
        .call(
            "compare_metric_to_baseline",
            json!({"query": "rps", "window": "1h", "ago": "1d"}),
        )
        .await
        .unwrap();
    let a = by_label(&out.data, "service", "a");
    let b = by_label(&out.data, "service", "b");
    assert_eq!(a["unusual"], true, "{}", out.text);
    assert_eq!(b["unusual"], false, "{}", out.text);
    assert!((a["baseline_mean"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    assert!(
        out.text.contains("UNUSUAL for this time of day"),
        "{}",
        out.text
    );
    assert!(out.text.starts_with("2 series, 1 unusual"), "{}", out.text);
}

#[tokio::test]
async fn label_names_are_listed_and_narrowed_by_a_selector() {
    let r = registry();
    let all = r.call("list_label_names", json!({})).await.unwrap();
    let names: Vec<&str> = all
        .data
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for n in ["__name__", "alertname", "mountpoint", "service"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let disk = r
        .call("list_label_names", json!({"selector": "disk_used_percent"}))
        .await
        .unwrap();
    assert!(
        disk.text.contains("mountpoint") && !disk.text.contains("alertname"),
        "{}",
        disk.text
    );
}

fn incident_log() -> String {
    let mut text = String::new();
    for m in 30..50 {
        let errors = if m < 42 { usize::from(m == 35) } else { 40 };
        for i in 0..errors {
            text.push_str(&format!(
                "2024-11-24T10:{m:02}:{:02}.{i:03}Z ERROR db: dial tcp 10.0.3.17:5432: connect: connection refused\n",
                i % 60
            ));
        }
        text.push_str(&format!(
            "2024-11-24T10:{m:02}:30Z INFO GET /healthz 200 1ms\n"
        ));
    }
    text.push_str("    at com.acme.db.Pool.acquire(Pool.java:118) connection refused\n");
    text
}

#[tokio::test]
async fn the_minute_the_error_rate_jumped_is_named() {
    let r = registry();
    let out = r
        .call(
            "count_log_lines_over_time",
            json!({"text": incident_log(), "pattern": "connection refused"}),
        )
        .await
        .unwrap();
    assert!(
        out.text
            .contains("rate rose from 0.1/min to 40/min at 10:42"),
        "{}",
        out.text
    );
    assert_eq!(out.data["untimed"], 1, "the stack-trace line has no time");
    assert_eq!(out.data["jump"]["at"], "2024-11-24T10:42:00Z");
    let per_5m = r
        .call(
            "count_log_lines_over_time",
            json!({"text": incident_log(), "pattern": "ERROR", "bucket": "5m"}),
        )
        .await
        .unwrap();
    let counts: Vec<u64> = per_5m.data["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 120, 200], "{}", per_5m.text);
}

#[tokio::test]
async fn a_search_shows_matches_in_context_with_the_first_and_last_times() {
    let r = registry();
    let out = r
        .call(
            "search_log_lines",
            json!({"text": incident_log(), "pattern": "connect(ion)? refused", "regex": true,
                   "context": 1, "max_matches": 3}),
        )
        .await
        .unwrap();
    assert_eq!(out.data["matches"], 1 + 8 * 40 + 1);
    assert_eq!(out.data["first"]["time"], "2024-11-24T10:35:00Z");
    assert_eq!(out.data["first"]["line"], 6);
    assert!(
        out.data["last"]["time"].is_null(),
        "the last match is the untimed trace line"
    );
    assert!(
        out.text.contains("first on line 6 at 2024-11-24T10:35:00Z"),
        "{}",
        out.text
    );
    // Context: the health check before the first match, marked apart.
    assert!(
        out.text.contains("      5  2024-11-24T10:34:30Z INFO"),
        "{}",
        out.text
    );
    assert!(out.text.contains(">     6  "), "{}", out.text);
    assert!(
        out.text.contains("… 319 more matches not shown"),
        "{}",
        out.text
    );
    let e = r
        .call(
            "search_log_lines",
            json!({"text": "x", "pattern": "(", "regex": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_arguments");
    let none = r
        .call("search_log_lines", json!({"text": "", "pattern": "boom"}))
        .await
        .unwrap();
    assert!(none.text.starts_with("0 of 0 lines match"), "{}", none.text);
}

#[tokio::test]
async fn odd_inputs_are_answers_not_crashes() {
    let r = registry();
    for (tool, args) in [
        (
            "forecast_metric",
            json!({"query": "no_such_metric", "threshold": 1}),
        ),
        (
            "compare_metric_to_baseline",
            json!({"query": "no_such_metric"}),
        ),
        ("get_alert_history", json!({"start": "-30d"})),
        ("get_alert_history", json!({"start": "-1h", "end": "-2h"})),
        (
            "forecast_metric",
            json!({"query": "disk_used_percent", "threshold": 1, "step": "0s"}),
        ),
        (
            "compare_metric_to_baseline",
            json!({"query": "rps", "ago": "0s"}),
        ),
        (
            "compare_metric_to_baseline",
            json!({"query": "rps", "window": "100000d"}),
        ),
        (
            "find_correlated_metrics",
            json!({"target": "errors_per_s", "candidates": []}),
        ),
        (
            "count_log_lines_over_time",
            json!({"text": "no times here\nnor here"}),
        ),
    ] {
        match r.call(tool, args.clone()).await {
            Ok(out) => assert!(!out.text.is_empty(), "{tool} {args}"),
            Err(e) => assert_eq!(e.kind(), "invalid_arguments", "{tool} {args}: {e}"),
        }
    }
}
