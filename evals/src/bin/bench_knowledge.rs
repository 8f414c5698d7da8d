//! The knowledge base's figures: retrieval quality on the question set
//! (recall@1, recall@5, MRR for keyword, vector and hybrid), ingest
//! throughput with embedding, query-embedding time, and search latency at
//! 1k and 100k chunks on qdrant-edge (query embedding excluded).
//!
//! `bench-knowledge --weights DIR [--runbooks DIR] [--questions DIR]
//!  [--sizes 1000,100000] [--report FILE.json]`

use agents::knowledge::edge::EdgeStore;
use agents::knowledge::{Filters, KbOptions, KnowledgeBase};
use anyhow::Context;
use brain::backends::Embedder;
use brain::backends::vector::{
    CollectionSpec, PayloadFilter, Retrieval, SparseVector, VectorPoint, VectorQuery, VectorStore,
};
use brain::config::Config;
use brain::store::Store;
use clap::Parser;
use evals::retrieval::{evaluate, load_questions};
use models::local::LocalEmbedder;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Directory of the all-minilm-l6-v2 weights (`cerebro fetch-models`).
    #[arg(long)]
    weights: PathBuf,
    #[arg(long, default_value = "runbooks")]
    runbooks: PathBuf,
    #[arg(long, default_value = "evals/retrieval")]
    questions: PathBuf,
    /// Collection sizes for the search-latency runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    sizes: Vec<usize>,
    /// Searches per size.
    #[arg(long, default_value_t = 500)]
    searches: usize,
    #[arg(long)]
    report: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A tiny deterministic generator (xorshift) for the synthetic points.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let embedder = Arc::new(LocalEmbedder::load(&args.weights).context("loading the embedder")?);
    let tmp = tempfile::tempdir()?;
    let mut config = Config::default();
    config.paths.data_dir = tmp.path().to_owned();
    let store = Store::open(&config).await?;
    let vectors: Arc<dyn VectorStore> = Arc::new(EdgeStore::new(&tmp.path().join("vectors")));
    let kb = KnowledgeBase::open(
        store,
        vectors.clone(),
        embedder.clone(),
        KbOptions::default(),
    )
    .await?;

    // Ingest: every runbook, parsed, chunked, embedded, stored.
    let started = Instant::now();
    let report = kb.index_runbooks(&args.runbooks).await?;
    let ingest_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.failed.is_empty(),
        "runbooks failed: {:?}",
        report.failed
    );
    let chunks = kb.chunk_count("default").await?;
    println!(
        "ingest: {} runbooks, {chunks} chunks in {ingest_s:.2} s = {:.1} chunks/s (parse + chunk + embed + store)",
        report.created,
        chunks as f64 / ingest_s
    );

    // Retrieval quality.
    let questions = load_questions(&args.questions)?;
    println!(
        "\nretrieval over {} questions (gold = runbook section):",
        questions.len()
    );
    println!(
        "{:<10} {:>9} {:>9} {:>7}",
        "mode", "recall@1", "recall@5", "MRR"
    );
    let mut scores = Vec::new();
    for mode in [Retrieval::Keyword, Retrieval::Dense, Retrieval::Hybrid] {
        let s = evaluate(&kb, &questions, mode).await?;
        println!(
            "{:<10} {:>9.3} {:>9.3} {:>7.3}",
            s.retrieval, s.recall_at_1, s.recall_at_5, s.mrr
        );
        scores.push(s);
    }
    if let Some(h) = scores.last() {
        for (q, first) in &h.misses {
            println!("  hybrid miss: {q:?} -> first hit {first}");
        }
    }

    // Query embedding, one question at a time as a request would.
    let mut embed_ms = Vec::new();
    for q in &questions {
        let t = Instant::now();
        let v = embedder.embed(std::slice::from_ref(&q.question)).await?;
        embed_ms.push(ms(t.elapsed()));
        anyhow::ensure!(v.len() == 1);
    }
    embed_ms.sort_by(f64::total_cmp);
    println!(
        "\nquery embedding (all-MiniLM-L6-v2, candle CPU, 1 text): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&embed_ms, 0.5),
        percentile(&embed_ms, 0.99)
    );

    // Search latency at N chunks: the runbook chunks' real vectors, each
    // copied with noise until the collection holds N points.
    let real = vectors
        .scroll("knowledge", &PayloadFilter::new(), 100_000)
        .await?;
    let ids: Vec<_> = real.iter().map(|p| p.id).collect();
    let mut base: Vec<(
        Vec<f32>,
        SparseVector,
        serde_json::Map<String, serde_json::Value>,
    )> = Vec::new();
    for id in ids {
        // Re-embed from the payload text so the dense vector is exact.
        let p = real.iter().find(|p| p.id == id).context("point")?;
        let text = p.payload.get("text").and_then(|t| t.as_str()).unwrap_or("");
        let (dense, sparse) = kb.encode_query(text).await?;
        base.push((dense, sparse, p.payload.clone()));
    }
    let mut query_vectors = Vec::new();
    for q in &questions {
        query_vectors.push(kb.encode_query(&q.question).await?);
    }
    let mut latency = Vec::new();
    for &size in &args.sizes {
        let dir = tmp.path().join(format!("bench-{size}"));
        let edge = EdgeStore::new(&dir);
        let name = "bench";
        edge.ensure_collection(&CollectionSpec {
            name: name.into(),
            dimensions: embedder.dimensions(),
            keyword_fields: vec!["tenant".into(), "doc_type".into(), "services".into()],
        })
        .await?;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let t = Instant::now();
        let mut batch = Vec::new();
        for i in 0..size {
            let (d, s, payload) = &base[i % base.len()];
            let mut dense: Vec<f32> = d.iter().map(|x| x + 0.05 * rng.unit()).collect();
            let norm = dense.iter().map(|x| x * x).sum::<f32>().sqrt();
            dense.iter_mut().for_each(|x| *x /= norm);
            batch.push(VectorPoint {
                id: uuid::Uuid::from_u64_pair(size as u64, i as u64),
                dense,
                sparse: s.clone(),
                payload: payload.clone(),
            });
            if batch.len() == 1000 {
                edge.upsert(name, std::mem::take(&mut batch)).await?;
            }
        }
        edge.upsert(name, batch).await?;
        let load_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        edge.optimize(name).await?;
        let optimize_s = t.elapsed().as_secs_f64();
        for mode in [Retrieval::Dense, Retrieval::Keyword, Retrieval::Hybrid] {
            let mut times = Vec::new();
            for i in 0..args.searches {
                let (dense, sparse) = &query_vectors[i % query_vectors.len()];
                let q = VectorQuery {
                    dense: dense.clone(),
                    sparse: sparse.clone(),
                    retrieval: mode,
                    filter: PayloadFilter::new().must("tenant", "default"),
                    limit: 10,
                    candidates: 40,
                    with_dense: true,
                };
                let t = Instant::now();
                let hits = edge.query(name, &q).await?;
                times.push(ms(t.elapsed()));
                anyhow::ensure!(!hits.is_empty() || mode == Retrieval::Keyword);
            }
            times.sort_by(f64::total_cmp);
            let row = serde_json::json!({
                "chunks": size, "retrieval": format!("{mode:?}").to_lowercase(),
                "p50_ms": percentile(&times, 0.5), "p99_ms": percentile(&times, 0.99),
                "load_s": load_s, "optimize_s": optimize_s,
            });
            println!(
                "search at {size:>6} chunks, {:<7}: p50 {:.2} ms, p99 {:.2} ms (load {load_s:.1} s, index build {optimize_s:.1} s)",
                format!("{mode:?}").to_lowercase(),
                percentile(&times, 0.5),
                percentile(&times, 0.99)
            );
            latency.push(row);
        }
    }
    // End to end through the knowledge base (embedding included), for reference.
    let mut ask_ms = Vec::new();
    for q in questions.iter().take(50) {
        let t = Instant::now();
        let _ = kb.ask(&q.question, &Filters::default()).await?;
        ask_ms.push(ms(t.elapsed()));
    }
    ask_ms.sort_by(f64::total_cmp);
    println!(
        "\nask end to end over {chunks} runbook chunks (embed + hybrid search + answer): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&ask_ms, 0.5),
        percentile(&ask_ms, 0.99)
    );

    if let Some(path) = args.report {
        let json = serde_json::json!({
            "ingest": {"runbooks": report.created, "chunks": chunks, "seconds": ingest_s,
                       "chunks_per_s": chunks as f64 / ingest_s},
            "retrieval": scores,
            "query_embedding_ms": {"p50": percentile(&embed_ms, 0.5), "p99": percentile(&embed_ms, 0.99)},
            "search": latency,
            "ask_ms": {"p50": percentile(&ask_ms, 0.5), "p99": percentile(&ask_ms, 0.99)},
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
