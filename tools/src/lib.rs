//! The agents' hands and eyes: a registry of tools over Prometheus,
//! Kubernetes, AWS, the change feed and log clustering, served (and
//! consumed) over MCP.
//!
//! Every backend implements `brain::backends::ToolBackend`; the
//! [`registry::Registry`] puts them under one name space and applies the
//! checks no backend may skip (schema, timeout, output budget). Each
//! backend comes twice: live, against the real API, and world-replay,
//! answering from a scenario's recorded `world` in the same shapes.

pub mod aws;
pub mod changes;
pub mod gate;
pub mod kubernetes;
pub mod logs;
pub mod mcp;
pub mod prometheus;
pub mod registry;
pub mod schema;
pub mod typed;

pub use registry::{Registry, RegistryError};
