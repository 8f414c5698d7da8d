//! Integration tests of the service over real HTTP: the binary as a process
//! (start, config errors, SIGTERM) and the app in-process on a random port.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod agents;
mod alertmanager;
mod approvals;
mod harness;
mod ingest;
mod knowledge;
mod mcp;
#[path = "../../../models/tests/common/mod.rs"]
mod models_common;
#[path = "../../../tools/tests/common/peers.rs"]
mod peers;
mod process;
mod service;
mod slack;
mod slack_socket;
