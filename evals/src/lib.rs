//! The scenario harness behind `cerebro eval` (issue #7) and the benchmarks,
//! with the helpers that start real peers (Alertmanager, cerebro itself) on
//! loopback for tests and benchmarks.

pub mod knowledge;
pub mod retrieval;
pub mod scenarios;
pub mod services;
