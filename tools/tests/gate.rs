//! Tools that act, called over MCP: held for a human approval, never run
//! before it, run once after it. On SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use brain::config::{Config, DatabaseUrl};
use brain::domain::{ApprovalStatus, ProposalStatus};
use brain::policy::Policy;
use brain::store::Store;
use brain::vocabulary::{Action, Risk};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tools::Registry;
use tools::gate::ApprovalGate;
use tools::mcp::McpServer;

/// A backend whose tools act by counting, so a test sees whether they ran.
#[derive(Default)]
struct Counter {
    runs: AtomicUsize,
}

/// Arguments of the test tools.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Target {
    /// Namespace.
    namespace: String,
    /// Deployment.
    name: String,
    /// Replicas.
    #[serde(default)]
    replicas: Option<u32>,
}

#[async_trait]
impl ToolBackend for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn tools(&self) -> Vec<ToolSpec> {
        let t = Duration::from_secs(5);
        vec![
            tools::typed::action_spec::<Target>(
                "restart_rollout",
                "Restart.",
                Action::RolloutRestart,
                t,
            ),
            tools::typed::action_spec::<Target>(
                "rollback_deployment",
                "Roll back.",
                Action::Rollback,
                t,
            ),
            tools::typed::action_spec::<Target>(
                "delete_namespace",
                "Delete.",
                Action::DeleteNamespace,
                t,
            ),
            tools::typed::spec::<Target>("count_runs", "How many runs.", Risk::Read, t),
        ]
    }
    async fn call(&self, tool: &str, _args: Value) -> Result<ToolOutput, ToolError> {
        let n = if tool == "count_runs" {
            self.runs.load(Ordering::SeqCst)
        } else {
            self.runs.fetch_add(1, Ordering::SeqCst) + 1
        };
        Ok(ToolOutput {
            text: format!("runs: {n}"),
            data: json!({"runs": n}),
            truncated: false,
        })
    }
    fn target(&self, _tool: &str, args: &Value) -> Option<String> {
        Some(format!(
            "deployment/{}/{}",
            args["namespace"].as_str()?,
            args["name"].as_str()?
        ))
    }
}

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.paths.data_dir = dir.path().to_owned();
    (Store::open(&config).await.unwrap(), dir)
}

fn postgres_url() -> String {
    std::env::var("CEREBRO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn postgres(schema: &str) -> Store {
    let mut config = Config::default();
    config.database.url = Some(DatabaseUrl::new(postgres_url()));
    config.database.schema = Some(schema.to_owned());
    Store::open(&config)
        .await
        .expect("PostgreSQL at CEREBRO_TEST_POSTGRES_URL")
}

async fn drop_schema(schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

fn text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

async fn held_then_run_once(store: Store) {
    let counter = Arc::new(Counter::default());
    let mut registry = Registry::new();
    registry.add(counter.clone()).unwrap();
    let registry = Arc::new(registry);
    let gate = Arc::new(ApprovalGate::new(
        store.clone(),
        Policy::default(),
        chrono::Duration::hours(1),
    ));
    let mcp = McpServer::new(registry.clone(), gate.clone(), "mcp:http");
    let args = json!({"namespace": "prod", "name": "checkout"});

    // Asked for: held, not run.
    let first = mcp.call("restart_rollout", args.clone()).await.unwrap();
    assert_eq!(first.is_error, Some(true));
    assert!(
        text(&first).starts_with("needs_approval"),
        "{}",
        text(&first)
    );
    assert_eq!(counter.runs.load(Ordering::SeqCst), 0);
    let pending = store.pending_approvals().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(
        text(&first).contains(&pending[0].id.to_string()),
        "names the approval: {}",
        text(&first)
    );
    let proposal = store.get_proposal(pending[0].proposal_id).await.unwrap();
    assert_eq!(proposal.tool.as_deref(), Some("restart_rollout"));
    assert_eq!(proposal.requested_by, "mcp:http");
    assert_eq!(proposal.target.to_string(), "deployment/prod/checkout");
    assert_eq!(proposal.params, args);
    assert_eq!(proposal.incident_id, None);

    // Asked again while pending: the same approval, still not run.
    let again = mcp.call("restart_rollout", args.clone()).await.unwrap();
    assert!(
        text(&again).contains(&pending[0].id.to_string()),
        "{}",
        text(&again)
    );
    assert_eq!(store.pending_approvals().await.unwrap().len(), 1);
    assert_eq!(counter.runs.load(Ordering::SeqCst), 0);

    // Another caller cannot ride on it; other arguments are another request.
    let other = McpServer::new(registry.clone(), gate.clone(), "mcp:stdio");
    other.call("restart_rollout", args.clone()).await.unwrap();
    mcp.call(
        "restart_rollout",
        json!({"namespace": "prod", "name": "cart"}),
    )
    .await
    .unwrap();
    assert_eq!(store.pending_approvals().await.unwrap().len(), 3);
    assert_eq!(counter.runs.load(Ordering::SeqCst), 0);

    // Approved: the same call runs, once.
    store
        .decide_approval(pending[0].id, true, "alice", Some("ok"))
        .await
        .unwrap();
    let ran = mcp.call("restart_rollout", args.clone()).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(text(&ran), "runs: 1");
    assert_eq!(
        store.get_proposal(proposal.id).await.unwrap().status,
        ProposalStatus::Executed
    );
    let after = mcp.call("restart_rollout", args.clone()).await.unwrap();
    assert!(
        text(&after).starts_with("needs_approval"),
        "an approval runs once: {}",
        text(&after)
    );
    assert_eq!(counter.runs.load(Ordering::SeqCst), 1);

    // Rejected: never runs.
    let rb = json!({"namespace": "staging", "name": "api"});
    mcp.call("rollback_deployment", rb.clone()).await.unwrap();
    let mut mine = None;
    for a in store.pending_approvals().await.unwrap() {
        if store
            .get_proposal(a.proposal_id)
            .await
            .unwrap()
            .tool
            .as_deref()
            == Some("rollback_deployment")
        {
            mine = Some(a.id);
        }
    }
    let mine = mine.expect("the rollback waits for approval");
    let decided = store
        .decide_approval(mine, false, "bob", Some("no"))
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Rejected);
    let refused = mcp.call("rollback_deployment", rb).await.unwrap();
    assert!(
        text(&refused).starts_with("needs_approval"),
        "{}",
        text(&refused)
    );
    assert_eq!(counter.runs.load(Ordering::SeqCst), 1);

    // Forbidden: refused outright, nothing recorded for approval.
    let before = store.pending_approvals().await.unwrap().len();
    let forbidden = mcp
        .call(
            "delete_namespace",
            json!({"namespace": "prod", "name": "x"}),
        )
        .await
        .unwrap();
    assert!(
        text(&forbidden).starts_with("forbidden"),
        "{}",
        text(&forbidden)
    );
    assert_eq!(store.pending_approvals().await.unwrap().len(), before);

    // Reads run at once.
    let read = mcp.call("count_runs", args).await.unwrap();
    assert_eq!(text(&read), "runs: 1");
    let audit = store.verify_audit().await.unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert!(
        audit.entries >= 6,
        "requests and executions are audited: {audit:?}"
    );
}

#[tokio::test]
async fn acting_over_mcp_waits_for_approval_on_sqlite() {
    let (store, _dir) = sqlite().await;
    held_then_run_once(store.clone()).await;
    store.close().await;
}

#[tokio::test]
async fn acting_over_mcp_waits_for_approval_on_postgres() {
    let schema = format!("cerebro_test_{}", uuid::Uuid::new_v4().simple());
    let store = postgres(&schema).await;
    held_then_run_once(store.clone()).await;
    store.close().await;
    drop_schema(&schema).await;
}

/// The real Kubernetes tools over a scenario's world: the scale waits for
/// approval and changes nothing until then.
#[tokio::test]
async fn a_kubernetes_scale_over_mcp_changes_nothing_before_approval() {
    let (store, _dir) = sqlite().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evals/scenarios/examples/k8s-oomkilled-payments.yaml"
    );
    let scenario = brain::scenario::Scenario::load(std::path::Path::new(path)).unwrap();
    let api = Arc::new(tools::kubernetes::WorldKubernetes::new(&scenario.world));
    let mut registry = Registry::new();
    registry
        .add(Arc::new(tools::kubernetes::KubernetesTools::new(api)))
        .unwrap();
    let gate = Arc::new(ApprovalGate::new(
        store.clone(),
        Policy::default(),
        chrono::Duration::hours(1),
    ));
    let mcp = McpServer::new(Arc::new(registry), gate, "mcp:http");
    let replicas = |mcp: McpServer| async move {
        let r = mcp
            .call(
                "get_resource",
                json!({"kind": "Deployment", "namespace": "prod", "name": "payments-api"}),
            )
            .await
            .unwrap();
        let data = r.structured_content.unwrap();
        data["object"]["spec"]["replicas"]
            .as_u64()
            .or(data["spec"]["replicas"].as_u64())
            .unwrap()
    };
    let before = replicas(mcp.clone()).await;
    let args = json!({"namespace": "prod", "name": "payments-api", "replicas": before + 2});
    let held = mcp.call("scale_workload", args.clone()).await.unwrap();
    assert!(text(&held).starts_with("needs_approval"), "{}", text(&held));
    assert_eq!(
        replicas(mcp.clone()).await,
        before,
        "nothing ran before the approval"
    );
    let pending = store.pending_approvals().await.unwrap();
    let proposal = store.get_proposal(pending[0].proposal_id).await.unwrap();
    assert_eq!(proposal.action, Action::Scale);
    assert_eq!(proposal.target.to_string(), "deployment/prod/payments-api");
    store
        .decide_approval(pending[0].id, true, "alice", None)
        .await
        .unwrap();
    let ran = mcp.call("scale_workload", args).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(replicas(mcp.clone()).await, before + 2);
    store.close().await;
}
