//! The Python peers of the tests (`deploy/scripts/python-peers.sh`): the
//! python named by an environment variable (as `.ci/run` sets it), or the
//! venv the script installs once under `~/.cache/cerebro`, so `cargo test
//! --workspace` works on a fresh machine too. Shared by `tools` and `web`.

use std::path::Path;
use std::sync::Mutex;

/// The python of `peer` (`mcp`, `kmock`, `ministack`), from `env` or installed.
pub fn python(peer: &str, env: &str) -> String {
    if let Ok(p) = std::env::var(env) {
        assert!(Path::new(&p).exists(), "{env}={p} does not exist");
        return p;
    }
    // One install at a time: tests of one binary run in parallel.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/scripts/python-peers.sh"
    );
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(peer)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "installing the {peer} peer with {script} failed; or set {env} to a python that has it"
    );
    let p = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(Path::new(&p).exists(), "{script} {peer} printed {p:?}");
    p
}
