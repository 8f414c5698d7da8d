//! The embedded vector store: one qdrant-edge shard per collection, in a
//! directory of its own under the data directory. The engine blocks, so
//! every call runs on the blocking pool.

use async_trait::async_trait;
use brain::backends::vector::{
    CollectionSpec, PayloadFilter, Retrieval, ScoredPoint, SparseVector, VectorError, VectorPoint,
    VectorQuery, VectorStore,
};
use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter, Fusion, JsonPath, Match,
    Modifier, NamedQuery, PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStruct, Prefetch, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest,
    UpdateOperation, Vector, VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface,
    WithVector,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The dense vector's name in every collection.
pub const DENSE: &str = "dense";
/// The BM25 sparse vector's name.
pub const SPARSE: &str = "bm25";

/// Collections as qdrant-edge shards under `dir/<collection>`.
pub struct EdgeStore {
    dir: PathBuf,
    shards: Mutex<HashMap<String, Arc<Shard>>>,
}

/// A shard and the lock its writers take. The engine's `flush` only
/// try-locks the WAL and the segments and panics when another update
/// holds them, so updates, flushes and optimisation run one at a time;
/// searches do not wait for this lock.
struct Shard {
    /// `None` only inside `drop`.
    engine: Option<EdgeShard>,
    writer: Mutex<()>,
}

impl Shard {
    fn new(engine: EdgeShard) -> Self {
        Shard {
            engine: Some(engine),
            writer: Mutex::new(()),
        }
    }

    fn engine(&self) -> &EdgeShard {
        self.engine
            .as_ref()
            .expect("the engine is only taken when the shard is dropped")
    }

    /// Run one write under the lock. The engine panics where it could
    /// return an error (a failed flush: disk full, directory gone); that
    /// panic becomes an error for this request.
    fn write<T>(
        &self,
        f: impl FnOnce(&EdgeShard) -> Result<T, VectorError>,
    ) -> Result<T, VectorError> {
        let _one = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let engine = self.engine();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(engine))).unwrap_or_else(|p| {
            Err(VectorError::Unavailable(format!(
                "vector store write failed: {}",
                panic_text(&*p)
            )))
        })
    }
}

impl Drop for Shard {
    /// The engine flushes when dropped and panics if that fails; at
    /// shutdown that would abort the process (or a test) over data that
    /// every write already flushed. Log it instead.
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take()
            && let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(engine)))
        {
            tracing::warn!(error = panic_text(&*p), "closing the vector shard failed");
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

impl EdgeStore {
    pub fn new(dir: &Path) -> Self {
        EdgeStore {
            dir: dir.to_owned(),
            shards: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, collection: &str) -> Result<Arc<Shard>, VectorError> {
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards
            .get(collection)
            .cloned()
            .ok_or_else(|| VectorError::Other(format!("collection `{collection}` is not open")))
    }
}

fn err(e: impl std::fmt::Display) -> VectorError {
    VectorError::Other(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VectorError> + Send + 'static,
) -> Result<T, VectorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| VectorError::Unavailable(format!("vector store task failed: {e}")))?
}

fn path(key: &str) -> Result<JsonPath, VectorError> {
    key.parse()
        .map_err(|()| VectorError::Other(format!("invalid payload key `{key}`")))
}

fn condition(key: &str, value: &str) -> Result<Condition, VectorError> {
    Ok(Condition::Field(FieldCondition::new_match(
        path(key)?,
        Match::from(value.to_owned()),
    )))
}

fn filter(f: &PayloadFilter) -> Result<Option<Filter>, VectorError> {
    if f.is_empty() {
        return Ok(None);
    }
    let must: Vec<Condition> = f
        .must
        .iter()
        .map(|(k, v)| condition(k, v))
        .collect::<Result<_, _>>()?;
    let must_not: Vec<Condition> = f
        .must_not
        .iter()
        .map(|(k, v)| condition(k, v))
        .collect::<Result<_, _>>()?;
    let mut out = Filter::new();
    out.must = (!must.is_empty()).then_some(must);
    out.must_not = (!must_not.is_empty()).then_some(must_not);
    Ok(Some(out))
}

fn uuid_of(id: &PointId) -> uuid::Uuid {
    match id {
        PointId::Uuid(u) => *u,
        PointId::NumId(n) => uuid::Uuid::from_u64_pair(0, *n),
    }
}

fn dense_of(v: Option<VectorStructInternal>) -> Option<Vec<f32>> {
    match v? {
        VectorStructInternal::Named(mut named) => match named.remove(DENSE)? {
            VectorInternal::Dense(d) => Some(d),
            _ => None,
        },
        VectorStructInternal::Single(d) => Some(d),
        VectorStructInternal::MultiDense(_) => None,
    }
}

fn sparse_query(s: &SparseVector) -> Result<VectorInternal, VectorError> {
    let v = Vector::new_sparse(s.indices.clone(), s.values.clone()).map_err(err)?;
    Ok(v.0)
}

fn nearest(vector: VectorInternal, using: &str) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(using.to_owned()),
    }))
}

#[async_trait]
impl VectorStore for EdgeStore {
    fn backend(&self) -> &'static str {
        "qdrant-edge"
    }

    async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<(), VectorError> {
        if self
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&spec.name)
        {
            return Ok(());
        }
        let dir = self.dir.join(&spec.name);
        let spec = spec.clone();
        let shard = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| {
                VectorError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
            let mut config = EdgeConfig::default();
            config.vectors.insert(
                DENSE.to_owned(),
                EdgeVectorParams::builder(spec.dimensions, Distance::Cosine).build(),
            );
            config.sparse_vectors.insert(
                SPARSE.to_owned(),
                EdgeSparseVectorParams::builder()
                    .modifier(Modifier::Idf)
                    .build(),
            );
            let existing = dir.join("edge_config.json").exists();
            let shard = if existing {
                let shard = EdgeShard::load(&dir, None).map_err(err)?;
                let have = shard.config().vectors.get(DENSE).map(|v| v.size);
                if have != Some(spec.dimensions) {
                    return Err(VectorError::Dimension {
                        got: spec.dimensions,
                        want: have.unwrap_or(0),
                    });
                }
                shard
            } else {
                EdgeShard::new(&dir, config).map_err(err)?
            };
            for field in &spec.keyword_fields {
                shard
                    .update(UpdateOperation::FieldIndexOperation(
                        FieldIndexOperations::CreateIndex(CreateIndex {
                            field_name: path(field)?,
                            field_schema: Some(PayloadFieldSchema::FieldType(
                                PayloadSchemaType::Keyword,
                            )),
                        }),
                    ))
                    .map_err(err)?;
            }
            Ok(Arc::new(Shard::new(shard)))
        })
        .await?;
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(spec.name.clone())
            .or_insert(shard);
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let shard = self.shard(collection)?;
        let want = shard
            .engine()
            .config()
            .vectors
            .get(DENSE)
            .map_or(0, |v| v.size);
        if let Some(p) = points.iter().find(|p| p.dense.len() != want) {
            return Err(VectorError::Dimension {
                got: p.dense.len(),
                want,
            });
        }
        blocking(move || {
            let mut list = Vec::with_capacity(points.len());
            for p in points {
                let mut named: Vec<(String, Vector)> = vec![(DENSE.to_owned(), p.dense.into())];
                if !p.sparse.is_empty() {
                    let sparse =
                        Vector::new_sparse(p.sparse.indices, p.sparse.values).map_err(err)?;
                    named.push((SPARSE.to_owned(), sparse));
                }
                let vectors: Vectors = named.into();
                list.push(PointStruct::new(PointId::Uuid(p.id), vectors, p.payload.into()).into());
            }
            shard.write(|s| {
                s.update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
                ))
                .map_err(err)?;
                s.flush();
                Ok(())
            })
        })
        .await
    }

    async fn query(
        &self,
        collection: &str,
        q: &VectorQuery,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        let shard = self.shard(collection)?;
        let filter = filter(&q.filter)?;
        let dense = || nearest(VectorInternal::Dense(q.dense.clone()), DENSE);
        let (prefetches, query) = match q.retrieval {
            Retrieval::Dense => (Vec::new(), dense()),
            Retrieval::Keyword => (Vec::new(), nearest(sparse_query(&q.sparse)?, SPARSE)),
            Retrieval::Hybrid => {
                let mut prefetches = vec![Prefetch {
                    prefetches: Vec::new(),
                    query: Some(dense()),
                    limit: q.candidates,
                    params: None,
                    filter: None,
                    score_threshold: None,
                }];
                if !q.sparse.is_empty() {
                    prefetches.push(Prefetch {
                        prefetches: Vec::new(),
                        query: Some(nearest(sparse_query(&q.sparse)?, SPARSE)),
                        limit: q.candidates,
                        params: None,
                        filter: None,
                        score_threshold: None,
                    });
                }
                (
                    prefetches,
                    ScoringQuery::Fusion(Fusion::Rrf {
                        k: 60,
                        weights: None,
                    }),
                )
            }
        };
        if q.retrieval == Retrieval::Keyword && q.sparse.is_empty() {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches,
            query: Some(query),
            filter,
            score_threshold: None,
            limit: q.limit,
            offset: 0,
            params: None,
            with_vector: if q.with_dense {
                WithVector::Selector(vec![DENSE.to_owned()])
            } else {
                WithVector::Bool(false)
            },
            with_payload: WithPayloadInterface::Bool(true),
        };
        blocking(move || {
            let hits = shard.engine().query(request).map_err(err)?;
            Ok(hits
                .into_iter()
                .map(|h| ScoredPoint {
                    id: uuid_of(&h.id),
                    score: h.score,
                    payload: h.payload.map(|p| p.0).unwrap_or_default(),
                    dense: dense_of(h.vector),
                })
                .collect())
        })
        .await
    }

    async fn delete(&self, collection: &str, f: &PayloadFilter) -> Result<(), VectorError> {
        let shard = self.shard(collection)?;
        let Some(filter) = filter(f)? else {
            return Err(VectorError::Other(
                "refusing to delete with an empty filter".into(),
            ));
        };
        blocking(move || {
            shard.write(|s| {
                s.update(UpdateOperation::PointOperation(
                    PointOperations::DeletePointsByFilter(filter),
                ))
                .map_err(err)?;
                s.flush();
                Ok(())
            })
        })
        .await
    }

    async fn scroll(
        &self,
        collection: &str,
        f: &PayloadFilter,
        limit: usize,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        let shard = self.shard(collection)?;
        let request = ScrollRequest {
            offset: None,
            limit: Some(limit),
            filter: filter(f)?,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        blocking(move || {
            let (records, _next) = shard.engine().scroll(request).map_err(err)?;
            Ok(records
                .into_iter()
                .map(|r| ScoredPoint {
                    id: uuid_of(&r.id),
                    score: 0.0,
                    payload: r.payload.map(|p| p.0).unwrap_or_default(),
                    dense: None,
                })
                .collect())
        })
        .await
    }

    async fn count(&self, collection: &str, f: &PayloadFilter) -> Result<u64, VectorError> {
        let shard = self.shard(collection)?;
        let request = qdrant_edge::CountRequest {
            filter: filter(f)?,
            exact: true,
        };
        blocking(move || Ok(shard.engine().count(request).map_err(err)? as u64)).await
    }

    async fn optimize(&self, collection: &str) -> Result<(), VectorError> {
        let shard = self.shard(collection)?;
        blocking(move || {
            shard.write(|s| {
                s.optimize().map_err(err)?;
                s.flush();
                Ok(())
            })
        })
        .await
    }
}
