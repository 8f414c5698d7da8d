//! AWS Bedrock Runtime: chat through the Converse API and embeddings
//! through InvokeModel (Titan text embeddings, Cohere embed).
//!
//! Chat maps the provider-neutral request onto Converse: system messages
//! become `system` blocks, tool calls `toolUse` blocks, tool answers
//! `toolResult` blocks in a user turn. Converse has no JSON mode that every
//! model supports, so [`ResponseFormat::JsonSchema`] is served by offering a
//! single extra tool whose input schema is the requested one and forcing the
//! model to call it; its input is the answer.
//!
//! Errors are shaped for the gateway: throttling is [`LlmError::RateLimited`],
//! timeouts [`LlmError::Timeout`], server-side trouble
//! [`LlmError::Unavailable`], and requests the service rejects
//! [`LlmError::InvalidRequest`]. The SDK's own retries are turned off by
//! [`load_client`] because the gateway retries and falls back itself.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamError;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    self as bt, ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole,
    ConverseOutput, ConverseStreamOutput, InferenceConfiguration, SpecificToolChoice, StopReason,
    SystemContentBlock, TokenUsage, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolResultBlock, ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use brain::backends::llm::{
    ChatRequest, ChatResponse, Embedder, LlmError, LlmProvider, Message, ResponseFormat, Role,
    TextSink, ToolCall, ToolDefinition, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What `provider()` answers for everything in this module.
pub const PROVIDER: &str = "bedrock";

/// Name of the tool that carries a JSON-schema answer (a suffix is added
/// if the request already has a tool of that name).
pub const RESPOND_TOOL: &str = "respond";

/// Cohere embed accepts at most this many texts a call.
pub const COHERE_BATCH: usize = 96;

fn default_timeout_secs() -> u64 {
    60
}

/// Settings for Bedrock chat and embeddings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockConfig {
    /// AWS region; when absent, the standard chain (environment, profile,
    /// instance metadata) decides.
    #[serde(default)]
    pub region: Option<String>,
    /// Model id or inference profile id for chat, e.g.
    /// `anthropic.claude-3-5-haiku-20241022-v1:0`.
    pub model: String,
    /// Endpoint override (a VPC endpoint, a proxy, a test server).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Deadline for one call, streaming included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Embedding model, e.g. `amazon.titan-embed-text-v2:0` or
    /// `cohere.embed-english-v3`.
    #[serde(default)]
    pub embed_model: Option<String>,
    /// Embedding size; Titan v2 takes 256, 512 or 1024 (default 1024),
    /// Cohere v3 models give 1024.
    #[serde(default)]
    pub embed_dimensions: Option<usize>,
}

impl BedrockConfig {
    /// A configuration for `model` with every other field at its default.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            region: None,
            model: model.into(),
            endpoint_url: None,
            timeout_secs: default_timeout_secs(),
            embed_model: None,
            embed_dimensions: None,
        }
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    fn check_timeout(&self) -> Result<Duration, LlmError> {
        if self.timeout_secs == 0 {
            return Err(LlmError::InvalidRequest(
                "bedrock: timeout_secs must be at least 1".into(),
            ));
        }
        Ok(self.timeout())
    }
}

/// Builds a Bedrock Runtime client from the standard AWS configuration
/// chain, with the region and endpoint overrides of `cfg`, its timeout as
/// the operation timeout, and SDK retries off (the gateway retries).
pub async fn load_client(cfg: &BedrockConfig) -> Result<Client, LlmError> {
    let timeout = cfg.check_timeout()?;
    let timeouts = aws_sdk_bedrockruntime::config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeout)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled());
    if let Some(region) = &cfg.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &cfg.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    // Loading reads files and may ask instance metadata for the region.
    let sdk = tokio::time::timeout(timeout, loader.load())
        .await
        .map_err(|_| LlmError::Timeout(timeout))?;
    if sdk.region().is_none() {
        return Err(LlmError::InvalidRequest(
            "bedrock: no AWS region configured (set `region` or AWS_REGION)".into(),
        ));
    }
    Ok(Client::new(&sdk))
}

/// Runs `fut` under the deadline.
async fn deadline<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(LlmError::Timeout(timeout)))
}

// ---------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------

/// A Bedrock chat model behind the Converse API.
#[derive(Debug, Clone)]
pub struct BedrockChat {
    client: Client,
    model: String,
    timeout: Duration,
}

impl BedrockChat {
    /// Loads AWS configuration (see [`load_client`]) and builds the provider.
    pub async fn new(cfg: &BedrockConfig) -> Result<Self, LlmError> {
        let client = load_client(cfg).await?;
        Self::with_client(client, cfg)
    }

    /// Uses an already built client; `cfg` supplies the model and timeout.
    pub fn with_client(client: Client, cfg: &BedrockConfig) -> Result<Self, LlmError> {
        let timeout = cfg.check_timeout()?;
        if cfg.model.trim().is_empty() {
            return Err(LlmError::InvalidRequest(
                "bedrock: `model` must not be empty".into(),
            ));
        }
        Ok(Self {
            client,
            model: cfg.model.clone(),
            timeout,
        })
    }

    async fn converse(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        let input = ConverseInput::from_request(&req)?;
        let out = self
            .client
            .converse()
            .model_id(&self.model)
            .set_system(input.system_opt())
            .set_messages(Some(input.messages))
            .set_inference_config(input.inference)
            .set_tool_config(input.tool_config)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, self.timeout, http_status))?;

        let (text, calls) = match out.output() {
            Some(ConverseOutput::Message(message)) => read_blocks(message.content()),
            _ => (String::new(), Vec::new()),
        };
        finish(
            text,
            calls,
            out.usage().map(usage_of).unwrap_or_default(),
            Some(out.stop_reason()),
            input.json_tool.as_ref(),
            &self.model,
        )
    }

    async fn converse_stream(
        &self,
        req: ChatRequest,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let input = ConverseInput::from_request(&req)?;
        let json_tool = input.json_tool.clone();
        let mut out = self
            .client
            .converse_stream()
            .model_id(&self.model)
            .set_system(input.system_opt())
            .set_messages(Some(input.messages))
            .set_inference_config(input.inference)
            .set_tool_config(input.tool_config)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, self.timeout, http_status))?;

        let mut text = String::new();
        let mut tools: BTreeMap<i32, PendingTool> = BTreeMap::new();
        let mut usage = Usage::default();
        let mut stop: Option<StopReason> = None;
        while let Some(event) = out
            .stream
            .recv()
            .await
            .map_err(|e| map_sdk_error(e, self.timeout, |_| (None, None)))?
        {
            match event {
                ConverseStreamOutput::ContentBlockStart(ev) => {
                    if let Some(ContentBlockStart::ToolUse(start)) = ev.start() {
                        tools.insert(
                            ev.content_block_index(),
                            PendingTool {
                                id: start.tool_use_id().to_owned(),
                                name: start.name().to_owned(),
                                input: String::new(),
                            },
                        );
                    }
                }
                ConverseStreamOutput::ContentBlockDelta(ev) => match ev.delta() {
                    Some(ContentBlockDelta::Text(piece)) => {
                        text.push_str(piece);
                        // A JSON answer is delivered whole at the end.
                        if json_tool.is_none() && !piece.is_empty() {
                            on_text(piece);
                        }
                    }
                    Some(ContentBlockDelta::ToolUse(delta)) => {
                        if let Some(tool) = tools.get_mut(&ev.content_block_index()) {
                            tool.input.push_str(delta.input());
                        } else {
                            return Err(LlmError::Malformed(format!(
                                "bedrock: tool input for block {} that never started",
                                ev.content_block_index()
                            )));
                        }
                    }
                    _ => {}
                },
                ConverseStreamOutput::MessageStop(ev) => stop = Some(ev.stop_reason().clone()),
                ConverseStreamOutput::Metadata(ev) => {
                    if let Some(u) = ev.usage() {
                        usage = usage_of(u);
                    }
                }
                _ => {}
            }
        }

        if stop.is_none() {
            return Err(LlmError::Unavailable(
                "bedrock: the response stream ended before the message did".into(),
            ));
        }
        let calls = tools
            .into_values()
            .map(PendingTool::into_call)
            .collect::<Result<Vec<_>, _>>()?;
        let response = finish(
            text,
            calls,
            usage,
            stop.as_ref(),
            json_tool.as_ref(),
            &self.model,
        )?;
        if json_tool.is_some() {
            on_text(&response.content);
        }
        Ok(response)
    }
}

#[async_trait]
impl LlmProvider for BedrockChat {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        deadline(self.timeout, self.converse(req)).await
    }

    async fn chat_stream(
        &self,
        req: ChatRequest,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        deadline(self.timeout, self.converse_stream(req, on_text)).await
    }
}

/// A tool call being streamed: its input arrives as JSON text in pieces.
struct PendingTool {
    id: String,
    name: String,
    input: String,
}

impl PendingTool {
    fn into_call(self) -> Result<ToolCall, LlmError> {
        let arguments = if self.input.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&self.input).map_err(|e| {
                LlmError::Malformed(format!(
                    "bedrock: arguments of tool call `{}` are not JSON: {e}",
                    self.name
                ))
            })?
        };
        Ok(ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        })
    }
}

/// The forced tool that carries a JSON-schema answer.
#[derive(Debug, Clone)]
struct JsonTool {
    name: String,
    /// The schema was not an object, so it sits under `value`.
    wrapped: bool,
}

/// A request in Converse terms.
struct ConverseInput {
    system: Vec<SystemContentBlock>,
    messages: Vec<bt::Message>,
    inference: Option<InferenceConfiguration>,
    tool_config: Option<ToolConfiguration>,
    json_tool: Option<JsonTool>,
}

impl ConverseInput {
    fn from_request(req: &ChatRequest) -> Result<Self, LlmError> {
        let mut tools = req
            .tools
            .iter()
            .map(tool_spec)
            .collect::<Result<Vec<_>, _>>()?;

        let json_tool = match &req.format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonSchema { schema } => {
                let name = unused_tool_name(&req.tools);
                let (schema, wrapped) = object_schema(schema);
                tools.push(Tool::ToolSpec(
                    ToolSpecification::builder()
                        .name(&name)
                        .description(
                            "Give your final answer by calling this tool; its input is the answer.",
                        )
                        .input_schema(ToolInputSchema::Json(json_to_document(&schema)))
                        .build()
                        .map_err(build_error)?,
                ));
                Some(JsonTool { name, wrapped })
            }
        };

        let tool_config = if tools.is_empty() {
            None
        } else {
            let choice = match &json_tool {
                Some(jt) => Some(ToolChoice::Tool(
                    SpecificToolChoice::builder()
                        .name(&jt.name)
                        .build()
                        .map_err(build_error)?,
                )),
                None => None,
            };
            Some(
                ToolConfiguration::builder()
                    .set_tools(Some(tools))
                    .set_tool_choice(choice)
                    .build()
                    .map_err(build_error)?,
            )
        };

        let (system, messages) = convert_messages(&req.messages, tool_config.is_some())?;

        let max_tokens = req.max_tokens.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let inference = (max_tokens.is_some() || req.temperature.is_some()).then(|| {
            InferenceConfiguration::builder()
                .set_max_tokens(max_tokens)
                .set_temperature(req.temperature)
                .build()
        });

        Ok(Self {
            system,
            messages,
            inference,
            tool_config,
            json_tool,
        })
    }

    fn system_opt(&self) -> Option<Vec<SystemContentBlock>> {
        (!self.system.is_empty()).then(|| self.system.clone())
    }
}

fn build_error(e: aws_sdk_bedrockruntime::error::BuildError) -> LlmError {
    LlmError::InvalidRequest(format!("bedrock: cannot build request: {e}"))
}

fn tool_spec(def: &ToolDefinition) -> Result<Tool, LlmError> {
    let schema = match &def.parameters {
        Value::Object(map) if !map.is_empty() => def.parameters.clone(),
        _ => json!({"type": "object", "properties": {}}),
    };
    let mut spec = ToolSpecification::builder()
        .name(&def.name)
        .input_schema(ToolInputSchema::Json(json_to_document(&schema)));
    if !def.description.is_empty() {
        spec = spec.description(&def.description);
    }
    Ok(Tool::ToolSpec(spec.build().map_err(build_error)?))
}

fn unused_tool_name(tools: &[ToolDefinition]) -> String {
    let taken = |name: &str| tools.iter().any(|t| t.name == name);
    if !taken(RESPOND_TOOL) {
        return RESPOND_TOOL.to_owned();
    }
    (1..)
        .map(|i| format!("{RESPOND_TOOL}_{i}"))
        .find(|name| !taken(name))
        .unwrap_or_else(|| format!("{RESPOND_TOOL}_final"))
}

/// Tool inputs must be objects: any other schema is put under `value`.
fn object_schema(schema: &Value) -> (Value, bool) {
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    if is_object {
        (schema.clone(), false)
    } else {
        (
            json!({
                "type": "object",
                "properties": {"value": schema},
                "required": ["value"],
            }),
            true,
        )
    }
}

/// Splits out system text and turns the rest into alternating Converse
/// turns. Adjacent turns of one role (several tool answers, a tool answer
/// then a user note) are merged, as Converse wants. Without a tool
/// configuration Converse refuses tool blocks, so tool traffic in the
/// history is then written out as text.
fn convert_messages(
    messages: &[Message],
    tools_declared: bool,
) -> Result<(Vec<SystemContentBlock>, Vec<bt::Message>), LlmError> {
    let mut system = Vec::new();
    let mut turns: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();

    for m in messages {
        let (role, blocks) = match m.role {
            Role::System => {
                if !m.content.trim().is_empty() {
                    system.push(SystemContentBlock::Text(m.content.clone()));
                }
                continue;
            }
            Role::User => (ConversationRole::User, text_block(&m.content)),
            Role::Assistant => {
                let mut blocks = text_block(&m.content);
                for call in &m.tool_calls {
                    if tools_declared {
                        blocks.push(ContentBlock::ToolUse(
                            ToolUseBlock::builder()
                                .tool_use_id(&call.id)
                                .name(&call.name)
                                .input(json_to_document(&tool_input(&call.arguments)))
                                .build()
                                .map_err(build_error)?,
                        ));
                    } else {
                        blocks.push(ContentBlock::Text(format!(
                            "[called tool {} (id {}) with {}]",
                            call.name, call.id, call.arguments
                        )));
                    }
                }
                (ConversationRole::Assistant, blocks)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().ok_or_else(|| {
                    LlmError::InvalidRequest("bedrock: a tool message has no tool_call_id".into())
                })?;
                let content = if m.content.trim().is_empty() {
                    "(no output)".to_owned()
                } else {
                    m.content.clone()
                };
                let block = if tools_declared {
                    ContentBlock::ToolResult(
                        ToolResultBlock::builder()
                            .tool_use_id(id)
                            .content(ToolResultContentBlock::Text(content))
                            .build()
                            .map_err(build_error)?,
                    )
                } else {
                    ContentBlock::Text(format!("[result of tool call {id}]\n{content}"))
                };
                (ConversationRole::User, vec![block])
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }

    let messages = turns
        .into_iter()
        .map(|(role, content)| {
            bt::Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .map_err(build_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((system, messages))
}

/// Converse rejects blank text blocks, so empty text is left out.
fn text_block(text: &str) -> Vec<ContentBlock> {
    if text.trim().is_empty() {
        Vec::new()
    } else {
        vec![ContentBlock::Text(text.to_owned())]
    }
}

/// Tool input must be a JSON object; a string holding one is unpacked.
fn tool_input(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::Null => Value::Object(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "input": arguments }),
        },
        other => json!({ "input": other }),
    }
}

/// Concatenated text and the tool calls of a Converse message.
fn read_blocks(blocks: &[ContentBlock]) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text(t) => text.push_str(t),
            ContentBlock::ToolUse(tu) => calls.push(ToolCall {
                id: tu.tool_use_id().to_owned(),
                name: tu.name().to_owned(),
                arguments: document_to_json(tu.input()),
            }),
            _ => {}
        }
    }
    (text, calls)
}

fn usage_of(u: &TokenUsage) -> Usage {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    Usage {
        input_tokens: count(u.input_tokens()),
        output_tokens: count(u.output_tokens()),
    }
}

/// Assembles the response; in JSON mode the forced tool's input becomes
/// the content.
fn finish(
    text: String,
    calls: Vec<ToolCall>,
    usage: Usage,
    stop: Option<&StopReason>,
    json_tool: Option<&JsonTool>,
    model: &str,
) -> Result<ChatResponse, LlmError> {
    let Some(jt) = json_tool else {
        return Ok(ChatResponse {
            content: text,
            tool_calls: calls,
            usage,
            model: model.to_owned(),
        });
    };

    if matches!(stop, Some(StopReason::MaxTokens)) {
        return Err(LlmError::Malformed(
            "bedrock: the JSON answer was cut off at max_tokens".into(),
        ));
    }
    let answer = calls.into_iter().find(|c| c.name == jt.name);
    let value = match answer {
        Some(call) if jt.wrapped => match call.arguments {
            Value::Object(mut map) => map.remove("value").ok_or_else(|| {
                LlmError::Malformed("bedrock: the JSON answer has no `value`".into())
            })?,
            other => other,
        },
        Some(call) => call.arguments,
        // Some models answer in text despite the forced tool.
        None => serde_json::from_str::<Value>(text.trim()).map_err(|_| {
            LlmError::Malformed(format!(
                "bedrock: the model did not call `{}` and its text is not JSON",
                jt.name
            ))
        })?,
    };
    let content = serde_json::to_string(&value)
        .map_err(|e| LlmError::Malformed(format!("bedrock: cannot serialise the answer: {e}")))?;
    Ok(ChatResponse {
        content,
        tool_calls: Vec::new(),
        usage,
        model: model.to_owned(),
    })
}

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

/// serde_json value to Smithy document (tool schemas, tool input).
pub fn json_to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(json_to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// Smithy document to serde_json value; non-finite floats become null.
pub fn document_to_json(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(document_to_json).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Status and `Retry-After` of an HTTP error response.
fn http_status(raw: &HttpResponse) -> (Option<u16>, Option<Duration>) {
    let retry_after = raw
        .headers()
        .get("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    (Some(raw.status().as_u16()), retry_after)
}

/// The error code of a modelled Bedrock error.
trait ErrorCode: ProvideErrorMetadata {
    /// The code when the metadata has none: errors inside an event stream
    /// carry their type in a frame header, which the SDK turns into the
    /// variant but not into the metadata.
    fn variant_code(&self) -> Option<&'static str> {
        None
    }

    fn error_code(&self) -> Option<&str> {
        self.code().or_else(|| self.variant_code())
    }
}

impl ErrorCode for ConverseError {}
impl ErrorCode for ConverseStreamError {}
impl ErrorCode for InvokeModelError {}

impl ErrorCode for ConverseStreamOutputError {
    fn variant_code(&self) -> Option<&'static str> {
        Some(match self {
            Self::ThrottlingException(_) => "ThrottlingException",
            Self::ServiceUnavailableException(_) => "ServiceUnavailableException",
            Self::InternalServerException(_) => "InternalServerException",
            Self::ModelStreamErrorException(_) => "ModelStreamErrorException",
            Self::ValidationException(_) => "ValidationException",
            _ => return None,
        })
    }
}

/// Maps an SDK failure onto the gateway's error kinds.
fn map_sdk_error<E, R>(
    err: SdkError<E, R>,
    timeout: Duration,
    status: impl Fn(&R) -> (Option<u16>, Option<Duration>),
) -> LlmError
where
    E: ErrorCode + std::error::Error + 'static,
    R: Debug,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let (code, message) = (ctx.err().error_code(), ctx.err().message());
            let (status, retry_after) = status(ctx.raw());
            classify(code, message, status, retry_after, timeout)
        }
        SdkError::TimeoutError(_) => LlmError::Timeout(timeout),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => LlmError::Timeout(timeout),
        SdkError::DispatchFailure(_) => LlmError::Unavailable(format!(
            "bedrock: request not delivered: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::ResponseError(_) => LlmError::Unavailable(format!(
            "bedrock: unreadable response: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::ConstructionFailure(_) => LlmError::InvalidRequest(format!(
            "bedrock: cannot build request: {}",
            DisplayErrorContext(&err)
        )),
        _ => LlmError::Unavailable(format!("bedrock: {}", DisplayErrorContext(&err))),
    }
}

/// Decides on the error code Bedrock sent, then on the HTTP status.
fn classify(
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    retry_after: Option<Duration>,
    timeout: Duration,
) -> LlmError {
    let text = format!(
        "bedrock {}{}: {}",
        code.unwrap_or("error"),
        status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
        message.unwrap_or("no message"),
    );
    tracing::debug!(target: "models::bedrock", "{text}");
    match code.unwrap_or_default() {
        "ThrottlingException"
        | "ServiceQuotaExceededException"
        | "TooManyRequestsException"
        | "LimitExceededException" => LlmError::RateLimited { retry_after },
        "ModelTimeoutException" | "RequestTimeout" | "RequestTimeoutException" => {
            LlmError::Timeout(timeout)
        }
        "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalServerException"
        | "InternalFailure"
        | "ModelNotReadyException"
        | "ModelStreamErrorException" => LlmError::Unavailable(text),
        "ValidationException"
        | "AccessDeniedException"
        | "ResourceNotFoundException"
        | "ModelErrorException"
        | "UnrecognizedClientException"
        | "ConflictException" => LlmError::InvalidRequest(text),
        _ => match status {
            Some(429) => LlmError::RateLimited { retry_after },
            Some(408) | Some(504) => LlmError::Timeout(timeout),
            Some(400..=499) => LlmError::InvalidRequest(text),
            _ => LlmError::Unavailable(text),
        },
    }
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

/// The embedding model families this module speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFamily {
    /// `amazon.titan-embed-text-v2`: one text a call, 256/512/1024 dims.
    TitanV2,
    /// `amazon.titan-embed-text-v1` / `amazon.titan-embed-g1-text`: one
    /// text a call, 1536 dims.
    TitanV1,
    /// `cohere.embed-*`: up to 96 texts a call.
    Cohere,
}

impl EmbedFamily {
    /// The family of a model id, inference profile id (`us.cohere...`) or
    /// foundation-model ARN.
    pub fn of(model_id: &str) -> Option<Self> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        let id = match id.split_once('.') {
            Some((
                "us" | "us-gov" | "eu" | "apac" | "ap" | "ca" | "jp" | "au" | "global",
                rest,
            )) => rest,
            _ => id,
        };
        if id.starts_with("amazon.titan-embed-text-v2") {
            Some(Self::TitanV2)
        } else if id.starts_with("amazon.titan-embed-text-v1")
            || id.starts_with("amazon.titan-embed-g1-text")
        {
            Some(Self::TitanV1)
        } else if id.starts_with("cohere.embed") {
            Some(Self::Cohere)
        } else {
            None
        }
    }
}

/// A Bedrock text embedder behind InvokeModel.
#[derive(Debug, Clone)]
pub struct BedrockEmbedder {
    client: Client,
    model: String,
    family: EmbedFamily,
    dimensions: usize,
    timeout: Duration,
}

impl BedrockEmbedder {
    /// Loads AWS configuration (see [`load_client`]) and builds the embedder
    /// for `cfg.embed_model`.
    pub async fn new(cfg: &BedrockConfig) -> Result<Self, LlmError> {
        // Check the model before touching the credential chain.
        Self::settings(cfg)?;
        let client = load_client(cfg).await?;
        Self::with_client(client, cfg)
    }

    /// Uses an already built client; `cfg` supplies the embedding model,
    /// dimensions and timeout.
    pub fn with_client(client: Client, cfg: &BedrockConfig) -> Result<Self, LlmError> {
        let (model, family, dimensions, timeout) = Self::settings(cfg)?;
        Ok(Self {
            client,
            model,
            family,
            dimensions,
            timeout,
        })
    }

    fn settings(cfg: &BedrockConfig) -> Result<(String, EmbedFamily, usize, Duration), LlmError> {
        let timeout = cfg.check_timeout()?;
        let model = cfg.embed_model.clone().ok_or_else(|| {
            LlmError::InvalidRequest("bedrock: `embed_model` is not configured".into())
        })?;
        let family = EmbedFamily::of(&model).ok_or_else(|| {
            LlmError::InvalidRequest(format!(
                "bedrock: unsupported embedding model `{model}` \
                 (amazon.titan-embed-text-* or cohere.embed-*)"
            ))
        })?;
        let dimensions = match (family, cfg.embed_dimensions) {
            (EmbedFamily::TitanV2, None) => 1024,
            (EmbedFamily::TitanV2, Some(n @ (256 | 512 | 1024))) => n,
            (EmbedFamily::TitanV1, None | Some(1536)) => 1536,
            (EmbedFamily::Cohere, None) => 1024,
            (EmbedFamily::Cohere, Some(n)) if n > 0 => n,
            (_, Some(n)) => {
                return Err(LlmError::InvalidRequest(format!(
                    "bedrock: `{model}` cannot give {n}-dimensional embeddings"
                )));
            }
        };
        Ok((model, family, dimensions, timeout))
    }

    /// One InvokeModel call with a JSON body, under the deadline.
    async fn invoke(&self, body: &Value) -> Result<Value, LlmError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| LlmError::InvalidRequest(format!("bedrock: cannot encode body: {e}")))?;
        let call = async {
            let out = self
                .client
                .invoke_model()
                .model_id(&self.model)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(bytes))
                .send()
                .await
                .map_err(|e| map_sdk_error(e, self.timeout, http_status))?;
            serde_json::from_slice::<Value>(out.body().as_ref()).map_err(|e| {
                LlmError::Malformed(format!("bedrock: embedding response is not JSON: {e}"))
            })
        };
        deadline(self.timeout, call).await
    }

    fn vector(&self, value: Option<&Value>) -> Result<Vec<f32>, LlmError> {
        let items = value.and_then(Value::as_array).ok_or_else(|| {
            LlmError::Malformed("bedrock: embedding response has no vector".into())
        })?;
        let vector = items
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| LlmError::Malformed("bedrock: embedding has a non-number".into()))?;
        if vector.len() != self.dimensions {
            return Err(LlmError::Malformed(format!(
                "bedrock: expected {} dimensions, got {}",
                self.dimensions,
                vector.len()
            )));
        }
        Ok(vector)
    }

    async fn embed_titan(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            let body = match self.family {
                EmbedFamily::TitanV2 => json!({
                    "inputText": text,
                    "dimensions": self.dimensions,
                    "normalize": true,
                }),
                _ => json!({ "inputText": text }),
            };
            let response = self.invoke(&body).await?;
            out.push(self.vector(response.get("embedding"))?);
        }
        Ok(out)
    }

    async fn embed_cohere(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(COHERE_BATCH) {
            let body = json!({ "texts": batch, "input_type": "search_document" });
            let response = self.invoke(&body).await?;
            // v3 answers `[[...]]`; with embedding types it is `{"float": [[...]]}`.
            let embeddings = match response.get("embeddings") {
                Some(Value::Object(by_type)) => by_type.get("float"),
                other => other,
            }
            .and_then(Value::as_array)
            .ok_or_else(|| {
                LlmError::Malformed("bedrock: Cohere response has no embeddings".into())
            })?;
            if embeddings.len() != batch.len() {
                return Err(LlmError::Malformed(format!(
                    "bedrock: sent {} texts, got {} embeddings",
                    batch.len(),
                    embeddings.len()
                )));
            }
            for e in embeddings {
                out.push(self.vector(Some(e))?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for BedrockEmbedder {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        match self.family {
            EmbedFamily::TitanV2 | EmbedFamily::TitanV1 => self.embed_titan(texts).await,
            EmbedFamily::Cohere => self.embed_cohere(texts).await,
        }
    }
}
