//! The registry: every tool of every backend under one name space, with the
//! checks no backend can skip — arguments against the schema, the timeout,
//! the output budget — applied in one place.

use crate::schema;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tools by name, each with the backend that serves it.
#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<String, Entry>,
}

#[derive(Clone)]
struct Entry {
    spec: ToolSpec,
    backend: Arc<dyn ToolBackend>,
    /// The name the backend knows the tool by (differs for MCP servers'
    /// tools, which join as `server__tool`).
    backend_name: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

/// A registry that cannot be built as asked.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("two tools are named {name}: from {first} and from {second}")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("tool name {0:?} is not verb_noun: lower-case ASCII words joined by `_`")]
    BadName(String),
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Add every tool of `backend` under its own name.
    pub fn add(&mut self, backend: Arc<dyn ToolBackend>) -> Result<(), RegistryError> {
        self.add_with_prefix(backend, None)
    }

    /// Add every tool of `backend` as `prefix__tool` (external MCP servers).
    pub fn add_with_prefix(
        &mut self,
        backend: Arc<dyn ToolBackend>,
        prefix: Option<&str>,
    ) -> Result<(), RegistryError> {
        let specs = backend.tools();
        let mut staged = Vec::with_capacity(specs.len());
        for mut spec in specs {
            let backend_name = spec.name.clone();
            if prefix.is_none() && !is_verb_noun(&spec.name) {
                return Err(RegistryError::BadName(spec.name));
            }
            if let Some(p) = prefix {
                spec.name = format!("{p}__{}", spec.name);
            }
            if let Some(existing) = self.tools.get(&spec.name) {
                return Err(RegistryError::Duplicate {
                    name: spec.name,
                    first: existing.backend.name().to_owned(),
                    second: backend.name().to_owned(),
                });
            }
            staged.push(Entry {
                spec,
                backend: Arc::clone(&backend),
                backend_name,
            });
        }
        for e in staged {
            self.tools.insert(e.spec.name.clone(), e);
        }
        Ok(())
    }

    /// Every tool, sorted by name.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values().map(|e| &e.spec)
    }

    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name).map(|e| &e.spec)
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The component a call of `name` with `args` acts on, if it acts.
    pub fn target(&self, name: &str, args: &serde_json::Value) -> Option<String> {
        let e = self.tools.get(name)?;
        e.backend.target(&e.backend_name, args)
    }

    /// Tool counts per backend, for docs and the closing note.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.tools.values() {
            *out.entry(e.backend.name().to_owned()).or_default() += 1;
        }
        out
    }

    /// Call `name` with `args`: check them against the schema, run the call
    /// within the tool's timeout, and fit the text into its budget. Risk is
    /// not checked here: callers that may act (agents, MCP) go through the
    /// policy gate first.
    pub async fn call(&self, name: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let entry = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(suggest(self, name)))?;
        let args = if args.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            args
        };
        schema::check(&entry.spec.input_schema, &args).map_err(ToolError::InvalidArguments)?;
        let call = entry.backend.call(&entry.backend_name, args);
        let out = tokio::time::timeout(entry.spec.timeout, call)
            .await
            .map_err(|_| ToolError::Timeout(entry.spec.timeout))??;
        Ok(fit(out, entry.spec.output_budget))
    }
}

/// `name`, with the closest known names when it is unknown.
fn suggest(registry: &Registry, name: &str) -> String {
    let words: Vec<&str> = name.split('_').filter(|w| w.len() > 2).collect();
    let close: Vec<&str> = registry
        .tools
        .keys()
        .filter(|k| words.iter().any(|w| k.contains(w)))
        .map(String::as_str)
        .take(5)
        .collect();
    if close.is_empty() {
        name.to_owned()
    } else {
        format!("{name} (did you mean {}?)", close.join(", "))
    }
}

fn is_verb_noun(name: &str) -> bool {
    let mut parts = name.split('_');
    let ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!((parts.next(), parts.next()), (Some(a), Some(b)) if ok(a) && ok(b)) && parts.all(ok)
}

/// Cut `out.text` to `budget` characters at a line boundary, with a marker
/// that says how much was left out and how to see it.
pub fn fit(mut out: ToolOutput, budget: usize) -> ToolOutput {
    let total = out.text.chars().count();
    if total <= budget {
        return out;
    }
    let marker_room = 160.min(budget / 2);
    let keep_chars = budget - marker_room;
    let cut = out
        .text
        .char_indices()
        .nth(keep_chars)
        .map_or(out.text.len(), |(i, _)| i);
    // Prefer a whole line, unless that throws away most of what fits.
    let cut = match out.text[..cut].rfind('\n') {
        Some(nl) if nl >= cut / 2 => nl,
        _ => cut,
    };
    let shown_lines = out.text[..cut].lines().count();
    let total_lines = out.text.lines().count();
    out.text.truncate(cut);
    let shown = out.text.chars().count();
    out.text.push_str(&format!(
        "\n[output truncated: showing {shown} of {total} characters ({shown_lines} of {total_lines} lines); narrow the query to see the rest]"
    ));
    out.truncated = true;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed;
    use async_trait::async_trait;
    use brain::vocabulary::Risk;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use std::time::Duration;

    struct Echo;

    /// Arguments of `echo_lines`.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Lines {
        /// How many lines.
        count: u32,
        /// Sleep this long first, in milliseconds.
        #[serde(default)]
        delay_ms: u64,
    }

    #[async_trait]
    impl ToolBackend for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        fn tools(&self) -> Vec<ToolSpec> {
            let mut s = typed::spec::<Lines>(
                "echo_lines",
                "Numbered lines.",
                Risk::Read,
                Duration::from_millis(200),
            );
            s.output_budget = 400;
            vec![s]
        }
        async fn call(&self, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
            assert_eq!(tool, "echo_lines");
            let a: Lines = typed::parse(args)?;
            tokio::time::sleep(Duration::from_millis(a.delay_ms)).await;
            let text: Vec<String> = (0..a.count).map(|i| format!("line {i}")).collect();
            Ok(ToolOutput {
                text: text.join("\n"),
                data: serde_json::json!({"count": a.count}),
                truncated: false,
            })
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.add(Arc::new(Echo)).unwrap();
        r
    }

    #[tokio::test]
    async fn calls_within_budget_and_marks_a_cut() {
        let r = registry();
        let short = r
            .call("echo_lines", serde_json::json!({"count": 3}))
            .await
            .unwrap();
        assert_eq!(short.text, "line 0\nline 1\nline 2");
        assert!(!short.truncated);
        let long = r
            .call("echo_lines", serde_json::json!({"count": 500}))
            .await
            .unwrap();
        assert!(long.truncated);
        assert!(long.text.chars().count() <= 400 + 20, "{}", long.text.len());
        assert!(
            long.text.contains("[output truncated: showing"),
            "{}",
            long.text
        );
        assert!(long.text.contains("of 500 lines"), "{}", long.text);
        // Cut at a line: every shown line is whole.
        let body = long.text.split("\n[output truncated").next().unwrap();
        assert!(body.lines().all(|l| l.starts_with("line ")));
    }

    #[tokio::test]
    async fn bad_arguments_never_reach_the_backend() {
        let r = registry();
        let e = r
            .call("echo_lines", serde_json::json!({"count": "many"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "invalid_arguments");
        assert!(e.to_string().contains("`count`"), "{e}");
        let e = r
            .call("echo_lines", serde_json::json!({"count": 1, "cnt": 2}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("unknown argument `cnt`"), "{e}");
    }

    #[tokio::test]
    async fn a_slow_tool_times_out() {
        let e = registry()
            .call(
                "echo_lines",
                serde_json::json!({"count": 1, "delay_ms": 5_000}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "timeout");
    }

    #[tokio::test]
    async fn unknown_tools_get_suggestions() {
        let e = registry()
            .call("echo_line", serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "unknown_tool");
        assert!(e.to_string().contains("did you mean echo_lines"), "{e}");
    }

    #[test]
    fn names_are_checked_and_unique() {
        let mut r = registry();
        assert!(matches!(
            r.add(Arc::new(Echo)),
            Err(RegistryError::Duplicate { .. })
        ));
        r.add_with_prefix(Arc::new(Echo), Some("other")).unwrap();
        assert!(r.spec("other__echo_lines").is_some());
        assert_eq!(r.counts()["echo"], 2);
        assert!(is_verb_noun("get_pod_logs"));
        assert!(!is_verb_noun("logs"));
        assert!(!is_verb_noun("Get_Pods"));
        assert!(!is_verb_noun("get__pods"));
    }
}
