//! Test support shared by the tools tests.

#![allow(dead_code)] // each test binary uses its own part

pub mod peers;

use brain::backends::{ToolError, ToolOutput};
use serde_json::Value;
use tools::Registry;

/// Call `tool`; a failure names the tool and its arguments.
pub async fn call(r: &Registry, tool: &str, args: Value) -> ToolOutput {
    match r.call(tool, args.clone()).await {
        Ok(out) => out,
        Err(e) => panic!("{tool} {args}: {e}"),
    }
}

/// Call `tool` expecting an error.
pub async fn call_err(r: &Registry, tool: &str, args: Value) -> ToolError {
    match r.call(tool, args.clone()).await {
        Ok(out) => panic!("{tool} {args}: expected an error, got {}", out.text),
        Err(e) => e,
    }
}
