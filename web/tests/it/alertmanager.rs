//! A real Alertmanager (the Debian package) with cerebro as its webhook
//! receiver: alerts posted to Alertmanager's API open an incident in cerebro,
//! and their resolution resolves it.

use crate::harness::App;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "prometheus-alertmanager";

/// Install the Debian package when it is missing and we may (root).
pub fn ensure_installed(binary: &str, package: &str) {
    let present = |b: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present(binary) {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    assert!(
        root,
        "{binary} is missing: apt-get install --no-install-recommends {package}"
    );
    let ok = Command::new("sh")
        .args(["-c", &format!("(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {package}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && present(binary), "installing {package} failed");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process killed when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start Alertmanager on a free loopback port with `receiver_url` as its webhook.
pub async fn start_alertmanager(dir: &std::path::Path, receiver_url: &str) -> (Daemon, String) {
    ensure_installed(BINARY, "prometheus-alertmanager");
    let port = free_port();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route: {{receiver: cerebro, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}\n\
             receivers:\n  - name: cerebro\n    webhook_configs: [{{url: \"{receiver_url}\", send_resolved: true}}]\n"
        ),
    )
    .expect("write config");
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Empty: no HA gossip on 0.0.0.0, no wait for it to settle.
        .arg("--cluster.listen-address=")
        .arg(format!("--web.external-url={base}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).expect("log"))
        .spawn()
        .expect("start alertmanager");
    let daemon = Daemon(child);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready: {}",
            std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (daemon, base)
}

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
    let (_am, am) = start_alertmanager(dir.path(), &app.url("/webhooks/alertmanager")).await;
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
