//! Incident memory: a resolved incident becomes a postmortem document, so
//! the next incident like it finds what was learned.

use super::{KbError, KnowledgeBase, NewDoc, Outcome, parse::Format};
use brain::domain::{ActionProposal, Diagnosis, Evidence, Incident};

/// Markdown of a resolved incident: summary, diagnosis, evidence, fix.
pub fn postmortem_markdown(
    incident: &Incident,
    diagnosis: Option<&Diagnosis>,
    evidence: &[Evidence],
    fixes: &[ActionProposal],
) -> String {
    let mut md = format!("# Postmortem: {}\n\n## Summary\n\n", incident.title);
    md.push_str(&format!(
        "Incident {} ({} severity) on service {} opened {} and resolved {}.\n\n",
        incident.id,
        incident.severity.as_str(),
        incident.service.as_deref().unwrap_or("unknown"),
        incident.opened_at.to_rfc3339(),
        incident
            .resolved_at
            .map_or_else(|| "(not recorded)".to_owned(), |t| t.to_rfc3339()),
    ));
    md.push_str("## Diagnosis\n\n");
    match diagnosis {
        Some(d) => md.push_str(&format!(
            "Root cause: {} in {} (confidence {:.2}).\n\n{}\n\n",
            d.category.as_str(),
            d.component,
            d.confidence,
            d.explanation
        )),
        None => md.push_str("No diagnosis was recorded.\n\n"),
    }
    md.push_str("## Evidence\n\n");
    if evidence.is_empty() {
        md.push_str("No evidence was recorded.\n\n");
    }
    for e in evidence.iter().take(12) {
        md.push_str(&format!(
            "- {}: {}\n",
            e.tool,
            super::excerpt(&e.summary, 400)
        ));
    }
    md.push_str("\n## Fix\n\n");
    if fixes.is_empty() {
        md.push_str("No remediation was recorded.\n");
    }
    for p in fixes {
        md.push_str(&format!(
            "- {} on {} ({}): {}\n",
            p.action.as_str(),
            p.target,
            p.status.as_str(),
            p.rationale
        ));
    }
    md
}

impl KnowledgeBase {
    /// Index a resolved incident as a postmortem of its tenant. Indexing it
    /// again after new evidence replaces the earlier version.
    pub async fn remember_incident(&self, incident: &Incident) -> Result<Outcome, KbError> {
        let store = self.store();
        let diagnosis = store.latest_diagnosis(incident.id).await?;
        let evidence = store.evidence_for_incident(incident.id).await?;
        let fixes = store.proposals_for_incident(incident.id).await?;
        let md = postmortem_markdown(incident, diagnosis.as_ref(), &evidence, &fixes);
        let categories = diagnosis
            .as_ref()
            .map(|d| vec![d.category.as_str().to_owned()])
            .unwrap_or_default();
        let (_, outcome) = self
            .ingest(NewDoc {
                tenant: incident.org_id.clone(),
                source: "incident".into(),
                path: incident.id.to_string(),
                format: Format::Markdown,
                bytes: md.into_bytes(),
                title: Some(format!("Postmortem: {}", incident.title)),
                doc_type: Some("postmortem".into()),
                services: incident.service.iter().cloned().collect(),
                categories,
            })
            .await?;
        Ok(outcome)
    }
}
