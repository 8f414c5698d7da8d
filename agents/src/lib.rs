//! The orchestrator, investigator, diagnostician, remediator, knowledge base,
//! code review and Q&A agents.
//!
//! Built: the knowledge base (`knowledge`). Not built yet: the agents of
//! issues #7 and #10.

pub mod knowledge;
