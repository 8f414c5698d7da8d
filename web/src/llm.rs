//! Wiring `[llm]` configuration to concrete model providers.
//!
//! The gateway in `models` knows providers only by trait; this is the one
//! place that picks implementations: candle for `local`, async-openai for
//! `openai`, the AWS SDK for `bedrock`.

use anyhow::Context;
use brain::backends::{Embedder, LlmProvider};
use brain::config::{Config, ProviderConfig, ProviderKind};
use brain::store::Store;
use models::fetch::{Fetcher, KNOWN_MODELS, ModelSpec};
use models::gateway::{Gateway, GatewayBuilder};
use models::local::{LocalChat, LocalChatOptions, LocalEmbedder};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a local provider's model is: a path as given, or a name under
/// `paths.weights_dir`.
pub fn local_model_path(config: &Config, model: &str) -> PathBuf {
    let given = Path::new(model);
    if given.exists() {
        given.to_owned()
    } else {
        config.paths.weights_dir.join(model)
    }
}

/// Providers some role uses.
fn used_providers(config: &Config) -> BTreeSet<&str> {
    config
        .llm
        .roles
        .values()
        .flat_map(|r| r.providers.iter().map(String::as_str))
        .collect()
}

/// Known models that a used local provider names and that are not on disk
/// yet.
pub fn missing_weights(config: &Config) -> Vec<ModelSpec> {
    let fetcher = Fetcher::new(&config.paths.weights_dir);
    let used = used_providers(config);
    KNOWN_MODELS
        .iter()
        .filter(|spec| {
            config.llm.providers.iter().any(|(name, p)| {
                p.kind == ProviderKind::Local
                    && used.contains(name.as_str())
                    && p.model == spec.name
                    && !Path::new(&p.model).exists()
            }) && !fetcher.is_present(spec)
        })
        .copied()
        .collect()
}

/// The models named, or the defaults when no name is given.
pub fn named_models(names: &[String]) -> anyhow::Result<Vec<ModelSpec>> {
    if names.is_empty() {
        return Ok(models::fetch::DEFAULT_MODELS.to_vec());
    }
    names
        .iter()
        .map(|name| {
            KNOWN_MODELS
                .iter()
                .find(|spec| spec.name == name)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<&str> = KNOWN_MODELS.iter().map(|s| s.name).collect();
                    anyhow::anyhow!("unknown model `{name}`; known: {}", known.join(", "))
                })
        })
        .collect()
}

/// Fetch `specs`, printing progress to stderr.
pub fn fetch(config: &Config, specs: &[ModelSpec]) -> anyhow::Result<()> {
    let fetcher = Fetcher::new(&config.paths.weights_dir);
    for spec in specs {
        let mut progress = |line: &str| eprintln!("fetch-models: {line}");
        match fetcher.fetch(spec, &mut progress)? {
            models::fetch::Fetched::AlreadyPresent => {
                eprintln!("fetch-models: {} already present", spec.name);
            }
            models::fetch::Fetched::Fetched => eprintln!(
                "fetch-models: {} ready in {}",
                spec.name,
                fetcher.dir(spec).display()
            ),
        }
    }
    Ok(())
}

/// Build the gateway with every provider a role uses. Local models load
/// on blocking threads (seconds each).
pub async fn gateway(config: &Config, store: Option<Store>) -> anyhow::Result<Gateway> {
    let mut builder =
        GatewayBuilder::new(config.llm.clone()).cache_dir(config.paths.data_dir.join("llm-cache"));
    if let Some(store) = store {
        builder = builder.store(store);
    }
    let embedders: BTreeSet<&str> = config
        .llm
        .roles
        .get("embed")
        .map(|r| r.providers.iter().map(String::as_str).collect())
        .unwrap_or_default();
    for name in used_providers(config) {
        let Some(p) = config.llm.providers.get(name) else {
            continue;
        };
        match provider(config, name, p, embedders.contains(name)).await? {
            Loaded::Chat(c) => builder = builder.chat(name, c),
            Loaded::Embed(e) => builder = builder.embedder(name, e),
        }
    }
    builder.build().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A gateway with only `roles` (and their providers) loaded: the agents
/// need the chat roles, not a second copy of the embedder.
pub async fn gateway_for_roles(
    config: &Config,
    store: Option<Store>,
    roles: &[&str],
) -> anyhow::Result<Gateway> {
    let mut c = config.clone();
    c.llm.roles.retain(|name, _| roles.contains(&name.as_str()));
    if c.llm.roles.values().all(|r| r.providers.is_empty()) {
        anyhow::bail!("llm.roles: none of {roles:?} names a provider");
    }
    gateway(&c, store).await
}

enum Loaded {
    Chat(Arc<dyn LlmProvider>),
    Embed(Arc<dyn Embedder>),
}

/// The provider `name`; `embed` when the `embed` role lists it.
async fn provider(
    config: &Config,
    name: &str,
    p: &ProviderConfig,
    embed: bool,
) -> anyhow::Result<Loaded> {
    let what = format!("llm.providers.{name}");
    let fail = |e: brain::backends::LlmError| anyhow::anyhow!("{what}: {e}");
    match p.kind {
        ProviderKind::Local => {
            let path = local_model_path(config, &p.model);
            let options = LocalChatOptions {
                context_tokens: p.context_tokens,
                ..LocalChatOptions::default()
            };
            let loading = format!("{what}: loading {}", path.display());
            tokio::task::spawn_blocking(move || -> anyhow::Result<Loaded> {
                if embed {
                    Ok(Loaded::Embed(Arc::new(LocalEmbedder::load(&path)?)))
                } else {
                    Ok(Loaded::Chat(Arc::new(LocalChat::load(&path, options)?)))
                }
            })
            .await
            .context("the model loading thread failed")?
            .with_context(|| loading.clone())
            .map_err(|e| {
                if !local_model_path(config, &p.model).exists() {
                    e.context("run `cerebro fetch-models` first")
                } else {
                    e
                }
            })
        }
        ProviderKind::Openai => {
            let cfg = models::openai::OpenAiConfig::from_provider(p);
            Ok(if embed {
                Loaded::Embed(Arc::new(
                    models::openai::OpenAiEmbedder::new(&cfg).map_err(fail)?,
                ))
            } else {
                Loaded::Chat(Arc::new(
                    models::openai::OpenAiChat::new(&cfg).map_err(fail)?,
                ))
            })
        }
        ProviderKind::Bedrock => {
            let mut cfg = models::bedrock::BedrockConfig::new(p.model.clone());
            cfg.region.clone_from(&p.region);
            cfg.endpoint_url.clone_from(&p.endpoint_url);
            cfg.timeout_secs = p.timeout_secs;
            Ok(if embed {
                cfg.embed_model = Some(p.model.clone());
                Loaded::Embed(Arc::new(
                    models::bedrock::BedrockEmbedder::new(&cfg)
                        .await
                        .map_err(fail)?,
                ))
            } else {
                Loaded::Chat(Arc::new(
                    models::bedrock::BedrockChat::new(&cfg)
                        .await
                        .map_err(fail)?,
                ))
            })
        }
    }
}

/// The embedder of the `embed` role: its first provider that loads.
pub async fn embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
    let role = config
        .llm
        .roles
        .get("embed")
        .context("no llm.roles.embed is configured")?;
    let mut last = anyhow::anyhow!("llm.roles.embed lists no provider");
    for name in &role.providers {
        let Some(p) = config.llm.providers.get(name) else {
            continue;
        };
        match provider(config, name, p, true).await {
            Ok(Loaded::Embed(e)) => return Ok(e),
            Ok(Loaded::Chat(_)) => {}
            Err(e) => {
                tracing::warn!(provider = %name, error = %format!("{e:#}"), "embedder did not load");
                last = e;
            }
        }
    }
    Err(last)
}
