//! The runbooks' say in remediation. Each runbook's front matter names
//! the root-cause categories it covers and the actions it allows; for a
//! diagnosed category, the remediator's candidates are kept only when a
//! runbook covering that category lists their action (escalating is
//! always allowed), and each kept candidate cites the runbook. A team
//! steers what the agents may propose by editing its runbooks; a category
//! no runbook covers leaves the candidates as the remediator made them.

use crate::knowledge::parse::{Format, parse};
use crate::remediator::Candidate;
use brain::taxonomy::RootCause;
use brain::vocabulary::Action;
use std::path::Path;

/// One runbook's front matter, as far as remediation cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    pub id: String,
    pub title: String,
    pub categories: Vec<RootCause>,
    pub actions: Vec<Action>,
}

/// The runbooks of a directory.
#[derive(Debug, Clone, Default)]
pub struct Runbooks {
    pub entries: Vec<Runbook>,
}

impl Runbooks {
    /// Read every `.md` file of `dir`. A file that cannot be read, or that
    /// names an unknown category or action, is reported (file and what is
    /// wrong) and the rest still load; so is a missing directory.
    pub fn load(dir: &Path) -> (Runbooks, Vec<String>) {
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        let files = match std::fs::read_dir(dir) {
            Ok(rd) => {
                let mut files: Vec<_> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "md"))
                    .collect();
                files.sort();
                files
            }
            Err(e) => {
                problems.push(format!("{}: {e}", dir.display()));
                Vec::new()
            }
        };
        for path in files {
            let shown = path.display();
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let parsed = match parse(Format::Markdown, &bytes) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let mut categories = Vec::new();
            for c in &parsed.meta.categories {
                match c.parse::<RootCause>() {
                    Ok(c) => categories.push(c),
                    Err(_) => problems.push(format!("{shown}: unknown category {c:?}")),
                }
            }
            let mut actions = Vec::new();
            for a in &parsed.meta.actions {
                match a.parse::<Action>() {
                    Ok(a) => actions.push(a),
                    Err(_) => problems.push(format!("{shown}: unknown action {a:?}")),
                }
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            entries.push(Runbook {
                id: parsed.meta.id.clone().unwrap_or_else(|| stem.clone()),
                title: parsed
                    .meta
                    .title
                    .clone()
                    .or(parsed.title.clone())
                    .unwrap_or(stem),
                categories,
                actions,
            });
        }
        (Runbooks { entries }, problems)
    }

    /// The runbooks covering `category`.
    pub fn for_category(&self, category: RootCause) -> Vec<&Runbook> {
        self.entries
            .iter()
            .filter(|r| r.categories.contains(&category))
            .collect()
    }

    /// Keep the candidates a runbook for `category` allows, citing it;
    /// returns them and, for each one dropped, why.
    pub fn steer(
        &self,
        category: RootCause,
        candidates: Vec<Candidate>,
    ) -> (Vec<Candidate>, Vec<String>) {
        let covering = self.for_category(category);
        if covering.is_empty() {
            return (candidates, Vec::new());
        }
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for mut c in candidates {
            match covering.iter().find(|r| r.actions.contains(&c.action)) {
                Some(r) => {
                    c.rationale
                        .push_str(&format!(" (runbook {:?} allows it)", r.title));
                    kept.push(c);
                }
                None if c.action == Action::Escalate => kept.push(c),
                None => dropped.push(format!(
                    "{} on {}: no runbook for {} lists it",
                    c.action.as_str(),
                    c.target,
                    category.as_str()
                )),
            }
        }
        (kept, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brain::vocabulary::Component;
    use serde_json::json;

    fn candidate(action: Action) -> Candidate {
        Candidate {
            action,
            target: "deployment/prod/api"
                .parse::<Component>()
                .expect("component"),
            params: json!({}),
            rationale: "because".into(),
        }
    }

    #[test]
    fn the_projects_runbooks_all_load_and_cover_every_category() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
        let (books, problems) = Runbooks::load(&dir);
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(books.entries.len() >= 20);
        for c in RootCause::ALL {
            assert!(
                !books.for_category(c).is_empty(),
                "no runbook covers {}",
                c.as_str()
            );
        }
    }

    #[test]
    fn only_actions_a_covering_runbook_lists_are_kept_and_cited() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("oom.md"),
            "---\ntitle: OOM kills\ncategories: [oom_killed]\nactions: [kubernetes.set_resources]\n---\n# OOM kills\n\nRaise the limit.\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("bad.md"),
            "---\ncategories: [not_a_cause]\nactions: [kubernetes.launch_missiles]\n---\n# Bad\n\ntext\n",
        )
        .expect("write");
        let (books, problems) = Runbooks::load(dir.path());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("bad.md") && problems[0].contains("not_a_cause"));
        assert!(problems[1].contains("launch_missiles"));

        let (kept, dropped) = books.steer(
            RootCause::OomKilled,
            vec![
                candidate(Action::Rollback),
                candidate(Action::SetResources),
                candidate(Action::Escalate),
            ],
        );
        let actions: Vec<Action> = kept.iter().map(|c| c.action).collect();
        assert_eq!(actions, vec![Action::SetResources, Action::Escalate]);
        assert!(
            kept[0]
                .rationale
                .ends_with("(runbook \"OOM kills\" allows it)")
        );
        assert_eq!(dropped.len(), 1);
        assert!(dropped[0].starts_with("kubernetes.rollback on deployment/prod/api"));

        // No runbook covers bad_deploy here: the candidates stand as made.
        let (kept, dropped) = books.steer(RootCause::BadDeploy, vec![candidate(Action::Rollback)]);
        assert_eq!(kept.len(), 1);
        assert!(dropped.is_empty());
    }
}
