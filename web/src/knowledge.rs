//! The knowledge base from configuration, runbook indexing at startup, and
//! incident memory (resolved incidents become postmortems).

use agents::knowledge::edge::EdgeStore;
use agents::knowledge::qdrant::{QdrantOptions, QdrantStore};
use agents::knowledge::{KbOptions, KnowledgeBase};
use anyhow::Context;
use brain::backends::VectorStore;
use brain::config::{Config, VectorBackend};
use brain::domain::IncidentStatus;
use brain::store::{IncidentFilter, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The configured vector store.
pub fn vector_store(config: &Config) -> anyhow::Result<Arc<dyn VectorStore>> {
    let k = &config.knowledge;
    Ok(match k.vector_store {
        VectorBackend::QdrantEdge => {
            Arc::new(EdgeStore::new(&config.paths.data_dir.join("vectors")))
        }
        VectorBackend::Qdrant => {
            let url = k
                .qdrant_url
                .clone()
                .context("knowledge.qdrant_url is not set")?;
            Arc::new(QdrantStore::connect(&QdrantOptions {
                url,
                api_key: k.qdrant_api_key.as_ref().map(|s| s.expose().to_owned()),
                replication_factor: k.replication_factor,
                timeout: Duration::from_secs(k.timeout_secs),
            })?)
        }
    })
}

/// Open the knowledge base: the embedder of the `embed` role and the
/// configured vector store.
pub async fn open(config: &Config, store: &Store) -> anyhow::Result<Arc<KnowledgeBase>> {
    let embedder = crate::llm::embedder(config).await?;
    let vectors = vector_store(config)?;
    let opts = KbOptions {
        collection: config.knowledge.collection.clone(),
        min_relevance: config.knowledge.min_relevance,
        ..KbOptions::default()
    };
    let kb = KnowledgeBase::open(store.clone(), vectors, embedder, opts)
        .await
        .context("opening the knowledge base's vector collection")?;
    Ok(Arc::new(kb))
}

/// Index `paths.runbooks_dir`, logging what changed.
pub async fn index_runbooks(config: &Config, kb: &KnowledgeBase) {
    let dir = &config.paths.runbooks_dir;
    if !dir.is_dir() {
        tracing::warn!(dir = %dir.display(), "no runbooks directory; nothing to index");
        return;
    }
    let started = std::time::Instant::now();
    match kb.index_runbooks(dir).await {
        Ok(r) => {
            for f in &r.failed {
                tracing::error!(file = %f, "runbook not indexed");
            }
            tracing::info!(
                created = r.created,
                updated = r.updated,
                unchanged = r.unchanged,
                removed = r.removed,
                failed = r.failed.len(),
                ms = started.elapsed().as_millis() as u64,
                "runbooks indexed"
            );
        }
        Err(e) => tracing::error!(error = %e, "indexing runbooks failed"),
    }
}

/// Every `every`, index incidents resolved since the last look as
/// postmortems. The first pass covers those resolved before the start.
pub async fn remember_resolved(
    store: Store,
    kb: Arc<KnowledgeBase>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut done: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = remember_once(&store, &kb, &mut done).await {
            tracing::warn!(error = %e, "indexing resolved incidents failed");
        }
    }
}

/// One pass of [`remember_resolved`]; returns how many were indexed.
pub async fn remember_once(
    store: &Store,
    kb: &KnowledgeBase,
    done: &mut HashSet<String>,
) -> anyhow::Result<usize> {
    let resolved = store
        .list_incidents(&IncidentFilter {
            status: Some(IncidentStatus::Resolved),
            limit: Some(200),
            ..IncidentFilter::default()
        })
        .await?;
    let keys: Vec<String> = resolved
        .iter()
        .map(|i| format!("{}@{:?}", i.id, i.resolved_at))
        .collect();
    let mut n = 0;
    for (incident, key) in resolved.iter().zip(&keys) {
        if done.contains(key) {
            continue;
        }
        kb.remember_incident(incident).await?;
        done.insert(key.clone());
        n += 1;
    }
    // Only what the listing still shows can come up again: the set stays
    // as small as one listing however long the service runs.
    done.retain(|k| keys.contains(k));
    Ok(n)
}
