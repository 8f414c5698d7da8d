//! The one door to every model.
//!
//! Agents ask for a role (`fast`, `strong`, `embed`), never a provider.
//! For each call the gateway redacts the prompt, checks the token budgets,
//! answers from the cache if asked to, then tries the role's providers in
//! order: retrying rate limits, timeouts and outages with jittered
//! exponential backoff, skipping providers whose circuit is open, holding
//! each provider to its concurrency limit and per-call timeout. Every
//! attempt is metered (LLM-calls table and `/metrics`).

use crate::redact::Redactor;
use brain::backends::{
    ChatRequest, ChatResponse, Embedder, LlmError, LlmProvider, TextSink, Usage,
};
use brain::config::{LlmConfig, PriceConfig};
use brain::domain::{LlmCall, LlmOutcome};
use brain::ids::{IncidentId, LlmCallId};
use brain::store::Store;
use chrono::{NaiveDate, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A provider as the gateway holds it.
struct Slot<P: ?Sized> {
    name: String,
    provider: Arc<P>,
    limit: Semaphore,
    timeout: Duration,
    breaker: Mutex<Breaker>,
}

impl<P: ?Sized> Slot<P> {
    /// The provider `name` with its limits from `[llm.providers.NAME]`.
    fn new(name: String, provider: Arc<P>, c: &LlmConfig) -> Slot<P> {
        let p = c.providers.get(&name);
        Slot {
            limit: Semaphore::new(p.map_or(4, |p| p.max_concurrency.max(1))),
            timeout: Duration::from_secs(p.map_or(120, |p| p.timeout_secs.max(1))),
            breaker: Mutex::new(Breaker {
                failures: 0,
                open_until: None,
                threshold: c.breaker_failures.max(1),
                cooldown: Duration::from_secs(c.breaker_cooldown_secs),
            }),
            name,
            provider,
        }
    }
}

impl<P: ?Sized> Slot<P> {
    /// Run `call` holding one of the provider's concurrency permits, within
    /// its timeout. The timeout covers the wait for a permit too: a caller
    /// should not queue forever behind a stuck provider.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, LlmError>>,
    ) -> Result<T, LlmError> {
        let work = async {
            let _permit = self
                .limit
                .acquire()
                .await
                .map_err(|_| LlmError::Unavailable("provider closed".into()))?;
            call.await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(LlmError::Timeout(self.timeout)))
    }

    /// Whether the circuit lets a call through now.
    fn allows(&self) -> bool {
        self.breaker
            .lock()
            .map(|mut b| b.allows(Instant::now()))
            .unwrap_or(true)
    }

    /// Count a call's result: only outages (retryable errors) open the
    /// circuit; a malformed answer or a refused request is not an outage.
    fn record<T>(&self, result: &Result<T, LlmError>) {
        let outage = matches!(result, Err(e) if e.is_retryable());
        if let Ok(mut b) = self.breaker.lock() {
            b.record(!outage, Instant::now());
        }
    }
}

/// Closed until `threshold` failures in a row; then open for `cooldown`;
/// then one trial call decides (half-open).
#[derive(Debug)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    fn allows(&mut self, now: Instant) -> bool {
        match self.open_until {
            Some(until) if now < until => false,
            Some(_) => {
                // Half-open: let this call through; fail again and it reopens.
                self.open_until = None;
                self.failures = self.threshold.saturating_sub(1);
                true
            }
            None => true,
        }
    }
    fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            self.failures = 0;
            self.open_until = None;
        } else {
            self.failures += 1;
            if self.failures >= self.threshold {
                self.open_until = Some(now + self.cooldown);
            }
        }
    }
}

/// How long a budget lookup in the store may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a call comes from, for budgets and metering.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub incident: Option<IncidentId>,
}

/// Tokens spent per UTC day and per incident. With a store, a day's or an
/// incident's count starts from the LLM calls table the first time it is
/// needed, so a restart does not reset a budget.
#[derive(Debug, Default)]
struct Spent {
    day: Option<NaiveDate>,
    today: u64,
    incidents: HashMap<IncidentId, u64>,
}

#[derive(Debug, Clone)]
struct Route {
    providers: Vec<String>,
    max_tokens: u32,
    temperature: f32,
}

/// The gateway; cheap to share behind an `Arc`.
pub struct Gateway {
    chat: BTreeMap<String, Slot<dyn LlmProvider>>,
    embed: BTreeMap<String, Slot<dyn Embedder>>,
    roles: BTreeMap<String, Route>,
    redactor: Redactor,
    store: Option<Store>,
    prices: BTreeMap<String, PriceConfig>,
    cache_dir: Option<PathBuf>,
    retries: u32,
    incident_budget: u64,
    daily_budget: u64,
    spent: Mutex<Spent>,
    backoff_base: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("chat", &self.chat.keys().collect::<Vec<_>>())
            .field("embed", &self.embed.keys().collect::<Vec<_>>())
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds a gateway from configuration plus the provider objects.
pub struct GatewayBuilder {
    config: LlmConfig,
    chat: Vec<(String, Arc<dyn LlmProvider>)>,
    embed: Vec<(String, Arc<dyn Embedder>)>,
    store: Option<Store>,
    cache_dir: Option<PathBuf>,
    backoff_base: Duration,
}

impl GatewayBuilder {
    pub fn new(config: LlmConfig) -> GatewayBuilder {
        GatewayBuilder {
            config,
            chat: Vec::new(),
            embed: Vec::new(),
            store: None,
            cache_dir: None,
            backoff_base: Duration::from_millis(250),
        }
    }
    /// A chat provider under its `[llm.providers]` name.
    pub fn chat(mut self, name: &str, p: Arc<dyn LlmProvider>) -> Self {
        self.chat.push((name.to_owned(), p));
        self
    }
    pub fn embedder(mut self, name: &str, e: Arc<dyn Embedder>) -> Self {
        self.embed.push((name.to_owned(), e));
        self
    }
    /// Record every call in the store's LLM-calls table.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }
    /// Where cached answers live (used when `llm.cache` is on).
    pub fn cache_dir(mut self, dir: PathBuf) -> Self {
        self.cache_dir = Some(dir);
        self
    }
    /// First retry delay (doubles each retry, with jitter).
    pub fn backoff_base(mut self, d: Duration) -> Self {
        self.backoff_base = d;
        self
    }

    pub fn build(self) -> Result<Gateway, LlmError> {
        let c = &self.config;
        let chat = self
            .chat
            .into_iter()
            .map(|(name, p)| (name.clone(), Slot::new(name, p, c)))
            .collect();
        let embed = self
            .embed
            .into_iter()
            .map(|(name, p)| (name.clone(), Slot::new(name, p, c)))
            .collect();
        let roles = c
            .roles
            .iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    Route {
                        providers: r.providers.clone(),
                        max_tokens: r.max_tokens,
                        temperature: r.temperature,
                    },
                )
            })
            .collect();
        let redactor = Redactor::new(&c.redaction)
            .map_err(|e| LlmError::InvalidRequest(format!("llm.redaction: {e}")))?;
        Ok(Gateway {
            chat,
            embed,
            roles,
            redactor,
            store: self.store,
            prices: c.prices.clone(),
            cache_dir: if c.cache { self.cache_dir } else { None },
            retries: c.retries,
            incident_budget: c.incident_token_budget,
            daily_budget: c.daily_token_budget,
            spent: Mutex::new(Spent::default()),
            backoff_base: self.backoff_base,
        })
    }
}

/// What one attempt produced, for metering.
struct Attempt<'a> {
    role: &'a str,
    provider: &'a str,
    model: &'a str,
    usage: Usage,
    started: Instant,
    outcome: LlmOutcome,
}

fn outcome_of(e: &LlmError) -> LlmOutcome {
    match e {
        LlmError::RateLimited { .. } => LlmOutcome::RateLimited,
        LlmError::Timeout(_) => LlmOutcome::Timeout,
        LlmError::BudgetExceeded(_) => LlmOutcome::BudgetExceeded,
        LlmError::Malformed(_) => LlmOutcome::Malformed,
        _ => LlmOutcome::Error,
    }
}

impl Gateway {
    /// The roles this gateway serves.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// A chat call for `role`.
    pub async fn chat(
        &self,
        role: &str,
        ctx: &CallContext,
        req: ChatRequest,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_inner(role, ctx, req, None, None).await
    }

    /// Like `chat`, streaming text to `on_text`.
    pub async fn chat_stream(
        &self,
        role: &str,
        ctx: &CallContext,
        req: ChatRequest,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_inner(role, ctx, req, Some(on_text), None).await
    }

    /// A chat call to one named provider, bypassing roles (for trying a
    /// configuration by hand); still redacted, budgeted and metered.
    pub async fn chat_with_provider(
        &self,
        provider: &str,
        ctx: &CallContext,
        req: ChatRequest,
        on_text: Option<TextSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_inner("direct", ctx, req, on_text, Some(provider))
            .await
    }

    async fn chat_inner(
        &self,
        role: &str,
        ctx: &CallContext,
        mut req: ChatRequest,
        on_text: Option<TextSink<'_>>,
        only: Option<&str>,
    ) -> Result<ChatResponse, LlmError> {
        let providers: Vec<String> = match only {
            Some(p) => vec![p.to_owned()],
            None => {
                let route = self.roles.get(role).ok_or_else(|| {
                    LlmError::InvalidRequest(format!("no LLM role `{role}` is configured"))
                })?;
                if req.max_tokens.is_none() && route.max_tokens > 0 {
                    req.max_tokens = Some(route.max_tokens);
                }
                if req.temperature.is_none() {
                    req.temperature = Some(route.temperature);
                }
                route.providers.clone()
            }
        };
        self.redact(&mut req);
        self.check_budget(ctx).await?;
        let key = self
            .cache_dir
            .as_ref()
            .map(|_| cache_key(role, &providers, &req));
        if let Some(hit) = key.as_deref().and_then(|k| self.cached(k)) {
            metrics::counter!("cerebro_llm_calls_total", "role" => role.to_owned(), "provider" => "cache", "outcome" => "cached").increment(1);
            self.record(
                ctx,
                &Attempt {
                    role,
                    provider: "cache",
                    model: &hit.model,
                    usage: Usage::default(),
                    started: Instant::now(),
                    outcome: LlmOutcome::Cached,
                },
            )
            .await;
            return Ok(hit);
        }
        let mut last = LlmError::Unavailable(format!("no provider of role `{role}` is available"));
        for name in &providers {
            let Some(slot) = self.chat.get(name) else {
                last = LlmError::Unavailable(format!("provider `{name}` is not loaded"));
                continue;
            };
            match self.try_chat(slot, role, ctx, &req, on_text).await {
                Ok(resp) => {
                    if let (Some(dir), Some(k)) = (&self.cache_dir, &key) {
                        store_cached(dir, k, &resp);
                    }
                    return Ok(resp);
                }
                // Spent: no other provider may take it either. A provider's
                // 4xx (bad key, unknown model, prompt too long for it) is
                // about that provider, so the next one still gets a try.
                Err(e @ LlmError::BudgetExceeded(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(role, provider = %name, error = %e, "LLM provider failed; trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Attempts on one provider: the first and up to `retries` more for
    /// retryable errors, with backoff.
    async fn try_chat(
        &self,
        slot: &Slot<dyn LlmProvider>,
        role: &str,
        ctx: &CallContext,
        req: &ChatRequest,
        on_text: Option<TextSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let mut attempt = 0;
        loop {
            if !slot.allows() {
                return Err(LlmError::Unavailable(format!(
                    "provider `{}` circuit is open after repeated failures",
                    slot.name
                )));
            }
            let started = Instant::now();
            let result = self.call_chat(slot, req, on_text).await;
            slot.record(&result);
            let (usage, outcome) = match &result {
                Ok(r) => (r.usage, LlmOutcome::Ok),
                Err(e) => (Usage::default(), outcome_of(e)),
            };
            self.meter(
                ctx,
                &Attempt {
                    role,
                    provider: &slot.name,
                    model: result
                        .as_ref()
                        .map_or(slot.provider.model(), |r| r.model.as_str()),
                    usage,
                    started,
                    outcome,
                },
            )
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < self.retries => {
                    let wait = match &e {
                        LlmError::RateLimited {
                            retry_after: Some(d),
                        } => (*d).min(Duration::from_secs(30)),
                        _ => self.backoff(attempt),
                    };
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn call_chat(
        &self,
        slot: &Slot<dyn LlmProvider>,
        req: &ChatRequest,
        on_text: Option<TextSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        slot.guarded(async {
            match on_text {
                Some(sink) => slot.provider.chat_stream(req.clone(), sink).await,
                None => slot.provider.chat(req.clone()).await,
            }
        })
        .await
    }

    /// Jittered exponential backoff: base * 2^attempt, times 0.5..1.5.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1u32 << attempt.min(6));
        let jitter: f64 = 0.5 + rand::random::<f64>();
        exp.mul_f64(jitter).min(Duration::from_secs(30))
    }

    /// Embeddings through the `embed` role's providers, in order.
    pub async fn embed(
        &self,
        ctx: &CallContext,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        let route = self
            .roles
            .get("embed")
            .ok_or_else(|| LlmError::InvalidRequest("no LLM role `embed` is configured".into()))?;
        let texts: Vec<String> = texts.iter().map(|t| self.redactor.redact(t).text).collect();
        let mut last = LlmError::Unavailable("no embedder is available".into());
        for name in &route.providers {
            let Some(slot) = self.embed.get(name) else {
                continue;
            };
            if !slot.allows() {
                continue;
            }
            let started = Instant::now();
            let result = slot.guarded(slot.provider.embed(&texts)).await;
            slot.record(&result);
            let tokens: u64 = texts.iter().map(|t| t.len() as u64 / 4).sum();
            self.meter(
                ctx,
                &Attempt {
                    role: "embed",
                    provider: &slot.name,
                    model: slot.provider.model(),
                    usage: Usage {
                        input_tokens: if result.is_ok() { tokens } else { 0 },
                        output_tokens: 0,
                    },
                    started,
                    outcome: result.as_ref().map_or_else(outcome_of, |_| LlmOutcome::Ok),
                },
            )
            .await;
            match result {
                Ok(v) => return Ok(v),
                Err(e @ LlmError::InvalidRequest(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Redact every message in place; counts go to `/metrics`.
    fn redact(&self, req: &mut ChatRequest) {
        for m in &mut req.messages {
            let r = self.redactor.redact(&m.content);
            for (kind, n) in &r.counts {
                metrics::counter!("cerebro_llm_redactions_total", "kind" => kind.to_string())
                    .increment(*n as u64);
            }
            m.content = r.text;
        }
    }

    async fn check_budget(&self, ctx: &CallContext) -> Result<(), LlmError> {
        self.load_spent(ctx).await;
        let Ok(spent) = self.spent.lock() else {
            return Ok(());
        };
        if self.daily_budget > 0 && spent.today >= self.daily_budget {
            return Err(LlmError::BudgetExceeded(format!(
                "the daily budget of {} tokens is spent",
                self.daily_budget
            )));
        }
        if let Some(incident) = ctx.incident
            && self.incident_budget > 0
            && spent.incidents.get(&incident).copied().unwrap_or(0) >= self.incident_budget
        {
            return Err(LlmError::BudgetExceeded(format!(
                "incident {incident} has spent its budget of {} tokens",
                self.incident_budget
            )));
        }
        Ok(())
    }

    /// Start today's count, and the incident's, from the store when this
    /// gateway has not counted them yet. Without a store (or if the store
    /// cannot answer) they start at zero: a budget must not stop every call
    /// because the database is slow.
    async fn load_spent(&self, ctx: &CallContext) {
        let today = Utc::now().date_naive();
        let (need_day, need_incident) = match self.spent.lock() {
            Ok(s) => (
                s.day != Some(today),
                ctx.incident.filter(|i| !s.incidents.contains_key(i)),
            ),
            Err(_) => return,
        };
        if need_day {
            let midnight = today.and_time(chrono::NaiveTime::MIN).and_utc();
            let used = self
                .stored_tokens("today's LLM token use", |s| async move {
                    s.llm_tokens_since(midnight).await
                })
                .await;
            if let Ok(mut s) = self.spent.lock()
                && s.day != Some(today)
            {
                s.day = Some(today);
                s.today = used;
            }
        }
        if let Some(incident) = need_incident {
            let used = self
                .stored_tokens("the incident's LLM token use", |s| async move {
                    s.llm_usage_for_incident(incident)
                        .await
                        .map(|u| u64::try_from(u.tokens_in + u.tokens_out).unwrap_or(0))
                })
                .await;
            if let Ok(mut s) = self.spent.lock() {
                s.incidents.entry(incident).or_insert(used);
            }
        }
    }

    /// A token count read from the store within `STORE_TIMEOUT`; zero
    /// without a store or when it fails (logged).
    async fn stored_tokens<F, Fut>(&self, what: &str, read: F) -> u64
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<u64, brain::store::StoreError>>,
    {
        let Some(store) = self.store.clone() else {
            return 0;
        };
        match tokio::time::timeout(STORE_TIMEOUT, read(store)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading {what} failed");
                0
            }
            Err(_) => {
                tracing::warn!("reading {what} timed out");
                0
            }
        }
    }

    /// Tokens used so far by `incident` (as this gateway counted them).
    pub fn incident_tokens(&self, incident: IncidentId) -> u64 {
        self.spent
            .lock()
            .map(|s| s.incidents.get(&incident).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Count the attempt against the budgets, on `/metrics` and in the store.
    async fn meter(&self, ctx: &CallContext, a: &Attempt<'_>) {
        let tokens = a.usage.input_tokens + a.usage.output_tokens;
        if let Ok(mut spent) = self.spent.lock() {
            spent.today += tokens;
            if let Some(incident) = ctx.incident {
                *spent.incidents.entry(incident).or_default() += tokens;
            }
        }
        let labels = [
            ("role", a.role.to_owned()),
            ("provider", a.provider.to_owned()),
        ];
        metrics::counter!("cerebro_llm_calls_total", "role" => a.role.to_owned(), "provider" => a.provider.to_owned(), "outcome" => a.outcome.as_str().to_owned()).increment(1);
        metrics::counter!("cerebro_llm_tokens_total", &labels[..]).increment(tokens);
        metrics::histogram!("cerebro_llm_call_seconds", &labels[..])
            .record(a.started.elapsed().as_secs_f64());
        self.record(ctx, a).await;
    }

    async fn record(&self, ctx: &CallContext, a: &Attempt<'_>) {
        let price = self.prices.get(a.model).copied().unwrap_or_default();
        let cost = (a.usage.input_tokens as f64 * price.input_per_mtok
            + a.usage.output_tokens as f64 * price.output_per_mtok)
            / 1e6;
        if cost > 0.0 {
            metrics::counter!("cerebro_llm_cost_micro_usd_total", "provider" => a.provider.to_owned())
                .increment((cost * 1e6) as u64);
        }
        let Some(store) = &self.store else { return };
        let call = LlmCall {
            id: LlmCallId::new(),
            incident_id: ctx.incident,
            role: a.role.to_owned(),
            provider: a.provider.to_owned(),
            model: a.model.to_owned(),
            tokens_in: a.usage.input_tokens as i64,
            tokens_out: a.usage.output_tokens as i64,
            cost_usd: cost,
            latency_ms: a.started.elapsed().as_millis() as i64,
            outcome: a.outcome,
            at: Utc::now(),
        };
        if let Err(e) = store.record_llm_call(&call).await {
            tracing::warn!(error = %e, "recording an LLM call failed");
        }
    }

    fn cached(&self, key: &str) -> Option<ChatResponse> {
        let dir = self.cache_dir.as_ref()?;
        let text = std::fs::read_to_string(dir.join(format!("{key}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The cache key: everything that decides the answer.
fn cache_key(role: &str, providers: &[String], req: &ChatRequest) -> String {
    let mut h = Sha256::new();
    h.update(role.as_bytes());
    for p in providers {
        h.update([0]);
        h.update(p.as_bytes());
    }
    h.update([0]);
    h.update(serde_json::to_vec(req).unwrap_or_default());
    hex::encode(h.finalize())
}

fn store_cached(dir: &std::path::Path, key: &str, resp: &ChatResponse) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{key}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(resp).unwrap_or_default())?;
        std::fs::rename(&tmp, dir.join(format!("{key}.json")))
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, "writing the LLM cache failed");
    }
}
