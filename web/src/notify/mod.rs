//! The notifiers the configuration turns on (Slack, PagerDuty) and the
//! worker that delivers the outbox to them: in order per notifier and
//! incident, each call bounded by a timeout, retried with backoff (or when
//! the service says, on a 429), given up after a while or at once when
//! the service refuses the message for good. Nothing here blocks the
//! incident pipeline: it only ever writes to the outbox.

pub mod pagerduty;
pub mod slack;

use brain::backends::{Notification, Notifier, NotifyError};
use brain::config::Config;
use brain::store::{OutboxItem, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Attempts before a notification that keeps failing is given up.
const MAX_ATTEMPTS: i64 = 8;
/// How long a worker holds a claimed notification before another may
/// retry it.
const LEASE_SECS: i64 = 60;
/// Delivery attempts running at once.
const BATCH: i64 = 16;
/// How often the backlog gauge is read.
const BACKLOG_EVERY: Duration = Duration::from_secs(15);

/// The configured notifiers by name.
pub fn notifiers(
    config: &Config,
    store: &Store,
) -> anyhow::Result<BTreeMap<String, Arc<dyn Notifier>>> {
    let mut out: BTreeMap<String, Arc<dyn Notifier>> = BTreeMap::new();
    if config.slack.enabled() {
        let s = slack::Slack::new(config, store.clone())?;
        out.insert("slack".into(), Arc::new(s));
    }
    if config.pagerduty.enabled() {
        let p = pagerduty::PagerDuty::new(config, store.clone())?;
        out.insert("pagerduty".into(), Arc::new(p));
    }
    Ok(out)
}

/// The HTTP client notifiers share: bounded time per call, no redirects
/// (a token must never follow one).
pub(crate) fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cerebro/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A notifier's answer to an HTTP status: 429 and 5xx are worth another
/// try, other failures are not.
pub(crate) fn status_error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> NotifyError {
    let text = format!("{status}: {}", body.chars().take(300).collect::<String>());
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        NotifyError::RateLimited(after)
    } else if status.is_server_error() {
        NotifyError::Unavailable(text)
    } else {
        NotifyError::Rejected(text)
    }
}

/// Deliver the outbox until `stop`, polling every `idle` when it is empty.
pub async fn deliver(
    store: Store,
    notifiers: BTreeMap<String, Arc<dyn Notifier>>,
    idle: Duration,
    stop: CancellationToken,
) {
    let notifiers = Arc::new(notifiers);
    let mut gauged: Option<std::time::Instant> = None;
    loop {
        let delivered = match deliver_once(&store, &notifiers).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "reading the notification outbox failed");
                0
            }
        };
        // The backlog is a GROUP BY: not on every idle poll.
        if gauged.is_none_or(|t| t.elapsed() >= BACKLOG_EVERY) {
            gauged = Some(std::time::Instant::now());
            if let Ok(backlog) = store.notification_backlog().await {
                for (name, n) in backlog {
                    metrics::gauge!("cerebro_notifications_pending", "notifier" => name)
                        .set(n as f64);
                }
            }
        }
        if delivered == 0 {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(idle) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

/// One pass: claim what is due, deliver it concurrently, record each
/// result. Returns how many were attempted.
pub async fn deliver_once(
    store: &Store,
    notifiers: &Arc<BTreeMap<String, Arc<dyn Notifier>>>,
) -> Result<usize, brain::store::StoreError> {
    let items = store
        .claim_notifications(BATCH, chrono::Duration::seconds(LEASE_SECS))
        .await?;
    let n = items.len();
    let mut tasks = Vec::with_capacity(n);
    for item in items {
        let store = store.clone();
        let notifiers = notifiers.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = attempt(&notifiers, &item).await;
            record(&store, &item, outcome).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(n)
}

async fn attempt(
    notifiers: &BTreeMap<String, Arc<dyn Notifier>>,
    item: &OutboxItem,
) -> Result<(), NotifyError> {
    let Some(notifier) = notifiers.get(&item.notifier) else {
        return Err(NotifyError::Rejected(format!(
            "no notifier {:?} is configured",
            item.notifier
        )));
    };
    let n: Notification = serde_json::from_value(item.notification.clone())
        .map_err(|e| NotifyError::Rejected(format!("unreadable notification: {e}")))?;
    // The notifiers' own HTTP timeouts are shorter; this bounds the rest.
    match tokio::time::timeout(Duration::from_secs(30), notifier.notify(&n)).await {
        Ok(r) => r,
        Err(_) => Err(NotifyError::Unavailable("timed out after 30 s".into())),
    }
}

async fn record(store: &Store, item: &OutboxItem, outcome: Result<(), NotifyError>) {
    let kind = item.notification["kind"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let result = match &outcome {
        Ok(()) => {
            metrics::counter!("cerebro_notifications_total", "notifier" => item.notifier.clone(), "outcome" => "delivered")
                .increment(1);
            store.notification_delivered(item.seq).await
        }
        Err(e) => {
            let retry_at = retry_at(item.attempts, e);
            let outcome = if retry_at.is_some() {
                "retried"
            } else {
                "given_up"
            };
            metrics::counter!("cerebro_notifications_total", "notifier" => item.notifier.clone(), "outcome" => outcome)
                .increment(1);
            if retry_at.is_some() {
                tracing::warn!(notifier = %item.notifier, kind = %kind, incident = %item.incident_id, attempt = item.attempts, error = %e, "notification failed; will retry");
            } else {
                tracing::error!(notifier = %item.notifier, kind = %kind, incident = %item.incident_id, attempt = item.attempts, error = %e, "notification given up");
            }
            store
                .notification_failed(item.seq, &e.to_string(), retry_at)
                .await
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, seq = item.seq, "recording a notification's delivery failed; it will be retried after its lease");
    }
}

/// When to try again after `attempts` tries ended in `e`; `None`: never.
/// Backoff doubles from 2 s to 5 min; a rate limit's own delay wins.
pub fn retry_at(attempts: i64, e: &NotifyError) -> Option<chrono::DateTime<chrono::Utc>> {
    let backoff = |attempts: i64| {
        let secs = 2_i64.saturating_pow(u32::try_from(attempts.clamp(1, 20)).unwrap_or(20));
        chrono::Duration::seconds(secs.min(300))
    };
    let delay = match e {
        NotifyError::Rejected(_) => return None,
        _ if attempts >= MAX_ATTEMPTS => return None,
        NotifyError::RateLimited(Some(after)) => {
            chrono::Duration::from_std(*after).unwrap_or_else(|_| backoff(attempts))
        }
        NotifyError::RateLimited(None) | NotifyError::Unavailable(_) => backoff(attempts),
    };
    Some(chrono::Utc::now() + delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_honour_rate_limits_and_stop() {
        let now = chrono::Utc::now();
        let down = NotifyError::Unavailable("503".into());
        let first = retry_at(1, &down).expect("retried") - now;
        let later = retry_at(6, &down).expect("retried") - now;
        assert!(first <= chrono::Duration::seconds(3), "{first}");
        assert!(later >= chrono::Duration::seconds(60), "{later}");
        let limited = NotifyError::RateLimited(Some(Duration::from_secs(30)));
        let wait = retry_at(1, &limited).expect("retried") - now;
        assert!(
            (chrono::Duration::seconds(29)..=chrono::Duration::seconds(31)).contains(&wait),
            "{wait}"
        );
        assert_eq!(retry_at(MAX_ATTEMPTS, &down), None);
        assert_eq!(
            retry_at(1, &NotifyError::Rejected("channel_not_found".into())),
            None
        );
    }
}
