//! Vector stores: embedded qdrant-edge and a Qdrant server behind one trait.
//!
//! A point carries a dense vector (the embedder's) and a sparse one (BM25
//! term weights, computed by the caller with one tokenizer for every
//! backend), so keyword, dense and fused retrieval rank alike on the
//! embedded engine and on a server: each backend runs the fusion itself.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Term ids and weights; ids are sorted and unique.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// A point with both vectors and its payload (a JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorPoint {
    pub id: Uuid,
    pub dense: Vec<f32>,
    pub sparse: SparseVector,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// What a collection holds: dense vectors of `dimensions` (cosine), one
/// sparse vector with IDF applied at query time, and keyword indexes on
/// the payload fields that filters use.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSpec {
    pub name: String,
    pub dimensions: usize,
    pub keyword_fields: Vec<String>,
}

/// A conjunction of payload conditions: each `must` field equals (or, for
/// an array field, contains) the value; no `must_not` field does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PayloadFilter {
    pub must: Vec<(String, String)>,
    pub must_not: Vec<(String, String)>,
}

impl PayloadFilter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn must(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.must.push((key.into(), value.into()));
        self
    }
    pub fn must_not(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.must_not.push((key.into(), value.into()));
        self
    }
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.must_not.is_empty()
    }
}

/// Which ranking a query uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    /// Cosine similarity of the dense vectors.
    Dense,
    /// BM25: the sparse vectors' dot product with IDF.
    Keyword,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

/// A search.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorQuery {
    pub dense: Vec<f32>,
    pub sparse: SparseVector,
    pub retrieval: Retrieval,
    pub filter: PayloadFilter,
    pub limit: usize,
    /// How many candidates each ranking contributes before fusion.
    pub candidates: usize,
    /// Return each hit's dense vector (to compute its cosine after fusion).
    pub with_dense: bool,
}

/// A search hit. `score` is the ranking's own: cosine, BM25 or RRF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    pub id: Uuid,
    pub score: f32,
    pub payload: serde_json::Map<String, serde_json::Value>,
    pub dense: Option<Vec<f32>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum VectorError {
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    #[error("vector of dimension {got} where the collection has {want}")]
    Dimension { got: usize, want: usize },
    #[error("vector store error: {0}")]
    Other(String),
}

/// Collections of points with dense and sparse vectors and payloads.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// `qdrant-edge` or `qdrant`, for logs and `/health`.
    fn backend(&self) -> &'static str;
    /// Create the collection and its payload indexes when missing; an
    /// existing one with other dimensions is an error.
    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), VectorError>;
    /// Insert or replace points by id, durably, in one operation.
    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError>;
    async fn query(
        &self,
        collection: &str,
        query: &VectorQuery,
    ) -> Result<Vec<ScoredPoint>, VectorError>;
    /// Delete every point that matches `filter` (which must not be empty).
    async fn delete(&self, collection: &str, filter: &PayloadFilter) -> Result<(), VectorError>;
    /// Up to `limit` points that match `filter`, without vectors, in id order.
    async fn scroll(
        &self,
        collection: &str,
        filter: &PayloadFilter,
        limit: usize,
    ) -> Result<Vec<ScoredPoint>, VectorError>;
    async fn count(&self, collection: &str, filter: &PayloadFilter) -> Result<u64, VectorError>;
    /// Build indexes after a bulk load (HNSW on the embedded engine; a
    /// server optimises on its own).
    async fn optimize(&self, _collection: &str) -> Result<(), VectorError> {
        Ok(())
    }
}
