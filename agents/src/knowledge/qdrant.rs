//! A Qdrant server or cluster over gRPC (qdrant-client). The collection
//! has the same named vectors as the embedded one (`dense`, cosine; `bm25`,
//! sparse with IDF) and the server runs the same RRF fusion, so both rank
//! alike.

use super::edge::{DENSE, SPARSE};
use async_trait::async_trait;
use brain::backends::vector::{
    CollectionSpec, PayloadFilter, Retrieval, ScoredPoint, VectorError, VectorPoint, VectorQuery,
    VectorStore,
};
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, Fusion, GetCollectionInfoRequest, Modifier,
    NamedVectors, PointId, PointStruct, PrefetchQueryBuilder, Query, QueryPointsBuilder,
    ScrollPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
    point_id::PointIdOptions, vectors_output::VectorsOptions,
};
use qdrant_client::{Payload, Qdrant};
use std::time::Duration;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct QdrantOptions {
    pub url: String,
    pub api_key: Option<String>,
    /// Copies of each shard on a cluster.
    pub replication_factor: u32,
    pub timeout: Duration,
}

pub struct QdrantStore {
    client: Qdrant,
    replication_factor: u32,
}

fn unavailable(e: impl std::fmt::Display) -> VectorError {
    VectorError::Unavailable(e.to_string())
}

impl QdrantStore {
    pub fn connect(opts: &QdrantOptions) -> Result<QdrantStore, VectorError> {
        let mut builder = Qdrant::from_url(&opts.url)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .skip_compatibility_check();
        if let Some(key) = &opts.api_key {
            builder = builder.api_key(key.clone());
        }
        let client = builder.build().map_err(unavailable)?;
        Ok(QdrantStore {
            client,
            replication_factor: opts.replication_factor.max(1),
        })
    }
}

fn filter(f: &PayloadFilter) -> Option<Filter> {
    if f.is_empty() {
        return None;
    }
    let cond = |(k, v): &(String, String)| Condition::matches(k.clone(), v.clone());
    Some(Filter {
        must: f.must.iter().map(cond).collect(),
        must_not: f.must_not.iter().map(cond).collect(),
        ..Filter::default()
    })
}

fn uuid_of(id: Option<PointId>) -> uuid::Uuid {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => s.parse().unwrap_or_default(),
        Some(PointIdOptions::Num(n)) => uuid::Uuid::from_u64_pair(0, n),
        None => uuid::Uuid::nil(),
    }
}

fn payload_map(
    p: std::collections::HashMap<String, qdrant_client::qdrant::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    p.into_iter().map(|(k, v)| (k, v.into_json())).collect()
}

#[allow(deprecated)] // `VectorOutput::data` is how 1.x servers still answer
fn dense_of(v: Option<qdrant_client::qdrant::VectorsOutput>) -> Option<Vec<f32>> {
    match v?.vectors_options? {
        VectorsOptions::Vectors(named) => {
            let out = named.vectors.get(DENSE)?;
            match &out.vector {
                Some(qdrant_client::qdrant::vector_output::Vector::Dense(d)) => {
                    Some(d.data.clone())
                }
                _ if !out.data.is_empty() => Some(out.data.clone()),
                _ => None,
            }
        }
        VectorsOptions::Vector(_) => None,
    }
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), VectorError> {
        let exists = self
            .client
            .collection_exists(&spec.name)
            .await
            .map_err(unavailable)?;
        if exists {
            let info = self
                .client
                .collection_info(GetCollectionInfoRequest {
                    collection_name: spec.name.clone(),
                })
                .await
                .map_err(unavailable)?;
            let size = info
                .result
                .and_then(|r| r.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config)
                .and_then(|c| match c {
                    qdrant_client::qdrant::vectors_config::Config::ParamsMap(m) => {
                        m.map.get(DENSE).map(|p| p.size as usize)
                    }
                    qdrant_client::qdrant::vectors_config::Config::Params(_) => None,
                });
            if size != Some(spec.dimensions) {
                return Err(VectorError::Dimension {
                    got: spec.dimensions,
                    want: size.unwrap_or(0),
                });
            }
        } else {
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(
                DENSE,
                VectorParamsBuilder::new(spec.dimensions as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                SPARSE,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf as i32),
            );
            self.client
                .create_collection(
                    CreateCollectionBuilder::new(&spec.name)
                        .vectors_config(vectors)
                        .sparse_vectors_config(sparse)
                        .replication_factor(self.replication_factor),
                )
                .await
                .map_err(unavailable)?;
        }
        for field in &spec.keyword_fields {
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(&spec.name, field, FieldType::Keyword)
                        .wait(true),
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|p| {
                let mut vectors =
                    NamedVectors::default().add_vector(DENSE, Vector::new_dense(p.dense));
                if !p.sparse.is_empty() {
                    vectors = vectors.add_vector(
                        SPARSE,
                        Vector::new_sparse(p.sparse.indices, p.sparse.values),
                    );
                }
                let payload = Payload::from(p.payload);
                PointStruct::new(p.id.to_string(), vectors, payload)
            })
            .collect();
        self.client
            .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn query(
        &self,
        collection: &str,
        q: &VectorQuery,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        let dense = || Query::new_nearest(VectorInput::new_dense(q.dense.clone()));
        let sparse = || {
            Query::new_nearest(VectorInput::new_sparse(
                q.sparse.indices.clone(),
                q.sparse.values.clone(),
            ))
        };
        let mut b = QueryPointsBuilder::new(collection)
            .limit(q.limit as u64)
            .with_payload(true);
        b = match q.retrieval {
            Retrieval::Dense => b.query(dense()).using(DENSE),
            Retrieval::Keyword => {
                if q.sparse.is_empty() {
                    return Ok(Vec::new());
                }
                b.query(sparse()).using(SPARSE)
            }
            Retrieval::Hybrid => {
                let mut b = b.add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(dense())
                        .using(DENSE)
                        .limit(q.candidates as u64),
                );
                if !q.sparse.is_empty() {
                    b = b.add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(sparse())
                            .using(SPARSE)
                            .limit(q.candidates as u64),
                    );
                }
                b.query(Query::new_fusion(Fusion::Rrf))
            }
        };
        if let Some(f) = filter(&q.filter) {
            b = b.filter(f);
        }
        if q.with_dense {
            b = b.with_vectors(qdrant_client::qdrant::VectorsSelector {
                names: vec![DENSE.to_owned()],
            });
        }
        let response = self.client.query(b).await.map_err(unavailable)?;
        Ok(response
            .result
            .into_iter()
            .map(|p| ScoredPoint {
                id: uuid_of(p.id),
                score: p.score,
                payload: payload_map(p.payload),
                dense: dense_of(p.vectors),
            })
            .collect())
    }

    async fn delete(&self, collection: &str, f: &PayloadFilter) -> Result<(), VectorError> {
        let Some(f) = filter(f) else {
            return Err(VectorError::Other(
                "refusing to delete with an empty filter".into(),
            ));
        };
        self.client
            .delete_points(DeletePointsBuilder::new(collection).points(f).wait(true))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn scroll(
        &self,
        collection: &str,
        f: &PayloadFilter,
        limit: usize,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        let mut b = ScrollPointsBuilder::new(collection)
            .limit(u32::try_from(limit).unwrap_or(u32::MAX))
            .with_payload(true)
            .with_vectors(false);
        if let Some(f) = filter(f) {
            b = b.filter(f);
        }
        let response = self.client.scroll(b).await.map_err(unavailable)?;
        Ok(response
            .result
            .into_iter()
            .map(|r| ScoredPoint {
                id: uuid_of(r.id),
                score: 0.0,
                payload: payload_map(r.payload),
                dense: None,
            })
            .collect())
    }

    async fn count(&self, collection: &str, f: &PayloadFilter) -> Result<u64, VectorError> {
        let mut b = CountPointsBuilder::new(collection).exact(true);
        if let Some(f) = filter(f) {
            b = b.filter(f);
        }
        let response = self.client.count(b).await.map_err(unavailable)?;
        Ok(response.result.map_or(0, |r| r.count))
    }
}
