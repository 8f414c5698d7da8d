//! Ingestion benchmark: the same alerts, over the same number of loopback
//! connections, into cerebro on SQLite (durable group commit), cerebro on
//! PostgreSQL, and Alertmanager's own `POST /api/v2/alerts`, in one run.
//! Then a fixed 1,000 alerts/s for latency, and a 10x burst for back-pressure
//! and memory.
//!
//! `cargo run --release -p evals --bin bench-ingest -- --cerebro target/release/cerebro`

use anyhow::Context;
use clap::Parser;
use evals::services::{Daemon, peak_rss_kib, start_alertmanager, start_cerebro};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The cerebro binary to measure (build it with --release).
    #[arg(long)]
    cerebro: PathBuf,
    /// Alerts per closed-loop run.
    #[arg(long, default_value_t = 20_000)]
    alerts: usize,
    /// Concurrent connections in the closed-loop runs.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Fixed rate for the latency run, alerts per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    rate_seconds: u64,
    #[arg(long, default_value_t = 3)]
    burst_seconds: u64,
    /// PostgreSQL for the second run; a fresh schema is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Alerts per request, for every target alike (Alertmanager's webhook
    /// sends a whole group per notification; its API takes an array).
    #[arg(long, default_value_t = 1)]
    per_request: usize,
    /// Closed-loop rounds; targets alternate within a round and the table
    /// shows each target's median round, so a noisy neighbour moment does
    /// not decide the ratio.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only these targets (alertmanager, sqlite, postgres), e.g. for
    /// profiling one of them; the latency and burst runs are skipped.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// One alert of the workload, in both wire shapes.
struct Item {
    status: &'static str,
    group_key: String,
    webhook: serde_json::Value,
    am_api: serde_json::Value,
}

/// 60% new alerts, 30% repeats of a firing one, 10% resolutions, over 50
/// services. Deterministic (a fixed LCG), so every target sees the same.
fn workload(n: usize, salt: &str) -> Vec<Item> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let start = chrono::Utc::now();
    let mut firing: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let roll = next() % 10;
        let (id, resolved) = if roll < 6 || firing.is_empty() {
            firing.push(i);
            (i, false)
        } else if roll < 9 {
            (firing[next() % firing.len()], false)
        } else {
            let k = next() % firing.len();
            (firing.swap_remove(k), true)
        };
        let service = format!("svc-{}", id % 50);
        let labels = json!({"alertname": format!("HighErrorRate{}", id % 7), "service": service,
            "namespace": "prod", "instance": format!("10.0.{}.{}:8080", id / 250 % 250, id % 250),
            "run": salt, "id": id.to_string(), "severity": if id % 5 == 0 { "critical" } else { "warning" }});
        let annotations = json!({"summary": format!("{service} 5xx ratio above 2%"), "description": "error budget burning"});
        let starts = start.to_rfc3339();
        let ends = if resolved {
            chrono::Utc::now().to_rfc3339()
        } else {
            "0001-01-01T00:00:00Z".into()
        };
        let status = if resolved { "resolved" } else { "firing" };
        let webhook = json!({"status": status, "labels": labels, "annotations": annotations,
            "startsAt": starts, "endsAt": ends, "fingerprint": format!("{salt}-{id:08x}")});
        let am_ends = if resolved {
            chrono::Utc::now().to_rfc3339()
        } else {
            (start + chrono::Duration::hours(1)).to_rfc3339()
        };
        let am_api = json!({"labels": labels, "annotations": annotations, "startsAt": starts, "endsAt": am_ends});
        out.push(Item {
            status,
            group_key: format!("{{}}:{{alertname=\"HighErrorRate{}\"}}", id % 7),
            webhook,
            am_api,
        });
    }
    out
}

/// Request bodies of `per_request` consecutive alerts each: an Alertmanager
/// webhook notification for cerebro, an array for Alertmanager's API.
fn bodies(items: &[Item], am_shape: bool, per_request: usize) -> Arc<Vec<String>> {
    Arc::new(
        items
            .chunks(per_request.max(1))
            .enumerate()
            .map(|(seq, chunk)| {
                if am_shape {
                    serde_json::Value::Array(chunk.iter().map(|i| i.am_api.clone()).collect())
                        .to_string()
                } else {
                    let status = if chunk.iter().any(|i| i.status == "firing") {
                        "firing"
                    } else {
                        "resolved"
                    };
                    // `seq` makes each delivery distinct, as a real repeat
                    // notification is: a repeat must count as a repeat, not
                    // as a redelivery.
                    json!({"version": "4", "status": status, "receiver": "cerebro", "seq": seq,
                        "groupKey": chunk[0].group_key,
                        "alerts": chunk.iter().map(|i| i.webhook.clone()).collect::<Vec<_>>()})
                    .to_string()
                }
            })
            .collect(),
    )
}

#[derive(Default)]
struct RunResult {
    ok: usize,
    rejected: usize,
    errors: usize,
    wall: Duration,
    latencies_us: Vec<u64>,
}

impl RunResult {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[idx.min(v.len() - 1)] as f64 / 1000.0
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .http1_only()
        .build()?)
}

async fn send(client: &reqwest::Client, url: &str, body: String) -> Result<u16, ()> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|_| ())
}

/// Closed loop: `c` workers send one request after another.
async fn closed_loop(url: &str, bodies: Arc<Vec<String>>, c: usize) -> anyhow::Result<RunResult> {
    let client = client()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (client, url, bodies, next) =
            (client.clone(), url.to_owned(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let (mut ok, mut rejected, mut errors) = (0, 0, 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                match send(&client, &url, body.clone()).await {
                    Ok(s) if (200..300).contains(&s) => {
                        ok += 1;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    Ok(429 | 503) => rejected += 1,
                    _ => errors += 1,
                }
            }
            (ok, rejected, errors, lat)
        });
    }
    let mut r = RunResult::default();
    while let Some(res) = tasks.join_next().await {
        let (ok, rejected, errors, lat) = res?;
        r.ok += ok;
        r.rejected += rejected;
        r.errors += errors;
        r.latencies_us.extend(lat);
    }
    r.wall = start.elapsed();
    Ok(r)
}

/// Open loop: one request every 1/rate seconds regardless of answers.
async fn open_loop(
    url: &str,
    bodies: Arc<Vec<String>>,
    rate: u64,
    secs: u64,
) -> anyhow::Result<RunResult> {
    let client = client()?;
    let total = (rate * secs) as usize;
    let mut interval = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        interval.tick().await;
        let (client, url, body) = (
            client.clone(),
            url.to_owned(),
            bodies[i % bodies.len()].clone(),
        );
        tasks.spawn(async move {
            let t = Instant::now();
            (
                send(&client, &url, body).await,
                t.elapsed().as_micros() as u64,
            )
        });
    }
    let mut r = RunResult::default();
    while let Some(res) = tasks.join_next().await {
        match res? {
            (Ok(s), us) if (200..300).contains(&s) => {
                r.ok += 1;
                r.latencies_us.push(us);
            }
            (Ok(429 | 503), _) => r.rejected += 1,
            _ => r.errors += 1,
        }
    }
    r.wall = start.elapsed();
    Ok(r)
}

struct Target {
    daemon: Daemon,
    url: String,
    am_shape: bool,
    _dir: tempfile::TempDir,
}

async fn cerebro(args: &Args, env: &[(&str, &str)]) -> anyhow::Result<Target> {
    let dir = tempfile::tempdir()?;
    let (daemon, addr) = start_cerebro(&args.cerebro, dir.path(), env).await?;
    Ok(Target {
        daemon,
        url: format!("http://{addr}/webhooks/alertmanager"),
        am_shape: false,
        _dir: dir,
    })
}

async fn alertmanager() -> anyhow::Result<Target> {
    let dir = tempfile::tempdir()?;
    // The receiver is a closed port: delivery failures are Alertmanager's
    // background work, not part of the API call measured here.
    let port = evals::services::free_port()?;
    let (daemon, base) =
        start_alertmanager(dir.path(), &format!("http://127.0.0.1:{port}/")).await?;
    Ok(Target {
        daemon,
        url: format!("{base}/api/v2/alerts"),
        am_shape: true,
        _dir: dir,
    })
}

/// One closed-loop round: a warm-up, then the measured alerts.
async fn measure(
    t: &Target,
    items: &[Item],
    warm: &[Item],
    c: usize,
    per_request: usize,
) -> anyhow::Result<RunResult> {
    closed_loop(&t.url, bodies(warm, t.am_shape, per_request), c).await?;
    closed_loop(&t.url, bodies(items, t.am_shape, per_request), c).await
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A target of the closed-loop comparison and its rounds so far.
struct Contender {
    name: &'static str,
    target: Target,
    rounds: Vec<RunResult>,
}

impl Contender {
    /// The round with the median rate.
    fn median(&self) -> Option<&RunResult> {
        let mut v: Vec<&RunResult> = self.rounds.iter().collect();
        v.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        v.get(v.len() / 2).copied()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.cerebro.exists(),
        "no cerebro binary at {}",
        args.cerebro.display()
    );
    let k = args.per_request.max(1);
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ingestion benchmark: {} alerts per round (60% new, 30% repeat, 10% resolved; {k} alert(s) per request), {} connections, loopback, {cores} cores, median of {} alternating rounds",
        args.alerts, args.connections, args.rounds
    );

    let mut contenders = Vec::new();
    if wanted("alertmanager") {
        contenders.push(Contender {
            name: "alertmanager /api/v2/alerts",
            target: alertmanager().await.context("alertmanager")?,
            rounds: Vec::new(),
        });
    }
    if wanted("sqlite") {
        contenders.push(Contender {
            name: "cerebro sqlite (durable, fsync)",
            target: cerebro(&args, &[]).await?,
            rounds: Vec::new(),
        });
    }
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    if wanted("postgres") {
        let pg_env = [
            ("CEREBRO__DATABASE__URL", args.postgres.as_str()),
            ("CEREBRO__DATABASE__SCHEMA", schema.as_str()),
        ];
        match cerebro(&args, &pg_env).await {
            Ok(target) => contenders.push(Contender {
                name: "cerebro postgres",
                target,
                rounds: Vec::new(),
            }),
            Err(e) => println!("cerebro postgres: skipped ({e:#})"),
        }
    }
    for round in 0..args.rounds.max(1) {
        let items = workload(args.alerts, &format!("run{round}"));
        let warm = workload(500, &format!("warm{round}"));
        for c in &mut contenders {
            let r = measure(&c.target, &items, &warm, args.connections, k).await?;
            c.rounds.push(r);
        }
    }
    drop_schema(&args.postgres, &schema).await;

    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>8} {:>10} {:>9}   rounds (alerts/s)",
        "target", "alerts/s", "p50 ms", "p99 ms", "non-2xx", "peak RSS", "vs AM"
    );
    let am_rate = contenders
        .iter()
        .find(|c| c.name.starts_with("alertmanager"))
        .and_then(Contender::median)
        .map(|r| r.rate() * k as f64);
    for c in &contenders {
        let Some(r) = c.median() else { continue };
        let rss = peak_rss_kib(c.target.daemon.pid()).unwrap_or(0);
        let rate = r.rate() * k as f64;
        let vs = am_rate.map_or("-".to_owned(), |am| format!("{:.2}x", rate / am));
        let rounds: Vec<String> = c
            .rounds
            .iter()
            .map(|r| format!("{:.0}", r.rate() * k as f64))
            .collect();
        println!(
            "{:<34} {:>9.0} {:>8.2} {:>8.2} {:>8} {:>6} MiB {:>9}   {}",
            c.name,
            rate,
            r.pct(0.5),
            r.pct(0.99),
            r.rejected + r.errors,
            rss / 1024,
            vs,
            rounds.join(" ")
        );
    }
    let capacity = contenders
        .iter()
        .find(|c| c.name.starts_with("cerebro sqlite"))
        .and_then(Contender::median)
        .map(|r| r.rate() * k as f64);
    drop(contenders);
    if !args.only.is_empty() {
        return Ok(());
    }

    println!(
        "\nfixed rate {} alerts/s for {} s (open loop, {k} alert(s) per request):",
        args.rate, args.rate_seconds
    );
    let steady = workload((args.rate * args.rate_seconds) as usize, "steady");
    for which in ["cerebro sqlite", "alertmanager"] {
        let t = if which == "alertmanager" {
            alertmanager().await?
        } else {
            cerebro(&args, &[]).await?
        };
        let r = open_loop(
            &t.url,
            bodies(&steady, t.am_shape, k),
            args.rate / k as u64,
            args.rate_seconds,
        )
        .await?;
        println!(
            "  {:<22} achieved {:>6.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  non-2xx {}",
            which,
            r.ok as f64 * k as f64 / r.wall.as_secs_f64(),
            r.pct(0.5),
            r.pct(0.99),
            r.rejected + r.errors
        );
    }

    let burst_rate = (capacity.unwrap_or(1000.0) * 10.0) as u64;
    println!(
        "\nburst at 10x the measured sqlite capacity: {burst_rate} alerts/s offered for {} s:",
        args.burst_seconds
    );
    let t = cerebro(&args, &[]).await?;
    let before = peak_rss_kib(t.daemon.pid()).unwrap_or(0);
    let burst = workload((burst_rate * args.burst_seconds) as usize, "burst");
    let r = open_loop(
        &t.url,
        bodies(&burst, false, k),
        burst_rate / k as u64,
        args.burst_seconds,
    )
    .await?;
    let after = peak_rss_kib(t.daemon.pid()).unwrap_or(0);
    println!(
        "  accepted {} ({:.0}/s), 429 {}, errors {}, p99 of accepted {:.1} ms; peak RSS {} MiB before, {} MiB after",
        r.ok * k,
        r.ok as f64 * k as f64 / r.wall.as_secs_f64(),
        r.rejected,
        r.errors,
        r.pct(0.99),
        before / 1024,
        after / 1024
    );
    Ok(())
}
