//! Slack Socket Mode: clicks and `/cerebro` commands over a WebSocket that
//! cerebro opens to Slack with the app-level token (`slack.app_token`), so
//! no public endpoint is needed. `apps.connections.open` hands out a
//! short-lived URL; Slack says `hello`, then sends envelopes, each
//! acknowledged at once (Slack retries what is not acknowledged within 3
//! seconds), and asks for a fresh connection from time to time with
//! `disconnect`. A retried envelope is recognised by its id, remembered in
//! the database, so a click is never decided twice. What an interaction or
//! a command does is the HTTP routes' own code (`routes::slack`).
//!
//! The link is watched: cerebro pings every 10 s and gives a connection
//! up after 30 s without any frame; a lost connection is reopened with
//! backoff (capped at a minute), and a refused token is reported as an
//! error and retried slowly, since the rest of the service keeps serving.

mod frame;
mod link;

use crate::app::AppState;
use crate::routes::slack::{Command, answer_command, audit, ephemeral, interaction};
use brain::config::{Config, Secret};
use frame::{Envelope, Kind, Received};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// TCP, TLS, the WebSocket handshake and Slack's `hello`, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often cerebro pings Slack.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Silence after which a connection is taken for dead: three pings
/// without a pong or anything else.
const SILENT_LIMIT: Duration = Duration::from_secs(30);
/// Writing one frame.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection up this long was healthy: its end restarts the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Envelope ids are remembered this long; Slack's retries of one
/// envelope come within minutes.
const DEDUP_WINDOW_SECS: i64 = 3600;
/// Handlers still running at shutdown get this long to finish.
const DRAIN: Duration = Duration::from_secs(5);
/// The `notifier` namespace envelope ids are remembered under.
const SEEN: &str = "slack-socket";

/// The Socket Mode client, ready to run.
pub struct SocketMode {
    http: reqwest::Client,
    open_url: String,
    token: Secret,
}

/// Why `apps.connections.open` gave no URL.
#[derive(Debug, PartialEq)]
enum OpenError {
    /// Slack refused the token or the app (`invalid_auth`,
    /// `not_allowed_token_type`, ...): nothing changes until someone fixes
    /// the configuration.
    Refused(String),
    /// Worth another try soon: the network, Slack's own trouble, a rate
    /// limit (with Slack's wait, when it said).
    Failed {
        why: String,
        retry_after: Option<Duration>,
    },
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    Stopped,
    /// Slack asked for a new connection (`refresh_requested`, `warning`).
    Refresh(String),
    /// Socket Mode was turned off in the app's settings.
    Disabled,
    /// Closed, broken, silent or unreadable.
    Lost(String),
}

impl SocketMode {
    /// The client for `slack.app_token`, calling Slack's Web API at
    /// `slack.api_url`.
    pub fn new(config: &Config, token: Secret) -> anyhow::Result<SocketMode> {
        let s = &config.slack;
        Ok(SocketMode {
            http: crate::notify::http_client(Duration::from_secs(s.timeout_secs))?,
            open_url: format!("{}/apps.connections.open", s.api_url.trim_end_matches('/')),
            token,
        })
    }

    /// Keep a connection to Slack open and handle what arrives on it,
    /// until `stop`.
    pub async fn run(self, state: AppState, stop: CancellationToken) {
        let (replies, outbox) = mpsc::channel(64);
        let mut client = Client {
            socket: self,
            state,
            stop,
            replies,
            outbox,
            handlers: JoinSet::new(),
        };
        client.run().await;
    }

    /// Ask Slack for a WebSocket URL.
    async fn open(&self) -> Result<String, OpenError> {
        let failed = |why: String| OpenError::Failed {
            why,
            retry_after: None,
        };
        let r = self
            .http
            .post(&self.open_url)
            .bearer_auth(self.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .send()
            .await
            .map_err(|e| failed(format!("calling apps.connections.open: {e}")))?;
        let status = r.status();
        let retry_after = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = r
            .text()
            .await
            .map_err(|e| failed(format!("reading apps.connections.open's answer: {e}")))?;
        if !status.is_success() {
            return Err(OpenError::Failed {
                why: format!("apps.connections.open answered {status}"),
                retry_after,
            });
        }
        opened(&text)
    }
}

/// Read `apps.connections.open`'s answer: the URL, or why there is none.
fn opened(text: &str) -> Result<String, OpenError> {
    let v: Value = serde_json::from_str(text).map_err(|e| OpenError::Failed {
        why: format!("apps.connections.open answered something unreadable: {e}"),
        retry_after: None,
    })?;
    if v["ok"] == true {
        return v["url"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| OpenError::Failed {
                why: "apps.connections.open answered ok without a url".into(),
                retry_after: None,
            });
    }
    let error = v["error"].as_str().unwrap_or("unknown_error").to_owned();
    Err(match error.as_str() {
        "invalid_auth"
        | "not_authed"
        | "not_allowed_token_type"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "missing_scope"
        | "no_permission"
        | "forbidden_team"
        | "ekm_access_denied"
        | "team_access_not_granted" => OpenError::Refused(error),
        _ => OpenError::Failed {
            why: format!("apps.connections.open: {error}"),
            retry_after: None,
        },
    })
}

/// Pauses between attempts: doubling from a second, capped at a minute.
/// A refused token starts at five seconds, since only a person can fix
/// it.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const REFUSED_PAUSE: Duration = Duration::from_secs(5);
const MAX_PAUSE: Duration = Duration::from_secs(60);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_PAUSE }
    }
}

impl Backoff {
    fn reset(&mut self) {
        self.next = FIRST_PAUSE;
    }

    /// The pause after a failure (before jitter).
    fn failed(&mut self, refused: bool) -> Duration {
        let pause = if refused {
            self.next.max(REFUSED_PAUSE)
        } else {
            self.next
        };
        self.next = (pause * 2).min(MAX_PAUSE);
        pause
    }
}

/// ±20 %, so replicas that lost Slack together do not return together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.8..1.2))
}

/// The pause before reconnecting after a connection ended, logged; None
/// when the client is to stop. A connection that was up a while restarts
/// the backoff; one that ends at once, even at Slack's request, backs off.
fn pause_after(end: End, stable: bool, backoff: &mut Backoff) -> Option<Duration> {
    if stable {
        backoff.reset();
    }
    Some(match end {
        End::Stopped => return None,
        End::Refresh(reason) => {
            tracing::info!(reason = %reason, "Slack asked for a new Socket Mode connection");
            if stable {
                Duration::ZERO
            } else {
                jittered(backoff.failed(false))
            }
        }
        End::Disabled => {
            let pause = jittered(backoff.failed(true));
            tracing::error!(
                retry_in_secs = pause.as_secs(),
                "Socket Mode is turned off in the Slack app's settings; clicks and commands are not received"
            );
            pause
        }
        End::Lost(why) => {
            let pause = jittered(backoff.failed(false));
            tracing::warn!(error = %why, retry_in_secs = pause.as_secs(), "the Socket Mode connection was lost; reconnecting");
            pause
        }
    })
}

/// The pause after `apps.connections.open` gave no URL, logged: a refused
/// token is an error someone must fix, the rest are passing trouble.
fn pause_after_open(e: OpenError, backoff: &mut Backoff) -> Duration {
    match e {
        OpenError::Refused(code) => {
            let pause = jittered(backoff.failed(true));
            tracing::error!(
                error = %code,
                retry_in_secs = pause.as_secs(),
                "Slack refused slack.app_token (it must be an app-level token with connections:write); clicks and commands are not received"
            );
            pause
        }
        OpenError::Failed { why, retry_after } => {
            // Slack's own Retry-After is a floor, jitter or not.
            let pause = jittered(backoff.failed(false)).max(retry_after.unwrap_or_default());
            tracing::warn!(error = %why, retry_in_secs = pause.as_secs(), "opening a Socket Mode connection failed");
            pause
        }
    }
}

/// The running client: the connection loop and the envelopes' handlers.
struct Client {
    socket: SocketMode,
    state: AppState,
    stop: CancellationToken,
    /// Handlers' acknowledgements, written by whichever connection is up:
    /// an answer computed while Slack refreshed the link still leaves.
    replies: mpsc::Sender<String>,
    outbox: mpsc::Receiver<String>,
    handlers: JoinSet<()>,
}

impl Client {
    async fn run(&mut self) {
        let mut backoff = Backoff::default();
        tracing::info!("Slack Socket Mode starting");
        loop {
            let Some(opened) = self.or_stop(self.socket.open()).await else {
                break;
            };
            let pause = match opened {
                Ok(url) => {
                    let started = Instant::now();
                    let end = self.session(&url).await;
                    let stable = started.elapsed() >= STABLE_AFTER;
                    match pause_after(end, stable, &mut backoff) {
                        Some(pause) => pause,
                        None => break,
                    }
                }
                Err(e) => pause_after_open(e, &mut backoff),
            };
            if self.or_stop(tokio::time::sleep(pause)).await.is_none() {
                break;
            }
        }
        self.drain().await;
        tracing::info!("Slack Socket Mode stopped");
    }

    /// `f`'s output, or None once `stop` is cancelled.
    async fn or_stop<F: Future>(&self, f: F) -> Option<F::Output> {
        tokio::select! {
            () = self.stop.cancelled() => None,
            out = f => Some(out),
        }
    }

    /// One connection, from the handshake to its end.
    async fn session(&mut self, url: &str) -> End {
        let mut ws = match self.or_stop(link::connect(url, CONNECT_TIMEOUT)).await {
            None => return End::Stopped,
            Some(Err(why)) => return End::Lost(why),
            Some(Ok(ws)) => ws,
        };
        match self.or_stop(hello(&mut ws)).await {
            None => {
                close(&mut ws).await;
                return End::Stopped;
            }
            Some(Err(why)) => return End::Lost(why),
            Some(Ok(connections)) => {
                tracing::info!(num_connections = connections, "Slack Socket Mode connected");
            }
        }
        let end = self.serve(&mut ws).await;
        if !matches!(end, End::Lost(_)) {
            close(&mut ws).await;
        }
        end
    }

    /// Read envelopes, write acknowledgements and pings, until the
    /// connection ends.
    async fn serve(&mut self, ws: &mut link::Link) -> End {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return End::Stopped,
                msg = ws.next() => {
                    heard = Instant::now();
                    match msg {
                        None => return End::Lost("Slack closed the connection".into()),
                        Some(Err(e)) => return End::Lost(format!("reading from Slack: {e}")),
                        Some(Ok(Message::Text(text))) => {
                            if let Some(end) = self.received(text.as_str()) {
                                return end;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                            return End::Lost(format!("Slack closed the connection: {why}"));
                        }
                        // tungstenite answers pings as it reads; a pong or
                        // any other frame only shows the link is alive.
                        Some(Ok(_)) => {}
                    }
                }
                Some(reply) = self.outbox.recv() => {
                    if let Err(why) = send(ws, Message::text(reply)).await {
                        return End::Lost(why);
                    }
                }
                Some(done) = self.handlers.join_next(), if !self.handlers.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "a Socket Mode envelope's handler failed");
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > SILENT_LIMIT {
                        return End::Lost(format!("nothing heard from Slack for {} s", SILENT_LIMIT.as_secs()));
                    }
                    if let Err(why) = send(ws, Message::Ping(Default::default())).await {
                        return End::Lost(why);
                    }
                }
            }
        }
    }

    /// One text frame from Slack: an envelope is handed to a handler; a
    /// `disconnect` ends the connection.
    fn received(&mut self, text: &str) -> Option<End> {
        match frame::parse(text) {
            Err(why) => {
                tracing::warn!(error = %why, "an unreadable Socket Mode message was ignored");
                None
            }
            Ok(Received::Hello { .. }) => None,
            Ok(Received::Disconnect { reason }) if reason == "link_disabled" => Some(End::Disabled),
            Ok(Received::Disconnect { reason }) => Some(End::Refresh(reason)),
            Ok(Received::Envelope(envelope)) => {
                tracing::debug!(
                    envelope_id = %envelope.id,
                    kind = envelope.kind.as_str(),
                    retry_attempt = envelope.retry_attempt,
                    "Socket Mode envelope received"
                );
                let (state, replies) = (self.state.clone(), self.replies.clone());
                self.handlers.spawn(handle(state, envelope, replies));
                None
            }
        }
    }

    /// Give running handlers a moment to finish, then abandon them.
    async fn drain(&mut self) {
        let all = async { while self.handlers.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN, all).await.is_err() {
            tracing::warn!("Socket Mode handlers still running at shutdown were stopped");
            self.handlers.abort_all();
        }
    }
}

/// Wait for Slack's `hello`, the first message on a new connection.
async fn hello(ws: &mut link::Link) -> Result<Option<u64>, String> {
    let first = async {
        loop {
            match ws.next().await {
                None => return Err("Slack closed the connection before hello".to_owned()),
                Some(Err(e)) => return Err(format!("reading Slack's hello: {e}")),
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(_))) => {
                    return Err("Slack closed the connection before hello".to_owned());
                }
                Some(Ok(_)) => {}
            }
        }
    };
    let text = tokio::time::timeout(CONNECT_TIMEOUT, first)
        .await
        .map_err(|_| format!("no hello from Slack within {} s", CONNECT_TIMEOUT.as_secs()))??;
    match frame::parse(text.as_str()) {
        Ok(Received::Hello { num_connections }) => Ok(num_connections),
        other => Err(format!("expected Slack's hello first, got {other:?}")),
    }
}

async fn send(ws: &mut link::Link, msg: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("writing to Slack: {e}")),
        Err(_) => Err(format!(
            "writing to Slack took more than {} s",
            SEND_TIMEOUT.as_secs()
        )),
    }
}

/// Say goodbye, briefly: the connection is dropped either way.
async fn close(ws: &mut link::Link) {
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// One envelope: acknowledged, and acted on unless it was seen before.
async fn handle(state: AppState, envelope: Envelope, replies: mpsc::Sender<String>) {
    let id = envelope.id.clone();
    let ack = match envelope.kind {
        Kind::Interactive => {
            // Slack retries after 3 s: acknowledge before deciding.
            reply(&replies, frame::ack(&id)).await;
            if first_sighting(&state, &envelope).await == Sighting::First {
                on_interaction(&state, envelope.payload).await;
            }
            return;
        }
        Kind::SlashCommand => match first_sighting(&state, &envelope).await {
            // The answer travels in the acknowledgement.
            Sighting::First => {
                let text = on_command(&state, envelope.payload).await;
                if envelope.accepts_response_payload {
                    frame::ack_with(&id, ephemeral(&text))
                } else {
                    tracing::warn!(envelope_id = %id, "Slack took no answer with this command's acknowledgement");
                    frame::ack(&id)
                }
            }
            Sighting::Again => frame::ack(&id),
            Sighting::Unknown(error_id) => frame::ack_with(
                &id,
                ephemeral(&format!(
                    "Something went wrong in cerebro (error id `{error_id}`)."
                )),
            ),
        },
        Kind::EventsApi | Kind::Other(_) => {
            tracing::debug!(envelope_id = %id, kind = envelope.kind.as_str(), "acknowledged without acting: cerebro subscribes to no such events");
            frame::ack(&id)
        }
    };
    reply(&replies, ack).await;
}

async fn reply(replies: &mpsc::Sender<String>, text: String) {
    // Closed only when the client stops; the envelope is then retried by
    // Slack on whichever replica connects next.
    let _ = replies.send(text).await;
}

#[derive(Debug, PartialEq)]
enum Sighting {
    First,
    /// Slack's retry of an envelope already received: refused, audited.
    Again,
    /// The database could not say: nothing is done, under this error id.
    Unknown(String),
}

/// Whether this envelope is new, here and at any other replica.
async fn first_sighting(state: &AppState, envelope: &Envelope) -> Sighting {
    let window = chrono::Duration::seconds(DEDUP_WINDOW_SECS);
    match state.store.first_sighting(SEEN, &envelope.id, window).await {
        Ok(true) => Sighting::First,
        Ok(false) => {
            tracing::info!(envelope_id = %envelope.id, retry_attempt = envelope.retry_attempt, "a Socket Mode envelope seen before was acknowledged and ignored");
            audit(
                state,
                "slack:socket",
                "slack.request_refused",
                &format!("socket:{}", envelope.kind.as_str()),
                json!({
                    "reason": "this envelope was already received (a retry)",
                    "envelope_id": envelope.id,
                    "retry_attempt": envelope.retry_attempt,
                }),
            )
            .await;
            Sighting::Again
        }
        Err(e) => {
            let error_id = crate::error::new_error_id();
            tracing::error!(error_id = %error_id, error = %e, envelope_id = %envelope.id, "checking a Socket Mode envelope for a retry failed; it was not acted on");
            Sighting::Unknown(error_id)
        }
    }
}

async fn on_interaction(state: &AppState, payload: Value) {
    match serde_json::from_value(payload) {
        Ok(event) => interaction(state, event).await,
        Err(e) => {
            tracing::warn!(error = %e, "an interaction over Socket Mode was not readable; ignored");
        }
    }
}

/// The answer to a slash command, whatever happened.
async fn on_command(state: &AppState, payload: Value) -> String {
    let command: Command = match serde_json::from_value(payload) {
        Ok(c) => c,
        Err(e) => return format!("cerebro could not read this command: {e}"),
    };
    match answer_command(state, &command).await {
        Ok(text) => text,
        Err(e) => {
            let error_id = crate::error::new_error_id();
            tracing::error!(error_id = %error_id, error = %e, "answering a /cerebro command over Socket Mode failed");
            format!("Something went wrong in cerebro (error id `{error_id}`).")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_a_minute_and_restarts_after_a_stable_link() {
        let mut b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|_| b.failed(false).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.failed(false), FIRST_PAUSE);
    }

    #[test]
    fn a_refused_token_waits_longer_from_the_start_and_still_retries() {
        let mut b = Backoff::default();
        let secs: Vec<u64> = (0..6).map(|_| b.failed(true).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_requested_refresh_reconnects_at_once_unless_the_link_keeps_flapping() {
        let mut b = Backoff::default();
        let refresh = || End::Refresh("refresh_requested".into());
        assert_eq!(pause_after(refresh(), true, &mut b), Some(Duration::ZERO));
        let flap = pause_after(refresh(), false, &mut b).expect("a pause");
        assert!(flap >= Duration::from_millis(800), "{flap:?}");
        let again = pause_after(refresh(), false, &mut b).expect("a pause");
        assert!(again >= Duration::from_millis(1600), "{again:?}");
        assert_eq!(pause_after(End::Stopped, true, &mut b), None);
    }

    #[test]
    fn a_lost_link_backs_off_and_slacks_retry_after_is_a_floor() {
        let mut b = Backoff::default();
        let lost = pause_after(End::Lost("reset".into()), false, &mut b).expect("a pause");
        assert!(lost <= Duration::from_millis(1200), "{lost:?}");
        let limited = pause_after_open(
            OpenError::Failed {
                why: "429".into(),
                retry_after: Some(Duration::from_secs(30)),
            },
            &mut b,
        );
        assert!(limited >= Duration::from_secs(30), "{limited:?}");
        let refused = pause_after_open(OpenError::Refused("invalid_auth".into()), &mut b);
        assert!(refused >= Duration::from_secs(4), "{refused:?}");
    }

    #[test]
    fn apps_connections_open_answers_map_to_a_url_a_refusal_or_a_retry() {
        assert_eq!(
            opened(r#"{"ok":true,"url":"wss://wss-primary.slack.com/link/?ticket=1"}"#),
            Ok("wss://wss-primary.slack.com/link/?ticket=1".into())
        );
        assert_eq!(
            opened(r#"{"ok":false,"error":"invalid_auth"}"#),
            Err(OpenError::Refused("invalid_auth".into()))
        );
        assert_eq!(
            opened(r#"{"ok":false,"error":"not_allowed_token_type"}"#),
            Err(OpenError::Refused("not_allowed_token_type".into()))
        );
        for retried in [
            r#"{"ok":false,"error":"internal_error"}"#,
            r#"{"ok":true}"#,
            r#"{"ok":false}"#,
            "<html>",
        ] {
            assert!(
                matches!(opened(retried), Err(OpenError::Failed { .. })),
                "{retried}"
            );
        }
    }
}
