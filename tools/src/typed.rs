//! Tools with typed arguments: the schema is generated from the Rust type,
//! and the arguments are parsed into it with the failing field named.

use brain::backends::{ToolError, ToolSpec};
use brain::vocabulary::Risk;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// Output budget of most tools, in characters: about 2,000 tokens.
pub const DEFAULT_BUDGET: usize = 8_000;

/// The spec of a tool whose arguments are `A`.
pub fn spec<A: JsonSchema>(
    name: &str,
    description: &str,
    risk: Risk,
    timeout: Duration,
) -> ToolSpec {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(A)).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = schema.as_object_mut() {
        // The name of the Rust type and the draft URL mean nothing to a model.
        map.remove("$schema");
        map.remove("title");
        // Tools without arguments still take an object.
        map.entry("type").or_insert_with(|| "object".into());
        map.entry("properties")
            .or_insert_with(|| serde_json::json!({}));
    }
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: schema,
        risk,
        timeout,
        output_budget: DEFAULT_BUDGET,
        action: None,
    }
}

/// The spec of a tool that performs `action` of the vocabulary: its risk is
/// the action's default risk (the policy may raise it per call, e.g. a
/// scale-down), and the gate sees which action it is.
pub fn action_spec<A: JsonSchema>(
    name: &str,
    description: &str,
    action: brain::vocabulary::Action,
    timeout: Duration,
) -> ToolSpec {
    let mut s = spec::<A>(name, description, action.default_risk(), timeout);
    s.action = Some(action.as_str().to_owned());
    s
}

/// Parse `args` into `A`; `null` counts as no arguments.
pub fn parse<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args
    };
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ToolError::InvalidArguments(if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("`{path}`: {inner}")
        })
    })
}

/// A duration argument such as `90s`, `15m`, `2h`, `1h30m` or `7d`; the
/// scenario format's syntax, so replays and live calls read alike.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = brain::scenario::parse_duration(text.trim())?;
    d.to_std()
        .map_err(|_| format!("`{text}` must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Arguments of a test tool.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Args {
        /// A PromQL expression.
        query: String,
        /// At most this many series.
        #[serde(default)]
        limit: Option<u32>,
    }

    #[test]
    fn the_schema_describes_the_arguments_for_a_model() {
        let s = spec::<Args>("query_thing", "d", Risk::Read, Duration::from_secs(1));
        let schema = &s.input_schema;
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], serde_json::json!(["query"]));
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["query"]["description"],
            "A PromQL expression."
        );
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
        // The schema and the parser agree.
        crate::schema::check(schema, &serde_json::json!({"query": "up", "limit": 3})).unwrap();
        crate::schema::check(schema, &serde_json::json!({"limit": 3})).unwrap_err();
    }

    #[test]
    fn parse_names_the_field() {
        let e = parse::<Args>(serde_json::json!({"query": "up", "limit": "x"})).unwrap_err();
        assert!(e.to_string().contains("`limit`"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "15", "5x", "m", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
