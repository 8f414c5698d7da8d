//! MCP both ways, with rmcp.
//!
//! - [`McpServer`] serves a [`Registry`] to any MCP client: over stdio
//!   (`cerebro mcp`) or streamable HTTP (`/mcp` in the service, behind a
//!   token). Tool annotations carry the risk: `read` tools say read-only,
//!   everything else says destructive. Only `read` tools run straight away;
//!   any other call goes to the [`CallGate`], the same policy path the agents
//!   use, so an MCP client can never act without it.
//! - [`McpClient`] joins an external MCP server's tools to the registry as
//!   `server__tool`, at `high` risk unless the config says otherwise.

use crate::registry::Registry;
use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
pub use brain::config::McpEndpoint;
use brain::vocabulary::{Action, Risk};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What happens to a call of a tool that is not `read`.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Policy allows it now; `reference` names the approval it runs under.
    Run { reference: Option<String> },
    /// Held for a human: nothing ran; `reference` identifies the request.
    Pending { reference: String },
    /// Never allowed.
    Refused { reason: String },
}

/// The policy and approval path for tools that act. Implemented over the
/// approval queue by the service; the agents' calls go through the same.
#[async_trait]
pub trait CallGate: Send + Sync {
    /// Decide a call of `spec` with `args` on `target` (from the backend)
    /// asked for by `caller`.
    async fn admit(
        &self,
        spec: &ToolSpec,
        args: &Value,
        target: Option<&str>,
        caller: &str,
    ) -> Admission;

    /// The call admitted under `reference` ran, successfully or not.
    async fn finished(&self, _reference: &str, _ok: bool, _summary: &str) {}
}

/// The registry as an MCP server.
#[derive(Clone)]
pub struct McpServer {
    registry: Arc<Registry>,
    gate: Arc<dyn CallGate>,
    /// Who the caller is, for the approval record (e.g. `mcp:http`).
    caller: String,
}

impl McpServer {
    pub fn new(
        registry: Arc<Registry>,
        gate: Arc<dyn CallGate>,
        caller: impl Into<String>,
    ) -> McpServer {
        McpServer {
            registry,
            gate,
            caller: caller.into(),
        }
    }

    /// Serve over stdin/stdout until the client goes away.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        let running = self.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    }

    /// The tools as MCP lists them.
    pub fn mcp_tools(&self) -> Vec<Tool> {
        self.registry.specs().map(to_mcp_tool).collect()
    }

    /// Run one call: the gate for anything but `read`, then the registry.
    /// Tool failures come back as readable error results, for the model.
    pub async fn call(&self, name: &str, args: Value) -> Result<CallToolResult, ErrorData> {
        let Some(spec) = self.registry.spec(name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        };
        if spec.risk == Risk::Forbidden {
            return Ok(error_result(&ToolError::Forbidden(format!(
                "{name} is forbidden by policy and never runs"
            ))));
        }
        let mut reference = None;
        if spec.risk != Risk::Read {
            let target = self.registry.target(name, &args);
            match self
                .gate
                .admit(spec, &args, target.as_deref(), &self.caller)
                .await
            {
                Admission::Run { reference: r } => reference = r,
                Admission::Pending { reference } => {
                    return Ok(error_result(&ToolError::NeedsApproval(format!(
                        "{name} did not run: it waits for a human approval ({reference})"
                    ))));
                }
                Admission::Refused { reason } => {
                    return Ok(error_result(&ToolError::Forbidden(reason)));
                }
            }
        }
        let outcome = self.registry.call(name, args).await;
        if let Some(r) = &reference {
            let summary = match &outcome {
                Ok(out) => out.text.chars().take(500).collect::<String>(),
                Err(e) => e.to_string(),
            };
            self.gate.finished(r, outcome.is_ok(), &summary).await;
        }
        Ok(match outcome {
            Ok(out) => {
                let mut result = CallToolResult::success(vec![ContentBlock::text(out.text)]);
                if !out.data.is_null() {
                    result.structured_content = Some(out.data);
                }
                result
            }
            Err(e) => error_result(&e),
        })
    }
}

fn error_result(e: &ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{}: {e}", e.kind()))])
}

/// One registry tool in MCP's shape; the risk goes in the annotations.
pub fn to_mcp_tool(spec: &ToolSpec) -> Tool {
    let schema = match &spec.input_schema {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let read = spec.risk == Risk::Read;
    let mut annotations = ToolAnnotations::new()
        .read_only(read)
        .destructive(!read)
        .open_world(true);
    annotations.title = Some(format!("{} ({} risk)", spec.name, spec.risk));
    let mut meta = rmcp::model::MetaObject::new();
    meta.insert(
        "cerebro/risk".into(),
        Value::String(spec.risk.as_str().into()),
    );
    Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        Arc::new(schema),
    )
    .with_annotations(annotations)
    .with_meta(meta)
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("cerebro", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "cerebro's incident tools: Prometheus, Kubernetes, AWS, the change feed and log clustering. \
                 Read tools run at once; tools that change anything wait for a human approval.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult {
            tools: self.mcp_tools(),
            ..Default::default()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.map_or(Value::Null, Value::Object);
        self.call(&request.name, args)
            .await
            .map(CallToolResponse::from)
    }
}

/// An external MCP server's tools, as one registry backend.
pub struct McpClient {
    name: String,
    risk: Risk,
    timeout: Duration,
    tools: Vec<ToolSpec>,
    service: RunningService<RoleClient, ()>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("name", &self.name)
            .field("tools", &self.tools.len())
            .finish()
    }
}

impl McpClient {
    /// Connect to `endpoint` and list its tools. Every tool gets `risk`
    /// (config decides; `high` by default) and `timeout`.
    pub async fn connect(
        name: &str,
        endpoint: &McpEndpoint,
        risk: Risk,
        timeout: Duration,
    ) -> anyhow::Result<McpClient> {
        let start = async {
            match endpoint {
                McpEndpoint::Stdio { command, args } => {
                    let mut cmd = tokio::process::Command::new(command);
                    cmd.args(args);
                    let transport = rmcp::transport::TokioChildProcess::new(cmd)?;
                    anyhow::Ok(().serve(transport).await?)
                }
                McpEndpoint::Http { url, token } => {
                    let mut config =
                        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                            url.as_str(),
                        );
                    config.auth_header = token.as_ref().map(|t| t.expose().to_owned());
                    let transport =
                        rmcp::transport::StreamableHttpClientTransport::from_config(config);
                    anyhow::Ok(().serve(transport).await?)
                }
            }
        };
        let service = tokio::time::timeout(timeout, start).await.map_err(|_| {
            anyhow::anyhow!("MCP server {name} did not answer within {timeout:?}")
        })??;
        let listed = tokio::time::timeout(timeout, service.peer().list_all_tools())
            .await
            .map_err(|_| {
                anyhow::anyhow!("MCP server {name} did not list its tools within {timeout:?}")
            })??;
        let tools = listed
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: Value::Object((*t.input_schema).clone()),
                risk,
                timeout,
                output_budget: crate::typed::DEFAULT_BUDGET,
                // Anything but a read goes to the approval queue as a call
                // of an external tool on `external/NAME`.
                action: (risk != Risk::Read).then(|| Action::McpToolCall.as_str().to_owned()),
            })
            .collect();
        Ok(McpClient {
            name: name.to_owned(),
            risk,
            timeout,
            tools,
            service,
        })
    }

    pub fn risk(&self) -> Risk {
        self.risk
    }
}

#[async_trait]
impl ToolBackend for McpClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.clone()
    }

    fn target(&self, _tool: &str, _args: &Value) -> Option<String> {
        (self.risk != Risk::Read).then(|| format!("external/{}", self.name))
    }

    async fn call(&self, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let Value::Object(arguments) = args else {
            return Err(ToolError::InvalidArguments(
                "the arguments must be an object".into(),
            ));
        };
        let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let result = tokio::time::timeout(self.timeout, self.service.peer().call_tool(request))
            .await
            .map_err(|_| ToolError::Timeout(self.timeout))?
            .map_err(|e| ToolError::Backend(format!("MCP server {}: {e}", self.name)))?;
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        let text = text.join("\n");
        if result.is_error == Some(true) {
            return Err(ToolError::Backend(format!(
                "MCP server {}: {text}",
                self.name
            )));
        }
        Ok(ToolOutput {
            text,
            data: result.structured_content.unwrap_or(Value::Null),
            truncated: false,
        })
    }
}
