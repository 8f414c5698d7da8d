//! The HTTP service of cerebro: the axum router with its tower layers, the
//! JSON error shape, the OpenAPI document and its reference page, metrics,
//! the server's start and graceful shutdown, and Slack's Socket Mode
//! client. The `cerebro` binary (`main.rs`) wires configuration and
//! concrete backends into it.

pub mod app;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod knowledge;
pub mod listener;
pub mod llm;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod slack_socket;
pub mod tools;

pub use app::{AppState, router};
pub use error::ApiError;
