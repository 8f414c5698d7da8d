//! The LLM gateway, embeddings, local inference and weight fetching.
//!
//! Providers implement `brain::backends::{LlmProvider, Embedder}`:
//! `local` (candle on CPU, GGUF chat models and a BERT embedder),
//! `openai` (any OpenAI-compatible server) and `bedrock` (AWS Bedrock
//! Runtime). The gateway routes named roles to ordered provider lists with
//! fallback, retries, circuit breakers, budgets, redaction and metering.

pub mod bedrock;
pub mod fetch;
pub mod gateway;
pub mod local;
pub mod openai;
pub mod redact;
pub mod structured;
