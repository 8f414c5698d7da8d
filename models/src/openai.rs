//! Any OpenAI-compatible server: chat completions (plain, streamed, tool
//! calls, JSON-schema answers) and embeddings, through `async-openai`.
//!
//! The same code talks to OpenAI itself and to local servers (llama.cpp's
//! `llama-server`, `llama-cpp-python`'s server, vLLM, Ollama). Where those
//! differ, the request is adjusted:
//!
//! - **Answer length.** OpenAI wants `max_completion_tokens` (its reasoning
//!   models reject `max_tokens`); most local servers only know `max_tokens`.
//!   Against `api.openai.com` and Azure only the former is sent, elsewhere
//!   both.
//! - **JSON-schema answers** are asked for the standard way
//!   (`response_format: {type: json_schema, json_schema: {name: "answer",
//!   schema, strict: true}}`). A server that rejects that request naming
//!   `response_format` (llama-cpp-python knows only `json_object`) is asked
//!   again with `{type: json_object, schema}`, and from then on only that way
//!   (never against OpenAI's own hosts).
//! - **Tools.** When tools are offered, `tool_choice` is sent explicitly
//!   (`auto` unless [`ToolChoice`] says otherwise): llama-cpp-python ignores
//!   the tools without it. `required` with a single tool is sent as that
//!   tool's name, which means the same and which more servers understand.
//! - **Assistant turns** always carry a string `content` (empty beside tool
//!   calls): some servers reject `null`.
//! - **Streamed usage.** `stream_options.include_usage` is sent; a server that
//!   does not report usage gets it estimated (about four characters a token),
//!   so that budgets still see the call.
//! - **Embeddings** may come back per token (a model without pooling behind
//!   llama-cpp-python); they are mean-pooled into one vector a text.
//!
//! Errors are shaped for the gateway: HTTP 429 is [`LlmError::RateLimited`]
//! with the `Retry-After` (or `retry-after-ms`) delay, 408/504 and deadlines
//! [`LlmError::Timeout`], other 5xx, 409 and connection failures
//! [`LlmError::Unavailable`], other 4xx [`LlmError::InvalidRequest`] with the
//! server's message, and answers of the wrong shape [`LlmError::Malformed`].
//! `async-openai`'s own retries are off: the requests go through a plain
//! transport of ours, because the gateway retries and falls back itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionNamedToolChoice,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest,
    CreateChatCompletionResponse, CreateChatCompletionStreamResponse, FunctionCall, FunctionName,
    FunctionObject, ResponseFormat as OaResponseFormat, ResponseFormatJsonSchema,
    ToolChoiceOptions,
};
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput, EncodingFormat};
use async_trait::async_trait;
use brain::backends::llm::{
    ChatRequest, ChatResponse, Embedder, LlmError, LlmProvider, Message, ResponseFormat, Role,
    TextSink, ToolCall, ToolDefinition, Usage,
};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

/// What `provider()` answers for everything in this module.
pub const PROVIDER: &str = "openai";

/// Where requests go when the configuration names no server.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The `json_schema.name` a JSON-schema answer is requested under.
pub const SCHEMA_NAME: &str = "answer";

/// Texts sent in one embeddings request (OpenAI accepts up to 2048).
pub const EMBED_BATCH: usize = 128;

/// Per-call deadline when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of a server's error body goes into an error message.
const MAX_ERROR_CHARS: usize = 600;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Where and how to reach one OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API root, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer ...`; local servers usually need none.
    pub api_key: Option<String>,
    /// Sent as `OpenAI-Organization`.
    pub organization: Option<String>,
    /// The model name sent with every request.
    pub model: String,
    /// Deadline for one call, a streamed answer included.
    pub timeout: Duration,
    /// Embeddings: the vector size to ask for (OpenAI's `dimensions`, which
    /// `text-embedding-3-*` models honour) and to insist on. `None`: the
    /// model's own, learned from the first answer.
    pub dims: Option<usize>,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "****"))
            .field("organization", &self.organization)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("dims", &self.dims)
            .finish()
    }
}

impl OpenAiConfig {
    /// `model` at `base_url`, no key, the default timeout.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            organization: None,
            model: model.into(),
            timeout: DEFAULT_TIMEOUT,
            dims: None,
        }
    }

    /// From an `[llm.providers.NAME]` entry: its base URL (OpenAI's when
    /// absent), its API key or else `OPENAI_API_KEY`, organization, model
    /// and `timeout_secs`.
    pub fn from_provider(p: &brain::config::ProviderConfig) -> Self {
        let api_key = p
            .api_key
            .as_ref()
            .map(|s| s.expose().to_owned())
            .or_else(|| std::env::var("OPENAI_API_KEY").ok())
            .filter(|k| !k.trim().is_empty());
        Self {
            base_url: p
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            api_key,
            organization: p.organization.clone().filter(|o| !o.trim().is_empty()),
            model: p.model.clone(),
            timeout: Duration::from_secs(p.timeout_secs.max(1)),
            dims: None,
        }
    }
}

/// What a client needs besides the model name.
struct Connection {
    client: Client<OpenAIConfig>,
    base_url: String,
    /// `api.openai.com` or Azure: the strict, official dialect.
    official: bool,
    timeout: Duration,
}

fn invalid(msg: impl fmt::Display) -> LlmError {
    LlmError::InvalidRequest(format!("openai: {msg}"))
}

fn header_ok(what: &str, value: &str) -> Result<(), LlmError> {
    HeaderValue::from_str(value).map(|_| ()).map_err(|_| {
        invalid(format!(
            "{what} contains characters not allowed in an HTTP header"
        ))
    })
}

impl Connection {
    fn open(cfg: &OpenAiConfig) -> Result<Self, LlmError> {
        if cfg.model.trim().is_empty() {
            return Err(invalid("`model` must not be empty"));
        }
        if cfg.timeout.is_zero() {
            return Err(invalid("the timeout must be positive"));
        }
        let base_url = cfg.base_url.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| invalid(format!("base_url `{base_url}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("base_url `{base_url}` is not http(s)")));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let official = host == "api.openai.com" || host.ends_with(".openai.azure.com");

        // async-openai turns these into headers with `unwrap()`: check first.
        let key = cfg.api_key.clone().unwrap_or_default();
        header_ok("the API key", &format!("Bearer {key}"))?;
        let org = cfg.organization.clone().unwrap_or_default();
        header_ok("the organization", &org)?;
        let project = std::env::var("OPENAI_PROJECT_ID").unwrap_or_default();
        header_ok("OPENAI_PROJECT_ID", &project)?;
        let config = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            .with_api_key(key)
            .with_org_id(org)
            .with_project_id(project);

        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        // A plain transport: one attempt, and a non-2xx answer becomes an
        // `HttpFailure` that keeps the status and the Retry-After delay.
        let transport = tower::service_fn(move |factory: HttpRequestFactory| {
            let http = http.clone();
            async move {
                let request = factory.build().await?;
                let response = http.execute(request).await?;
                if response.status().is_success() {
                    return Ok(response);
                }
                Err(OpenAIError::Boxed(Box::new(
                    HttpFailure::read(response).await,
                )))
            }
        });
        let client = Client::with_config(config).with_http_service(transport);
        Ok(Self {
            client,
            base_url,
            official,
            timeout: cfg.timeout,
        })
    }

    /// Runs `fut` under the call deadline.
    async fn deadline<T>(
        &self,
        fut: impl Future<Output = Result<T, LlmError>>,
    ) -> Result<T, LlmError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or(Err(LlmError::Timeout(self.timeout)))
    }

    fn map_error(&self, err: OpenAIError, started: Instant) -> LlmError {
        map_error(err, self.timeout, started.elapsed(), &self.base_url)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A non-2xx answer, read by our transport.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {message}")]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    /// The server's message (OpenAI's `error.message`, FastAPI's `detail`,
    /// or the body itself, shortened).
    message: String,
    /// OpenAI's `error.type` or `error.code`.
    kind: Option<String>,
    /// The body, shortened.
    body: String,
}

impl HttpFailure {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        let (message, kind) = error_message(&body);
        Self {
            status,
            retry_after,
            message,
            kind,
            body: shorten(&body),
        }
    }
}

fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_ERROR_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_ERROR_CHARS).collect();
    out.push('…');
    out
}

/// The message and kind in an error body, whatever its shape.
fn error_message(body: &str) -> (String, Option<String>) {
    #[derive(Deserialize)]
    struct Wrapped {
        error: Inner,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object {
            #[serde(default)]
            message: Option<String>,
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            code: Option<Value>,
        },
        Text(String),
    }
    #[derive(Deserialize)]
    struct Detail {
        detail: Value,
    }
    if let Ok(w) = serde_json::from_str::<Wrapped>(body) {
        return match w.error {
            Inner::Object {
                message,
                kind,
                code,
            } => {
                let code = code.and_then(|c| match c {
                    Value::String(s) => Some(s),
                    Value::Null => None,
                    other => Some(other.to_string()),
                });
                let message = message.filter(|m| !m.trim().is_empty());
                let kind = match (kind, code) {
                    (Some(k), Some(c)) if k != c => Some(format!("{k}/{c}")),
                    (k, c) => k.or(c),
                };
                let text = message
                    .or_else(|| kind.clone())
                    .unwrap_or_else(|| "(no message)".to_owned());
                (shorten(&text), kind)
            }
            Inner::Text(s) => (shorten(&s), None),
        };
    }
    if let Ok(d) = serde_json::from_str::<Detail>(body) {
        let text = match d.detail {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return (shorten(&text), None);
    }
    if body.trim().is_empty() {
        return ("(empty body)".to_owned(), None);
    }
    (shorten(body), None)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The wait a 429 asks for: `retry-after-ms`, then `Retry-After` in
/// seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = |v: f64| {
        if v.is_finite() && v >= 0.0 {
            Duration::try_from_secs_f64(v).ok()
        } else {
            None
        }
    };
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Some(d) = secs(ms / 1000.0)
    {
        return Some(d);
    }
    let value = header(headers, "retry-after")?;
    if let Ok(n) = value.parse::<f64>() {
        return secs(n);
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn by_status(
    status: u16,
    retry_after: Option<Duration>,
    message: &str,
    kind: Option<&str>,
    timeout: Duration,
) -> LlmError {
    let quota = kind.is_some_and(|k| k.contains("insufficient_quota"));
    match status {
        // Out of credit is not a wait: let the gateway go elsewhere.
        429 if quota => LlmError::Unavailable(format!("openai: quota exhausted: {message}")),
        429 => LlmError::RateLimited { retry_after },
        408 | 504 => LlmError::Timeout(timeout),
        409 | 500..=599 => LlmError::Unavailable(format!("openai: HTTP {status}: {message}")),
        _ => LlmError::InvalidRequest(format!("openai: HTTP {status}: {message}")),
    }
}

/// `err`'s source chain as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn map_error(err: OpenAIError, timeout: Duration, elapsed: Duration, base_url: &str) -> LlmError {
    match err {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
            Ok(f) => by_status(
                f.status,
                f.retry_after,
                &f.message,
                f.kind.as_deref(),
                timeout,
            ),
            Err(other) => LlmError::Unavailable(format!("openai: {}", chain(other.as_ref()))),
        },
        OpenAIError::ApiError(e) => by_status(
            e.status_code.as_u16(),
            None,
            &e.api_error.to_string(),
            e.api_error
                .r#type
                .as_deref()
                .or(e.api_error.code.as_deref()),
            timeout,
        ),
        OpenAIError::Reqwest(e) => {
            if e.is_timeout() {
                LlmError::Timeout(timeout)
            } else if e.is_builder() {
                LlmError::InvalidRequest(format!("openai: {}", chain(&e)))
            } else if e.is_connect() {
                LlmError::Unavailable(format!("openai: cannot reach {base_url}: {}", chain(&e)))
            } else {
                LlmError::Unavailable(format!("openai: {}", chain(&e)))
            }
        }
        OpenAIError::JSONDeserialize(e, body) => {
            // An error object sent in place of an answer (some servers do
            // that inside a stream).
            let (message, kind) = error_message(&body);
            if serde_json::from_str::<Value>(&body)
                .ok()
                .is_some_and(|v| v.get("error").is_some())
            {
                return LlmError::Unavailable(format!(
                    "openai: the server reported an error{}: {message}",
                    kind.map(|k| format!(" ({k})")).unwrap_or_default()
                ));
            }
            LlmError::Malformed(format!(
                "openai: the answer is not the expected JSON ({e}): {}",
                shorten(&body)
            ))
        }
        OpenAIError::StreamError(e) => {
            if elapsed >= timeout {
                LlmError::Timeout(timeout)
            } else {
                LlmError::Unavailable(format!("openai: the stream broke: {e}"))
            }
        }
        OpenAIError::InvalidArgument(s) => LlmError::InvalidRequest(format!("openai: {s}")),
        other => LlmError::Unavailable(format!("openai: {other}")),
    }
}

/// Whether the server refused the request because of `response_format`
/// (one that knows only the older `json_object` form).
fn rejects_response_format(err: &OpenAIError) -> bool {
    match err {
        OpenAIError::Boxed(b) => b.downcast_ref::<HttpFailure>().is_some_and(|f| {
            f.status != 429
                && f.status >= 400
                && (f.body.contains("response_format") || f.message.contains("response_format"))
        }),
        OpenAIError::ApiError(e) => {
            e.status_code.as_u16() != 429
                && (e.api_error.message.contains("response_format")
                    || e.api_error.param.as_deref() == Some("response_format"))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------

/// Which tool, if any, the model must call. [`LlmProvider::chat`] uses
/// [`ToolChoice::Auto`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// Some tool must be called.
    Required,
    /// No tool may be called.
    None,
    /// This tool must be called.
    Function(String),
}

/// A chat model behind an OpenAI-compatible `/chat/completions`.
pub struct OpenAiChat {
    conn: Connection,
    model: String,
    /// Set once the server has refused `json_schema` answers.
    legacy_json: AtomicBool,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("base_url", &self.conn.base_url)
            .field("model", &self.model)
            .field("timeout", &self.conn.timeout)
            .finish_non_exhaustive()
    }
}

impl OpenAiChat {
    /// Checks `cfg` and builds the client; nothing is sent yet.
    pub fn new(cfg: &OpenAiConfig) -> Result<Self, LlmError> {
        Ok(Self {
            conn: Connection::open(cfg)?,
            model: cfg.model.clone(),
            legacy_json: AtomicBool::new(false),
        })
    }

    /// The API root requests go to.
    pub fn base_url(&self) -> &str {
        &self.conn.base_url
    }

    /// Whether this server turned out to want JSON-schema answers in the
    /// older `{type: json_object, schema}` form.
    pub fn uses_json_object_schema(&self) -> bool {
        self.legacy_json.load(Ordering::Relaxed)
    }

    /// [`LlmProvider::chat`] with a say over tool calls.
    pub async fn chat_with(
        &self,
        req: ChatRequest,
        choice: ToolChoice,
    ) -> Result<ChatResponse, LlmError> {
        self.conn.deadline(self.complete(&req, &choice)).await
    }

    /// [`LlmProvider::chat_stream`] with a say over tool calls.
    pub async fn chat_stream_with(
        &self,
        req: ChatRequest,
        choice: ToolChoice,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.conn
            .deadline(self.stream(&req, &choice, on_text))
            .await
    }

    /// The JSON body of a request.
    fn body(
        &self,
        req: &ChatRequest,
        choice: &ToolChoice,
        stream: bool,
        legacy_json: bool,
    ) -> Result<Value, LlmError> {
        let messages = req
            .messages
            .iter()
            .map(to_openai_message)
            .collect::<Result<Vec<_>, _>>()?;
        if messages.is_empty() {
            return Err(invalid("a chat request needs at least one message"));
        }
        let tools: Vec<ChatCompletionTools> = req.tools.iter().map(to_openai_tool).collect();
        let tool_choice = if req.tools.is_empty() {
            None
        } else {
            Some(to_openai_tool_choice(&req.tools, choice)?)
        };
        let response_format = match &req.format {
            ResponseFormat::Text => None,
            // Replaced below with the older form.
            ResponseFormat::JsonSchema { .. } if legacy_json => None,
            ResponseFormat::JsonSchema { schema } => Some(OaResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: SCHEMA_NAME.to_owned(),
                    schema: schema.clone(),
                    strict: Some(true),
                },
            }),
        };
        let request = CreateChatCompletionRequest {
            messages,
            model: self.model.clone(),
            max_completion_tokens: req.max_tokens,
            temperature: req.temperature,
            tools: (!tools.is_empty()).then_some(tools),
            tool_choice,
            response_format,
            stream: stream.then_some(true),
            stream_options: stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..Default::default()
        };
        let mut body = serde_json::to_value(&request)
            .map_err(|e| invalid(format!("cannot encode the request: {e}")))?;
        if let Value::Object(map) = &mut body {
            if let (Some(n), false) = (req.max_tokens, self.conn.official) {
                map.insert("max_tokens".into(), json!(n));
            }
            if let (ResponseFormat::JsonSchema { schema }, true) = (&req.format, legacy_json) {
                map.insert(
                    "response_format".into(),
                    json!({"type": "json_object", "schema": schema}),
                );
            }
        }
        Ok(body)
    }

    fn wants_schema(req: &ChatRequest) -> bool {
        matches!(req.format, ResponseFormat::JsonSchema { .. })
    }

    /// Marks the server as wanting the older JSON form, if `err` says so and
    /// the request asked for a schema. True when the request is worth
    /// repeating.
    fn switch_json_form(&self, req: &ChatRequest, legacy: bool, err: &OpenAIError) -> bool {
        // OpenAI itself knows json_schema: its complaints are about the schema.
        if legacy || self.conn.official || !Self::wants_schema(req) || !rejects_response_format(err)
        {
            return false;
        }
        tracing::info!(
            base_url = %self.conn.base_url,
            "openai: the server refused a json_schema response_format; using json_object with a schema"
        );
        self.legacy_json.store(true, Ordering::Relaxed);
        true
    }

    async fn complete(
        &self,
        req: &ChatRequest,
        choice: &ToolChoice,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let legacy = self.legacy_json.load(Ordering::Relaxed);
        let body = self.body(req, choice, false, legacy)?;
        let first = self
            .conn
            .client
            .chat()
            .create_byot::<_, CreateChatCompletionResponse>(&body)
            .await;
        let result = match first {
            Err(e) if self.switch_json_form(req, legacy, &e) => {
                let body = self.body(req, choice, false, true)?;
                self.conn
                    .client
                    .chat()
                    .create_byot::<_, CreateChatCompletionResponse>(&body)
                    .await
            }
            other => other,
        };
        let resp = result.map_err(|e| self.conn.map_error(e, started))?;
        self.read_response(req, resp)
    }

    fn read_response(
        &self,
        req: &ChatRequest,
        resp: CreateChatCompletionResponse,
    ) -> Result<ChatResponse, LlmError> {
        let Some(choice) = resp.choices.into_iter().min_by_key(|c| c.index) else {
            return Err(LlmError::Malformed(
                "openai: the answer has no choices".into(),
            ));
        };
        let message = choice.message;
        let mut content = message.content.unwrap_or_default();
        if content.is_empty() {
            content = message.refusal.unwrap_or_default();
        }
        let mut tool_calls = Vec::new();
        for (i, call) in message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match call {
                ChatCompletionMessageToolCalls::Function(c) => {
                    tool_calls.push(tool_call(i, c.id, c.function.name, &c.function.arguments)?)
                }
                ChatCompletionMessageToolCalls::Custom(c) => {
                    return Err(LlmError::Malformed(format!(
                        "openai: the model called `{}`, a custom tool, which was not offered",
                        c.custom_tool.name
                    )));
                }
            }
        }
        let usage = match resp.usage {
            Some(u) => Usage {
                input_tokens: u64::from(u.prompt_tokens),
                output_tokens: u64::from(u.completion_tokens),
            },
            None => estimate_usage(req, &content, &tool_calls),
        };
        Ok(ChatResponse {
            content,
            tool_calls,
            usage,
            model: if resp.model.is_empty() {
                self.model.clone()
            } else {
                resp.model
            },
        })
    }

    async fn stream(
        &self,
        req: &ChatRequest,
        choice: &ToolChoice,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let legacy = self.legacy_json.load(Ordering::Relaxed);
        let body = self.body(req, choice, true, legacy)?;
        let first = self
            .conn
            .client
            .chat()
            .create_stream_byot::<_, CreateChatCompletionStreamResponse>(&body)
            .await;
        let opened = match first {
            Err(e) if self.switch_json_form(req, legacy, &e) => {
                let body = self.body(req, choice, true, true)?;
                self.conn
                    .client
                    .chat()
                    .create_stream_byot::<_, CreateChatCompletionStreamResponse>(&body)
                    .await
            }
            other => other,
        };
        let mut stream = opened.map_err(|e| self.conn.map_error(e, started))?;
        let mut acc = StreamAccumulator::default();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| self.conn.map_error(e, started))?;
            acc.add(chunk, on_text);
        }
        acc.finish(req, &self.model)
    }
}

#[async_trait]
impl LlmProvider for OpenAiChat {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_with(req, ToolChoice::Auto).await
    }

    async fn chat_stream(
        &self,
        req: ChatRequest,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_stream_with(req, ToolChoice::Auto, on_text).await
    }
}

fn to_openai_message(m: &Message) -> Result<ChatCompletionRequestMessage, LlmError> {
    Ok(match m.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(m.content.clone()),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(m.content.clone()),
            name: None,
        }),
        Role::Assistant => {
            let calls: Vec<ChatCompletionMessageToolCalls> = m
                .tool_calls
                .iter()
                .map(|c| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: c.id.clone(),
                        function: FunctionCall {
                            name: c.name.clone(),
                            arguments: match &c.arguments {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            },
                        },
                    })
                })
                .collect();
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                // Always a string: some servers refuse `null` beside tool calls.
                content: Some(ChatCompletionRequestAssistantMessageContent::Text(
                    m.content.clone(),
                )),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            })
        }
        Role::Tool => {
            let Some(id) = m.tool_call_id.clone().filter(|id| !id.is_empty()) else {
                return Err(invalid("a tool message needs the tool_call_id it answers"));
            };
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(m.content.clone()),
                tool_call_id: id,
            })
        }
    })
}

fn to_openai_tool(t: &ToolDefinition) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: t.name.clone(),
            description: (!t.description.is_empty()).then(|| t.description.clone()),
            parameters: Some(t.parameters.clone()),
            strict: None,
        },
    })
}

fn to_openai_tool_choice(
    tools: &[ToolDefinition],
    choice: &ToolChoice,
) -> Result<ChatCompletionToolChoiceOption, LlmError> {
    let named = |name: &str| {
        ChatCompletionToolChoiceOption::Function(ChatCompletionNamedToolChoice {
            function: FunctionName {
                name: name.to_owned(),
            },
        })
    };
    Ok(match choice {
        ToolChoice::Auto => ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto),
        ToolChoice::None => ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::None),
        ToolChoice::Required => match tools {
            [only] => named(&only.name),
            _ => ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required),
        },
        ToolChoice::Function(name) => {
            if !tools.iter().any(|t| &t.name == name) {
                return Err(invalid(format!(
                    "tool_choice names `{name}`, which is not among the offered tools"
                )));
            }
            named(name)
        }
    })
}

/// A call with its arguments parsed; `Malformed` names the tool when they
/// are not JSON.
fn tool_call(
    index: usize,
    id: String,
    name: String,
    arguments: &str,
) -> Result<ToolCall, LlmError> {
    let arguments = if arguments.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str::<Value>(arguments).map_err(|e| {
            LlmError::Malformed(format!(
                "openai: the arguments of the call to tool `{name}` are not valid JSON ({e}): {}",
                shorten(arguments)
            ))
        })?
    };
    let id = if id.is_empty() {
        format!("call_{index}")
    } else {
        id
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// About four characters a token, for servers that report no usage.
fn estimate_usage(req: &ChatRequest, content: &str, calls: &[ToolCall]) -> Usage {
    let input: usize = req
        .messages
        .iter()
        .map(|m| {
            m.content.chars().count()
                + m.tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.to_string().len())
                    .sum::<usize>()
        })
        .sum::<usize>()
        + req
            .tools
            .iter()
            .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
            .sum::<usize>();
    let output = content.chars().count()
        + calls
            .iter()
            .map(|c| c.name.len() + c.arguments.to_string().len())
            .sum::<usize>();
    Usage {
        input_tokens: estimate_tokens(input).max(1),
        output_tokens: estimate_tokens(output),
    }
}

/// A tool call being streamed in pieces.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Builds one answer out of stream chunks.
#[derive(Default)]
struct StreamAccumulator {
    content: String,
    refusal: String,
    calls: BTreeMap<u32, PartialCall>,
    usage: Option<Usage>,
    model: String,
}

impl StreamAccumulator {
    fn add(&mut self, chunk: CreateChatCompletionStreamResponse, on_text: TextSink<'_>) {
        if self.model.is_empty() && !chunk.model.is_empty() {
            self.model = chunk.model;
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: u64::from(u.prompt_tokens),
                output_tokens: u64::from(u.completion_tokens),
            });
        }
        // One answer was asked for: choice 0.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta;
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                on_text(&text);
                self.content.push_str(&text);
            }
            if let Some(text) = delta.refusal {
                self.refusal.push_str(&text);
            }
            for piece in delta.tool_calls.unwrap_or_default() {
                let call = self.calls.entry(piece.index).or_default();
                if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
                    call.id = id;
                }
                if let Some(function) = piece.function {
                    // The name comes whole (OpenAI sends it once, some
                    // servers with every piece); the arguments in pieces.
                    if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                        call.name = name;
                    }
                    if let Some(args) = function.arguments {
                        call.arguments.push_str(&args);
                    }
                }
            }
        }
    }

    fn finish(self, req: &ChatRequest, model: &str) -> Result<ChatResponse, LlmError> {
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (i, (_, call)) in self.calls.into_iter().enumerate() {
            if call.name.is_empty() {
                return Err(LlmError::Malformed(format!(
                    "openai: streamed tool call {i} has no name"
                )));
            }
            tool_calls.push(tool_call(i, call.id, call.name, &call.arguments)?);
        }
        let content = if self.content.is_empty() {
            self.refusal
        } else {
            self.content
        };
        let usage = self
            .usage
            .unwrap_or_else(|| estimate_usage(req, &content, &tool_calls));
        Ok(ChatResponse {
            content,
            tool_calls,
            usage,
            model: if self.model.is_empty() {
                model.to_owned()
            } else {
                self.model
            },
        })
    }
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

/// An embedder behind an OpenAI-compatible `/embeddings`.
pub struct OpenAiEmbedder {
    conn: Connection,
    model: String,
    /// Asked for (and insisted on) when configured.
    requested: Option<usize>,
    /// Known size, 0 until the first answer when not configured.
    dims: AtomicUsize,
    batch: usize,
    /// Serialises the first answers' size check.
    learn: Mutex<()>,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("base_url", &self.conn.base_url)
            .field("model", &self.model)
            .field("dims", &self.dims.load(Ordering::Relaxed))
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// An embeddings answer, read leniently.
#[derive(Deserialize)]
struct EmbeddingsAnswer {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: EmbeddingVector,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingVector {
    Pooled(Vec<f32>),
    /// One vector a token (a model without pooling behind llama-cpp-python).
    PerToken(Vec<Vec<f32>>),
}

impl EmbeddingVector {
    fn pooled(self) -> Result<Vec<f32>, String> {
        match self {
            Self::Pooled(v) => Ok(v),
            Self::PerToken(tokens) => {
                let Some(first) = tokens.first() else {
                    return Ok(Vec::new());
                };
                let width = first.len();
                let mut sum = vec![0f32; width];
                for t in &tokens {
                    if t.len() != width {
                        return Err("per-token vectors of different sizes".into());
                    }
                    for (s, x) in sum.iter_mut().zip(t) {
                        *s += x;
                    }
                }
                let n = tokens.len() as f32;
                Ok(sum.into_iter().map(|s| s / n).collect())
            }
        }
    }
}

impl OpenAiEmbedder {
    /// Checks `cfg` and builds the client; nothing is sent yet.
    pub fn new(cfg: &OpenAiConfig) -> Result<Self, LlmError> {
        if cfg.dims == Some(0) {
            return Err(invalid("dims must be positive"));
        }
        Ok(Self {
            conn: Connection::open(cfg)?,
            model: cfg.model.clone(),
            requested: cfg.dims,
            dims: AtomicUsize::new(cfg.dims.unwrap_or(0)),
            batch: EMBED_BATCH,
            learn: Mutex::new(()),
        })
    }

    /// At most `n` (at least 1) texts a request.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The API root requests go to.
    pub fn base_url(&self) -> &str {
        &self.conn.base_url
    }

    /// Embeds one short text to learn the vector size, unless it is known.
    pub async fn probe_dimensions(&self) -> Result<usize, LlmError> {
        let known = self.dims.load(Ordering::Relaxed);
        if known > 0 {
            return Ok(known);
        }
        self.embed(&["dimension probe".to_owned()]).await?;
        Ok(self.dims.load(Ordering::Relaxed))
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let started = Instant::now();
        let request = CreateEmbeddingRequest {
            model: self.model.clone(),
            input: EmbeddingInput::StringArray(texts.to_vec()),
            encoding_format: Some(EncodingFormat::Float),
            dimensions: self.requested.map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
            ..Default::default()
        };
        let answer = self
            .conn
            .client
            .embeddings()
            .create_byot::<_, EmbeddingsAnswer>(&request)
            .await
            .map_err(|e| self.conn.map_error(e, started))?;
        let model = answer.model.unwrap_or_else(|| self.model.clone());
        if answer.data.len() != texts.len() {
            return Err(LlmError::Malformed(format!(
                "openai: asked `{model}` for {} embeddings, got {}",
                texts.len(),
                answer.data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (pos, item) in answer.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(pos);
            let vector = item
                .embedding
                .pooled()
                .map_err(|e| LlmError::Malformed(format!("openai: embedding {index}: {e}")))?;
            match slots.get_mut(index) {
                Some(slot @ None) => *slot = Some(vector),
                _ => {
                    return Err(LlmError::Malformed(format!(
                        "openai: embedding index {index} is out of range or repeated"
                    )));
                }
            }
        }
        let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
        for v in &vectors {
            self.check_size(v.len())?;
        }
        Ok(vectors)
    }

    /// Learns the size from the first vector, then insists on it.
    fn check_size(&self, len: usize) -> Result<(), LlmError> {
        if len == 0 {
            return Err(LlmError::Malformed("openai: an empty embedding".into()));
        }
        let _guard = self.learn.lock().unwrap_or_else(|p| p.into_inner());
        match self.dims.load(Ordering::Relaxed) {
            0 => {
                self.dims.store(len, Ordering::Relaxed);
                Ok(())
            }
            known if known == len => Ok(()),
            known => Err(LlmError::Malformed(format!(
                "openai: an embedding of {len} dimensions where {known} were expected"
            ))),
        }
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    /// The configured size, else the size of the answers so far (0 before
    /// the first; see [`OpenAiEmbedder::probe_dimensions`]).
    fn dimensions(&self) -> usize {
        self.dims.load(Ordering::Relaxed)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch) {
            out.extend(self.conn.deadline(self.embed_batch(batch)).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new(Role::User, "capital?")],
            format: ResponseFormat::JsonSchema {
                schema: json!({"type": "object"}),
            },
            max_tokens: Some(9),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn openai_hosts_get_only_max_completion_tokens() {
        let chat =
            OpenAiChat::new(&OpenAiConfig::new("https://api.openai.com/v1", "gpt-4o")).unwrap();
        let body = chat
            .body(&request(), &ToolChoice::Auto, false, false)
            .unwrap();
        assert_eq!(body["max_completion_tokens"], 9);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert!(body.get("tool_choice").is_none(), "no tools, no choice");
    }

    #[test]
    fn the_older_json_form() {
        let chat = OpenAiChat::new(&OpenAiConfig::new("http://127.0.0.1:1/v1", "m")).unwrap();
        let body = chat
            .body(&request(), &ToolChoice::Auto, true, true)
            .unwrap();
        assert_eq!(
            body["response_format"],
            json!({"type": "json_object", "schema": {"type": "object"}})
        );
        assert_eq!(body["max_tokens"], 9);
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date: now");
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }
}
