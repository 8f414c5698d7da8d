//! Chat models and embedders.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A tool the model may call, with a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Calls the assistant made in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// What a response must look like.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    #[default]
    Text,
    /// A JSON value valid against this schema.
    JsonSchema { schema: serde_json::Value },
}

/// A chat request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDefinition>,
    pub format: ResponseFormat,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// Tokens used by one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A chat response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub model: String,
}

/// Why a model call failed, shaped for the gateway's retry and fallback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("model call timed out after {0:?}")]
    Timeout(Duration),
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong; retrying it elsewhere will not help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("token budget exceeded: {0}")]
    BudgetExceeded(String),
    /// The model answered, but not in the shape asked for.
    #[error("malformed model output: {0}")]
    Malformed(String),
}

impl LlmError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Timeout(_) => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::InvalidRequest(_) => "invalid_request",
            Self::BudgetExceeded(_) => "budget_exceeded",
            Self::Malformed(_) => "malformed",
        }
    }

    /// Whether another attempt (here or on a fallback provider) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Timeout(_) | Self::Unavailable(_)
        )
    }
}

/// Receives the text of a streamed answer piece by piece.
pub type TextSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A chat model.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// `local`, `openai`, `bedrock`, ...
    fn provider(&self) -> &str;
    fn model(&self) -> &str;
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError>;
    /// Like `chat`, handing each piece of text to `on_text` as it is
    /// generated. Providers that cannot stream deliver the whole text once.
    async fn chat_stream(
        &self,
        req: ChatRequest,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let response = self.chat(req).await?;
        on_text(&response.content);
        Ok(response)
    }
}

/// A text embedder.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// `local`, `openai`, `bedrock`, ...
    fn provider(&self) -> &str;
    fn model(&self) -> &str;
    fn dimensions(&self) -> usize;
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError>;
}
