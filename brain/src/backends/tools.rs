//! Tool backends: Prometheus, Kubernetes, AWS, the change feed, MCP servers.

use crate::vocabulary::Risk;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A tool as the registry, the agents and MCP clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// `verb_noun`, e.g. `get_pod_logs`.
    pub name: String,
    /// Written for a model: what it does and when to use it.
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: serde_json::Value,
    pub risk: Risk,
    pub timeout: Duration,
    /// Most characters of `ToolOutput::text` a model is shown; the registry
    /// cuts longer text at a line and says so in the text itself.
    pub output_budget: usize,
    /// For a tool that acts: the action of the vocabulary it performs (e.g.
    /// `kubernetes.scale`), so the policy and the approval queue see the
    /// same action whether an agent or an MCP client asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// A tool's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Text for a model, within the tool's output budget.
    pub text: String,
    /// The structured result, for analyzers.
    pub data: serde_json::Value,
    /// Whether `text` was cut to fit the budget.
    pub truncated: bool,
}

/// A failed tool call, to be handed back to the agent as a readable result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("no tool named {0}")]
    UnknownTool(String),
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("tool timed out after {0:?}")]
    Timeout(Duration),
    #[error("backend error: {0}")]
    Backend(String),
    #[error("needs approval: {0}")]
    NeedsApproval(String),
    #[error("forbidden by policy: {0}")]
    Forbidden(String),
    #[error("rate limited or unavailable, retry later: {0}")]
    Unavailable(String),
}

impl ToolError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownTool(_) => "unknown_tool",
            Self::InvalidArguments(_) => "invalid_arguments",
            Self::NotFound { .. } => "not_found",
            Self::Timeout(_) => "timeout",
            Self::Backend(_) => "backend",
            Self::NeedsApproval(_) => "needs_approval",
            Self::Forbidden(_) => "forbidden",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// A set of tools served by one backend.
#[async_trait]
pub trait ToolBackend: Send + Sync {
    /// The backend's name, e.g. `prometheus`.
    fn name(&self) -> &str;
    fn tools(&self) -> Vec<ToolSpec>;
    async fn call(&self, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError>;

    /// For a tool that acts: the component a call acts on, as the spec
    /// names components (`deployment/prod/api`, `node/ip-10-0-3-17`,
    /// `aws/rds/orders-db`), so policy and approvals can judge the target.
    /// `None` for read tools, or when the arguments do not say.
    fn target(&self, _tool: &str, _args: &serde_json::Value) -> Option<String> {
        None
    }
}
