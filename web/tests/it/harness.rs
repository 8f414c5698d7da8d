//! Start cerebro for a test: as a child process, or in-process.

use brain::config::{Config, DatabaseUrl};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn postgres_url() -> String {
    std::env::var("CEREBRO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub fn fresh_schema() -> String {
    format!("cerebro_test_{}", uuid::Uuid::new_v4().simple())
}

pub async fn drop_schema(schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop schema");
}

/// The cerebro binary running as a child process.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub stderr: PathBuf,
    _owned_dir: Option<tempfile::TempDir>,
}

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cerebro"));
    cmd.args(args);
    // The developer's environment must not leak into the test.
    for (k, _) in std::env::vars() {
        if k.starts_with("CEREBRO__") || k == "CEREBRO_CONFIG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

impl Proc {
    /// `cerebro serve` on a free port with a fresh data dir; waits for the
    /// "listening on" line.
    pub fn serve(extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = Self::serve_at(dir.path(), extra, env);
        p._owned_dir = Some(dir);
        p
    }

    /// Like [`Proc::serve`], on a data dir the caller keeps (to restart on it).
    pub fn serve_at(data_dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let stderr = data_dir.join(format!("stderr-{}.log", uuid::Uuid::new_v4().simple()));
        let mut cmd = command(&[
            "serve",
            "--no-fetch",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ]);
        cmd.arg(data_dir).args(extra);
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn cerebro");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("cerebro listening on http://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "cerebro did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        };
        Proc {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            stderr,
            _owned_dir: None,
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Wait for the process to exit, at most `secs`.
    pub fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
        for _ in 0..secs * 20 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("cerebro did not exit within {secs}s");
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// cerebro served in-process on a free port.
pub struct App {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub schema: Option<String>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl App {
    pub async fn sqlite() -> App {
        Self::start(|_| {}, None).await
    }

    pub async fn postgres() -> App {
        let schema = fresh_schema();
        let s = schema.clone();
        Self::start(
            move |c| {
                c.database.url = Some(DatabaseUrl::new(postgres_url()));
                c.database.schema = Some(s);
            },
            Some(schema),
        )
        .await
    }

    pub async fn start(tweak: impl FnOnce(&mut Config), schema: Option<String>) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.paths.data_dir = dir.path().to_owned();
        config.server.listen = "127.0.0.1:0".parse().expect("addr");
        // Tests of ingestion and the API look at incidents as received;
        // those of the agents turn them on.
        config.agents.enabled = false;
        tweak(&mut config);
        let bound = web::server::bind(config).await.expect("bind");
        let addr = bound.addr;
        let stop = CancellationToken::new();
        let task = tokio::spawn(bound.serve(stop.clone()));
        App {
            addr,
            stop,
            schema,
            _dir: dir,
            task,
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn finish(self) {
        self.stop.cancel();
        self.task.await.expect("join").expect("serve");
        if let Some(schema) = &self.schema {
            drop_schema(schema).await;
        }
    }
}
