//! The change feed as tools: what was deployed, reconfigured or flagged,
//! where and by whom, around the time an incident began. Live from the
//! ingestion store (GitHub deploys, pushes and merges, and changes posted to
//! the API), or replayed from a scenario's `world.changes`.

use crate::typed;
use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use brain::scenario::resolve_time;
use brain::store::{ChangeFilter, Store};
use brain::vocabulary::Risk;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One change, whatever its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEntry {
    pub at: DateTime<Utc>,
    /// `deploy`, `config`, `infra`, `feature_flag`, `push`, `merge`...
    pub kind: String,
    /// What changed, as a component name where known
    /// (`deployment/prod/checkout-svc`).
    pub target: String,
    pub service: Option<String>,
    pub description: String,
    pub author: Option<String>,
}

impl ChangeEntry {
    /// Whether the change concerns `service`: its service, or a target
    /// whose name or path part is (or contains) it.
    fn concerns(&self, service: &str) -> bool {
        let s = service.to_lowercase();
        self.service
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(service))
            || self
                .target
                .to_lowercase()
                .split('/')
                .any(|part| part == s || part.contains(&s))
    }
}

/// Where changes come from.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The present: the wall clock live, `world.now` in a replay.
    fn now(&self) -> DateTime<Utc>;
    /// Changes in `[since, until]`, newest first.
    async fn changes(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ChangeEntry>, ToolError>;
}

/// The live feed: the ingestion store.
pub struct StoreFeed {
    store: Store,
}

impl StoreFeed {
    pub fn new(store: Store) -> StoreFeed {
        StoreFeed { store }
    }
}

/// Most changes one call reads from the store.
const STORE_LIMIT: i64 = 2_000;

#[async_trait]
impl ChangeFeed for StoreFeed {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn changes(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ChangeEntry>, ToolError> {
        let filter = ChangeFilter {
            since: Some(since),
            limit: Some(STORE_LIMIT),
            ..ChangeFilter::default()
        };
        let rows = self
            .store
            .list_changes(&filter)
            .await
            .map_err(|e| ToolError::Backend(format!("reading the change feed: {e}")))?;
        Ok(rows
            .into_iter()
            .filter(|c| c.at <= until)
            .map(|c| ChangeEntry {
                at: c.at,
                kind: c.kind,
                target: c.target,
                service: c.service,
                description: c.description,
                author: c.author,
            })
            .collect())
    }
}

/// A scenario's recorded changes.
pub struct WorldFeed {
    now: DateTime<Utc>,
    changes: Vec<ChangeEntry>,
}

impl WorldFeed {
    pub fn new(world: &brain::scenario::World) -> WorldFeed {
        let mut changes: Vec<ChangeEntry> = world
            .changes
            .iter()
            .map(|c| ChangeEntry {
                at: c.at,
                kind: serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "other".into()),
                target: c.target.clone(),
                service: None,
                description: c.description.clone(),
                author: c.author.clone(),
            })
            .collect();
        changes.sort_by_key(|c| std::cmp::Reverse(c.at));
        WorldFeed {
            now: world.now,
            changes,
        }
    }
}

#[async_trait]
impl ChangeFeed for WorldFeed {
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    async fn changes(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ChangeEntry>, ToolError> {
        Ok(self
            .changes
            .iter()
            .filter(|c| c.at >= since && c.at <= until)
            .cloned()
            .collect())
    }
}

/// The change-feed tools over one feed.
pub struct ChangeTools {
    feed: Arc<dyn ChangeFeed>,
}

impl ChangeTools {
    pub fn new(feed: Arc<dyn ChangeFeed>) -> ChangeTools {
        ChangeTools { feed }
    }
}

/// Arguments of `list_recent_changes`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecentArgs {
    /// Only changes to this service (matches the change's service or any
    /// part of its target, e.g. `checkout-svc`). Omit for all services.
    #[serde(default)]
    service: Option<String>,
    /// How far back: an offset like `-2h` or `-3d`, or an RFC 3339 time.
    /// Default `-24h`.
    #[serde(default)]
    since: Option<String>,
    /// Only these kinds, e.g. `["deploy", "config"]`.
    #[serde(default)]
    kinds: Vec<String>,
    /// At most this many changes, newest first. Default 20.
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    limit: Option<u32>,
}

/// Arguments of `find_changes_near`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NearArgs {
    /// The moment to look around, usually when the incident began: an
    /// RFC 3339 time or an offset like `-45m`.
    time: String,
    /// How far before and after `time` to look, e.g. `30m` or `2h`.
    /// Default `2h`.
    #[serde(default)]
    window: Option<String>,
    /// Only changes to this service. Omit for all services.
    #[serde(default)]
    service: Option<String>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl ToolBackend for ChangeTools {
    fn name(&self) -> &str {
        "changes"
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![
            typed::spec::<RecentArgs>(
                "list_recent_changes",
                "List recent changes (deploys, config pushes, infrastructure changes, feature flags), newest first, \
                 with who made them. Use it early in an investigation: most incidents follow a change.",
                Risk::Read,
                TIMEOUT,
            ),
            typed::spec::<NearArgs>(
                "find_changes_near",
                "Find the changes closest in time to a moment (usually when the alert began), before and after it, \
                 ranked by distance in time. Use it to name suspects for a regression.",
                Risk::Read,
                TIMEOUT,
            ),
        ]
    }

    async fn call(&self, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        match tool {
            "list_recent_changes" => self.recent(typed::parse(args)?).await,
            "find_changes_near" => self.near(typed::parse(args)?).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}

impl ChangeTools {
    fn time(&self, field: &str, text: &str) -> Result<DateTime<Utc>, ToolError> {
        resolve_time(text, self.feed.now())
            .map_err(|e| ToolError::InvalidArguments(format!("`{field}`: {e}")))
    }

    async fn recent(&self, a: RecentArgs) -> Result<ToolOutput, ToolError> {
        let now = self.feed.now();
        let since = self.time("since", a.since.as_deref().unwrap_or("-24h"))?;
        let limit = a.limit.unwrap_or(20).clamp(1, 200) as usize;
        let kinds: Vec<String> = a.kinds.iter().map(|k| k.to_lowercase()).collect();
        let matching: Vec<ChangeEntry> = self
            .feed
            .changes(since, now)
            .await?
            .into_iter()
            .filter(|c| a.service.as_deref().is_none_or(|s| c.concerns(s)))
            .filter(|c| kinds.is_empty() || kinds.contains(&c.kind))
            .collect();
        let total = matching.len();
        let shown: Vec<ChangeEntry> = matching.into_iter().take(limit).collect();
        let scope = a
            .service
            .as_deref()
            .map(|s| format!(" to {s}"))
            .unwrap_or_default();
        let mut text = if shown.is_empty() {
            format!(
                "No changes{scope} since {}.",
                since.format("%Y-%m-%d %H:%M UTC")
            )
        } else {
            format!(
                "{total} change(s){scope} since {}, newest first:",
                since.format("%Y-%m-%d %H:%M UTC")
            )
        };
        for c in &shown {
            text.push_str(&format!(
                "\n- {} ({} ago) {}",
                line(c),
                ago(now - c.at),
                c.target
            ));
        }
        if total > shown.len() {
            text.push_str(&format!(
                "\n({} older change(s) not shown; raise `limit` or narrow `since`)",
                total - shown.len()
            ));
        }
        Ok(ToolOutput {
            text,
            data: serde_json::json!({"since": since, "total": total, "changes": shown}),
            truncated: false,
        })
    }

    async fn near(&self, a: NearArgs) -> Result<ToolOutput, ToolError> {
        let at = self.time("time", &a.time)?;
        let window = typed::parse_duration(a.window.as_deref().unwrap_or("2h"))
            .map_err(|e| ToolError::InvalidArguments(format!("`window`: {e}")))?;
        let window = chrono::Duration::from_std(window)
            .map_err(|_| ToolError::InvalidArguments("`window`: too long".into()))?;
        let mut found: Vec<ChangeEntry> = self
            .feed
            .changes(at - window, at + window)
            .await?
            .into_iter()
            .filter(|c| a.service.as_deref().is_none_or(|s| c.concerns(s)))
            .collect();
        found.sort_by_key(|c| (c.at - at).abs());
        let mut text = if found.is_empty() {
            format!(
                "No changes within {} of {}.",
                a.window.as_deref().unwrap_or("2h"),
                at.format("%H:%M UTC")
            )
        } else {
            format!(
                "{} change(s) near {}, closest first:",
                found.len(),
                at.format("%Y-%m-%d %H:%M UTC")
            )
        };
        let items: Vec<serde_json::Value> = found
            .iter()
            .map(|c| {
                let d = c.at - at;
                let rel = if d <= chrono::Duration::zero() {
                    format!("{} before", ago(-d))
                } else {
                    format!("{} after", ago(d))
                };
                text.push_str(&format!("\n- {rel}: {} {}", line(c), c.target));
                serde_json::json!({"change": c, "seconds_from_time": d.num_seconds()})
            })
            .collect();
        Ok(ToolOutput {
            text,
            data: serde_json::json!({"time": at, "changes": items}),
            truncated: false,
        })
    }
}

fn line(c: &ChangeEntry) -> String {
    let by = c
        .author
        .as_deref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    format!(
        "{} [{}] {}{by}",
        c.at.format("%m-%d %H:%M"),
        c.kind,
        c.description
    )
}

/// `95m` → `1h35m`.
fn ago(d: chrono::Duration) -> String {
    let m = d.num_minutes().max(0);
    match m {
        0 => format!("{}s", d.num_seconds().max(0)),
        1..=59 => format!("{m}m"),
        60..=2879 => format!("{}h{:02}m", m / 60, m % 60),
        _ => format!("{}d", m / 1440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use serde_json::json;

    fn world() -> brain::scenario::World {
        brain::scenario::World::from_yaml(
            r#"
now: 2026-04-02T10:00:00Z
changes:
  - {at: -20m, kind: deploy, target: deployment/prod/checkout-svc, description: "checkout-svc 3.3.2 -> 3.4.0", author: "argocd"}
  - {at: -26h, kind: infra, target: nodegroup/prod-general, description: "node AMI bump", author: platform-bot}
  - {at: -2d, kind: config, target: deployment/prod/cart-svc, description: "CART_TTL_HOURS 48 -> 72", author: "l.moreau"}
  - {at: -50m, kind: feature_flag, target: deployment/prod/checkout-svc, description: "promo-stacking on"}
"#,
        )
        .unwrap()
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.add(Arc::new(ChangeTools::new(Arc::new(WorldFeed::new(
            &world(),
        )))))
        .unwrap();
        r
    }

    #[tokio::test]
    async fn recent_changes_filtered_by_service_and_time() {
        let r = registry();
        let out = r
            .call(
                "list_recent_changes",
                json!({"service": "checkout-svc", "since": "-3h"}),
            )
            .await
            .unwrap();
        assert!(
            out.text.starts_with("2 change(s) to checkout-svc"),
            "{}",
            out.text
        );
        let targets: Vec<&str> = out.data["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["description"].as_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            ["checkout-svc 3.3.2 -> 3.4.0", "promo-stacking on"],
            "newest first"
        );
        // The default window (24h) leaves out the two older changes.
        let all = r.call("list_recent_changes", json!({})).await.unwrap();
        assert_eq!(all.data["total"], 2);
        let week = r
            .call(
                "list_recent_changes",
                json!({"since": "-7d", "kinds": ["config"]}),
            )
            .await
            .unwrap();
        assert_eq!(week.data["total"], 1);
        assert!(week.text.contains("CART_TTL_HOURS"), "{}", week.text);
        let none = r
            .call("list_recent_changes", json!({"service": "payments"}))
            .await
            .unwrap();
        assert!(
            none.text.starts_with("No changes to payments"),
            "{}",
            none.text
        );
    }

    #[tokio::test]
    async fn changes_near_a_moment_closest_first() {
        let r = registry();
        let out = r
            .call("find_changes_near", json!({"time": "-15m", "window": "1h"}))
            .await
            .unwrap();
        let lines: Vec<&str> = out.text.lines().skip(1).collect();
        assert_eq!(lines.len(), 2, "{}", out.text);
        assert!(
            lines[0].starts_with("- 5m before") && lines[0].contains("3.4.0"),
            "{}",
            out.text
        );
        assert!(lines[1].starts_with("- 35m before"), "{}", out.text);
        assert_eq!(out.data["changes"][0]["seconds_from_time"], -300);
    }

    #[tokio::test]
    async fn bad_times_name_the_argument() {
        let r = registry();
        let e = r
            .call("find_changes_near", json!({"time": "yesterday"}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`time`"), "{e}");
        let e = r
            .call(
                "find_changes_near",
                json!({"time": "-1h", "window": "soon"}),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`window`"), "{e}");
    }
}
