//! The orchestrator, investigator, diagnostician, remediator, knowledge base,
//! code review and Q&A agents.
//!
//! Not built yet: issues #6, #7 and #10 fill this crate.
