//! GitHub webhooks that change what runs: `deployment_status`, `push` to the
//! default branch, and merged `pull_request`s become change-feed entries.
//! The signature is checked by the caller with
//! [`super::signature::github_valid`].

use super::{ChangeInput, ParseError, from_json};
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Repository {
    name: String,
    full_name: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
}

#[derive(Debug, Deserialize)]
struct DeploymentStatusEvent {
    deployment_status: DeploymentStatus,
    deployment: Deployment,
    repository: Repository,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Debug, Deserialize)]
struct DeploymentStatus {
    id: i64,
    state: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    target_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Deployment {
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
    environment: String,
    #[serde(default)]
    creator: Option<User>,
}

#[derive(Debug, Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    repository: Repository,
    #[serde(default)]
    pusher: Option<Pusher>,
    #[serde(default)]
    head_commit: Option<Commit>,
    #[serde(default)]
    compare: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Pusher {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Commit {
    message: String,
    timestamp: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct PullRequestEvent {
    action: String,
    number: i64,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct PullRequest {
    title: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    merged_by: Option<User>,
    html_url: String,
    base: BaseRef,
    #[serde(default)]
    merge_commit_sha: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BaseRef {
    #[serde(rename = "ref")]
    git_ref: String,
}

/// Turn one delivery into a change, or `None` for events that change nothing
/// (a push to a feature branch, a PR closed unmerged, a pending deployment).
pub fn parse(event: &str, body: &[u8]) -> Result<Option<ChangeInput>, ParseError> {
    match event {
        "deployment_status" => {
            let e: DeploymentStatusEvent = from_json(body)?;
            let s = e.deployment_status;
            if !matches!(s.state.as_str(), "success" | "failure" | "error") {
                return Ok(None);
            }
            let env = s.environment.unwrap_or(e.deployment.environment);
            Ok(Some(ChangeInput {
                source: "github",
                external_id: format!("deployment_status:{}", s.id),
                kind: "deploy".into(),
                service: Some(e.repository.name.clone()),
                target: e.repository.full_name,
                description: format!(
                    "deploy of {} ({}) to {env}: {}{}",
                    e.deployment.git_ref,
                    short(&e.deployment.sha),
                    s.state,
                    s.description.map(|d| format!(" — {d}")).unwrap_or_default()
                ),
                environment: Some(env),
                author: e.deployment.creator.or(e.sender).map(|u| u.login),
                at: s.created_at,
                url: s.target_url,
            }))
        }
        "push" => {
            let e: PushEvent = from_json(body)?;
            let default = e.repository.default_branch.as_deref().unwrap_or("main");
            if e.git_ref != format!("refs/heads/{default}") {
                return Ok(None);
            }
            let Some(head) = e.head_commit else {
                return Ok(None); // a branch deletion
            };
            let first_line = head.message.lines().next().unwrap_or_default().to_owned();
            Ok(Some(ChangeInput {
                source: "github",
                external_id: format!("push:{}:{}", e.repository.full_name, e.after),
                kind: "push".into(),
                service: Some(e.repository.name.clone()),
                target: e.repository.full_name,
                environment: None,
                description: format!("push to {default} ({}): {first_line}", short(&e.after)),
                author: e.pusher.map(|p| p.name),
                at: head.timestamp,
                url: e.compare,
            }))
        }
        "pull_request" => {
            let e: PullRequestEvent = from_json(body)?;
            let pr = e.pull_request;
            if e.action != "closed" || !pr.merged {
                return Ok(None);
            }
            Ok(Some(ChangeInput {
                source: "github",
                external_id: format!("merge:{}#{}", e.repository.full_name, e.number),
                kind: "merge".into(),
                service: Some(e.repository.name.clone()),
                target: e.repository.full_name,
                environment: None,
                description: format!(
                    "merged #{} into {}{}: {}",
                    e.number,
                    pr.base.git_ref,
                    pr.merge_commit_sha
                        .as_deref()
                        .map(|s| format!(" ({})", short(s)))
                        .unwrap_or_default(),
                    pr.title
                ),
                author: pr.merged_by.map(|u| u.login),
                at: pr.merged_at.unwrap_or_else(Utc::now),
                url: Some(pr.html_url),
            }))
        }
        _ => Ok(None),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOY: &[u8] = include_bytes!("../../tests/fixtures/github-deployment-status.json");
    const PUSH: &[u8] = include_bytes!("../../tests/fixtures/github-push.json");
    const MERGED: &[u8] = include_bytes!("../../tests/fixtures/github-pull-request-merged.json");

    #[test]
    fn a_successful_deployment_status_is_a_deploy_of_the_repository() {
        let c = parse("deployment_status", DEPLOY)
            .expect("parse")
            .expect("a change");
        assert_eq!(c.kind, "deploy");
        assert_eq!(c.service.as_deref(), Some("checkout"));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.author.as_deref(), Some("octocat"));
        assert!(
            c.description.contains("v2.14.0") && c.description.contains("success"),
            "{}",
            c.description
        );
        assert_eq!(c.external_id, "deployment_status:2600000001");
        let pending = String::from_utf8_lossy(DEPLOY)
            .replace("\"state\": \"success\"", "\"state\": \"pending\"");
        assert_eq!(
            parse("deployment_status", pending.as_bytes()).expect("parse"),
            None
        );
    }

    #[test]
    fn only_a_push_to_the_default_branch_is_a_change() {
        let c = parse("push", PUSH).expect("parse").expect("a change");
        assert_eq!(c.kind, "push");
        assert!(
            c.description
                .starts_with("push to main (a1b2c3d): raise payment timeout"),
            "{}",
            c.description
        );
        let feature =
            String::from_utf8_lossy(PUSH).replace("refs/heads/main", "refs/heads/feature-x");
        assert_eq!(parse("push", feature.as_bytes()).expect("parse"), None);
    }

    #[test]
    fn only_a_merged_pull_request_is_a_change() {
        let c = parse("pull_request", MERGED)
            .expect("parse")
            .expect("a change");
        assert_eq!(c.kind, "merge");
        assert_eq!(c.author.as_deref(), Some("hubot"));
        assert_eq!(c.external_id, "merge:acme/checkout#1347");
        let unmerged =
            String::from_utf8_lossy(MERGED).replace("\"merged\": true", "\"merged\": false");
        assert_eq!(
            parse("pull_request", unmerged.as_bytes()).expect("parse"),
            None
        );
        assert_eq!(parse("issues", b"{}").expect("parse"), None);
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse(
            "push",
            br#"{"ref":"refs/heads/main","repository":{"name":"a","full_name":"o/a"}}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("after"), "{err}");
    }
}
