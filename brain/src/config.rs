//! Configuration: built-in defaults, then an optional TOML file, then
//! `CEREBRO__SECTION__KEY` environment variables. Loaded once in `main` and
//! passed down as a value. Unknown keys and wrong types are errors that name
//! the file and line, or the environment variable.

use crate::policy::PolicyConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub paths: PathsConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub policy: PolicyConfig,
    pub ingest: IngestConfig,
    pub llm: LlmConfig,
    pub tools: ToolsConfig,
    pub knowledge: KnowledgeConfig,
    pub agents: AgentsConfig,
    pub approvals: ApprovalsConfig,
    pub slack: SlackConfig,
    pub pagerduty: PagerDutyConfig,
}

/// `[slack]`: the approval bot. Off until `bot_token` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// The bot's OAuth token (`xoxb-...`), scope `chat:write`.
    pub bot_token: Option<Secret>,
    /// Verifies `POST /slack/interactions` and `/slack/commands`
    /// (X-Slack-Signature); without it both answer 404.
    pub signing_secret: Option<Secret>,
    /// An app-level token (`xapp-...`, scope `connections:write`): clicks
    /// and commands then arrive over Socket Mode, a WebSocket cerebro opens
    /// to Slack, so no public endpoint (and no signing secret) is needed.
    pub app_token: Option<Secret>,
    /// Where approval requests go unless `channels` names the incident's
    /// service.
    pub default_channel: Option<String>,
    /// Channel per service (the incident's `service`).
    pub channels: std::collections::BTreeMap<String, String>,
    /// Slack's Web API; a stand-in in tests.
    pub api_url: String,
    pub timeout_secs: u64,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            bot_token: None,
            signing_secret: None,
            app_token: None,
            default_channel: None,
            channels: std::collections::BTreeMap::new(),
            api_url: "https://slack.com/api".into(),
            timeout_secs: 10,
        }
    }
}

impl SlackConfig {
    pub fn enabled(&self) -> bool {
        self.bot_token.is_some()
    }
}

/// `[pagerduty]`: the round trip for incidents PagerDuty triggered (notes,
/// acknowledge, resolve over the REST API) and paging a human on
/// escalation (Events API v2). Off until `api_token` or `routing_key` is
/// set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerDutyConfig {
    /// A REST API key, for incidents that came from PagerDuty.
    pub api_token: Option<Secret>,
    /// The `From` header PagerDuty requires on REST writes: a user's email.
    pub from_email: Option<String>,
    /// An Events API v2 integration key: escalations of incidents that did
    /// not come from PagerDuty trigger an alert on it.
    pub routing_key: Option<Secret>,
    /// On escalation, re-assign PagerDuty's incident to this escalation
    /// policy (its id, `P...`), which pages its first level.
    pub escalation_policy: Option<String>,
    pub add_notes: bool,
    pub acknowledge: bool,
    pub resolve: bool,
    pub escalate: bool,
    pub api_url: String,
    pub events_url: String,
    pub timeout_secs: u64,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        PagerDutyConfig {
            api_token: None,
            from_email: None,
            routing_key: None,
            escalation_policy: None,
            add_notes: true,
            acknowledge: true,
            resolve: true,
            escalate: true,
            api_url: "https://api.pagerduty.com".into(),
            events_url: "https://events.pagerduty.com/v2/enqueue".into(),
            timeout_secs: 10,
        }
    }
}

impl PagerDutyConfig {
    pub fn enabled(&self) -> bool {
        self.api_token.is_some() || self.routing_key.is_some()
    }
}

/// `[approvals]`: who may decide held actions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Each approver's name and bearer token. With none, nobody can
    /// approve over HTTP and held actions wait until they expire.
    pub approvers: Vec<Approver>,
    /// A high-risk action on a protected target needs two different
    /// approvers.
    pub four_eyes: bool,
    /// Remind the notifiers of an unanswered approval this many minutes
    /// before it expires (0: no reminder).
    pub remind_before_minutes: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            approvers: Vec::new(),
            four_eyes: false,
            remind_before_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    pub name: String,
    pub token: Secret,
    /// Their Slack user id (`U...`): their clicks on Approve / Reject and
    /// `/cerebro approve` count as theirs. Anyone else's are refused.
    #[serde(default)]
    pub slack_user_id: Option<String>,
}

/// `[agents]`: the orchestrator's workers and per-incident budgets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Work new incidents: investigate, diagnose, propose (and run what
    /// the policy lets run without approval).
    pub enabled: bool,
    /// How long a worker's claim on an incident lasts before another
    /// worker (this replica or another) may resume it.
    pub lease_secs: u64,
    /// How often idle workers look for new incidents.
    pub poll_secs: u64,
    /// Budgets per incident; running out escalates with what was found.
    pub max_tool_calls: u32,
    pub max_llm_tokens: u64,
    pub max_wall_secs: u64,
    /// How long to watch an executed action's target recover before
    /// escalating (0: look once).
    pub verify_secs: u64,
    /// Use the `fast` role's model: a few model-directed reads when the
    /// diagnosis is unsure, a pick on close calls, and a short summary
    /// once the proposal is out. Off, or no model loads: analyzers and
    /// retrieval alone.
    pub llm: bool,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            enabled: true,
            lease_secs: 900,
            poll_secs: 2,
            max_tool_calls: 80,
            max_llm_tokens: 20_000,
            max_wall_secs: 300,
            verify_secs: 300,
            llm: true,
        }
    }
}

/// Where the knowledge base keeps its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VectorBackend {
    /// Embedded qdrant-edge under `paths.data_dir/vectors`.
    QdrantEdge,
    /// A Qdrant server or cluster at `knowledge.qdrant_url`.
    Qdrant,
}

/// `[knowledge]`: runbooks, postmortems and documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    pub vector_store: VectorBackend,
    /// gRPC URL of the Qdrant server, e.g. `http://qdrant:6334`.
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<Secret>,
    pub collection: String,
    /// Copies of each shard when the collection is created on a cluster.
    pub replication_factor: u32,
    pub timeout_secs: u64,
    /// Index `paths.runbooks_dir` at startup (unchanged files are skipped).
    pub index_runbooks: bool,
    /// Index each resolved incident as a postmortem.
    pub remember_incidents: bool,
    /// Largest document upload, bytes.
    pub max_upload_bytes: usize,
    /// Below this cosine similarity `/ask` says it found nothing.
    pub min_relevance: f32,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            vector_store: VectorBackend::QdrantEdge,
            qdrant_url: None,
            qdrant_api_key: None,
            collection: "knowledge".into(),
            replication_factor: 1,
            timeout_secs: 10,
            index_runbooks: true,
            remember_incidents: true,
            max_upload_bytes: 20 * 1024 * 1024,
            min_relevance: 0.35,
        }
    }
}

/// `[tools]`: the tool backends and MCP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Bearer token MCP clients must send to `/mcp`. Without one, `/mcp`
    /// answers 404: the tools are never served unauthenticated.
    pub mcp_token: Option<Secret>,
    /// Base URL of Prometheus for the live Prometheus tools.
    pub prometheus_url: Option<String>,
    /// The Kubernetes API for the live Kubernetes tools: `infer`
    /// (`$KUBECONFIG`, `~/.kube/config` or the in-cluster account), a
    /// kubeconfig path, or an API server URL without credentials.
    pub kubernetes: Option<String>,
    /// Turn on the live AWS tools (the standard credential chain).
    pub aws: bool,
    /// AWS region; the credential chain's when unset.
    pub aws_region: Option<String>,
    /// AWS endpoint override, e.g. an emulator on loopback.
    pub aws_endpoint_url: Option<String>,
    /// External MCP servers whose tools join the registry as `name__tool`.
    pub mcp_servers: std::collections::BTreeMap<String, McpServerConfig>,
    /// How long an approval asked for by a tool call stays open, minutes.
    pub approval_ttl_minutes: u64,
    /// A scenario file (the eval format) whose `world` answers every tool
    /// instead of live systems, actions included: for trying cerebro, and
    /// for tests, without a cluster.
    pub replay: Option<PathBuf>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            mcp_token: None,
            prometheus_url: None,
            kubernetes: None,
            aws: false,
            aws_region: None,
            aws_endpoint_url: None,
            mcp_servers: Default::default(),
            approval_ttl_minutes: 60,
            replay: None,
        }
    }
}

/// `[tools.mcp_servers.NAME]`: an external MCP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    #[serde(flatten)]
    pub endpoint: McpEndpoint,
    /// Risk class of all its tools; `high` (every call approved) unless
    /// you know they only read.
    #[serde(default = "high_risk")]
    pub risk: crate::vocabulary::Risk,
    /// Per-call timeout, seconds.
    #[serde(default = "mcp_timeout_secs")]
    pub timeout_secs: u64,
}

fn high_risk() -> crate::vocabulary::Risk {
    crate::vocabulary::Risk::High
}

fn mcp_timeout_secs() -> u64 {
    30
}

/// How to reach an external MCP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum McpEndpoint {
    /// A command speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
    /// A streamable HTTP endpoint, with an optional bearer token.
    Http {
        url: String,
        #[serde(default)]
        token: Option<Secret>,
    },
}

/// `[llm]`: model providers, the roles agents ask for, budgets, redaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Named providers, e.g. `[llm.providers.qwen]`.
    pub providers: std::collections::BTreeMap<String, ProviderConfig>,
    /// Named roles (`fast`, `strong`, `embed`), each an ordered provider list.
    pub roles: std::collections::BTreeMap<String, RoleConfig>,
    /// Tokens (in + out) one incident may spend; 0 = no limit.
    pub incident_token_budget: u64,
    /// Tokens all calls together may spend per UTC day; 0 = no limit.
    pub daily_token_budget: u64,
    /// Prices in USD per million tokens, by model name.
    pub prices: std::collections::BTreeMap<String, PriceConfig>,
    /// Answer identical requests from a cache (on in evals).
    pub cache: bool,
    pub redaction: RedactionConfig,
    /// Consecutive failures that open a provider's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit stays open.
    pub breaker_cooldown_secs: u64,
    /// Retries on the same provider for rate limits, timeouts and outages.
    pub retries: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        let local = |model: &str| ProviderConfig {
            kind: ProviderKind::Local,
            model: model.into(),
            ..ProviderConfig::default()
        };
        let role = |providers: &[&str], max_tokens: u32| RoleConfig {
            providers: providers.iter().map(|p| (*p).to_owned()).collect(),
            max_tokens,
            temperature: 0.0,
        };
        LlmConfig {
            providers: [
                ("qwen".to_owned(), local("qwen2.5-coder-0.5b-instruct")),
                ("smollm".to_owned(), local("smollm2-135m-instruct")),
                ("minilm".to_owned(), local("all-minilm-l6-v2")),
            ]
            .into(),
            roles: [
                ("fast".to_owned(), role(&["qwen", "smollm"], 128)),
                ("strong".to_owned(), role(&["qwen", "smollm"], 512)),
                ("embed".to_owned(), role(&["minilm"], 0)),
            ]
            .into(),
            incident_token_budget: 200_000,
            daily_token_budget: 5_000_000,
            prices: Default::default(),
            cache: false,
            redaction: RedactionConfig::default(),
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
            retries: 2,
        }
    }
}

/// Which implementation a provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// candle on the CPU; `model` is a name under `paths.weights_dir`, or a
    /// path to a GGUF file or model directory.
    #[default]
    Local,
    /// Any OpenAI-compatible server.
    Openai,
    /// AWS Bedrock Runtime (standard AWS credential chain).
    Bedrock,
}

/// `[llm.providers.NAME]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub model: String,
    /// openai: the server's base URL, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: Option<String>,
    /// openai: the API key (also read from `OPENAI_API_KEY` if unset).
    pub api_key: Option<Secret>,
    pub organization: Option<String>,
    /// bedrock: region and optional endpoint override.
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Per-call timeout.
    pub timeout_secs: u64,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// local: prompt + answer limit in tokens.
    pub context_tokens: usize,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            kind: ProviderKind::Local,
            model: String::new(),
            base_url: None,
            api_key: None,
            organization: None,
            region: None,
            endpoint_url: None,
            timeout_secs: 120,
            max_concurrency: 4,
            context_tokens: 4096,
        }
    }
}

/// `[llm.roles.NAME]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    /// Tried in order: on an error, timeout or rate limit, the next one.
    pub providers: Vec<String>,
    /// Answer length when the caller does not say; 0 = the provider's.
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Default for RoleConfig {
    fn default() -> Self {
        RoleConfig {
            providers: Vec::new(),
            max_tokens: 256,
            temperature: 0.0,
        }
    }
}

/// `[llm.prices.MODEL]`: USD per million tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceConfig {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// `[llm.redaction]`: what is removed from every prompt before it leaves
/// the process (the same for every provider, local ones included), beyond
/// the secrets that are always removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Replace email addresses with `[REDACTED:email]`.
    pub emails: bool,
    /// Replace IPv4 addresses with `[REDACTED:ipv4]`; off by default because
    /// addresses are often what an incident is about.
    pub ip_addresses: bool,
    /// Extra regular expressions; each match becomes `[REDACTED:custom]`
    /// (or only its `(?P<secret>...)` group).
    pub extra_patterns: Vec<String>,
    /// Extra key names whose values are secrets in `key=value`, `"key": v`
    /// and `key: v` text (matched case-insensitively as the end of a key;
    /// letters, digits, `_`, `-` and `.` only).
    pub extra_keys: Vec<String>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            emails: true,
            ip_addresses: false,
            extra_patterns: Vec::new(),
            extra_keys: Vec::new(),
        }
    }
}

/// `[ingest]`: alert intake, grouping and webhook secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// An alert joins its service's active incident if that was updated this recently.
    pub group_window_secs: u64,
    /// A resolved incident reopens when its group fires again this soon.
    pub reopen_grace_secs: u64,
    /// A webhook delivery seen this recently is a redelivery and changes nothing.
    pub redelivery_window_secs: u64,
    /// Changes to the service this long before an alert are attached as suspects.
    pub change_lookback_secs: u64,
    /// Request bodies waiting to commit, at most; beyond it requests get 429.
    pub queue_bytes: usize,
    /// Requests committed in one transaction, at most.
    pub max_batch: usize,
    /// Ingestion requests being read or committed at once, at most; beyond
    /// it requests get 429 before their body is read.
    pub max_in_flight: usize,
    /// Secrets for `X-PagerDuty-Signature`; several during a rotation.
    pub pagerduty_secrets: Vec<Secret>,
    /// Secrets for GitHub's `X-Hub-Signature-256`.
    pub github_secrets: Vec<Secret>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            group_window_secs: 900,
            reopen_grace_secs: 1800,
            redelivery_window_secs: 600,
            change_lookback_secs: 7200,
            queue_bytes: 64 * 1024 * 1024,
            max_batch: 512,
            max_in_flight: 1024,
            pagerduty_secrets: Vec::new(),
            github_secrets: Vec::new(),
        }
    }
}

/// A secret value: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

/// `[server]`: the HTTP service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// A request that takes longer is answered 503.
    pub request_timeout_secs: u64,
    /// Larger bodies are answered 413.
    pub body_limit_bytes: usize,
    /// On SIGTERM, in-flight requests get this long to finish.
    pub shutdown_grace_secs: u64,
    /// Open connections at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Origins allowed by CORS; empty means CORS is off.
    pub cors_allowed_origins: Vec<String>,
    /// The URL people use to reach the console, printed at start and used in links.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_secs: 25,
            max_connections: 4096,
            cors_allowed_origins: Vec::new(),
            public_url: None,
        }
    }
}

/// `[paths]`: where embedded data lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// The SQLite file and the embedded vector index go here.
    pub data_dir: PathBuf,
    /// Model weights fetched by `cerebro fetch-models`.
    pub weights_dir: PathBuf,
    /// Runbooks indexed at start.
    pub runbooks_dir: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            weights_dir: PathBuf::from("./models/weights"),
            runbooks_dir: PathBuf::from("./runbooks"),
        }
    }
}

/// `[database]`: SQLite (default) or PostgreSQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://…`; unset means `sqlite://{data_dir}/cerebro.db`.
    pub url: Option<DatabaseUrl>,
    /// PostgreSQL schema to use (created if missing); unset means the default search path.
    pub schema: Option<String>,
    pub max_connections: u32,
    /// Connecting, and waiting for a pooled connection, time out after this.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            schema: None,
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

/// A database URL: a secret, since it may carry a password. Printed with the
/// password masked.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `****`, safe for logs and errors.
    pub fn masked(&self) -> String {
        mask_url_password(self.expose())
    }

    pub fn is_postgres(&self) -> bool {
        let u = self.expose();
        u.starts_with("postgres://") || u.starts_with("postgresql://")
    }

    pub fn is_sqlite(&self) -> bool {
        self.expose().starts_with("sqlite:")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// Replace the password of `scheme://user:password@host…` with `****`.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}://{}:****{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// `[log]`: log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info,cerebro=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info,qdrant_edge=error".into(),
        }
    }
}

/// Human-readable text or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Loading or checking the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

const ENV_PREFIX: &str = "CEREBRO__";

impl Config {
    /// Defaults, then `file` if given, then the `CEREBRO__…` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Self::load_str(&text, file.unwrap_or(Path::new("(defaults)")), env)
    }

    /// Like [`Config::load`], with the file's text given; `origin` names it in errors.
    pub fn load_str(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file_error = |e: toml::de::Error| ConfigError::File {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        };
        // Parse straight into the typed config first: toml's errors then
        // carry the line, column and key.
        toml::from_str::<Config>(text).map_err(file_error)?;
        let mut table = toml::from_str::<toml::Table>(text).map_err(file_error)?;

        let mut from_env: Vec<(Vec<String>, String)> = Vec::new();
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Env {
                    var,
                    message: "expected CEREBRO__SECTION__KEY".into(),
                });
            }
            insert_path(&mut table, &path, env_value(&raw)).map_err(|message| {
                ConfigError::Env {
                    var: var.clone(),
                    message,
                }
            })?;
            from_env.push((path, var));
        }

        let de = toml::Value::Table(table);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().to_string();
            // Name the variable that set the offending key, or one that opened
            // a section where an unknown key was found.
            match from_env
                .iter()
                .find(|(p, _)| p.join(".") == key || key.starts_with(&format!("{}.", p.join("."))))
                .or_else(|| from_env.iter().find(|(p, _)| p.join(".").starts_with(&key)))
            {
                Some((_, var)) => ConfigError::Env {
                    var: var.clone(),
                    message: format!("{key}: {message}"),
                },
                None => ConfigError::Invalid { key, message },
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if self.server.request_timeout_secs == 0 {
            return Err(invalid("server.request_timeout_secs", "must be at least 1"));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(invalid("server.body_limit_bytes", "must be at least 1024"));
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.database.connect_timeout_secs == 0 {
            return Err(invalid(
                "database.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.database.url
            && !url.is_postgres()
            && !url.is_sqlite()
        {
            return Err(ConfigError::Invalid {
                key: "database.url".into(),
                message: format!("{} is neither sqlite:// nor postgres://", url.masked()),
            });
        }
        if let Some(schema) = &self.database.schema
            && (schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(invalid(
                "database.schema",
                "must be letters, digits and underscores",
            ));
        }
        if self.ingest.queue_bytes < 64 * 1024 {
            return Err(invalid("ingest.queue_bytes", "must be at least 65536"));
        }
        if self.ingest.max_in_flight == 0 {
            return Err(invalid("ingest.max_in_flight", "must be at least 1"));
        }
        if self.ingest.max_batch == 0 {
            return Err(invalid("ingest.max_batch", "must be at least 1"));
        }
        crate::policy::Policy::new(self.policy.clone()).map_err(|e| ConfigError::Invalid {
            key: "policy.risk_overrides".into(),
            message: e.to_string(),
        })?;
        self.validate_knowledge()?;
        self.validate_agents()?;
        self.validate_approvals()?;
        self.validate_notifiers()?;
        self.validate_llm()
    }

    /// Slack needs somewhere to post and a way to receive clicks it can
    /// trust (a signing secret, or Socket Mode's app token); PagerDuty's
    /// REST writes need a `From`.
    fn validate_notifiers(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        let s = &self.slack;
        if s.enabled() {
            if s.default_channel.is_none() && s.channels.is_empty() {
                return Err(invalid(
                    "slack.default_channel",
                    "is needed with slack.bot_token (or slack.channels per service)",
                ));
            }
            if s.signing_secret.is_none() && s.app_token.is_none() {
                return Err(invalid(
                    "slack.signing_secret",
                    "is needed with slack.bot_token (or slack.app_token for Socket Mode), or nobody's click could be trusted",
                ));
            }
        }
        // A bot token here would only fail later, at Slack, as
        // not_allowed_token_type; say so at start instead.
        if s.app_token
            .as_ref()
            .is_some_and(|t| !t.expose().starts_with("xapp-"))
        {
            return Err(invalid(
                "slack.app_token",
                "must be an app-level token (xapp-...) with the connections:write scope",
            ));
        }
        for (key, v) in [
            ("slack.timeout_secs", s.timeout_secs),
            ("pagerduty.timeout_secs", self.pagerduty.timeout_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let p = &self.pagerduty;
        if p.api_token.is_some() && p.from_email.as_deref().is_none_or(|e| !e.contains('@')) {
            return Err(invalid(
                "pagerduty.from_email",
                "PagerDuty's REST API needs the email of a user as `From`",
            ));
        }
        Ok(())
    }

    /// A Qdrant server has a URL; limits are positive.
    fn validate_approvals(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for (i, a) in self.approvals.approvers.iter().enumerate() {
            let invalid = |field: &str, message: &str| ConfigError::Invalid {
                key: format!("approvals.approvers[{i}].{field}"),
                message: message.into(),
            };
            if a.name.trim().is_empty() {
                return Err(invalid("name", "must not be empty"));
            }
            if a.token.expose().len() < 16 {
                return Err(invalid("token", "must be at least 16 characters"));
            }
            if !names.insert(a.name.as_str()) {
                return Err(invalid("name", "is listed twice"));
            }
        }
        Ok(())
    }

    fn validate_agents(&self) -> Result<(), ConfigError> {
        let a = &self.agents;
        for (key, v) in [
            ("agents.lease_secs", a.lease_secs),
            ("agents.poll_secs", a.poll_secs),
            ("agents.max_wall_secs", a.max_wall_secs),
            ("agents.max_tool_calls", u64::from(a.max_tool_calls)),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        if a.lease_secs <= a.max_wall_secs.saturating_add(a.verify_secs) {
            return Err(ConfigError::Invalid {
                key: "agents.lease_secs".into(),
                message: "must be longer than agents.max_wall_secs + agents.verify_secs, or a slow incident is taken over while it is still worked".into(),
            });
        }
        Ok(())
    }

    fn validate_knowledge(&self) -> Result<(), ConfigError> {
        let k = &self.knowledge;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if k.vector_store == VectorBackend::Qdrant && k.qdrant_url.is_none() {
            return Err(invalid(
                "knowledge.qdrant_url",
                "vector_store = \"qdrant\" needs the server's gRPC URL",
            ));
        }
        if k.collection.is_empty()
            || !k
                .collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "knowledge.collection",
                "letters, digits, `-` and `_` only",
            ));
        }
        if k.timeout_secs == 0 {
            return Err(invalid("knowledge.timeout_secs", "must be at least 1"));
        }
        if k.max_upload_bytes == 0 {
            return Err(invalid("knowledge.max_upload_bytes", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&k.min_relevance) {
            return Err(invalid(
                "knowledge.min_relevance",
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }

    /// Every role names providers that exist; providers have what their
    /// kind needs.
    fn validate_llm(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { key, message };
        for (name, role) in &self.llm.roles {
            if role.providers.is_empty() {
                return Err(invalid(
                    format!("llm.roles.{name}.providers"),
                    "names no provider".into(),
                ));
            }
            for p in &role.providers {
                if !self.llm.providers.contains_key(p) {
                    return Err(invalid(
                        format!("llm.roles.{name}.providers"),
                        format!("`{p}` is not a provider in [llm.providers]"),
                    ));
                }
            }
        }
        for (name, p) in &self.llm.providers {
            if p.model.is_empty() {
                return Err(invalid(
                    format!("llm.providers.{name}.model"),
                    "must be set".into(),
                ));
            }
            if p.timeout_secs == 0 || p.max_concurrency == 0 {
                return Err(invalid(
                    format!("llm.providers.{name}"),
                    "timeout_secs and max_concurrency must be at least 1".into(),
                ));
            }
            if p.kind == ProviderKind::Openai && p.base_url.is_none() {
                return Err(invalid(
                    format!("llm.providers.{name}.base_url"),
                    "an openai provider needs base_url (e.g. https://api.openai.com/v1)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> DatabaseUrl {
        match &self.database.url {
            Some(u) => u.clone(),
            None => DatabaseUrl::new(format!(
                "sqlite://{}",
                self.paths.data_dir.join("cerebro.db").display()
            )),
        }
    }

    /// The ingestion windows as the store wants them.
    pub fn ingest_settings(&self) -> crate::store::IngestSettings {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        crate::store::IngestSettings {
            group_window: secs(self.ingest.group_window_secs),
            reopen_grace: secs(self.ingest.reopen_grace_secs),
            redelivery_window: secs(self.ingest.redelivery_window_secs),
            change_lookback: secs(self.ingest.change_lookback_secs),
        }
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// An environment value as TOML would read it (`8080`, `true`, `["a"]`), or
/// else as a plain string.
fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => match t.remove("v") {
            Some(v) if !v.is_table() => v,
            _ => toml::Value::String(raw.to_owned()),
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for (i, seg) in parents.iter().enumerate() {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("{} is not a section", path[..=i].join(".")))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn defaults_are_embedded_sqlite_on_loopback_8080() {
        let c = Config::load(None, env(&[])).expect("defaults load");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url().expose(), "sqlite://./data/cerebro.db");
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\nrequest_timeout_secs = 7\n");
        let c = Config::load(
            Some(f.path()),
            env(&[
                ("CEREBRO__SERVER__LISTEN", "127.0.0.1:9100"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("load");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.server.request_timeout_secs, 7);
        assert_eq!(c.server.body_limit_bytes, 1024 * 1024);
    }

    #[test]
    fn an_unknown_key_in_the_file_names_the_file_the_line_and_the_key() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\nlisen = \"x\"\n");
        let msg = Config::load(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("lisen"), "{msg}");
    }

    #[test]
    fn a_wrong_type_from_the_environment_names_the_variable() {
        let msg = Config::load(
            None,
            env(&[("CEREBRO__SERVER__REQUEST_TIMEOUT_SECS", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("CEREBRO__SERVER__REQUEST_TIMEOUT_SECS"),
            "{msg}"
        );
        assert!(msg.contains("server.request_timeout_secs"), "{msg}");
    }

    #[test]
    fn an_unknown_key_from_the_environment_names_the_variable() {
        let msg = Config::load(None, env(&[("CEREBRO__DATABASE__URLL", "x")]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("CEREBRO__DATABASE__URLL"), "{msg}");
    }

    #[test]
    fn a_database_url_of_another_kind_is_rejected_naming_the_key() {
        let msg = Config::load(
            None,
            env(&[("CEREBRO__DATABASE__URL", "mysql://u:pw@h/db")]),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("database.url"), "{msg}");
        assert!(!msg.contains("pw"), "password leaked: {msg}");
    }

    #[test]
    fn a_slack_bot_needs_a_channel_and_a_signing_secret_and_pagerduty_a_from() {
        let err = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
        let msg = err(&[("CEREBRO__SLACK__BOT_TOKEN", "xoxb-1")]);
        assert!(msg.contains("slack.default_channel"), "{msg}");
        let msg = err(&[
            ("CEREBRO__SLACK__BOT_TOKEN", "xoxb-1"),
            ("CEREBRO__SLACK__DEFAULT_CHANNEL", "C1"),
        ]);
        assert!(msg.contains("slack.signing_secret"), "{msg}");
        let msg = err(&[("CEREBRO__PAGERDUTY__API_TOKEN", "pd-rest")]);
        assert!(msg.contains("pagerduty.from_email"), "{msg}");
        let c = Config::load(
            None,
            env(&[
                ("CEREBRO__SLACK__BOT_TOKEN", "xoxb-1"),
                ("CEREBRO__SLACK__DEFAULT_CHANNEL", "C1"),
                ("CEREBRO__SLACK__SIGNING_SECRET", "s3cret"),
            ]),
        )
        .expect("load");
        assert!(c.slack.enabled() && !c.pagerduty.enabled());
        assert!(
            !c.to_masked_toml().contains("xoxb-1"),
            "the token is masked"
        );
    }

    #[test]
    fn a_slack_bot_on_socket_mode_needs_no_signing_secret_but_an_app_level_token() {
        let bot = [
            ("CEREBRO__SLACK__BOT_TOKEN", "xoxb-1"),
            ("CEREBRO__SLACK__DEFAULT_CHANNEL", "C1"),
        ];
        let with = |token: &'static str| {
            let mut vars = bot.to_vec();
            vars.push(("CEREBRO__SLACK__APP_TOKEN", token));
            Config::load(None, env(&vars))
        };
        let c = with("xapp-1-A0CEREBRO-s3cret").expect("load");
        assert!(c.slack.signing_secret.is_none());
        assert_eq!(
            c.slack.app_token.as_ref().map(Secret::expose),
            Some("xapp-1-A0CEREBRO-s3cret")
        );
        assert!(
            !c.to_masked_toml().contains("s3cret"),
            "the token is masked"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let msg = with("xoxb-2").unwrap_err().to_string();
        assert!(
            msg.contains("slack.app_token") && msg.contains("xapp-"),
            "{msg}"
        );
        assert!(!msg.contains("xoxb-2"), "the token leaked: {msg}");
        // Without either, clicks could not be received or trusted.
        let msg = Config::load(None, env(&bot)).unwrap_err().to_string();
        assert!(
            msg.contains("slack.signing_secret") && msg.contains("slack.app_token"),
            "{msg}"
        );
    }

    #[test]
    fn passwords_in_urls_are_masked_when_printed() {
        assert_eq!(
            mask_url_password("postgres://cerebro:s3cret@db:5432/x?sslmode=require"),
            "postgres://cerebro:****@db:5432/x?sslmode=require"
        );
        assert_eq!(
            mask_url_password("sqlite://./data/c.db"),
            "sqlite://./data/c.db"
        );
        let c = Config::load(
            None,
            env(&[("CEREBRO__DATABASE__URL", "postgres://u:hunter2@h/db")]),
        )
        .expect("load");
        let shown = c.to_masked_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = Config::load(
            None,
            env(&[("CEREBRO__INGEST__PAGERDUTY_SECRETS", "[\"pd-s3cret\"]")]),
        )
        .expect("load");
        assert_eq!(c.ingest.pagerduty_secrets[0].expose(), "pd-s3cret");
        assert!(!c.to_masked_toml().contains("pd-s3cret"));
        assert!(!format!("{c:?}").contains("pd-s3cret"));
    }
}
