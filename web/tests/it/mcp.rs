//! The tool registry over MCP, driven by a third-party client: the Python
//! MCP SDK (`deploy/scripts/python-peers.sh mcp`), over stdio (`cerebro
//! mcp`) and over streamable HTTP (`/mcp`, with and without the token).

use crate::harness::Proc;
use serde_json::Value;
use std::process::Command;

fn python() -> String {
    crate::peers::python("mcp", "CEREBRO_MCP_PYTHON")
}

/// Run the Python client with `args`; its one line of JSON.
fn client(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "client printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What every transport must show: the tools with their risk in the
/// annotations, a call that works, and bad arguments answered as a
/// readable tool error rather than a protocol failure.
fn check_session(seen: &Value) {
    assert!(seen.get("error").is_none(), "client failed: {seen}");
    let tools = seen["tools"].as_array().expect("tools");
    let logs = tools
        .iter()
        .find(|t| t["name"] == "cluster_log_lines")
        .unwrap_or_else(|| panic!("cluster_log_lines not listed: {seen}"));
    assert_eq!(logs["annotations"]["readOnlyHint"], true, "{logs}");
    assert_eq!(logs["annotations"]["destructiveHint"], false, "{logs}");
    assert_eq!(logs["inputSchema"]["type"], "object");
    assert!(
        logs["inputSchema"]["properties"]["text"].is_object(),
        "{logs}"
    );
    assert!(!logs["description"].as_str().unwrap_or_default().is_empty());

    let good = &seen["good"];
    assert_ne!(good["isError"], true, "{good}");
    let text = good["content"][0]["text"].as_str().unwrap_or_default();
    // 39 refused connections with varying addresses and times are one template.
    assert!(text.contains("39"), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");

    let bad = &seen["bad"];
    assert_eq!(bad["isError"], true, "{bad}");
    let text = bad["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("invalid_arguments"), "{text}");
    assert!(text.contains("txt"), "names the unknown argument: {text}");
}

#[test]
fn cerebro_mcp_over_stdio() {
    let seen = client(&["stdio", env!("CARGO_BIN_EXE_cerebro")]);
    check_session(&seen);
}

#[tokio::test]
async fn mcp_over_http_needs_the_token() {
    let token = "mcp-test-token-5e1f";
    let server = Proc::serve(&[], &[("CEREBRO__TOOLS__MCP_TOKEN", token)]);
    let url = format!("http://{}/mcp", server.addr);

    let url2 = url.clone();
    let seen = tokio::task::spawn_blocking(move || client(&["http", &url2, token]))
        .await
        .unwrap();
    check_session(&seen);

    // Without the token, or with a wrong one: 401 with a JSON body, and the
    // third-party client cannot even list the tools.
    let url2 = url.clone();
    let refused = tokio::task::spawn_blocking(move || client(&["http", &url2]))
        .await
        .unwrap();
    assert!(
        refused.get("error").is_some(),
        "listed without a token: {refused}"
    );
    let http = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong")] {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["field"], "Authorization");
    }
}

#[tokio::test]
async fn mcp_is_off_without_a_token() {
    let server = Proc::serve(&[], &[]);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/mcp", server.addr))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// A Kubernetes API emulator (kmock, `python-peers.sh kmock`) holding one
/// Deployment, for a tool that acts to act on.
struct Kmock {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Kmock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kmock_with_a_deployment() -> Kmock {
    use std::io::BufRead;
    let python = crate::peers::python("kmock", "CEREBRO_KMOCK_PYTHON");
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "prod", "labels": {"app": "checkout"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"metadata": {"labels": {"app": "checkout"}},
                              "spec": {"containers": [{"name": "api", "image": "checkout:1.4.2"}]}}},
        "status": {"replicas": 3, "readyReplicas": 3},
    });
    let seed = serde_json::json!({
        "resources": [
            {"group": "apps", "version": "v1", "plural": "deployments", "kind": "Deployment", "namespaced": true},
            {"group": "apps", "version": "v1", "plural": "replicasets", "kind": "ReplicaSet", "namespaced": true},
            {"group": "", "version": "v1", "plural": "pods", "kind": "Pod", "namespaced": true},
        ],
        "objects": [{"group": "apps", "version": "v1", "plural": "deployments", "namespace": "prod", "object": deployment}],
        "logs": {},
    });
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/tests/kmock_server.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .arg(&seed_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("kmock prints its port");
    Kmock {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Over the wire, from a third-party client: a scale of a production
/// Deployment is held for approval, and the Deployment is untouched.
#[tokio::test]
async fn an_acting_call_over_mcp_waits_for_approval_and_changes_nothing() {
    let kmock = kmock_with_a_deployment();
    let token = "mcp-test-token-77aa";
    let server = Proc::serve(
        &[],
        &[
            ("CEREBRO__TOOLS__MCP_TOKEN", token),
            ("CEREBRO__TOOLS__KUBERNETES", &kmock.url),
        ],
    );
    let url = format!("http://{}/mcp", server.addr);
    let args = r#"{"namespace": "prod", "name": "checkout", "replicas": 7}"#;
    let seen =
        tokio::task::spawn_blocking(move || client(&["call", &url, token, "scale_workload", args]))
            .await
            .unwrap();
    let result = &seen["result"];
    assert_eq!(result["isError"], true, "{seen}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("needs_approval"), "{text}");

    // Nothing ran: the Deployment still has 3 replicas.
    let deployment: Value = reqwest::get(format!(
        "{}/apis/apps/v1/namespaces/prod/deployments/checkout",
        kmock.url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3, "{deployment}");

    // The approval waits in the queue, naming what and who.
    let mut config = brain::config::Config::default();
    config.paths.data_dir = server.data_dir.clone();
    let store = brain::store::Store::open(&config).await.unwrap();
    let pending = store.pending_approvals().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(text.contains(&pending[0].id.to_string()), "{text}");
    let proposal = store.get_proposal(pending[0].proposal_id).await.unwrap();
    assert_eq!(proposal.target.to_string(), "deployment/prod/checkout");
    assert_eq!(proposal.requested_by, "mcp:http");
    assert_eq!(proposal.params["replicas"], 7);
    store.close().await;
}
