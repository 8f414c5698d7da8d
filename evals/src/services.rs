//! Real services started on loopback for tests and benchmarks: Alertmanager
//! (Debian package) and cerebro itself as a process.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed when dropped.
pub struct Daemon(pub Child);

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of a process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn on_path(binary: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Install a Debian package when its binary is missing and we are root.
pub fn ensure_installed(binary: &str, package: &str) -> anyhow::Result<()> {
    if on_path(binary) {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        bail!("{binary} is missing: apt-get install --no-install-recommends {package}");
    }
    let script = format!(
        "(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {package}"
    );
    let ok = Command::new("sh").args(["-c", &script]).status()?.success();
    if !ok || !on_path(binary) {
        bail!("installing {package} failed");
    }
    Ok(())
}

async fn wait_ready(url: &str, within: Duration, log: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if client
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{url} not ready within {within:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Alertmanager on a free loopback port, sending webhooks to `receiver_url`
/// (grouping by alertname, 1 s waits, resolved notifications on). Returns
/// the daemon and its base URL.
pub async fn start_alertmanager(
    dir: &Path,
    receiver_url: &str,
) -> anyhow::Result<(Daemon, String)> {
    ensure_installed("prometheus-alertmanager", "prometheus-alertmanager")?;
    let port = free_port()?;
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route: {{receiver: cerebro, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}\n\
             receivers:\n  - name: cerebro\n    webhook_configs: [{{url: \"{receiver_url}\", send_resolved: true}}]\n"
        ),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.join("alertmanager.log");
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Empty: no HA gossip on 0.0.0.0 and no wait for it to settle.
        .arg("--cluster.listen-address=")
        .arg(format!("--web.external-url={base}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting prometheus-alertmanager")?;
    let daemon = Daemon(child);
    wait_ready(&format!("{base}/-/ready"), Duration::from_secs(30), &log).await?;
    Ok((daemon, base))
}

/// `cerebro serve` from `binary` on a free port with `data_dir`, extra
/// environment applied. Returns the daemon and its address.
pub async fn start_cerebro(
    binary: &Path,
    data_dir: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<(Daemon, SocketAddr)> {
    let log = data_dir.join("cerebro.log");
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--no-fetch",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("cerebro stdout")?;
    let daemon = Daemon(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("cerebro listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| {
            anyhow::anyhow!(
                "cerebro did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?
        .parse()?;
    Ok((daemon, addr))
}
