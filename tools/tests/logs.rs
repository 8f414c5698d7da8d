//! Log clustering as an agent relies on it: realistic service logs become a
//! few templates with exact counts, and what changed since a baseline is
//! flagged, through the library and through the `cluster_log_lines` tool.

use brain::backends::ToolBackend;
use brain::vocabulary::Risk;
use serde_json::json;
use std::sync::Arc;
use tools::Registry;
use tools::logs::{
    Change, ClusterLogLinesArgs, DrainConfig, Level, LogsBackend, Summary, Template,
    cluster_log_lines,
};

const IPS: [&str; 3] = ["10.0.3.17", "10.0.3.18", "10.0.4.2"];
const PORTS: [u16; 2] = [5432, 6432];
const DURATIONS: [&str; 4] = ["250ms", "1.5s", "3s", "812µs"];

fn refused(i: usize) -> String {
    format!(
        "2024-11-24T10:{:02}:{:02}.{:03}Z ERROR db: dial tcp {}:{}: connect: connection refused (after {})",
        i / 60 % 60,
        i % 60,
        i * 7 % 1000,
        IPS[i % 3],
        PORTS[i % 2],
        DURATIONS[i % 4]
    )
}

fn request(i: usize) -> String {
    let status = if i.is_multiple_of(5) { 404 } else { 200 };
    format!(
        "2024-11-24T10:00:{:02}Z INFO GET /api/v1/orders/{} {status} {}ms",
        i % 60,
        1000 + i * 37,
        3 + i % 90
    )
}

fn slow_query(i: usize) -> String {
    format!(
        r#"{{"ts":"2024-11-24T10:00:{:02}Z","level":"warn","msg":"slow query","duration_ms":{},"table":"orders"}}"#,
        i % 60,
        500 + i
    )
}

fn klog(i: usize) -> String {
    format!(
        "E1124 10:00:{:02}.{:06}       1 reflector.go:138] Failed to watch *v1.Pod: unauthorized",
        i % 60,
        i * 1234
    )
}

const STACK_TRACE: &str = "\
2024-11-24 10:00:05.123 ERROR 1 --- [http-nio-8080-exec-3] c.a.o.OrdersController : request failed
java.lang.IllegalStateException: pool exhausted after 30000ms
\tat com.acme.db.Pool.acquire(Pool.java:118)
\tat com.acme.db.Repo.find(Repo.java:42)
\tat com.acme.api.OrdersController.get(OrdersController.java:77)
Caused by: java.net.ConnectException: Connection refused
\t... 12 more";

/// 40 refused connections, 30 requests, 10 JSON slow queries and 5 klog
/// errors interleaved, then a stack trace.
fn service_log() -> String {
    let mut lines = Vec::new();
    let (mut r, mut q, mut s, mut k) = (0, 0, 0, 0);
    for step in 0..85 {
        match step % 17 {
            0..=7 => (lines.push(refused(r)), r += 1),
            8..=13 => (lines.push(request(q)), q += 1),
            14 | 15 => (lines.push(slow_query(s)), s += 1),
            _ => (lines.push(klog(k)), k += 1),
        };
    }
    assert_eq!(
        (r, q, s, k),
        (40, 30, 10, 5),
        "the sample is built as described"
    );
    lines.push(String::new());
    lines.push(STACK_TRACE.to_owned());
    lines.join("\n")
}

fn find<'a>(s: &'a Summary, template: &str) -> &'a Template {
    s.templates
        .iter()
        .find(|t| t.template == template)
        .unwrap_or_else(|| {
            panic!(
                "no template {template:?} in {:#?}",
                s.templates.iter().map(|t| &t.template).collect::<Vec<_>>()
            )
        })
}

#[test]
fn a_service_log_clusters_into_a_few_templates_with_exact_counts() {
    let s = Summary::of(&service_log(), None, DrainConfig::default());
    let got: Vec<(&str, u64, Option<Level>)> = s
        .templates
        .iter()
        .map(|t| (t.template.as_str(), t.count, t.level))
        .collect();
    let expected = [
        (
            "ERROR db: dial tcp <IP>: connect: connection refused (after <NUM>)",
            40,
            Some(Level::Error),
        ),
        (
            "INFO GET /api/v1/orders/<NUM> <NUM> <NUM>",
            30,
            Some(Level::Info),
        ),
        ("slow query", 10, Some(Level::Warn)),
        (
            "Failed to watch *v1.Pod: unauthorized",
            5,
            Some(Level::Error),
        ),
        ("at <*>", 3, None),
        (
            "ERROR <NUM> --- [http-nio-<NUM>-exec-<NUM>] c.a.o.OrdersController : request failed",
            1,
            Some(Level::Error),
        ),
        (
            "java.lang.IllegalStateException: pool exhausted after <NUM>",
            1,
            None,
        ),
        (
            "Caused by: java.net.ConnectException: Connection refused",
            1,
            None,
        ),
        ("... <NUM> more", 1, None),
    ];
    assert_eq!(got, expected);
    assert_eq!(s.lines, 92);
    assert_eq!(s.baseline_lines, None);
    assert!(s.templates.iter().all(|t| t.change.is_none()));

    let refused = find(&s, expected[0].0);
    assert_eq!(refused.first_line, 1);
    assert!(
        refused
            .example
            .starts_with("2024-11-24T10:00:00.000Z ERROR db: dial tcp 10.0.3.17:5432")
    );
    let values: Vec<(&str, Vec<&str>, bool)> = refused
        .wildcards
        .iter()
        .map(|w| {
            (
                w.token.as_str(),
                w.values.iter().map(String::as_str).collect(),
                w.more,
            )
        })
        .collect();
    assert_eq!(
        values,
        [
            (
                "<IP>:",
                vec![
                    "10.0.3.17:5432",
                    "10.0.3.18:6432",
                    "10.0.4.2:5432",
                    "10.0.3.17:6432",
                    "10.0.3.18:5432"
                ],
                true
            ),
            ("<NUM>)", vec!["250ms", "1.5s", "3s", "812µs"], false),
        ]
    );
    // The stack trace's frames are one template, at the lines they are on.
    let frames = find(&s, "at <*>");
    assert_eq!((frames.first_line, frames.last_line), (89, 91));
    assert_eq!(
        frames.wildcards[0].values[0],
        "com.acme.db.Pool.acquire(Pool.java:118)"
    );
}

/// A deploy: the same requests and slow queries as before, refused
/// connections that were not there, and health checks that stopped.
fn before_and_after() -> (String, String) {
    let mut before: Vec<String> = (0..50).map(request).collect();
    before.extend((0..10).map(slow_query));
    before.extend((0..5).map(|i| format!("health check ok from 10.0.0.{i} in {i}ms")));
    let mut after: Vec<String> = (50..100).map(request).collect();
    after.extend((10..20).map(slow_query));
    after.extend((0..20).map(refused));
    (before.join("\n"), after.join("\n"))
}

#[test]
fn templates_absent_from_the_baseline_are_new_and_its_missing_ones_gone() {
    let (before, after) = before_and_after();
    let s = Summary::of(&after, Some(&before), DrainConfig::default());
    assert_eq!(s.baseline_lines, Some(65));
    let changes: Vec<(&str, Option<Change>, u64)> = s
        .templates
        .iter()
        .map(|t| (t.template.as_str(), t.change, t.baseline_count))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "INFO GET /api/v1/orders/<NUM> <NUM> <NUM>",
                Some(Change::Same),
                50
            ),
            (
                "ERROR db: dial tcp <IP>: connect: connection refused (after <NUM>)",
                Some(Change::New),
                0
            ),
            ("slow query", Some(Change::Same), 10),
        ]
    );
    assert_eq!(s.gone.len(), 1);
    assert_eq!(
        (s.gone[0].template.as_str(), s.gone[0].baseline_count),
        ("health check ok from <IP> in <NUM>", 5)
    );
    // Line numbers and examples are those of the current text.
    let new = find(&s, changes[1].0);
    assert_eq!((new.first_line, new.last_line), (61, 80));
    assert_eq!(new.example, refused(0));
}

#[test]
fn a_template_whose_share_of_lines_moves_threefold_is_flagged() {
    let cache_miss = |i: usize| format!("cache miss for key order:{i}");
    let retry = |i: usize| format!("retrying publish to topic orders attempt {i}");
    let mut before: Vec<String> = (0..50).map(request).collect();
    before.extend((0..5).map(cache_miss));
    before.extend((0..45).map(retry));
    let mut after: Vec<String> = (0..55).map(request).collect();
    after.extend((0..40).map(cache_miss));
    after.extend((0..5).map(retry));
    let s = Summary::of(
        &after.join("\n"),
        Some(&before.join("\n")),
        DrainConfig::default(),
    );
    let changes: Vec<(&str, Option<Change>, Option<f64>)> = s
        .templates
        .iter()
        .map(|t| (t.template.as_str(), t.change, t.ratio))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "INFO GET /api/v1/orders/<NUM> <NUM> <NUM>",
                Some(Change::Same),
                Some(1.1)
            ),
            (
                "cache miss for key order:<NUM>",
                Some(Change::More),
                Some(8.0)
            ),
            (
                "retrying publish to topic orders attempt <NUM>",
                Some(Change::Fewer),
                Some(0.11)
            ),
        ]
    );
}

#[test]
fn a_new_wording_of_a_baseline_template_shows_how_the_baseline_read() {
    let before = "connection to db established\n".repeat(10);
    let after = "connection to db refused\n".repeat(10);
    let s = Summary::of(&after, Some(&before), DrainConfig::default());
    assert_eq!(s.templates.len(), 1);
    let t = &s.templates[0];
    assert_eq!(t.template, "connection to db <*>");
    assert_eq!(
        t.baseline_template.as_deref(),
        Some("connection to db established")
    );
    assert_eq!(t.wildcards[0].values, ["refused"]);
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Arc::new(LogsBackend::default()))
        .expect("one backend, unique names");
    r
}

#[tokio::test]
async fn the_tool_shows_new_templates_first_as_a_table_and_as_data() {
    let (before, after) = before_and_after();
    let out = registry()
        .call(
            "cluster_log_lines",
            json!({"text": after, "baseline": before, "top": 1}),
        )
        .await
        .expect("clustering is an answer");
    let text = &out.text;
    // The new template is shown although requests are more frequent.
    assert!(text.starts_with("80 lines in 3 templates, 1 shown; against a baseline of 65 lines: 1 NEW, 0 MORE, 0 FEWER, 1 GONE\n"), "{text}");
    assert!(text.contains("   20  error  NEW         ERROR db: dial tcp <IP>: connect: connection refused (after <NUM>)\n"), "{text}");
    assert!(text.contains("lines 61-80; <IP> (10.0.3.17:5432, 10.0.3.18:6432, 10.0.4.2:5432, 10.0.3.17:6432, 10.0.3.18:5432, …); <NUM> (250ms, 1.5s, 3s, 812µs)\n"), "{text}");
    assert!(text.contains(&format!("e.g. {}", refused(0))), "{text}");
    assert!(
        text.contains("… 2 more templates with 60 lines not shown"),
        "{text}"
    );
    assert!(
        text.contains("    5  -      health check ok from <IP> in <NUM>"),
        "{text}"
    );
    assert!(!out.truncated);

    let data = &out.data;
    assert_eq!(data["lines"], 80);
    assert_eq!(data["templates"].as_array().map(Vec::len), Some(1));
    assert_eq!(data["templates"][0]["change"], "new");
    assert_eq!(data["templates"][0]["level"], "error");
    assert_eq!(data["templates"][0]["count"], 20);
    assert_eq!(data["gone"][0]["baseline_count"], 5);
    assert_eq!(data["omitted_templates"], 2);
}

#[tokio::test]
async fn the_tool_names_the_bad_argument() {
    let r = registry();
    for (args, field) in [
        (json!({"text": "x", "top": 500}), "top"),
        (json!({"text": "x", "lines": 5}), "lines"),
        (json!({"baseline": "x"}), "text"),
    ] {
        let e = r
            .call("cluster_log_lines", args.clone())
            .await
            .expect_err("invalid arguments");
        assert_eq!(e.kind(), "invalid_arguments", "{args}");
        assert!(e.to_string().contains(field), "{args}: {e}");
    }
    // Straight to the backend, past the registry's schema check.
    let e = LogsBackend::default()
        .call("cluster_log_lines", json!({"text": 5}))
        .await
        .expect_err("text is a string");
    assert!(e.to_string().contains("`text`"), "{e}");
    let e = LogsBackend::default()
        .call("tail_logs", json!({}))
        .await
        .expect_err("one tool only");
    assert_eq!(e.kind(), "unknown_tool");
}

#[tokio::test]
async fn empty_text_and_an_empty_baseline_are_answers() {
    let out = registry()
        .call(
            "cluster_log_lines",
            json!({"text": "\n \n", "baseline": ""}),
        )
        .await
        .expect("an answer");
    assert!(
        out.text
            .contains("the baseline has no lines: nothing was compared"),
        "{}",
        out.text
    );
    assert!(out.text.contains("0 lines in 0 templates"), "{}", out.text);
    assert_eq!(out.data["templates"], json!([]));
}

#[test]
fn a_huge_line_is_cut_and_the_answer_stays_short() {
    let huge: String = (0..200_000).map(|i| format!("key{i}=value{i} ")).collect();
    let args = ClusterLogLinesArgs {
        text: format!("{huge}\n{huge}"),
        baseline: None,
        top: None,
    };
    let out = cluster_log_lines(&args, DrainConfig::default());
    assert!(
        out.text.starts_with("2 lines in 1 templates\n"),
        "{}",
        out.text
    );
    assert!(out.text.len() < 1_500, "{} characters", out.text.len());
    let example = out.data["templates"][0]["example"].as_str().unwrap_or("");
    assert!(example.starts_with("key0=value0 key1=value1") && example.len() <= 4096);
}

#[test]
fn the_tool_reads_only_and_describes_every_argument_for_a_model() {
    let specs = LogsBackend::default().tools();
    assert!(specs.iter().all(|s| s.risk == Risk::Read));
    let spec = specs
        .iter()
        .find(|s| s.name == "cluster_log_lines")
        .expect("cluster_log_lines");
    assert_eq!(
        (spec.name.as_str(), spec.risk),
        ("cluster_log_lines", Risk::Read)
    );
    assert!(spec.description.contains("baseline") && spec.description.contains("NEW"));
    let schema = &spec.input_schema;
    assert_eq!(schema["required"], json!(["text"]));
    assert_eq!(schema["additionalProperties"], false);
    for arg in ["text", "baseline", "top"] {
        let description = schema["properties"][arg]["description"]
            .as_str()
            .unwrap_or("");
        assert!(description.len() > 20, "{arg}: {description:?}");
    }
    assert_eq!(schema["properties"]["top"]["maximum"], 100);
}
