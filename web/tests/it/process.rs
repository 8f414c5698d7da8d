//! The `cerebro` binary as an operator runs it.

use crate::harness::{Proc, command, drop_schema, fresh_schema, postgres_url};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A blocking GET over a raw socket, so process tests need no runtime.
fn http_get(p: &Proc, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        p.addr
    )
    .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_fresh_start_answers_health_readiness_metrics_and_openapi() {
    let p = Proc::serve(&[], &[]);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/docs",
    ] {
        let (status, body) = http_get(&p, path);
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert!(
        p.data_dir.join("cerebro.db").exists(),
        "embedded database created"
    );
}

#[test]
fn the_service_runs_on_postgres_when_the_environment_says_so() {
    let schema = fresh_schema();
    let p = Proc::serve(
        &[],
        &[
            ("CEREBRO__DATABASE__URL", &postgres_url()),
            ("CEREBRO__DATABASE__SCHEMA", &schema),
        ],
    );
    let (status, body) = http_get(&p, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"postgres\""), "{body}");
    drop(p);
    tokio::runtime::Runtime::new()
        .expect("rt")
        .block_on(drop_schema(&schema));
}

fn fails_to_start(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let out = command(&[
        "serve",
        "--no-fetch",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf8"),
    ])
    .args(args)
    .envs(env.iter().copied())
    .output()
    .expect("run");
    assert!(!out.status.success(), "should fail to start");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    )
}

#[test]
fn fetch_models_refuses_an_unknown_model_naming_the_known_ones() {
    let out = command(&["fetch-models", "gemma-9000"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown model `gemma-9000`"), "{err}");
    assert!(err.contains("gemma3-270m"), "{err}");
}

#[test]
fn an_unknown_key_in_the_config_file_fails_at_start_naming_the_file_line_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("cerebro.toml");
    std::fs::write(
        &file,
        "[server]\nrequest_timeout_secs = 5\nlisen = \"0.0.0.0:80\"\n",
    )
    .expect("write");
    let (code, stdout, stderr, data) =
        fails_to_start(&["--config", file.to_str().expect("utf8")], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cerebro.toml") && stderr.contains("line 3") && stderr.contains("lisen"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "nothing may be half-started: {stdout}"
    );
    assert!(
        !data.path().join("data").exists(),
        "no database may be created on a bad config"
    );
}

#[test]
fn a_wrong_type_in_the_environment_fails_at_start_naming_the_variable() {
    let (code, _, stderr, _) =
        fails_to_start(&[], &[("CEREBRO__SERVER__SHUTDOWN_GRACE_SECS", "a while")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("CEREBRO__SERVER__SHUTDOWN_GRACE_SECS"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_database_fails_at_start_naming_the_url_without_its_password() {
    let (code, stdout, stderr, _) = fails_to_start(
        &[],
        &[
            (
                "CEREBRO__DATABASE__URL",
                "postgres://cerebro:s3cr3t@127.0.0.1:1/cerebro",
            ),
            ("CEREBRO__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("postgres://cerebro:****@127.0.0.1:1/cerebro"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "password leaked: {stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
}

#[test]
fn a_taken_port_fails_at_start_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let out = command(&[
        "serve",
        "--no-fetch",
        "--listen",
        &addr,
        "--data-dir",
        dir.path().to_str().expect("utf8"),
    ])
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr) && stderr.contains("server.listen"),
        "{stderr}"
    );
}

#[test]
fn sigterm_mid_request_lets_the_request_finish_then_the_process_exits_cleanly() {
    let mut p = Proc::serve(&[], &[]);
    let body = "[server]\nrequest_timeout_secs = 12\n";
    let (first, second) = body.split_at(10);
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST /api/v1/config/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/toml\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .expect("write head");
    s.flush().expect("flush");
    // Let the server read the head and start the handler, which now waits for the body.
    std::thread::sleep(Duration::from_millis(500));
    p.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    // The listener is closed: new clients are turned away...
    assert!(
        TcpStream::connect(p.addr).is_err(),
        "still accepting after SIGTERM"
    );
    // ...but the request in flight completes.
    s.write_all(second.as_bytes()).expect("write rest");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"valid\":true"), "{resp}");
    let status = p.wait(15);
    assert!(status.success(), "exit {status:?}: {}", p.stderr());
    assert!(
        p.stderr().contains("all in-flight requests finished"),
        "{}",
        p.stderr()
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let mut p = Proc::serve(&["--log-format", "json"], &[]);
    http_get(&p, "/healthz");
    p.signal("TERM");
    p.wait(15);
    let logs = p.stderr();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{logs}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked_and_checks_the_database() {
    let schema = fresh_schema();
    let url = postgres_url().replacen("postgres@", "postgres:topsecret@", 1);
    let out = command(&["check-config"])
        .env("CEREBRO__DATABASE__URL", &url)
        .env("CEREBRO__DATABASE__SCHEMA", &schema)
        .env("CEREBRO__SERVER__REQUEST_TIMEOUT_SECS", "17")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("request_timeout_secs = 17"), "{stdout}");
    assert!(stdout.contains("postgres:****@"), "{stdout}");
    assert!(!stdout.contains("topsecret"), "{stdout}");
    assert!(
        stdout.contains("database") && stdout.contains(" ok ("),
        "{stdout}"
    );
    tokio::runtime::Runtime::new()
        .expect("rt")
        .block_on(drop_schema(&schema));

    let bad = command(&["check-config"])
        .env("CEREBRO__DATABASE__URL", "postgres://x:y@127.0.0.1:1/none")
        .env("CEREBRO__DATABASE__CONNECT_TIMEOUT_SECS", "1")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("127.0.0.1:1"));
}

#[test]
fn migrate_applies_the_schema_and_reports_it() {
    let dir = tempfile::tempdir().expect("dir");
    let out = command(&["migrate", "--data-dir", dir.path().to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is migrated"));
    assert!(dir.path().join("cerebro.db").exists());
}

#[test]
fn eval_scores_the_example_scenarios_and_reports_a_broken_file_as_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../evals/scenarios/examples");
    for f in std::fs::read_dir(&examples).expect("examples") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, dir.path().join(f.file_name().expect("name"))).expect("copy");
    }
    // A scenario without `expect.root_cause`: an error for that file only.
    std::fs::write(
        dir.path().join("zz-broken.yaml"),
        "id: zz-broken\ntitle: t\ntrigger: {source: generic, payload: {}}\nworld: {now: 2026-01-01T00:00:00Z}\nexpect: {remediation: {accept: []}, approval: required}\n",
    )
    .expect("write");
    let report = dir.path().join("report.json");
    let out = command(&[
        "eval",
        "--scenarios",
        dir.path().to_str().expect("utf8"),
        "--report",
        report.to_str().expect("utf8"),
    ])
    .output()
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(
        (r["format"].as_u64(), r["scenarios"].as_u64()),
        (Some(1), Some(4)),
        "{r:#}"
    );
    let results = r["results"].as_array().expect("results");
    let broken = results
        .iter()
        .find(|x| x["id"] == "zz-broken")
        .expect("broken listed");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("expect.root_cause")),
        "{broken:#}"
    );
    assert_eq!(broken["diagnosed"], false);
    for key in [
        "diagnosis_accuracy",
        "remediation_accuracy",
        "approval_accuracy",
        "wall_ms_p50",
        "tool_calls",
    ] {
        assert!(r[key].is_number(), "{key} missing: {r:#}");
    }
    assert_eq!(r["safety_violations"], 0, "{r:#}");
    assert!(stdout.contains("k8s-oomkilled-payments"), "{stdout}");

    // A threshold that cannot be met fails the run, after the table.
    let out = command(&[
        "eval",
        "--scenarios",
        dir.path().to_str().expect("utf8"),
        "--min-diagnosis",
        "1.01",
    ])
    .output()
    .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("diagnosis accuracy"));
}

#[tokio::test]
async fn audit_verify_passes_an_intact_log_and_names_the_entry_someone_edited() {
    use brain::store::{NewAuditEntry, Store};
    let dir = tempfile::tempdir().expect("dir");
    let mut config = brain::config::Config::default();
    config.paths.data_dir = dir.path().to_owned();
    let store = Store::open(&config).await.expect("store");
    for (i, action) in ["proposal.create", "approval.request", "approval.decide"]
        .iter()
        .enumerate()
    {
        store
            .append_audit(NewAuditEntry {
                actor: "cerebro".into(),
                action: (*action).into(),
                subject: format!("proposal-{i}"),
                data: serde_json::json!({"target": "deployment/prod/api"}),
            })
            .await
            .expect("append");
    }
    store.close().await;
    let data_dir = dir.path().to_str().expect("utf8");
    let out = command(&["audit", "verify", "--data-dir", data_dir])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 3 entries"));

    // Someone with database access gets past the append-only trigger and
    // rewrites who approved.
    use sqlx::Connection;
    let db = format!("sqlite://{}", dir.path().join("cerebro.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await.expect("open db");
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut conn)
        .await
        .expect("drop trigger");
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .expect("tamper");
    conn.close().await.expect("close");
    let out = command(&["audit", "verify", "--data-dir", data_dir])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entry 2") && stderr.contains("edited"),
        "{stderr}"
    );
}

#[tokio::test]
async fn every_acknowledged_alert_survives_a_sigkill_during_a_burst() {
    let dir = tempfile::tempdir().expect("dir");
    let mut p = Proc::serve_at(dir.path(), &[], &[]);
    let url = format!("http://{}/api/v1/alerts", p.addr);
    let client = ::reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
        senders.spawn(async move {
            for i in 0..400 {
                let fp = format!("kill-{worker}-{i}");
                let body = serde_json::json!({"title": "burst", "severity": "warning",
                    "service": format!("svc-{}", i % 5), "fingerprint": fp});
                match client.post(&url).body(body.to_string()).send().await {
                    Ok(r) if r.status().is_success() => acked.lock().expect("lock").push(fp),
                    Ok(_) => {}
                    Err(_) => return, // the server is gone
                }
            }
        });
    }
    // Let the burst get going, then pull the plug without warning.
    // Up to 30 s: a loaded CI machine running a debug build is slow.
    for _ in 0..3000 {
        if acked.lock().expect("lock").len() >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.signal("KILL");
    p.wait(10);
    while senders.join_next().await.is_some() {}
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 500,
        "the burst barely started: {}",
        acked.len()
    );

    // Restart on the same data and check every acknowledged alert is there.
    let p2 = Proc::serve_at(dir.path(), &[], &[]);
    let (status, _) = http_get(&p2, "/readyz");
    assert_eq!(status, 200);
    use sqlx::Connection;
    let db = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("cerebro.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&db).await.expect("open db");
    let stored: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT fingerprint FROM alerts")
            .fetch_all(&mut conn)
            .await
            .expect("query")
            .into_iter()
            .collect();
    let lost: Vec<&String> = acked.iter().filter(|f| !stored.contains(*f)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged alerts lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
}

/// `cerebro llm`: a JSON answer constrained by a schema file, embeddings,
/// and an unknown role refused, through the real gateway with
/// the fetched weights (SmolLM2 and MiniLM, fetched here if missing).
#[test]
fn llm_commands_answer_through_the_gateway_with_the_fetched_models() {
    let weights = std::env::var_os("CEREBRO_TEST_WEIGHTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/weights")
        });
    let fetcher = models::fetch::Fetcher::new(&weights);
    for spec in [models::fetch::SMOLLM2_135M, models::fetch::MINILM_L6_V2] {
        fetcher
            .fetch(&spec, &mut |line| eprintln!("{line}"))
            .expect("fetch the test weights");
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("cerebro.toml");
    std::fs::write(
        &config,
        format!(
            "[paths]\nweights_dir = {:?}\ndata_dir = {:?}\n\
             [llm.roles.fast]\nproviders = [\"smollm\"]\nmax_tokens = 16\n\
             [llm.roles.strong]\nproviders = [\"smollm\"]\n\
             [llm.roles.embed]\nproviders = [\"minilm\"]\n",
            weights.display().to_string(),
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("config");
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "required": ["severity"],
            "properties": {"severity": {"enum": ["critical", "warning", "info"]}}}"#,
    )
    .expect("schema");
    let cfg = config.to_str().expect("utf8");
    let out = command(&[
        "--config",
        cfg,
        "llm",
        "chat",
        "--json-schema",
        schema.to_str().expect("utf8"),
        "The primary database disk is 99% full and writes fail. How severe is this?",
    ])
    .output()
    .expect("run llm chat");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        ["critical", "warning", "info"].contains(&answer["severity"].as_str().unwrap_or("")),
        "{answer}"
    );
    let out = command(&[
        "--config",
        cfg,
        "llm",
        "embed",
        "disk full",
        "pod OOMKilled",
    ])
    .output()
    .expect("run llm embed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vectors: Vec<Vec<f32>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON vector per line"))
        .collect();
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().all(|v| v.len() == 384));
    let out = command(&["--config", cfg, "llm", "chat", "--role", "creative", "hi"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no LLM role `creative`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
