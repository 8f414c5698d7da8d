//! Slack's requests: button clicks (`POST /slack/interactions`) and the
//! `/cerebro` command (`POST /slack/commands`). Each is verified
//! (X-Slack-Signature over `v0:{timestamp}:{body}` with the signing
//! secret, timestamps older than 5 minutes refused, a request seen before
//! refused) before anything is read from it. A click counts only for an
//! approver whose `slack_user_id` is configured; anyone else's is refused
//! with a message only they see, and audited. The answer goes back within
//! Slack's 3 seconds; the decision and the action run after it.
//!
//! What happens after verification ([`interaction`], [`answer_command`]) is
//! shared with Socket Mode (`crate::slack_socket`), where the same events
//! arrive over a WebSocket cerebro opened with the app token.

use crate::app::AppState;
use crate::error::ApiError;
use crate::notify::slack::{APPROVE, REJECT, Slack};
use crate::routes::approvals::decide_as;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use brain::config::Config;
use brain::config::Secret;
use brain::ids::ApprovalId;
use brain::store::NewAuditEntry;
use serde::Deserialize;
use serde_json::{Value, json};
use slack_morphism::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How long Slack's timestamps stay acceptable, and so how long a request
/// must be remembered to refuse its replay.
const WINDOW_SECS: i64 = 300;

/// What verifying and answering Slack's requests needs.
pub struct Inbound {
    /// Verifies the HTTP endpoints; None when Slack's requests arrive over
    /// Socket Mode only, and the endpoints then answer 404.
    secret: Option<Secret>,
    /// Opens Socket Mode connections; None when Slack posts to the
    /// endpoints.
    app_token: Option<Secret>,
    /// For messages only the clicker sees; None without a bot token.
    slack: Option<Arc<Slack>>,
    /// Slack user id → approver name.
    approvers: BTreeMap<String, String>,
}

impl Inbound {
    /// With `slack.signing_secret` or `slack.app_token` set; else Slack's
    /// requests are not received at all.
    pub fn from_config(config: &Config, store: &brain::store::Store) -> Option<Inbound> {
        let (secret, app_token) = (&config.slack.signing_secret, &config.slack.app_token);
        if secret.is_none() && app_token.is_none() {
            return None;
        }
        let slack = config
            .slack
            .enabled()
            .then(|| Slack::new(config, store.clone()).ok().map(Arc::new))
            .flatten();
        Some(Inbound {
            secret: secret.clone(),
            app_token: app_token.clone(),
            slack,
            approvers: config
                .approvals
                .approvers
                .iter()
                .filter_map(|a| Some((a.slack_user_id.clone()?, a.name.clone())))
                .collect(),
        })
    }

    /// The app-level token Socket Mode connects with, when it is on.
    pub fn app_token(&self) -> Option<&Secret> {
        self.app_token.as_ref()
    }

    /// Check a request's signature and age at `now` (Unix seconds) against
    /// the signing secret.
    fn verify(secret: &Secret, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), String> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| format!("missing {name}"))
        };
        let signature = header("x-slack-signature")?;
        let timestamp = header("x-slack-request-timestamp")?;
        if !brain::ingest::signature::slack_valid(
            &signature,
            &timestamp,
            body,
            secret.expose().as_bytes(),
        ) {
            return Err("the signature does not match".into());
        }
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| "X-Slack-Request-Timestamp is not a number".to_owned())?;
        if (now - ts).abs() > WINDOW_SECS {
            return Err("the timestamp is more than 5 minutes from now (a replay?)".into());
        }
        Ok(())
    }

    fn approver(&self, slack_user: &str) -> Option<&str> {
        self.approvers.get(slack_user).map(String::as_str)
    }
}

impl AppState {
    /// The signing secret Slack's endpoints verify by, or their 404.
    fn slack_secret(&self) -> Result<&Secret, ApiError> {
        self.slack
            .as_deref()
            .and_then(|s| s.secret.as_ref())
            .ok_or_else(|| ApiError::NotFound {
                what: "Slack's endpoints (slack.signing_secret is not set)".into(),
            })
    }
}

/// Let a request through only when Slack is configured and the request
/// verifies; else refuse it (audited, 401) before reading anything from it.
async fn verified(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    endpoint: &str,
) -> Result<(), ApiError> {
    let secret = state.slack_secret()?;
    let why = match Inbound::verify(secret, headers, body, chrono::Utc::now().timestamp()) {
        Ok(()) => {
            // Seen before, here or by another replica: a replay. The
            // signature covers the timestamp, so it names the request.
            let signature = headers
                .get("x-slack-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let window = chrono::Duration::seconds(2 * WINDOW_SECS);
            match state.store.first_sighting("slack", signature, window).await {
                Ok(true) => return Ok(()),
                Ok(false) => "this request was already received (a replay)".to_owned(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(why) => why,
    };
    audit(
        state,
        "slack:unverified",
        "slack.request_refused",
        endpoint,
        json!({"reason": why}),
    )
    .await;
    Err(ApiError::Unauthorized(format!("X-Slack-Signature: {why}")))
}

/// The approver a Slack user is, or None after auditing the refusal.
async fn approver_or_refuse(
    state: &AppState,
    user: &str,
    id: ApprovalId,
    approve: bool,
) -> Option<String> {
    let who = state
        .slack
        .as_ref()
        .and_then(|s| s.approver(user))
        .map(str::to_owned);
    if who.is_none() {
        audit(
            state,
            &format!("slack:{user}"),
            "approval.refused",
            &id.to_string(),
            json!({"reason": "not an approver", "approve": approve, "slack_user": user}),
        )
        .await;
    }
    who
}

pub(crate) async fn audit(state: &AppState, actor: &str, action: &str, subject: &str, data: Value) {
    let entry = NewAuditEntry {
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        data,
    };
    if let Err(e) = state.store.append_audit(entry).await {
        tracing::error!(error = %e, action, "auditing a Slack request failed");
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A click on Approve or Reject. Answers 200 at once (Slack's 3-second
/// limit); the decision, the action and the redrawn message follow.
#[utoipa::path(post, path = "/slack/interactions", tag = "slack",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`payload=<interaction JSON>`, signed by Slack"),
    responses(
        (status = 200, description = "received"),
        (status = 400, description = "no readable payload", body = crate::error::ErrorBody),
        (status = 401, description = "signature missing, wrong, stale or replayed", body = crate::error::ErrorBody),
        (status = 404, description = "Slack is not configured", body = crate::error::ErrorBody)))]
pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    verified(&state, &headers, &body, "/slack/interactions").await?;
    let payload = form(&body)
        .remove("payload")
        .ok_or_else(|| ApiError::bad_request("no `payload` field in the form body", "payload"))?;
    let event: SlackInteractionEvent = serde_json::from_str(&payload).map_err(|e| {
        ApiError::bad_request(
            format!("the payload is not a Slack interaction: {e}"),
            "payload",
        )
    })?;
    interaction(&state, event).await;
    Ok(Json(json!({})))
}

/// What an interaction does, however it arrived (verified by signature,
/// or over Socket Mode): each click on Approve or Reject is refused or
/// decided; other interactions are ignored.
pub(crate) async fn interaction(state: &AppState, event: SlackInteractionEvent) {
    let SlackInteractionEvent::BlockActions(event) = event else {
        return;
    };
    let user = event
        .user
        .as_ref()
        .map(|u| u.id.to_string())
        .unwrap_or_default();
    let channel = event
        .channel
        .as_ref()
        .map(|c| c.id.to_string())
        .or_else(|| match &event.container {
            SlackInteractionActionContainer::Message(m) => {
                m.channel_id.as_ref().map(ToString::to_string)
            }
            _ => None,
        })
        .unwrap_or_default();
    for action in event.actions.unwrap_or_default() {
        let approve = match action.action_id.to_string().as_str() {
            APPROVE => true,
            REJECT => false,
            _ => continue,
        };
        let Some(id) = action
            .value
            .as_deref()
            .and_then(|v| v.parse::<ApprovalId>().ok())
        else {
            continue;
        };
        click(state, &user, &channel, id, approve).await;
    }
}

/// One click by `user`: refused unless they are an approver, else decided
/// in the background.
async fn click(state: &AppState, user: &str, channel: &str, id: ApprovalId, approve: bool) {
    let Some(who) = approver_or_refuse(state, user, id, approve).await else {
        tell(
            state,
            channel,
            user,
            "You are not an approver in cerebro: your click changed nothing.".into(),
        );
        return;
    };
    let state = state.clone();
    let (channel, user) = (channel.to_owned(), user.to_owned());
    tokio::spawn(async move {
        let reason = (!approve).then_some("rejected from Slack");
        match decide_as(&state, &who, id, approve, reason).await {
            Ok((approval, proposal)) => {
                tracing::info!(approval = %approval.id, by = %who, status = %approval.status.as_str(), proposal = %proposal.status.as_str(), "decided from Slack");
            }
            Err(e) => {
                tracing::info!(approval = %id, by = %who, error = %e, "a Slack decision changed nothing");
                tell(&state, &channel, &user, format!("Nothing changed: {e}"));
            }
        }
    });
}

/// A message only `user` sees, sent in the background.
fn tell(state: &AppState, channel: &str, user: &str, text: String) {
    let Some(slack) = state.slack.as_ref().and_then(|s| s.slack.clone()) else {
        return;
    };
    if channel.is_empty() || user.is_empty() {
        return;
    }
    let (channel, user) = (channel.to_owned(), user.to_owned());
    tokio::spawn(async move {
        if let Err(e) = slack.ephemeral(&channel, &user, &text).await {
            tracing::warn!(error = %e, "telling a Slack user failed");
        }
    });
}

/// `/cerebro status`, `incident <id>`, `ask <question>`, `approve <id>`,
/// `reject <id> [reason]`; answered to the caller only.
#[utoipa::path(post, path = "/slack/commands", tag = "slack",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Slack's slash-command form, signed by Slack"),
    responses(
        (status = 200, description = "the answer, shown to the caller only"),
        (status = 401, description = "signature missing, wrong, stale or replayed", body = crate::error::ErrorBody),
        (status = 404, description = "Slack is not configured", body = crate::error::ErrorBody)))]
pub async fn commands(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    verified(&state, &headers, &body, "/slack/commands").await?;
    let mut f = form(&body);
    let command = Command {
        text: f.remove("text"),
        user_id: f.remove("user_id"),
        channel_id: f.remove("channel_id"),
    };
    let answer = answer_command(&state, &command).await?;
    Ok(Json(ephemeral(&answer)))
}

/// The fields of a `/cerebro` command that matter: from the HTTP form, or
/// the JSON payload of a Socket Mode envelope, which carries the same
/// names.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Command {
    pub text: Option<String>,
    pub user_id: Option<String>,
    pub channel_id: Option<String>,
}

/// Slack's shape of an answer only the caller sees.
pub(crate) fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": text})
}

/// The answer to a `/cerebro` command, however it arrived; decisions it
/// asks for run in the background.
pub(crate) async fn answer_command(
    state: &AppState,
    command: &Command,
) -> Result<String, ApiError> {
    let text = command.text.as_deref().unwrap_or_default().trim();
    let user = command.user_id.as_deref().unwrap_or_default();
    let channel = command.channel_id.as_deref().unwrap_or_default();
    let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    Ok(match verb {
        "status" => status(state).await?,
        "incident" => incident(state, rest).await?,
        "ask" if !rest.is_empty() => ask(state, rest).await,
        "approve" | "reject" => {
            let (id, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match id.parse::<ApprovalId>() {
                Err(_) => format!("`{id}` is not an approval id"),
                Ok(id) => {
                    command_decision(state, user, channel, id, verb == "approve", reason.trim())
                        .await
                }
            }
        }
        _ => "Usage: `/cerebro status` · `/cerebro incident <id>` · `/cerebro ask <question>` · `/cerebro approve <approval-id>` · `/cerebro reject <approval-id> <reason>`".into(),
    })
}

async fn status(state: &AppState) -> Result<String, ApiError> {
    use brain::domain::IncidentStatus;
    let open: Vec<_> = state
        .store
        .list_incidents(&brain::store::IncidentFilter {
            limit: Some(200),
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter(|i| !matches!(i.status, IncidentStatus::Resolved | IncidentStatus::Closed))
        .take(10)
        .collect();
    if open.is_empty() {
        return Ok("No open incidents.".into());
    }
    let lines: Vec<String> = open
        .iter()
        .map(|i| {
            format!(
                "• `{}` *{}* — {} ({})",
                i.id,
                i.title,
                i.status.as_str(),
                i.severity.as_str()
            )
        })
        .collect();
    Ok(format!("Open incidents:\n{}", lines.join("\n")))
}

async fn incident(state: &AppState, id: &str) -> Result<String, ApiError> {
    let Ok(id) = id.parse() else {
        return Ok(format!("`{id}` is not an incident id"));
    };
    let i = match state.store.get_incident(id).await {
        Ok(i) => i,
        Err(brain::store::StoreError::NotFound { .. }) => {
            return Ok(format!("No incident `{id}`."));
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = format!(
        "*{}* — {} ({})",
        i.title,
        i.status.as_str(),
        i.severity.as_str()
    );
    if let Some(d) = state.store.latest_diagnosis(i.id).await? {
        out.push_str(&format!(
            "\nDiagnosis: `{}` on `{}` ({:.0}%)",
            d.category.as_str(),
            d.component,
            d.confidence * 100.0
        ));
    }
    for p in state.store.proposals_for_incident(i.id).await? {
        out.push_str(&format!(
            "\n• `{}` on `{}`: {}",
            p.action.as_str(),
            p.target,
            p.status.as_str()
        ));
    }
    Ok(out)
}

async fn ask(state: &AppState, question: &str) -> String {
    let Some(kb) = &state.knowledge else {
        return "The knowledge base is not available.".into();
    };
    let filters = agents::knowledge::Filters::default();
    match tokio::time::timeout(
        std::time::Duration::from_millis(2500),
        kb.ask(question, &filters),
    )
    .await
    {
        Ok(Ok(a)) => {
            let cites: Vec<String> = a
                .citations
                .iter()
                .map(|c| format!("{} > {}", c.title, c.section))
                .collect();
            if cites.is_empty() {
                a.answer
            } else {
                format!("{}\n_Sources: {}_", a.answer, cites.join("; "))
            }
        }
        Ok(Err(e)) => format!("The question could not be answered: {e}"),
        Err(_) => "The knowledge base took too long; try the console or the API.".into(),
    }
}

async fn command_decision(
    state: &AppState,
    user: &str,
    channel: &str,
    id: ApprovalId,
    approve: bool,
    reason: &str,
) -> String {
    let Some(who) = approver_or_refuse(state, user, id, approve).await else {
        return "You are not an approver in cerebro: nothing changed.".into();
    };
    if !approve && reason.is_empty() {
        return "Say why: `/cerebro reject <approval-id> <reason>`".into();
    }
    let state = state.clone();
    let reason = (!reason.is_empty()).then(|| reason.to_owned());
    let (channel, user, by) = (channel.to_owned(), user.to_owned(), who.clone());
    tokio::spawn(async move {
        if let Err(e) = decide_as(&state, &by, id, approve, reason.as_deref()).await {
            tracing::info!(approval = %id, by = %by, error = %e, "a /cerebro decision changed nothing");
            tell(&state, &channel, &user, format!("Nothing changed: {e}"));
        }
    });
    format!(
        "{} approval `{id}` as {}; the approval's message shows the outcome.",
        if approve { "Approving" } else { "Rejecting" },
        who
    )
}
