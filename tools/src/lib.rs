//! The tool registry, its backends (Prometheus, Kubernetes, AWS, change feed,
//! log clustering) and MCP.
//!
//! Not built yet: issue #5 fills this crate behind `brain::backends::ToolBackend`.
