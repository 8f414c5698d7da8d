//! Vector stores: embedded qdrant-edge and a Qdrant server behind one trait.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A vector with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorPoint {
    pub id: Uuid,
    pub vector: Vec<f32>,
    pub payload: serde_json::Value,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    pub id: Uuid,
    pub score: f32,
    pub payload: serde_json::Value,
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

/// A collection of vectors with payloads.
#[async_trait]
pub trait VectorStore: Send + Sync {
    async fn ensure_collection(&self, name: &str, dimensions: usize) -> Result<(), VectorError>;
    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError>;
    /// Nearest points; `filter` is a map of payload key to required value.
    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
        filter: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Vec<ScoredPoint>, VectorError>;
    /// Delete every point whose payload has `key` = `value`.
    async fn delete_where(
        &self,
        collection: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<u64, VectorError>;
}
