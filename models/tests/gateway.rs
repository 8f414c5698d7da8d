//! The gateway's routing with scripted providers: fallback, retries,
//! timeouts, the circuit breaker, concurrency limits, budgets, redaction,
//! the cache and metering into the store.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use async_trait::async_trait;
use brain::backends::{ChatRequest, ChatResponse, LlmError, LlmProvider, Message, Role, Usage};
use brain::config::{Config, LlmConfig, ProviderConfig, RoleConfig};
use brain::domain::LlmOutcome;
use brain::ids::IncidentId;
use brain::store::Store;
use models::gateway::{CallContext, Gateway, GatewayBuilder};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers from a script, one entry per call; records what it was sent.
struct Scripted {
    name: String,
    script: Mutex<VecDeque<Result<&'static str, LlmError>>>,
    delay: Duration,
    seen: Mutex<Vec<ChatRequest>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Scripted {
    fn new(name: &str, script: Vec<Result<&'static str, LlmError>>) -> Arc<Scripted> {
        Self::slow(name, script, Duration::ZERO)
    }
    fn slow(
        name: &str,
        script: Vec<Result<&'static str, LlmError>>,
        delay: Duration,
    ) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.into(),
            script: Mutex::new(script.into()),
            delay,
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }
    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[async_trait]
impl LlmProvider for Scripted {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn model(&self) -> &str {
        &self.name
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.seen.lock().unwrap().push(req);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let next = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok("default"));
        next.map(|text| ChatResponse {
            content: text.into(),
            tool_calls: vec![],
            usage: Usage {
                input_tokens: 100,
                output_tokens: 10,
            },
            model: self.name.clone(),
        })
    }
}

fn config(roles: &[(&str, &[&str])]) -> LlmConfig {
    let mut c = LlmConfig {
        providers: Default::default(),
        roles: Default::default(),
        ..LlmConfig::default()
    };
    for (role, providers) in roles {
        for p in *providers {
            c.providers.insert(
                (*p).to_owned(),
                ProviderConfig {
                    model: format!("model-{p}"),
                    ..ProviderConfig::default()
                },
            );
        }
        c.roles.insert(
            (*role).to_owned(),
            RoleConfig {
                providers: providers.iter().map(|p| (*p).to_owned()).collect(),
                ..RoleConfig::default()
            },
        );
    }
    c
}

fn build(c: LlmConfig, providers: &[(&str, Arc<Scripted>)]) -> Gateway {
    let mut b = GatewayBuilder::new(c).backoff_base(Duration::from_millis(5));
    for (name, p) in providers {
        b = b.chat(name, p.clone());
    }
    b.build().unwrap()
}

/// A SQLite store in a fresh directory (kept alive by the returned guard).
async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.paths.data_dir = dir.path().to_owned();
    (Store::open(&cfg).await.unwrap(), dir)
}

async fn open_incident(store: &Store) -> IncidentId {
    store
        .create_incident(brain::store::NewIncident {
            org_id: "default".into(),
            title: "checkout 5xx".into(),
            severity: brain::domain::Severity::Critical,
            service: Some("checkout".into()),
            group_key: "g".into(),
        })
        .await
        .unwrap()
        .id
}

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, "hello")],
        ..ChatRequest::default()
    }
}

fn unavailable() -> Result<&'static str, LlmError> {
    Err(LlmError::Unavailable("503 from upstream".into()))
}

#[tokio::test]
async fn falls_back_to_the_next_provider_after_retries_are_spent() {
    let a = Scripted::new("a", vec![unavailable(), unavailable(), unavailable()]);
    let b = Scripted::new("b", vec![Ok("from b")]);
    let g = build(
        config(&[("fast", &["a", "b"])]),
        &[("a", a.clone()), ("b", b.clone())],
    );
    let r = g
        .chat("fast", &CallContext::default(), hello())
        .await
        .unwrap();
    assert_eq!(r.content, "from b");
    assert_eq!(a.calls(), 3, "first try and two retries (llm.retries = 2)");
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn a_retry_on_the_same_provider_succeeds_without_fallback() {
    let a = Scripted::new(
        "a",
        vec![
            Err(LlmError::RateLimited {
                retry_after: Some(Duration::from_millis(20)),
            }),
            Ok("second try"),
        ],
    );
    let b = Scripted::new("b", vec![Ok("from b")]);
    let g = build(
        config(&[("fast", &["a", "b"])]),
        &[("a", a.clone()), ("b", b.clone())],
    );
    let started = std::time::Instant::now();
    let r = g
        .chat("fast", &CallContext::default(), hello())
        .await
        .unwrap();
    assert_eq!(r.content, "second try");
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "Retry-After was honoured"
    );
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn a_rejected_request_is_not_retried_but_the_next_provider_gets_it() {
    // e.g. a bad API key or a prompt too long for this provider's context
    let a = Scripted::new(
        "a",
        vec![Err(LlmError::InvalidRequest("401 bad key".into()))],
    );
    let b = Scripted::new("b", vec![Ok("from b")]);
    let g = build(
        config(&[("fast", &["a", "b"])]),
        &[("a", a.clone()), ("b", b.clone())],
    );
    let r = g
        .chat("fast", &CallContext::default(), hello())
        .await
        .unwrap();
    assert_eq!(r.content, "from b");
    assert_eq!(
        (a.calls(), b.calls()),
        (1, 1),
        "no retry on the provider that refused"
    );
    // With nobody left, the caller sees the refusal itself.
    let only = Scripted::new(
        "a",
        vec![Err(LlmError::InvalidRequest("400 too long".into()))],
    );
    let g = build(config(&[("fast", &["a"])]), &[("a", only)]);
    let e = g
        .chat("fast", &CallContext::default(), hello())
        .await
        .unwrap_err();
    assert!(matches!(e, LlmError::InvalidRequest(_)), "{e}");
}

#[tokio::test]
async fn a_slow_provider_times_out_and_the_next_answers() {
    let mut c = config(&[("strong", &["slow", "quick"])]);
    c.providers.get_mut("slow").unwrap().timeout_secs = 1;
    c.retries = 0;
    let slow = Scripted::slow("slow", vec![Ok("too late")], Duration::from_secs(5));
    let quick = Scripted::new("quick", vec![Ok("in time")]);
    let g = build(c, &[("slow", slow), ("quick", quick)]);
    let started = std::time::Instant::now();
    let r = g
        .chat("strong", &CallContext::default(), hello())
        .await
        .unwrap();
    assert_eq!(r.content, "in time");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_skips_the_provider() {
    let mut c = config(&[("fast", &["flaky", "steady"])]);
    c.retries = 0;
    c.breaker_failures = 3;
    c.breaker_cooldown_secs = 60;
    let flaky = Scripted::new("flaky", (0..10).map(|_| unavailable()).collect());
    let steady = Scripted::new("steady", vec![]);
    let g = build(c, &[("flaky", flaky.clone()), ("steady", steady.clone())]);
    for _ in 0..6 {
        g.chat("fast", &CallContext::default(), hello())
            .await
            .unwrap();
    }
    assert_eq!(
        flaky.calls(),
        3,
        "open after 3 failures: later calls skip it"
    );
    assert_eq!(steady.calls(), 6);
}

#[tokio::test]
async fn concurrency_per_provider_is_limited() {
    let mut c = config(&[("fast", &["one"])]);
    c.providers.get_mut("one").unwrap().max_concurrency = 2;
    let p = Scripted::slow("one", vec![], Duration::from_millis(50));
    let g = Arc::new(build(c, &[("one", p.clone())]));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let g = g.clone();
        calls.spawn(async move { g.chat("fast", &CallContext::default(), hello()).await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(p.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_incident_over_its_token_budget_gets_no_more_calls() {
    let mut c = config(&[("fast", &["a"])]);
    c.incident_token_budget = 250; // each scripted call uses 110
    let a = Scripted::new("a", vec![]);
    let g = build(c, &[("a", a.clone())]);
    let ctx = CallContext {
        incident: Some(IncidentId::new()),
    };
    for _ in 0..3 {
        g.chat("fast", &ctx, hello()).await.unwrap();
    }
    let e = g.chat("fast", &ctx, hello()).await.unwrap_err();
    assert!(matches!(e, LlmError::BudgetExceeded(_)), "{e}");
    assert_eq!(a.calls(), 3);
    // Another incident still has its own budget.
    let other = CallContext {
        incident: Some(IncidentId::new()),
    };
    g.chat("fast", &other, hello()).await.unwrap();
}

/// A restart (a new gateway on the same store) must not hand an incident,
/// or the day, a fresh budget: the counts start from the LLM calls table.
#[tokio::test]
async fn budgets_survive_a_restart_through_the_store() {
    let (store, _dir) = sqlite_store().await;
    let incident = open_incident(&store).await;
    let ctx = CallContext {
        incident: Some(incident),
    };
    let gateway = |incident_budget: u64, daily_budget: u64| {
        let mut c = config(&[("fast", &["a"])]);
        c.incident_token_budget = incident_budget; // each scripted call uses 110
        c.daily_token_budget = daily_budget;
        GatewayBuilder::new(c)
            .chat("a", Scripted::new("a", vec![]))
            .store(store.clone())
            .build()
            .unwrap()
    };

    let first = gateway(250, 0);
    for _ in 0..2 {
        first.chat("fast", &ctx, hello()).await.unwrap();
    }
    drop(first);

    // 220 of 250 spent before the restart: one more call, then no more.
    let second = gateway(250, 0);
    assert_eq!(second.incident_tokens(incident), 0, "nothing counted yet");
    second.chat("fast", &ctx, hello()).await.unwrap();
    assert_eq!(second.incident_tokens(incident), 330);
    let e = second.chat("fast", &ctx, hello()).await.unwrap_err();
    assert!(matches!(e, LlmError::BudgetExceeded(_)), "{e}");
    drop(second);

    // The day's 330 tokens count against a daily budget of 300, even for a
    // call outside any incident.
    let third = gateway(0, 300);
    let e = third
        .chat("fast", &CallContext::default(), hello())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::BudgetExceeded(m) if m.contains("daily")),
        "{e}"
    );
}

#[tokio::test]
async fn prompts_are_redacted_before_any_provider_sees_them() {
    let a = Scripted::new("a", vec![]);
    let g = build(config(&[("fast", &["a"])]), &[("a", a.clone())]);
    let req = ChatRequest {
        messages: vec![Message::new(
            Role::User,
            "deploy failed: AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE db=postgres://app:hunter2@db:5432/orders",
        )],
        ..ChatRequest::default()
    };
    g.chat("fast", &CallContext::default(), req).await.unwrap();
    let seen = a.seen.lock().unwrap()[0].messages[0].content.clone();
    assert!(!seen.contains("AKIAIOSFODNN7EXAMPLE"), "{seen}");
    assert!(!seen.contains("hunter2"), "{seen}");
    assert!(seen.contains("db:5432/orders"), "context kept: {seen}");
}

#[tokio::test]
async fn an_unknown_role_is_a_clear_error() {
    let g = build(
        config(&[("fast", &["a"])]),
        &[("a", Scripted::new("a", vec![]))],
    );
    let e = g
        .chat("creative", &CallContext::default(), hello())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid request: no LLM role `creative` is configured"
    );
}

#[tokio::test]
async fn every_attempt_is_recorded_and_identical_requests_hit_the_cache() {
    let (store, dir) = sqlite_store().await;
    let mut c = config(&[("fast", &["a"])]);
    c.cache = true;
    c.retries = 1;
    c.prices.insert(
        "model-a".into(),
        brain::config::PriceConfig {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        },
    );
    let a = Scripted::new("model-a", vec![unavailable(), Ok("answer")]);
    let g = GatewayBuilder::new(c)
        .backoff_base(Duration::from_millis(5))
        .chat("a", a.clone())
        .store(store.clone())
        .cache_dir(dir.path().join("cache"))
        .build()
        .unwrap();
    let incident = open_incident(&store).await;
    let ctx = CallContext {
        incident: Some(incident),
    };
    assert_eq!(
        g.chat("fast", &ctx, hello()).await.unwrap().content,
        "answer"
    );
    assert_eq!(
        g.chat("fast", &ctx, hello()).await.unwrap().content,
        "answer"
    );
    assert_eq!(
        a.calls(),
        2,
        "the second identical request came from the cache"
    );
    let calls = store.llm_calls_for_incident(incident).await.unwrap();
    let outcomes: Vec<LlmOutcome> = calls.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        vec![LlmOutcome::Error, LlmOutcome::Ok, LlmOutcome::Cached]
    );
    let ok = &calls[1];
    assert_eq!((ok.tokens_in, ok.tokens_out), (100, 10));
    assert!((ok.cost_usd - 120e-6).abs() < 1e-12, "{}", ok.cost_usd);
    assert_eq!(ok.role, "fast");
    store.close().await;
}
