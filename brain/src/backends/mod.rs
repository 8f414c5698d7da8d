//! The traits every backend implements. Concrete implementations live in
//! `models` (LLM providers, embedders), `tools` (tool backends), `agents`
//! (knowledge base over a vector store) and `web` (notifiers); only the
//! binary's wiring names them.

pub mod llm;
pub mod notify;
pub mod tools;
pub mod vector;

pub use llm::{
    ChatRequest, ChatResponse, Embedder, LlmError, LlmProvider, Message, ResponseFormat, Role,
    TextSink, ToolCall, ToolDefinition, Usage,
};
pub use notify::{Notification, Notifier, NotifyError, Outbox};
pub use tools::{ToolBackend, ToolError, ToolOutput, ToolSpec};
pub use vector::{
    CollectionSpec, PayloadFilter, Retrieval, ScoredPoint, SparseVector, VectorError, VectorPoint,
    VectorQuery, VectorStore,
};
