//! The knowledge base: runbooks, postmortems and uploaded documents, split
//! at headings into chunks, embedded, and searched by keyword (BM25), by
//! meaning (dense vectors) or both fused by reciprocal rank. Answers quote
//! the chunks they come from; with nothing relevant, they say so.
//!
//! The catalogue of documents lives in the SQL store (to list them, to skip
//! unchanged files, to delete); chunks live in the vector store. A document
//! is replaced by writing its new chunks, then its catalogue row, then
//! removing chunks of any other version, so a failure part way leaves the
//! previous version searchable, never a mix with holes.

pub mod chunk;
pub mod edge;
pub mod memory;
pub mod parse;
pub mod qdrant;

use brain::backends::vector::{
    CollectionSpec, PayloadFilter, Retrieval, ScoredPoint, SparseVector, VectorError, VectorPoint,
    VectorQuery, VectorStore,
};
use brain::backends::{Embedder, LlmError};
use brain::domain::Document;
use brain::ids::DocumentId;
use brain::store::{NewDocument, Store, StoreError};
use parse::{Format, ParseError};
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// The collection every document's chunks go to.
pub const COLLECTION: &str = "knowledge";
/// The tenant of runbooks and of requests that name none.
pub const DEFAULT_TENANT: &str = "default";

/// Payload fields with a keyword index (what filters and deletes use).
const KEYWORD_FIELDS: &[&str] = &[
    "doc_id",
    "tenant",
    "doc_type",
    "services",
    "categories",
    "hash",
];

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error(
        "unsupported file type `{0}`: send Markdown (.md), plain text (.txt), HTML (.html) or PDF (.pdf)"
    )]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("embedding failed: {0}")]
    Embed(#[from] LlmError),
    #[error(transparent)]
    Vector(#[from] VectorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of the knowledge base.
#[derive(Debug, Clone)]
pub struct KbOptions {
    pub collection: String,
    /// Upper bound of a chunk's text, in bytes.
    pub max_chunk_chars: usize,
    /// Below this cosine similarity between the question and the best
    /// chunk, `ask` answers that it found nothing.
    pub min_relevance: f32,
    /// Texts per embedding call.
    pub embed_batch: usize,
}

impl Default for KbOptions {
    fn default() -> Self {
        KbOptions {
            collection: COLLECTION.to_owned(),
            max_chunk_chars: 1000,
            min_relevance: 0.35,
            embed_batch: 32,
        }
    }
}

/// A document to add or replace; (tenant, source, path) identifies it.
#[derive(Debug, Clone)]
pub struct NewDoc {
    pub tenant: String,
    /// `runbook`, `upload`, `incident`.
    pub source: String,
    pub path: String,
    pub format: Format,
    pub bytes: Vec<u8>,
    /// Overrides the title found in the document.
    pub title: Option<String>,
    /// `runbook`, `postmortem` or `doc`; front matter `type` or the source
    /// decides when unset.
    pub doc_type: Option<String>,
    /// Added to the front matter's.
    pub services: Vec<String>,
    pub categories: Vec<String>,
}

/// What `ingest` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Which chunks a search may return.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Defaults to `default`.
    pub tenant: Option<String>,
    /// `runbook`, `postmortem` or `doc`.
    pub doc_type: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

/// A ranked chunk with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub doc_id: String,
    pub title: String,
    pub chunk_id: String,
    /// Heading path inside the document, ` > `-separated.
    pub section: String,
    pub excerpt: String,
    /// The ranking's score (RRF for hybrid, cosine for dense, BM25 for keyword).
    pub score: f32,
    /// Cosine similarity between the query and the chunk.
    pub relevance: f32,
    pub doc_type: String,
    pub source: String,
    pub path: String,
}

/// A citation of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Citation {
    pub doc_id: String,
    pub title: String,
    pub chunk_id: String,
    pub section: String,
    pub excerpt: String,
    pub score: f32,
}

impl From<&Hit> for Citation {
    fn from(h: &Hit) -> Self {
        Citation {
            doc_id: h.doc_id.clone(),
            title: h.title.clone(),
            chunk_id: h.chunk_id.clone(),
            section: h.section.clone(),
            excerpt: excerpt(&h.excerpt, 300),
            score: h.relevance,
        }
    }
}

/// An answer grounded in the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub answer: String,
    pub citations: Vec<Citation>,
    /// 0 when nothing relevant was found; else the best chunk's relevance.
    pub confidence: f32,
    /// False when the knowledge base holds nothing relevant.
    pub answered: bool,
}

/// A document's catalogue entry with its chunks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentChunks {
    #[serde(flatten)]
    pub document: Document,
    pub chunk_list: Vec<ChunkView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChunkView {
    pub chunk_id: String,
    pub index: u64,
    pub section: String,
    pub text: String,
}

pub struct KnowledgeBase {
    store: Store,
    vectors: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    bm25: EdgeBm25,
    opts: KbOptions,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("vectors", &self.vectors.backend())
            .field("embedder", &self.embedder.model())
            .field("collection", &self.opts.collection)
            .finish()
    }
}

fn bm25() -> EdgeBm25 {
    // The defaults (English stop words and stemming, k1 1.2, b 0.75) with
    // the average length of our chunks, about 120 tokens.
    let config = EdgeBm25Config {
        avg_len: ordered_float_120(),
        ..EdgeBm25Config::default()
    };
    EdgeBm25::new(config).unwrap_or_else(|_| {
        #[allow(clippy::expect_used)] // the defaults are valid by construction
        EdgeBm25::new(EdgeBm25Config::default()).expect("default BM25 configuration")
    })
}

fn ordered_float_120() -> qdrant_edge::external::ordered_float::NotNan<f64> {
    qdrant_edge::external::ordered_float::NotNan::from(120u8)
}

fn to_sparse(v: qdrant_edge::SparseVector) -> SparseVector {
    // Sorted and unique, as the trait promises.
    let mut pairs: Vec<(u32, f32)> = v.indices.into_iter().zip(v.values).collect();
    pairs.sort_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    SparseVector {
        indices: pairs.iter().map(|p| p.0).collect(),
        values: pairs.iter().map(|p| p.1).collect(),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

fn text_of(payload: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    payload
        .get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A chunk's id: the same document version and position always give the same id.
fn chunk_id(doc: DocumentId, hash: &str, index: usize) -> Uuid {
    let digest = Sha256::digest(format!("{}:{hash}:{index}", doc.0).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Version 8 (custom) with the RFC 4122 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// At most `max` bytes of `s`, cut at a word.
pub fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = s[..cut].rfind(char::is_whitespace).unwrap_or(cut);
    format!("{}…", s[..cut].trim_end())
}

impl KnowledgeBase {
    /// Open the knowledge base, creating its collection when missing.
    pub async fn open(
        store: Store,
        vectors: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        opts: KbOptions,
    ) -> Result<KnowledgeBase, KbError> {
        vectors
            .ensure_collection(&CollectionSpec {
                name: opts.collection.clone(),
                dimensions: embedder.dimensions(),
                keyword_fields: KEYWORD_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
            })
            .await?;
        Ok(KnowledgeBase {
            store,
            vectors,
            embedder,
            bm25: bm25(),
            opts,
        })
    }

    /// Below this cosine similarity a chunk is not relevant to a query.
    pub fn min_relevance(&self) -> f32 {
        self.opts.min_relevance
    }

    pub fn backend(&self) -> &'static str {
        self.vectors.backend()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Add a document, or replace the one at the same (tenant, source,
    /// path). Nothing is written unless the whole document parsed and
    /// embedded.
    pub async fn ingest(&self, doc: NewDoc) -> Result<(Document, Outcome), KbError> {
        let NewDoc {
            tenant,
            source,
            path,
            format,
            bytes,
            title,
            doc_type,
            mut services,
            mut categories,
        } = doc;
        if tenant.trim().is_empty() || path.trim().is_empty() || source.trim().is_empty() {
            return Err(KbError::Invalid(
                "a document needs a tenant, a source and a path".into(),
            ));
        }
        let size = bytes.len();
        let parsed = tokio::task::spawn_blocking(move || parse::parse(format, &bytes))
            .await
            .map_err(|e| KbError::Invalid(format!("parsing failed: {e}")))??;
        services.extend(parsed.meta.services.iter().cloned());
        categories.extend(parsed.meta.categories.iter().cloned());
        services.sort();
        services.dedup();
        categories.sort();
        categories.dedup();
        let doc_type = doc_type
            .or_else(|| parsed.meta.doc_type.clone())
            .unwrap_or_else(|| match source.as_str() {
                "runbook" => "runbook".to_owned(),
                "incident" => "postmortem".to_owned(),
                _ => "doc".to_owned(),
            });
        let title = title
            .or_else(|| parsed.title.clone())
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(&path).to_owned());
        let chunks = chunk::chunk(&parsed.sections, self.opts.max_chunk_chars);
        if chunks.is_empty() {
            return Err(ParseError::NoText.into());
        }
        // The version: the content and everything stored with it.
        let mut h = Sha256::new();
        for c in &chunks {
            h.update(c.path.join("\u{1f}").as_bytes());
            h.update([0u8]);
            h.update(c.text.as_bytes());
            h.update([0u8]);
        }
        h.update(format!("{title}|{doc_type}|{services:?}|{categories:?}").as_bytes());
        let hash = hex::encode(h.finalize());

        let existing = self.store.find_document(&tenant, &source, &path).await?;
        if let Some(d) = existing.as_ref().filter(|d| d.content_hash == hash) {
            // A replacement interrupted after its catalogue row was written
            // leaves chunks of the old version: finish it.
            self.purge_other_versions(d.id, &hash).await?;
            return Ok((d.clone(), Outcome::Unchanged));
        }
        let id = existing.as_ref().map_or_else(DocumentId::new, |d| d.id);

        let texts: Vec<String> = chunks
            .iter()
            .map(|c| {
                if c.path.is_empty() {
                    format!("{title}\n{}", c.text)
                } else {
                    format!("{title} > {}\n{}", c.path.join(" > "), c.text)
                }
            })
            .collect();
        let dense = self.embed(&texts).await?;
        let points: Vec<VectorPoint> = chunks
            .iter()
            .zip(texts.iter().zip(dense))
            .enumerate()
            .map(|(i, (c, (t, v)))| {
                let mut payload = serde_json::Map::new();
                let mut put = |k: &str, v: serde_json::Value| {
                    payload.insert(k.to_owned(), v);
                };
                put("doc_id", id.0.to_string().into());
                put("tenant", tenant.clone().into());
                put("source", source.clone().into());
                put("path", path.clone().into());
                put("doc_type", doc_type.clone().into());
                put("title", title.clone().into());
                put("services", services.clone().into());
                put("categories", categories.clone().into());
                put("section", c.path.join(" > ").into());
                put("text", c.text.clone().into());
                put("hash", hash.clone().into());
                put("index", (i as u64).into());
                VectorPoint {
                    id: chunk_id(id, &hash, i),
                    dense: v,
                    sparse: to_sparse(self.bm25.embed_document(t)),
                    payload,
                }
            })
            .collect();
        let n = points.len();
        self.vectors.upsert(&self.opts.collection, points).await?;
        let (document, _) = self
            .store
            .upsert_document(NewDocument {
                id,
                org_id: tenant,
                source,
                path,
                title,
                mime: format.mime().to_owned(),
                content_hash: hash.clone(),
                size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                doc_type,
                services,
                categories,
                chunks: n as i64,
            })
            .await?;
        self.purge_other_versions(id, &hash).await?;
        let outcome = if existing.is_some() {
            Outcome::Updated
        } else {
            Outcome::Created
        };
        Ok((document, outcome))
    }

    async fn purge_other_versions(&self, id: DocumentId, hash: &str) -> Result<(), KbError> {
        let filter = PayloadFilter::new()
            .must("doc_id", id.0.to_string())
            .must_not("hash", hash);
        self.vectors.delete(&self.opts.collection, &filter).await?;
        Ok(())
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KbError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.opts.embed_batch.max(1)) {
            let v = self.embedder.embed(batch).await?;
            if v.len() != batch.len() {
                return Err(KbError::Embed(LlmError::Malformed(format!(
                    "{} embeddings for {} texts",
                    v.len(),
                    batch.len()
                ))));
            }
            out.extend(v);
        }
        Ok(out)
    }

    /// Remove a document and its chunks.
    pub async fn delete(&self, id: DocumentId) -> Result<Document, KbError> {
        let doc = self.store.get_document(id).await?;
        let filter = PayloadFilter::new().must("doc_id", id.0.to_string());
        self.vectors.delete(&self.opts.collection, &filter).await?;
        self.store.delete_document(id).await?;
        Ok(doc)
    }

    pub async fn get(&self, id: DocumentId) -> Result<DocumentChunks, KbError> {
        let document = self.store.get_document(id).await?;
        let filter = PayloadFilter::new()
            .must("doc_id", id.0.to_string())
            .must("hash", document.content_hash.clone());
        let mut points = self
            .vectors
            .scroll(&self.opts.collection, &filter, 10_000)
            .await?;
        let index = |p: &ScoredPoint| p.payload.get("index").and_then(serde_json::Value::as_u64);
        points.sort_by_key(|p| index(p).unwrap_or(u64::MAX));
        let chunk_list = points
            .iter()
            .map(|p| ChunkView {
                chunk_id: p.id.to_string(),
                index: index(p).unwrap_or_default(),
                section: text_of(&p.payload, "section"),
                text: text_of(&p.payload, "text"),
            })
            .collect();
        Ok(DocumentChunks {
            document,
            chunk_list,
        })
    }

    pub async fn list(&self, tenant: &str, source: Option<&str>) -> Result<Vec<Document>, KbError> {
        Ok(self.store.list_documents(tenant, source).await?)
    }

    /// How many chunks the collection holds for `tenant`.
    pub async fn chunk_count(&self, tenant: &str) -> Result<u64, KbError> {
        let filter = PayloadFilter::new().must("tenant", tenant);
        Ok(self.vectors.count(&self.opts.collection, &filter).await?)
    }

    /// The query's dense and sparse vectors.
    pub async fn encode_query(&self, query: &str) -> Result<(Vec<f32>, SparseVector), KbError> {
        let mut dense = self.embed(&[query.to_owned()]).await?;
        let dense = dense.pop().unwrap_or_default();
        Ok((dense, to_sparse(self.bm25.embed_query(query))))
    }

    /// Ranked chunks for `query`.
    pub async fn search(
        &self,
        query: &str,
        filters: &Filters,
        retrieval: Retrieval,
        limit: usize,
    ) -> Result<Vec<Hit>, KbError> {
        if query.trim().is_empty() {
            return Err(KbError::Invalid("the query is empty".into()));
        }
        let (dense, sparse) = self.encode_query(query).await?;
        self.search_encoded(&dense, &sparse, filters, retrieval, limit)
            .await
    }

    /// `search` with the query already encoded (benchmarks time the two apart).
    pub async fn search_encoded(
        &self,
        dense: &[f32],
        sparse: &SparseVector,
        filters: &Filters,
        retrieval: Retrieval,
        limit: usize,
    ) -> Result<Vec<Hit>, KbError> {
        let mut filter = PayloadFilter::new().must(
            "tenant",
            filters
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.into()),
        );
        if let Some(t) = &filters.doc_type {
            filter = filter.must("doc_type", t.clone());
        }
        if let Some(s) = &filters.service {
            filter = filter.must("services", s.clone());
        }
        if let Some(c) = &filters.category {
            filter = filter.must("categories", c.clone());
        }
        let limit = limit.clamp(1, 100);
        let q = VectorQuery {
            dense: dense.to_vec(),
            sparse: sparse.clone(),
            retrieval,
            filter,
            limit,
            candidates: (limit * 4).max(40),
            with_dense: true,
        };
        let points = self.vectors.query(&self.opts.collection, &q).await?;
        Ok(points
            .into_iter()
            .map(|p| {
                let relevance = p.dense.as_deref().map_or(0.0, |v| cosine(dense, v));
                Hit {
                    doc_id: text_of(&p.payload, "doc_id"),
                    title: text_of(&p.payload, "title"),
                    chunk_id: p.id.to_string(),
                    section: text_of(&p.payload, "section"),
                    excerpt: text_of(&p.payload, "text"),
                    score: p.score,
                    relevance,
                    doc_type: text_of(&p.payload, "doc_type"),
                    source: text_of(&p.payload, "source"),
                    path: text_of(&p.payload, "path"),
                }
            })
            .collect())
    }

    /// Answer `question` from the knowledge base: the best matching
    /// section, quoted with its source, and the other relevant chunks as
    /// further citations. Nothing relevant gives an answer that says so.
    pub async fn ask(&self, question: &str, filters: &Filters) -> Result<Answer, KbError> {
        let hits = self.search(question, filters, Retrieval::Hybrid, 8).await?;
        let relevant: Vec<&Hit> = hits
            .iter()
            .filter(|h| h.relevance >= self.opts.min_relevance)
            .collect();
        let Some(best) = relevant.first() else {
            return Ok(Answer {
                answer: "The knowledge base has nothing that answers this question: no runbook, \
                         postmortem or document matched it closely enough. Try other words, or \
                         widen the filters."
                    .into(),
                citations: Vec::new(),
                confidence: 0.0,
                answered: false,
            });
        };
        let place = if best.section.is_empty() {
            best.title.clone()
        } else {
            format!("{} > {}", best.title, best.section)
        };
        let mut answer = format!("From \"{place}\" [1]:\n\n{}", excerpt(&best.excerpt, 1500));
        let citations: Vec<Citation> = relevant
            .iter()
            .take(4)
            .map(|h| Citation::from(*h))
            .collect();
        let others: Vec<String> = citations
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| format!("[{}] {} > {}", i + 1, c.title, c.section))
            .collect();
        if !others.is_empty() {
            answer.push_str("\n\nSee also: ");
            answer.push_str(&others.join("; "));
        }
        Ok(Answer {
            answer,
            citations,
            confidence: best.relevance.clamp(0.0, 1.0),
            answered: true,
        })
    }

    /// Index every Markdown file under `dir` as a runbook; unchanged files
    /// are not embedded again, and runbooks whose file is gone are removed.
    pub async fn index_runbooks(&self, dir: &Path) -> Result<IndexReport, KbError> {
        let mut report = IndexReport::default();
        let mut files = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d)
                .map_err(|e| KbError::Invalid(format!("cannot read {}: {e}", d.display())))?;
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if Format::detect(&p.to_string_lossy(), None) == Some(Format::Markdown) {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut seen = std::collections::BTreeSet::new();
        for file in &files {
            let rel = file
                .strip_prefix(dir)
                .unwrap_or(file)
                .to_string_lossy()
                .replace('\\', "/");
            seen.insert(rel.clone());
            let bytes = std::fs::read(file)
                .map_err(|e| KbError::Invalid(format!("cannot read {}: {e}", file.display())))?;
            let doc = NewDoc {
                tenant: DEFAULT_TENANT.into(),
                source: "runbook".into(),
                path: rel,
                format: Format::Markdown,
                bytes,
                title: None,
                doc_type: None,
                services: Vec::new(),
                categories: Vec::new(),
            };
            match self.ingest(doc).await {
                Ok((_, Outcome::Created)) => report.created += 1,
                Ok((_, Outcome::Updated)) => report.updated += 1,
                Ok((_, Outcome::Unchanged)) => report.unchanged += 1,
                Err(KbError::Parse(e)) => {
                    report.failed.push(format!("{}: {e}", file.display()));
                }
                Err(e) => return Err(e),
            }
        }
        for d in self.list(DEFAULT_TENANT, Some("runbook")).await? {
            if !seen.contains(&d.path) {
                self.delete(d.id).await?;
                report.removed += 1;
            }
        }
        Ok(report)
    }

    /// Build the vector indexes after a bulk load.
    pub async fn optimize(&self) -> Result<(), KbError> {
        Ok(self.vectors.optimize(&self.opts.collection).await?)
    }
}

/// What `index_runbooks` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Files that could not be read, each with the reason.
    pub failed: Vec<String>,
}
