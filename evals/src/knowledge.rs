//! The knowledge base of a scenario run: the project's runbooks and the
//! scenario's own `world.knowledge` documents (past postmortems, notes),
//! indexed into a fresh embedded vector store per scenario, as SPEC.md
//! says they are "present in the knowledge base for this scenario only".
//!
//! Embedding the same runbooks again for every scenario would cost the
//! suite seconds per scenario and teach nothing, so the embedder is
//! wrapped in a cache shared by the suite: each distinct text is
//! embedded once.

use agents::knowledge::edge::EdgeStore;
use agents::knowledge::parse::Format;
use agents::knowledge::{KbOptions, KnowledgeBase, NewDoc};
use anyhow::Context;
use async_trait::async_trait;
use brain::backends::Embedder;
use brain::backends::llm::LlmError;
use brain::store::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What every scenario's knowledge base is built from.
#[derive(Clone)]
pub struct Knowledge {
    pub embedder: Arc<dyn Embedder>,
    /// Indexed into every scenario's knowledge base.
    pub runbooks: PathBuf,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge")
            .field("embedder", &self.embedder.model())
            .field("runbooks", &self.runbooks)
            .finish()
    }
}

impl Knowledge {
    /// `embedder` behind a cache shared by every scenario of the suite.
    pub fn new(embedder: Arc<dyn Embedder>, runbooks: PathBuf) -> Knowledge {
        Knowledge {
            embedder: Arc::new(CachedEmbedder {
                inner: embedder,
                seen: Mutex::new(HashMap::new()),
            }),
            runbooks,
        }
    }

    /// A knowledge base under `dir` on `store` holding the runbooks and
    /// the scenario's `world.knowledge` documents.
    pub async fn open(
        &self,
        dir: &Path,
        store: &Store,
        documents: &serde_json::Value,
    ) -> anyhow::Result<KnowledgeBase> {
        let vectors = Arc::new(EdgeStore::new(&dir.join("vectors")));
        let kb = KnowledgeBase::open(
            store.clone(),
            vectors,
            self.embedder.clone(),
            KbOptions::default(),
        )
        .await
        .context("opening the scenario's knowledge base")?;
        let report = kb
            .index_runbooks(&self.runbooks)
            .await
            .with_context(|| format!("indexing the runbooks in {}", self.runbooks.display()))?;
        anyhow::ensure!(
            report.failed.is_empty(),
            "runbooks failed to index: {}",
            report.failed.join("; ")
        );
        for doc in scenario_documents(documents)? {
            kb.ingest(doc).await?;
        }
        Ok(kb)
    }
}

/// `world.knowledge` as documents: a list of `{id, title, text}`.
pub fn scenario_documents(knowledge: &serde_json::Value) -> anyhow::Result<Vec<NewDoc>> {
    let items = match knowledge {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(items) => items,
        _ => anyhow::bail!("world.knowledge: expected a list of {{id, title, text}}"),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| {
                item[name]
                    .as_str()
                    .filter(|s| !s.trim().is_empty())
                    .with_context(|| format!("world.knowledge[{i}].{name}: expected a string"))
            };
            let (id, text) = (field("id")?, field("text")?);
            let title = item["title"].as_str().unwrap_or(id).to_owned();
            Ok(NewDoc {
                tenant: "default".into(),
                source: "scenario".into(),
                path: format!("{id}.md"),
                format: Format::Markdown,
                bytes: format!("# {title}\n\n{text}").into_bytes(),
                title: Some(title),
                doc_type: Some(doc_type(id, text).into()),
                services: Vec::new(),
                categories: Vec::new(),
            })
        })
        .collect()
}

/// A postmortem when it reads like one, else a note.
fn doc_type(id: &str, text: &str) -> &'static str {
    let words = format!("{id} {text}").to_lowercase();
    if ["postmortem", "post-mortem", "incident review", "root cause"]
        .iter()
        .any(|w| words.contains(w))
    {
        "postmortem"
    } else {
        "doc"
    }
}

/// An embedder that embeds each distinct text once.
struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    seen: Mutex<HashMap<String, Vec<f32>>>,
}

#[async_trait]
impl Embedder for CachedEmbedder {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let missing: Vec<String> = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let mut missing: Vec<String> = texts
                .iter()
                .filter(|t| !seen.contains_key(*t))
                .cloned()
                .collect();
            missing.sort();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing).await?;
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.extend(missing.into_iter().zip(vectors));
        }
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        texts
            .iter()
            .map(|t| {
                seen.get(t).cloned().ok_or_else(|| {
                    LlmError::Malformed("the embedder returned fewer vectors than texts".into())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_documents_are_named_by_their_id_and_typed_by_their_words() {
        let docs = scenario_documents(&serde_json::json!([
            {"id": "pm-2024-03", "title": "Postmortem: checkout outage", "text": "Root cause: a bad deploy."},
            {"id": "db-budget", "text": "orders-db allows 245 connections."}
        ]))
        .expect("documents");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].path, "pm-2024-03.md");
        assert_eq!(docs[0].doc_type.as_deref(), Some("postmortem"));
        assert_eq!(docs[1].title.as_deref(), Some("db-budget"));
        assert_eq!(docs[1].doc_type.as_deref(), Some("doc"));
        assert!(
            String::from_utf8_lossy(&docs[1].bytes).contains("245 connections"),
            "the text is what gets indexed"
        );
    }

    #[test]
    fn a_knowledge_entry_without_text_is_an_error_naming_it() {
        let err = scenario_documents(&serde_json::json!([{"id": "x", "title": "t"}]))
            .expect_err("no text");
        assert!(err.to_string().contains("world.knowledge[0].text"), "{err}");
        assert!(scenario_documents(&serde_json::json!({"id": "x"})).is_err());
        assert!(
            scenario_documents(&serde_json::Value::Null)
                .expect("none")
                .is_empty()
        );
    }
}
