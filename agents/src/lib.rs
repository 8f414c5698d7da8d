//! The orchestrator, investigator, diagnostician, remediator, knowledge base,
//! code review and Q&A agents.
//!
//! Built: the incident pipeline (`orchestrator` driving `investigator`,
//! `diagnostician` and `remediator` within a `budget`) and the knowledge
//! base (`knowledge`). Not built yet: the code review agent (#10).

pub mod budget;
pub mod diagnostician;
pub mod explorer;
pub mod investigator;
pub mod knowledge;
pub mod orchestrator;
pub mod ranker;
pub mod remediator;
pub mod runbooks;
pub mod writer;
