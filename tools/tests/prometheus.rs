//! The Prometheus backend: the world replay on handwritten series, the
//! analysis tools on planted changes, and the replay against a real
//! Prometheus (Debian package `prometheus`, started here on loopback)
//! loaded with the same data: one table of queries, both must agree.
// Helpers shared by the tests unwrap like the tests themselves.
#![allow(clippy::unwrap_used)]

use brain::backends::ToolError;
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::Registry;
use tools::prometheus::eval::StoredSeries;
use tools::prometheus::{
    LivePrometheus, PrometheusApi, PrometheusTools, QueryData, WorldPrometheus,
};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 7, 15, 0, 0).unwrap()
}

/// Counters for two services, a gauge with a gap, sampled every minute for
/// two hours from `base`.
fn fixture(base: DateTime<Utc>) -> Vec<StoredSeries> {
    let b = base.timestamp_millis();
    let minute = 60_000;
    let counter =
        |name: &str, lbls: &[(&str, &str)], per_s: &dyn Fn(i64) -> f64, reset_at: Option<i64>| {
            let mut l = labels(lbls);
            l.insert("__name__".into(), name.into());
            let mut total = 0.0;
            let samples = (0..=120)
                .map(|i| {
                    if Some(i) == reset_at {
                        total = 0.0;
                    }
                    let v = total;
                    total += per_s(i) * 60.0;
                    (b + i * minute, v)
                })
                .collect();
            StoredSeries { labels: l, samples }
        };
    let mut out = vec![
        counter(
            "req_total",
            &[("service", "api"), ("code", "200")],
            &|_| 10.0,
            Some(70),
        ),
        counter(
            "req_total",
            &[("service", "api"), ("code", "500")],
            &|i| if i < 60 { 1.0 } else { 5.0 },
            None,
        ),
        counter(
            "req_total",
            &[("service", "web"), ("code", "200")],
            &|_| 20.0,
            None,
        ),
        counter(
            "req_total",
            &[("service", "web"), ("code", "500")],
            &|_| 0.5,
            None,
        ),
    ];
    for (le, share) in [("0.1", 0.5), ("0.5", 0.8), ("1.0", 0.95), ("+Inf", 1.0)] {
        out.push(counter(
            "latency_bucket",
            &[("service", "api"), ("le", le)],
            &move |i| {
                if i < 60 {
                    10.0 * share
                } else {
                    10.0 * share.min(0.9) * 0.5 + 5.0 * share
                }
            },
            None,
        ));
    }
    let mut queue = labels(&[("__name__", "queue_depth"), ("queue", "a")]);
    queue.insert("team".into(), "core".into());
    out.push(StoredSeries {
        labels: queue,
        samples: (0..=120)
            .filter(|i| !(80..90).contains(i))
            .map(|i| {
                (
                    b + i * minute,
                    5.0 + (i % 7) as f64 + if i > 100 { 0.25 } else { 0.0 },
                )
            })
            .collect(),
    });
    out
}

fn world(now: DateTime<Utc>, base: DateTime<Utc>) -> WorldPrometheus {
    WorldPrometheus::new(now, fixture(base))
}

fn vector(d: QueryData) -> Vec<(BTreeMap<String, String>, f64)> {
    match d {
        QueryData::Vector(v) => {
            let mut v: Vec<_> = v.into_iter().map(|s| (s.metric, s.value.v)).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9)
}

#[tokio::test]
async fn the_replay_selects_with_label_matchers() {
    let base = t0();
    let w = world(base + ChronoDuration::minutes(120), base);
    let at = base + ChronoDuration::minutes(30);
    let v = vector(w.query(r#"req_total{code=~"5.."}"#, at).await.unwrap());
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|(l, _)| l["code"] == "500"));
    // Anchored: "5" alone does not match "500".
    assert!(vector(w.query(r#"req_total{code=~"5"}"#, at).await.unwrap()).is_empty());
    let v = vector(
        w.query(r#"req_total{code!="200",service!~"w.*"}"#, at)
            .await
            .unwrap(),
    );
    assert_eq!(
        v,
        vec![(
            labels(&[
                ("__name__", "req_total"),
                ("code", "500"),
                ("service", "api")
            ]),
            1800.0
        )]
    );
}

#[tokio::test]
async fn the_replay_computes_rate_sums_and_an_error_ratio() {
    let base = t0();
    let w = world(base + ChronoDuration::minutes(120), base);
    let at = base + ChronoDuration::minutes(30);
    let rates = vector(w.query("rate(req_total[5m])", at).await.unwrap());
    assert_eq!(rates.len(), 4);
    assert!(
        rates.iter().all(|(l, _)| !l.contains_key("__name__")),
        "rate drops the name"
    );
    let api200 = rates
        .iter()
        .find(|(l, _)| l["service"] == "api" && l["code"] == "200")
        .unwrap()
        .1;
    assert!(close(api200, 10.0), "{api200}");
    let by = vector(
        w.query("sum by (service) (rate(req_total[5m]))", at)
            .await
            .unwrap(),
    );
    assert_eq!(by.len(), 2);
    assert!(close(by[0].1, 11.0) && close(by[1].1, 20.5), "{by:?}");
    let ratio = vector(
        w.query(
            r#"sum by (service) (rate(req_total{code="500"}[5m])) / sum by (service) (rate(req_total[5m])) > 0.05"#,
            at,
        )
        .await
        .unwrap(),
    );
    assert_eq!(ratio.len(), 1, "{ratio:?}");
    assert_eq!(ratio[0].0, labels(&[("service", "api")]));
    assert!(close(ratio[0].1, 1.0 / 11.0));
    // The counter reset at minute 70 is not a drop in rate; only the
    // increase between the last sample before it and the reset is lost,
    // as in Prometheus: (600 * 4 lost one step) / 300 s = 8.
    let after_reset = vector(
        w.query(
            r#"rate(req_total{service="api",code="200"}[5m])"#,
            base + ChronoDuration::minutes(72),
        )
        .await
        .unwrap(),
    );
    assert!(close(after_reset[0].1, 8.0), "{after_reset:?}");
}

#[tokio::test]
async fn an_instant_query_sees_a_sample_only_within_five_minutes() {
    let base = t0();
    let w = world(base + ChronoDuration::minutes(120), base);
    // The gauge has no samples at minutes 80..90: its last one is at 79.
    let seen = vector(
        w.query("queue_depth", base + ChronoDuration::minutes(84))
            .await
            .unwrap(),
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, 5.0 + (79 % 7) as f64);
    let gone = vector(
        w.query("queue_depth", base + ChronoDuration::seconds(84 * 60 + 1))
            .await
            .unwrap(),
    );
    assert!(gone.is_empty(), "{gone:?}");
}

#[tokio::test]
async fn an_unsupported_function_is_an_error_naming_it() {
    let base = t0();
    let w = world(base + ChronoDuration::minutes(120), base);
    let e = w
        .query(r#"label_replace(up, "a", "$1", "b", "(.*)")"#, base)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::InvalidArguments(m) if m.contains("label_replace")),
        "{e}"
    );
    let e = w
        .query("rate(req_total[5m]) offset 1h", base)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("offset"), "{e}");
}

fn registry(api: Arc<dyn PrometheusApi>) -> Registry {
    let mut r = Registry::new();
    r.add(Arc::new(PrometheusTools::new(api))).unwrap();
    r
}

/// A quiet series with a step at minute 40 and a spike at minutes 20–22,
/// sampled every minute for an hour up to `now`.
fn planted(now: DateTime<Utc>) -> WorldPrometheus {
    let start = now - ChronoDuration::minutes(60);
    let series = |name: &str, f: &dyn Fn(i64) -> f64| StoredSeries {
        labels: labels(&[
            ("__name__", name),
            ("namespace", "prod"),
            ("service", "checkout"),
        ]),
        samples: (0..=60)
            .map(|i| {
                (
                    (start + ChronoDuration::minutes(i)).timestamp_millis(),
                    f(i),
                )
            })
            .collect(),
    };
    let noise = |i: i64| ((i * 7919) % 11) as f64 / 1000.0;
    WorldPrometheus::new(
        now,
        vec![
            series("error_ratio", &|i| {
                if i < 40 {
                    0.2 + noise(i)
                } else {
                    4.1 + noise(i)
                }
            }),
            series("latency_p99", &|i| {
                if (20..23).contains(&i) {
                    2.5
                } else {
                    0.2 + noise(i)
                }
            }),
            series("requests", &|i| 400.0 + noise(i) * 100.0),
        ],
    )
}

#[tokio::test]
async fn summarize_metric_finds_the_planted_step_and_spike() {
    let now = Utc.with_ymd_and_hms(2026, 4, 7, 11, 0, 0).unwrap();
    let r = registry(Arc::new(planted(now)));
    let out = r
        .call(
            "summarize_metric",
            serde_json::json!({"query": "{namespace=\"prod\"}", "start": "-1h", "step": "1m"}),
        )
        .await
        .unwrap();
    let line = |name: &str| {
        out.text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{}", out.text))
            .to_owned()
    };
    let errors = line("error_ratio");
    assert!(errors.contains("rose from 0.2"), "{errors}");
    assert!(errors.contains("to 4.1"), "{errors}");
    assert!(errors.contains("at 10:40"), "{errors}");
    let latency = line("latency_p99");
    assert!(latency.contains("spiked to 2.5 at 10:20"), "{latency}");
    let requests = line("requests");
    assert!(requests.contains("no notable change"), "{requests}");
    // Common labels said once.
    assert!(
        out.text.lines().next().unwrap().contains("namespace=prod"),
        "{}",
        out.text
    );
    assert_eq!(out.data.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn what_changed_around_ranks_the_series_that_moved_first() {
    let now = Utc.with_ymd_and_hms(2026, 4, 7, 11, 0, 0).unwrap();
    let r = registry(Arc::new(planted(now)));
    let out = r
        .call(
            "what_changed_around",
            serde_json::json!({"query": "{namespace=\"prod\"}", "time": "-20m", "window": "10m"}),
        )
        .await
        .unwrap();
    let first = out.text.lines().nth(1).unwrap();
    assert!(first.starts_with("error_ratio"), "{}", out.text);
    assert!(first.contains("+19"), "{first}");
    assert_eq!(out.data["series"][0]["metric"]["__name__"], "error_ratio");
}

#[tokio::test]
async fn the_tools_answer_from_a_scenario_world() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evals/scenarios/examples/k8s-bad-deploy-checkout.yaml"
    );
    let scenario = brain::scenario::Scenario::load(std::path::Path::new(path)).unwrap();
    let r = registry(Arc::new(WorldPrometheus::from_world(&scenario.world)));
    let out = r
        .call(
            "query_prometheus",
            serde_json::json!({"query": "service:http_server_requests:error_ratio_rate5m > 0.05"}),
        )
        .await
        .unwrap();
    assert!(out.text.contains("0.181"), "{}", out.text);
    let out = r
        .call("list_metric_names", serde_json::json!({"filter": "p99"}))
        .await
        .unwrap();
    assert!(out.text.starts_with("2 of 6 metric names"), "{}", out.text);
    let out = r
        .call("summarize_metric", serde_json::json!({"query": "service:http_server_requests:error_ratio_rate5m", "step": "5m"}))
        .await
        .unwrap();
    // The first bad sample is at -15m (15:27), five minutes after the rollout.
    assert!(out.text.contains("rose from 0.00209 to"), "{}", out.text);
    assert!(out.text.contains("at 15:27"), "{}", out.text);
    let e = r
        .call(
            "query_prometheus",
            serde_json::json!({"query": "sum(rate(x[5m]"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
    let e = r
        .call(
            "query_prometheus",
            serde_json::json!({"query": "up", "limit": 3}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
}

// ---- against a real Prometheus ----------------------------------------

/// A Prometheus process on a free loopback port, killed on drop.
struct RealPrometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openmetrics(series: &[StoredSeries]) -> String {
    // Samples of one metric family must be contiguous and the file must end
    // with `# EOF`; no `# TYPE` line makes every family `unknown`, so names
    // such as req_total need no counter suffix rules.
    let mut out = String::new();
    let mut sorted: Vec<&StoredSeries> = series.iter().collect();
    sorted.sort_by(|a, b| a.labels["__name__"].cmp(&b.labels["__name__"]));
    for s in sorted {
        let rest: Vec<String> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        for (t, v) in &s.samples {
            out.push_str(&format!(
                "{}{{{}}} {v} {}\n",
                s.labels["__name__"],
                rest.join(","),
                t / 1000
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Start the Debian package's Prometheus with `series` backfilled.
///
/// promtool writes the OpenMetrics input as 2h-aligned blocks into the data
/// directory before the server starts, which loads them as persisted blocks.
/// The data must lie before the head (the server scrapes itself from now on)
/// and within the retention (15d): it is placed 3–5h in the past, so neither
/// `--storage.tsdb.allow-overlapping-blocks` nor a retention flag is needed.
async fn start_prometheus(series: &[StoredSeries]) -> RealPrometheus {
    let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "the prometheus binary is missing: install the Debian package with \
                 `apt-get install -y --no-install-recommends prometheus` (.ci/run does)"
            )
        });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("backfill.om");
    std::fs::write(&input, openmetrics(series)).unwrap();
    let status = tokio::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .await
        .expect("promtool comes with the prometheus package");
    assert!(
        status.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let port = free_port();
    let config = format!(
        "global: {{scrape_interval: 2s, evaluation_interval: 1s}}\n\
         rule_files: [rules.yml]\n\
         scrape_configs:\n  - job_name: self\n    static_configs: [{{targets: [\"127.0.0.1:{port}\"]}}]\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: test\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {severity: warning}\n        annotations: {summary: always firing}\n",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let child = std::process::Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.external-url={url}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let p = RealPrometheus {
        child,
        url,
        _dir: dir,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{}/-/ready", p.url)).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus at {} not ready after 60 s",
            p.url
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p
}

/// Instant queries both backends must answer alike, with the minute of the
/// fixture to evaluate at (seconds allowed for non-aligned times).
const AGREEMENT: &[(&str, i64)] = &[
    ("req_total", 1800),
    (r#"req_total{code=~"5.."}"#, 1800),
    (r#"req_total{code!="200",service!~"w.*"}"#, 3630),
    ("rate(req_total[5m])", 1800),
    ("rate(req_total[5m])", 4290),
    ("irate(req_total[5m])", 4230),
    ("increase(req_total[10m])", 3650),
    ("delta(queue_depth[15m])", 3000),
    ("deriv(queue_depth[15m])", 3010),
    ("avg_over_time(queue_depth[10m])", 5000),
    ("max_over_time(queue_depth[10m])", 5000),
    ("min_over_time(queue_depth[10m])", 5000),
    ("sum_over_time(queue_depth[10m])", 5000),
    ("count_over_time(queue_depth[10m])", 5400),
    ("last_over_time(queue_depth[10m])", 5400),
    ("queue_depth", 5040),
    ("queue_depth", 5100),
    (
        r#"sum by (service) (rate(req_total{code="500"}[5m])) / sum by (service) (rate(req_total[5m]))"#,
        3900,
    ),
    ("sum(rate(req_total[5m])) without (code)", 3900),
    ("rate(req_total[5m]) > 5", 3900),
    ("rate(req_total[5m]) * 100", 3900),
    ("topk(2, rate(req_total[5m]))", 3900),
    ("bottomk(1, rate(req_total[5m]))", 3900),
    ("count by (code) (req_total)", 3900),
    ("max by (service) (rate(req_total[5m]))", 3900),
    ("min by (service) (rate(req_total[5m]))", 3900),
    ("avg by (service) (rate(req_total[5m]))", 3900),
    ("sum(req_total)", 3900),
    (
        "histogram_quantile(0.9, sum by (le) (rate(latency_bucket[5m])))",
        1800,
    ),
    (
        "histogram_quantile(0.9, sum by (le) (rate(latency_bucket[5m])))",
        4800,
    ),
    ("-queue_depth + 1", 3000),
    ("queue_depth ^ 2 % 7", 3000),
    ("queue_depth > bool 8", 3000),
    ("abs(delta(queue_depth[15m]))", 3000),
    ("2 * 3 - 1", 3000),
    ("queue_depth[3m]", 3000),
];

type Normalized = Vec<(BTreeMap<String, String>, Vec<(i64, f64)>)>;

fn assert_agree(what: &str, live: &QueryData, replay: &QueryData) {
    let norm = |d: &QueryData| -> Normalized {
        let mut out: Vec<_> = match d {
            QueryData::Vector(v) => v
                .iter()
                .map(|s| (s.metric.clone(), vec![(s.value.t_ms, s.value.v)]))
                .collect(),
            QueryData::Matrix(m) => m
                .iter()
                .map(|s| {
                    (
                        s.metric.clone(),
                        s.values.iter().map(|x| (x.t_ms, x.v)).collect(),
                    )
                })
                .collect(),
            QueryData::Scalar(s) => vec![(BTreeMap::new(), vec![(s.t_ms, s.v)])],
            QueryData::String(_) => panic!("{what}: string result"),
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    assert_eq!(
        std::mem::discriminant(live),
        std::mem::discriminant(replay),
        "{what}: {live:?} vs {replay:?}"
    );
    let (l, r) = (norm(live), norm(replay));
    assert_eq!(l.len(), r.len(), "{what}: live {l:?}\nreplay {r:?}");
    for ((ll, lv), (rl, rv)) in l.iter().zip(&r) {
        assert_eq!(ll, rl, "{what}");
        assert_eq!(
            lv.len(),
            rv.len(),
            "{what} {ll:?}: live {lv:?}\nreplay {rv:?}"
        );
        for ((lt, lx), (rt, rx)) in lv.iter().zip(rv) {
            assert_eq!(lt, rt, "{what} {ll:?}");
            assert!(
                close(*lx, *rx),
                "{what} {ll:?} at {lt}: live {lx} replay {rx}"
            );
        }
    }
}

#[tokio::test]
async fn the_replay_agrees_with_a_real_prometheus_on_the_same_data() {
    // 3-5 h ago, on a whole hour, so the blocks are older than the head.
    let hour = Utc::now().timestamp() / 3600 * 3600;
    let base = Utc.timestamp_opt(hour - 5 * 3600, 0).unwrap();
    let data = fixture(base);
    let server = start_prometheus(&data).await;
    let live = LivePrometheus::new(&server.url, Duration::from_secs(10)).unwrap();
    let replay = WorldPrometheus::new(Utc::now(), data);
    for (query, offset_s) in AGREEMENT {
        let at = base + ChronoDuration::seconds(*offset_s);
        let what = format!("{query} at +{offset_s}s");
        let l = live
            .query(query, at)
            .await
            .unwrap_or_else(|e| panic!("{what}: live: {e}"));
        let r = replay
            .query(query, at)
            .await
            .unwrap_or_else(|e| panic!("{what}: replay: {e}"));
        assert_agree(&what, &l, &r);
    }
    for (query, step) in [
        ("sum by (service) (rate(req_total[5m]))", 60),
        ("queue_depth", 45),
        (
            r#"sum by (service) (rate(req_total{code="500"}[5m])) / sum by (service) (rate(req_total[5m])) > 0.1"#,
            90,
        ),
    ] {
        let (start, end) = (base, base + ChronoDuration::minutes(130));
        let step = Duration::from_secs(step);
        let l = live.query_range(query, start, end, step).await.unwrap();
        let r = replay.query_range(query, start, end, step).await.unwrap();
        assert_agree(&format!("range {query}"), &l, &r);
    }
    let window = (base, base + ChronoDuration::minutes(120));
    for selectors in [
        vec![r#"req_total{service="api"}"#.to_owned()],
        vec!["queue_depth".into(), "latency_bucket".into()],
    ] {
        let l = live.series(&selectors, window.0, window.1).await.unwrap();
        let r = replay.series(&selectors, window.0, window.1).await.unwrap();
        let mut l = l;
        l.sort();
        assert_eq!(l, r, "series {selectors:?}");
    }
    let sel = vec!["req_total".to_owned()];
    assert_eq!(
        live.label_values("code", &sel).await.unwrap(),
        replay.label_values("code", &sel).await.unwrap()
    );
    assert_eq!(
        live.label_names(&sel).await.unwrap(),
        replay.label_names(&sel).await.unwrap()
    );

    live_errors_are_readable(&live).await;
    live_alerts_rules_and_targets(&server.url).await;
    live_latency_through_the_registry(&server.url, base).await;
}

async fn live_errors_are_readable(live: &LivePrometheus) {
    let e = live.query("sum(rate(x[5m]", Utc::now()).await.unwrap_err();
    match &e {
        ToolError::InvalidArguments(m) => assert!(m.contains("parse error"), "{m}"),
        other => panic!("bad PromQL should be invalid arguments, got {other:?}"),
    }
    let e = live
        .query_range(
            "up",
            Utc::now(),
            Utc::now() - ChronoDuration::hours(1),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
}

async fn live_alerts_rules_and_targets(url: &str) {
    let r = registry(Arc::new(
        LivePrometheus::new(url, Duration::from_secs(10)).unwrap(),
    ));
    // The rule fires on its first evaluation and the first self-scrape
    // comes within the scrape interval: poll, do not sleep.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = r
            .call("list_prometheus_alerts", serde_json::json!({}))
            .await
            .unwrap();
        let targets = r
            .call("list_scrape_targets", serde_json::json!({}))
            .await
            .unwrap();
        if alerts
            .text
            .contains("firing AlwaysFiring {severity=warning}")
            && targets.text.contains("up {instance=")
        {
            assert!(alerts.text.contains("always firing"), "{}", alerts.text);
            assert!(targets.text.contains("job=self"), "{}", targets.text);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no firing alert or healthy target:\n{}\n{}",
            alerts.text,
            targets.text
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rules = r
        .call("list_alert_rules", serde_json::json!({}))
        .await
        .unwrap();
    assert!(
        rules
            .text
            .contains("alerting AlwaysFiring firing (test): vector(1)"),
        "{}",
        rules.text
    );
}

async fn live_latency_through_the_registry(url: &str, base: DateTime<Utc>) {
    let r = registry(Arc::new(
        LivePrometheus::new(url, Duration::from_secs(10)).unwrap(),
    ));
    let time = (base + ChronoDuration::minutes(65)).to_rfc3339();
    let args = serde_json::json!({"query": "sum by (service) (rate(req_total[5m]))", "time": time});
    let mut ms = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let out = r.call("query_prometheus", args.clone()).await.unwrap();
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(out.text.starts_with("2 series"), "{}", out.text);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "query_prometheus through the registry against a real Prometheus: median {:.2} ms, max {:.2} ms over 20 calls",
        ms[10], ms[19]
    );
}

#[tokio::test]
async fn a_closed_port_is_a_readable_backend_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let live = LivePrometheus::new(&url, Duration::from_secs(2)).unwrap();
    let e = live.query("up", Utc::now()).await.unwrap_err();
    match &e {
        ToolError::Backend(m) => {
            assert!(
                m.contains(&format!("Prometheus at {url} is unreachable")),
                "{m}"
            );
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}
