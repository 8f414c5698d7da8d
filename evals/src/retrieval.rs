//! The retrieval evaluation: questions over the runbooks, each with the
//! runbook section that answers it, scored as recall@1, recall@5 and MRR
//! for keyword-only, vector-only and hybrid retrieval.

use agents::knowledge::{Filters, KbError, KnowledgeBase};
use anyhow::Context;
use brain::backends::vector::Retrieval;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One question and where its answer is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub question: String,
    /// The runbook's file name without `.md`.
    pub runbook: String,
    /// Heading path under the title, ` > `-separated.
    pub section: String,
}

/// Every `*.yaml` under `dir`, in file-name order.
pub fn load_questions(dir: &Path) -> anyhow::Result<Vec<Question>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let qs: Vec<Question> =
            yaml_serde::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        out.extend(qs);
    }
    Ok(out)
}

/// Does a hit at `path`/`section` answer a question whose gold is
/// `runbook`/`gold`? The chunk must come from that runbook, from the gold
/// section or one of its sub-sections.
pub fn matches(q: &Question, path: &str, section: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".md") == Some(q.runbook.as_str())
        && (section == q.section || section.starts_with(&format!("{} > ", q.section)))
}

/// The figures of one retrieval mode.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub retrieval: String,
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
    /// Questions whose gold section was not in the top 5: (question, what came first).
    pub misses: Vec<(String, String)>,
}

/// Score `retrieval` over `questions`, counting ranks to 10.
pub async fn evaluate(
    kb: &KnowledgeBase,
    questions: &[Question],
    retrieval: Retrieval,
) -> Result<Scores, KbError> {
    let filters = Filters {
        doc_type: Some("runbook".into()),
        ..Filters::default()
    };
    let mut s = Scores {
        retrieval: format!("{retrieval:?}").to_lowercase(),
        questions: questions.len(),
        ..Scores::default()
    };
    for q in questions {
        let hits = kb.search(&q.question, &filters, retrieval, 10).await?;
        let rank = hits
            .iter()
            .position(|h| matches(q, &h.path, &h.section))
            .map(|r| r + 1);
        if rank == Some(1) {
            s.recall_at_1 += 1.0;
        }
        if rank.is_some_and(|r| r <= 5) {
            s.recall_at_5 += 1.0;
        } else {
            let first = hits
                .first()
                .map(|h| format!("{} > {}", h.path, h.section))
                .unwrap_or_default();
            s.misses.push((q.question.clone(), first));
        }
        if let Some(r) = rank {
            s.mrr += 1.0 / r as f64;
        }
    }
    let n = questions.len().max(1) as f64;
    s.recall_at_1 /= n;
    s.recall_at_5 /= n;
    s.mrr /= n;
    Ok(s)
}
