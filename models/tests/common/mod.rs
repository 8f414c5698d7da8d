//! What several test binaries share: fetched weights and the llama.cpp peer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every binary uses all

use models::fetch::{Fetcher, ModelSpec};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const LLAMA_CPP_VERSION: &str = "0.3.36";

/// The directory of `spec`'s weights, fetched on first use as `cerebro
/// fetch-models` does. CI keeps them outside the clone
/// (`CEREBRO_TEST_WEIGHTS`).
pub fn weights(spec: &ModelSpec) -> PathBuf {
    static FETCH: Mutex<()> = Mutex::new(());
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::var_os("CEREBRO_TEST_WEIGHTS")
        .map(PathBuf::from)
        // Relative to the including crate, so every crate's tests share
        // models/weights.
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/weights"));
    let fetcher = Fetcher::new(&dir);
    fetcher
        .fetch(spec, &mut |line| eprintln!("{line}"))
        .unwrap_or_else(|e| panic!("fetching {} failed: {e}", spec.name));
    fetcher.dir(spec)
}

/// A Python with llama-cpp-python: `CEREBRO_LLAMA_CPP_PYTHON`, or the venv
/// `deploy/scripts/python-peers.sh` installs (as CI does; compiling
/// llama.cpp takes about 5 min on 2 idle cores, once; a no-op when the venv
/// is complete).
pub fn llama_cpp_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CEREBRO_LLAMA_CPP_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "CEREBRO_LLAMA_CPP_PYTHON={} does not exist",
            p.display()
        );
        return p;
    }
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/scripts/python-peers.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("llama-cpp")
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run deploy/scripts/python-peers.sh");
    assert!(
        out.status.success(),
        "installing llama-cpp-python[server] {LLAMA_CPP_VERSION} with {} failed; \
         or point CEREBRO_LLAMA_CPP_PYTHON at a python that has it",
        script.display()
    );
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(p.exists(), "the install script printed {}", p.display());
    p
}
