//! The tool registry over MCP, driven by a third-party client: the Python
//! MCP SDK (`deploy/scripts/python-peers.sh mcp`), over stdio (`cerebro
//! mcp`) and over streamable HTTP (`/mcp`, with and without the token).

use crate::harness::Proc;
use serde_json::Value;
use std::process::Command;

fn python() -> String {
    std::env::var("CEREBRO_MCP_PYTHON").expect(
        "CEREBRO_MCP_PYTHON must name the MCP SDK's python: run `bash deploy/scripts/python-peers.sh mcp` (.ci/run does)",
    )
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
