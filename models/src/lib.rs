//! The LLM gateway, embeddings, local inference and weight fetching.
//!
//! Not built yet: issue #4 fills this crate with the candle, OpenAI-compatible
//! and Bedrock providers behind `brain::backends::LlmProvider`.
