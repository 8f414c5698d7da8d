//! cerebro as an MCP client: a third-party MCP server (the Python SDK's
//! `MCPServer`, `deploy/scripts/python-peers.sh mcp`) joins the registry
//! under `server__tool`, over stdio and over streamable HTTP.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use brain::config::McpEndpoint;
use brain::vocabulary::Risk;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tools::Registry;
use tools::mcp::McpClient;

fn python() -> String {
    common::peers::python("mcp", "CEREBRO_MCP_PYTHON")
}

fn script() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mcp_server.py").to_owned()
}

async fn check(registry: &Registry, prefix: &str) {
    let add = registry
        .spec(&format!("{prefix}__add_numbers"))
        .expect("listed under the prefix");
    assert_eq!(
        add.input_schema["properties"]["a"]["type"], "integer",
        "{}",
        add.input_schema
    );
    let sum = registry
        .call(&format!("{prefix}__add_numbers"), json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(sum.text, "42");
    // The server's schema is checked before the call leaves cerebro.
    let e = registry
        .call(
            &format!("{prefix}__add_numbers"),
            json!({"a": "two", "b": 40}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_arguments", "{e}");
    // A failure inside the server comes back readable.
    let e = registry
        .call(
            &format!("{prefix}__lookup_owner"),
            json!({"service": "ledger"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "backend", "{e}");
    assert!(
        e.to_string().contains("lookup_owner"),
        "names the failed tool: {e}"
    );
}

#[tokio::test]
async fn an_external_stdio_server_joins_the_registry() {
    let endpoint = McpEndpoint::Stdio {
        command: python(),
        args: vec![script(), "stdio".into()],
    };
    let client = McpClient::connect("runbooks", &endpoint, Risk::High, Duration::from_secs(60))
        .await
        .unwrap();
    let mut registry = Registry::new();
    registry
        .add_with_prefix(Arc::new(client), Some("runbooks"))
        .unwrap();
    assert_eq!(registry.counts()["runbooks"], 2);
    // High risk unless the config says otherwise.
    assert!(registry.specs().all(|s| s.risk == Risk::High));
    check(&registry, "runbooks").await;
}

#[tokio::test]
async fn an_external_http_server_joins_the_registry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(python())
        .args([script(), "http".into(), port.to_string()])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let endpoint = McpEndpoint::Http { url, token: None };
    let mut client = None;
    for _ in 0..100 {
        match McpClient::connect("owners", &endpoint, Risk::Read, Duration::from_secs(10)).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let client = client.expect("the Python MCP server did not come up on HTTP");
    let mut registry = Registry::new();
    registry
        .add_with_prefix(Arc::new(client), Some("owners"))
        .unwrap();
    assert!(registry.specs().all(|s| s.risk == Risk::Read));
    check(&registry, "owners").await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_readable_error() {
    let endpoint = McpEndpoint::Stdio {
        command: "/nonexistent/mcp-server".into(),
        args: vec![],
    };
    let e = McpClient::connect("gone", &endpoint, Risk::High, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(!e.to_string().is_empty());
}

/// An external tool at the default `high` risk, asked for over MCP: held
/// for approval on `external/SERVER`, then run once approved.
#[tokio::test]
async fn an_external_high_risk_tool_waits_for_approval() {
    use brain::domain::ProposalStatus;
    use tools::gate::ApprovalGate;
    use tools::mcp::McpServer;
    let dir = tempfile::tempdir().unwrap();
    let mut config = brain::config::Config::default();
    config.paths.data_dir = dir.path().to_owned();
    let store = brain::store::Store::open(&config).await.unwrap();
    let endpoint = McpEndpoint::Stdio {
        command: python(),
        args: vec![script(), "stdio".into()],
    };
    let client = McpClient::connect("runbooks", &endpoint, Risk::High, Duration::from_secs(60))
        .await
        .unwrap();
    let mut registry = Registry::new();
    registry
        .add_with_prefix(Arc::new(client), Some("runbooks"))
        .unwrap();
    let gate = Arc::new(ApprovalGate::new(
        store.clone(),
        brain::policy::Policy::default(),
        chrono::Duration::hours(1),
    ));
    let mcp = McpServer::new(Arc::new(registry), gate, "mcp:stdio");
    let text = |r: &rmcp::model::CallToolResult| -> String {
        r.content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect()
    };
    let args = json!({"a": 2, "b": 40});
    let held = mcp
        .call("runbooks__add_numbers", args.clone())
        .await
        .unwrap();
    assert!(text(&held).starts_with("needs_approval"), "{}", text(&held));
    let pending = store.pending_approvals().await.unwrap();
    assert_eq!(pending.len(), 1);
    let proposal = store.get_proposal(pending[0].proposal_id).await.unwrap();
    assert_eq!(proposal.target.to_string(), "external/runbooks");
    assert_eq!(proposal.action.as_str(), "mcp.call_tool");
    store
        .decide_approval(pending[0].id, true, "alice", None)
        .await
        .unwrap();
    let ran = mcp.call("runbooks__add_numbers", args).await.unwrap();
    assert_eq!(text(&ran), "42");
    assert_eq!(
        store.get_proposal(proposal.id).await.unwrap().status,
        ProposalStatus::Executed
    );
    store.close().await;
}
