//! HTTP handlers, one module per area.

pub mod alerts;
pub mod approvals;
pub mod config;
pub mod health;
pub mod incidents;
pub mod index;
pub mod knowledge;
pub mod slack;
pub mod webhooks;
