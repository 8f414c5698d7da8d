//! The core of cerebro: domain types, the root-cause taxonomy and action
//! vocabulary of the scenario spec, the risk policy, storage, and the traits
//! every backend (LLM provider, embedder, vector store, tool backend, notifier)
//! implements. This crate depends on no other workspace crate.

pub mod backends;
pub mod config;
pub mod domain;
pub mod ids;
pub mod ingest;
pub mod policy;
pub mod scenario;
pub mod store;
pub mod taxonomy;
pub mod vocabulary;

pub use ids::{
    AlertId, ApprovalId, DiagnosisId, DocumentId, EvidenceId, IncidentId, LlmCallId, ProposalId,
};
