//! The knowledge base end to end: the real local embedder (all-MiniLM-L6-v2
//! on candle), the embedded qdrant-edge store on disk, the SQLite
//! catalogue. With `CEREBRO_QDRANT_URL` set, the store tests run against
//! that Qdrant server too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use agents::knowledge::edge::EdgeStore;
use agents::knowledge::parse::Format;
use agents::knowledge::qdrant::{QdrantOptions, QdrantStore};
use agents::knowledge::{Filters, KbOptions, KnowledgeBase, NewDoc, Outcome};
use async_trait::async_trait;
use brain::backends::vector::{Retrieval, VectorStore};
use brain::backends::{Embedder, LlmError};
use brain::config::Config;
use brain::domain::{Diagnosis, IncidentStatus, Severity};
use brain::ids::DiagnosisId;
use brain::store::{NewIncident, Store};
use brain::taxonomy::RootCause;
use models::fetch::MINILM_L6_V2;
use models::local::LocalEmbedder;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

#[path = "../../models/tests/common/mod.rs"]
mod common;

/// The embedder's weights, fetched once as `cerebro fetch-models` does.
fn weights() -> PathBuf {
    common::weights(&MINILM_L6_V2)
}

/// The local embedder, loaded once per test binary, counting the texts it embeds.
struct Counting {
    inner: Arc<LocalEmbedder>,
    texts: AtomicUsize,
}

#[async_trait]
impl Embedder for Counting {
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
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts).await
    }
}

fn local_embedder() -> Arc<LocalEmbedder> {
    static E: OnceLock<Arc<LocalEmbedder>> = OnceLock::new();
    E.get_or_init(|| Arc::new(LocalEmbedder::load(&weights()).expect("load the embedder")))
        .clone()
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting {
        inner: local_embedder(),
        texts: AtomicUsize::new(0),
    })
}

fn runbooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

struct Env {
    kb: KnowledgeBase,
    embedder: Arc<Counting>,
    store: Store,
    dir: tempfile::TempDir,
}

async fn store_in(dir: &Path) -> Store {
    let mut config = Config::default();
    config.paths.data_dir = dir.to_owned();
    Store::open(&config).await.expect("open sqlite store")
}

/// The vector stores to run on: qdrant-edge always, a Qdrant server when
/// `CEREBRO_QDRANT_URL` names one (each test gets its own collection).
fn backends(dir: &Path) -> Vec<(Arc<dyn VectorStore>, String)> {
    let mut out: Vec<(Arc<dyn VectorStore>, String)> = vec![(
        Arc::new(EdgeStore::new(&dir.join("vectors"))),
        "knowledge".into(),
    )];
    if let Ok(url) = std::env::var("CEREBRO_QDRANT_URL") {
        let store = QdrantStore::connect(&QdrantOptions {
            url,
            api_key: std::env::var("CEREBRO_QDRANT_API_KEY").ok(),
            replication_factor: 1,
            timeout: std::time::Duration::from_secs(10),
        })
        .expect("connect to Qdrant");
        let collection = format!("test_{}", uuid::Uuid::new_v4().simple());
        out.push((Arc::new(store), collection));
    }
    out
}

async fn open(vectors: Arc<dyn VectorStore>, collection: String) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let embedder = counting();
    let kb = KnowledgeBase::open(
        store.clone(),
        vectors,
        embedder.clone(),
        KbOptions {
            collection,
            ..KbOptions::default()
        },
    )
    .await
    .expect("open the knowledge base");
    Env {
        kb,
        embedder,
        store,
        dir,
    }
}

fn markdown(tenant: &str, path: &str, text: &str) -> NewDoc {
    NewDoc {
        tenant: tenant.into(),
        source: "upload".into(),
        path: path.into(),
        format: Format::Markdown,
        bytes: text.as_bytes().to_vec(),
        title: None,
        doc_type: None,
        services: Vec::new(),
        categories: Vec::new(),
    }
}

fn runbook_count() -> usize {
    std::fs::read_dir(runbooks_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "md"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_index_incrementally_and_answers_cite_the_right_section_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let env = open(
        Arc::new(EdgeStore::new(&tmp.path().join("vectors"))),
        "knowledge".into(),
    )
    .await;
    let n = runbook_count();
    assert!(
        n >= 25,
        "the issue asks for at least 25 runbooks, found {n}"
    );

    let first = env.kb.index_runbooks(&runbooks_dir()).await.unwrap();
    assert_eq!((first.created, first.failed.len()), (n, 0), "{first:?}");
    let embedded = env.embedder.texts.load(Ordering::SeqCst);
    let chunks = env.kb.chunk_count("default").await.unwrap();
    assert_eq!(embedded as u64, chunks);

    // Unchanged files are not embedded again.
    let second = env.kb.index_runbooks(&runbooks_dir()).await.unwrap();
    assert_eq!(
        (second.unchanged, second.created, second.updated),
        (n, 0, 0)
    );
    assert_eq!(env.embedder.texts.load(Ordering::SeqCst), embedded);

    let answer = env
        .kb
        .ask("how do we fail over orders-db?", &Filters::default())
        .await
        .unwrap();
    assert!(answer.answered, "{answer:?}");
    let first = &answer.citations[0];
    let doc = env
        .store
        .get_document(first.doc_id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(doc.path, "postgres-failover.md", "{answer:#?}");
    // The answer quotes the section it cites first.
    let opening: String = first.excerpt.chars().take(30).collect();
    assert!(answer.answer.contains(&opening), "{answer:#?}");

    // Questions with a gold section, from the eval set: the first citation
    // or one of the next is that section.
    let cases = [
        (
            "pods keep getting killed with exit code 137, how do I raise the memory?",
            "oom-killed.md",
        ),
        (
            "S3 returns 503 SlowDown when the uploader pushes segments",
            "s3-throttling-slowdown.md",
        ),
        (
            "FATAL: sorry, too many clients already",
            "db-connection-exhaustion.md",
        ),
        (
            "argo app stuck OutOfSync after a merge",
            "gitops-sync-failure.md",
        ),
    ];
    for (question, path) in cases {
        let a = env.kb.ask(question, &Filters::default()).await.unwrap();
        assert!(a.answered, "{question}: {a:?}");
        let mut cited = Vec::new();
        for c in a.citations.iter().take(3) {
            cited.push(
                env.store
                    .get_document(c.doc_id.parse().unwrap())
                    .await
                    .unwrap()
                    .path,
            );
        }
        assert!(
            cited.iter().any(|p| p == path),
            "{question}: cited {cited:?}"
        );
    }

    // Nothing relevant: no invented answer (one index serves both checks,
    // since embedding every runbook is the slow part).
    for question in [
        "what is a good recipe for sourdough bread?",
        "who won the football world cup in 1998?",
    ] {
        let a = env.kb.ask(question, &Filters::default()).await.unwrap();
        assert!(!a.answered, "{question}: {a:#?}");
        assert!(a.citations.is_empty());
        assert_eq!(a.confidence, 0.0);
        assert!(a.answer.contains("nothing"), "{}", a.answer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_document_replaces_its_chunks_and_a_deleted_one_leaves_search() {
    let tmp = tempfile::tempdir().unwrap();
    for (vectors, collection) in backends(tmp.path()) {
        let backend = vectors.backend();
        let env = open(vectors, collection).await;
        let v1 = "# Zanzibar cache\n\n## Remediation\n\nFlush the zanzibar cache with the purple lever.\n";
        let (d1, o1) = env
            .kb
            .ingest(markdown("default", "zanzibar.md", v1))
            .await
            .unwrap();
        assert_eq!(o1, Outcome::Created);
        let (_, again) = env
            .kb
            .ingest(markdown("default", "zanzibar.md", v1))
            .await
            .unwrap();
        assert_eq!(again, Outcome::Unchanged);

        let v2 = "# Zanzibar cache\n\n## Remediation\n\nRestart the zanzibar pods with the orange button.\n\n\
                  ## Escalation\n\nPage the cache team.\n";
        let (d2, o2) = env
            .kb
            .ingest(markdown("default", "zanzibar.md", v2))
            .await
            .unwrap();
        assert_eq!(
            (o2, d2.id, d2.chunks),
            (Outcome::Updated, d1.id, 2),
            "{backend}"
        );
        assert_eq!(env.kb.chunk_count("default").await.unwrap(), 2, "{backend}");
        let hits = env
            .kb
            .search("purple lever", &Filters::default(), Retrieval::Keyword, 5)
            .await
            .unwrap();
        assert!(
            hits.is_empty(),
            "{backend}: old version still found: {hits:?}"
        );
        let hits = env
            .kb
            .search("orange button", &Filters::default(), Retrieval::Hybrid, 5)
            .await
            .unwrap();
        assert_eq!(hits[0].section, "Remediation", "{backend}");
        assert_eq!(hits[0].doc_id, d1.id.0.to_string());

        let got = env.kb.get(d1.id).await.unwrap();
        assert_eq!(got.chunk_list.len(), 2);
        assert_eq!(got.chunk_list[1].section, "Escalation");

        env.kb.delete(d1.id).await.unwrap();
        assert_eq!(env.kb.chunk_count("default").await.unwrap(), 0, "{backend}");
        for retrieval in [Retrieval::Keyword, Retrieval::Dense, Retrieval::Hybrid] {
            let hits = env
                .kb
                .search("zanzibar orange button", &Filters::default(), retrieval, 5)
                .await
                .unwrap();
            assert!(hits.is_empty(), "{backend} {retrieval:?}: {hits:?}");
        }
        assert!(env.kb.list("default", None).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_keep_tenants_apart_and_narrow_by_type_and_service() {
    let tmp = tempfile::tempdir().unwrap();
    for (vectors, collection) in backends(tmp.path()) {
        let backend = vectors.backend();
        let env = open(vectors, collection).await;
        let mut acme = markdown(
            "acme",
            "kafka.md",
            "# Kafka\n\n## Lag\n\nScale the consumers of the ledger topic.\n",
        );
        acme.services = vec!["ledger".into()];
        env.kb.ingest(acme).await.unwrap();
        let mut ours = markdown(
            "default",
            "kafka.md",
            "# Kafka\n\n## Lag\n\nScale the consumers of the billing topic.\n",
        );
        ours.services = vec!["billing".into()];
        ours.doc_type = Some("runbook".into());
        env.kb.ingest(ours).await.unwrap();

        let q = "consumer lag on the topic";
        let ours = env
            .kb
            .search(q, &Filters::default(), Retrieval::Hybrid, 10)
            .await
            .unwrap();
        assert_eq!(ours.len(), 1, "{backend}: {ours:?}");
        assert!(ours[0].excerpt.contains("billing"));
        let theirs = Filters {
            tenant: Some("acme".into()),
            ..Filters::default()
        };
        let hits = env
            .kb
            .search(q, &theirs, Retrieval::Hybrid, 10)
            .await
            .unwrap();
        assert!(
            hits.len() == 1 && hits[0].excerpt.contains("ledger"),
            "{backend}"
        );
        let by_service = Filters {
            service: Some("ledger".into()),
            ..Filters::default()
        };
        assert!(
            env.kb
                .search(q, &by_service, Retrieval::Hybrid, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let by_type = Filters {
            doc_type: Some("postmortem".into()),
            ..Filters::default()
        };
        assert!(
            env.kb
                .search(q, &by_type, Retrieval::Dense, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let by_type = Filters {
            doc_type: Some("runbook".into()),
            service: Some("billing".into()),
            ..Filters::default()
        };
        assert_eq!(
            env.kb
                .search(q, &by_type, Retrieval::Dense, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_index_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = tmp.path().join("vectors");
    let (store, id) = {
        let env = open(Arc::new(EdgeStore::new(&vectors)), "knowledge".into()).await;
        let (d, _) = env
            .kb
            .ingest(markdown(
                "default",
                "failover.md",
                "# Failover\n\n## Steps\n\nPromote the standby in eu-west-1b.\n",
            ))
            .await
            .unwrap();
        (env.store.clone(), d.id)
    };
    let kb = KnowledgeBase::open(
        store,
        Arc::new(EdgeStore::new(&vectors)),
        counting(),
        KbOptions::default(),
    )
    .await
    .unwrap();
    let hits = kb
        .search(
            "promote the standby",
            &Filters::default(),
            Retrieval::Hybrid,
            3,
        )
        .await
        .unwrap();
    assert_eq!(hits[0].doc_id, id.0.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_incident_is_remembered_as_a_postmortem() {
    let tmp = tempfile::tempdir().unwrap();
    let env = open(
        Arc::new(EdgeStore::new(&tmp.path().join("vectors"))),
        "knowledge".into(),
    )
    .await;
    let s = &env.store;
    let inc = s
        .create_incident(NewIncident {
            org_id: "default".into(),
            title: "checkout-api pods OOMKilled after the 3.2 release".into(),
            severity: Severity::Critical,
            service: Some("checkout-api".into()),
            group_key: "checkout-oom".into(),
        })
        .await
        .unwrap();
    s.add_diagnosis(&Diagnosis {
        id: DiagnosisId::new(),
        incident_id: inc.id,
        category: RootCause::OomKilled,
        component: "deployment/prod/checkout-api".parse().unwrap(),
        confidence: 0.9,
        explanation: "the image cache added in 3.2 grew past the 512Mi limit".into(),
        citations: vec![],
        created_at: brain::store::timestamp(),
    })
    .await
    .unwrap();
    let resolved = s
        .transition_incident(inc.id, IncidentStatus::Resolved, "test", "fixed")
        .await
        .unwrap();
    assert_eq!(
        env.kb.remember_incident(&resolved).await.unwrap(),
        Outcome::Created
    );
    assert_eq!(
        env.kb.remember_incident(&resolved).await.unwrap(),
        Outcome::Unchanged
    );
    let postmortems = Filters {
        doc_type: Some("postmortem".into()),
        service: Some("checkout-api".into()),
        ..Filters::default()
    };
    let hits = env
        .kb
        .search(
            "checkout pods killed for memory after a release, image cache",
            &postmortems,
            Retrieval::Hybrid,
            5,
        )
        .await
        .unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits[0].title.contains("checkout-api pods OOMKilled"),
        "{hits:?}"
    );
    let all: String = hits.iter().map(|h| h.excerpt.as_str()).collect();
    assert!(all.contains("512Mi limit"), "{all}");
    drop(env.dir);
}
