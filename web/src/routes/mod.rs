//! HTTP handlers, one module per area.

pub mod config;
pub mod health;
pub mod index;
