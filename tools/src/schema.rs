//! Argument checking against a tool's JSON Schema, before any call.
//!
//! Our own tools' schemas come from their Rust argument types (schemars);
//! tools of external MCP servers bring arbitrary schemas. Both are checked
//! here with the keywords tool schemas use in practice: `type`, `enum`,
//! `const`, `properties`, `required`, `additionalProperties`, `items`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`,
//! `anyOf`/`oneOf`/`allOf` and local `$ref`s. Other keywords are ignored,
//! which errs toward letting the backend decide, never toward a wrong
//! rejection.

use serde_json::Value;

/// The first violation found, as a sentence that names the argument.
pub fn check(schema: &Value, args: &Value) -> Result<(), String> {
    check_at(schema, schema, args, "", 0)
}

const MAX_DEPTH: usize = 32;

fn check_at(
    root: &Value,
    schema: &Value,
    v: &Value,
    path: &str,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let Some(s) = schema.as_object() else {
        // `true` accepts everything; `false` nothing.
        return match schema {
            Value::Bool(false) => Err(format!("{} is not allowed", name(path))),
            _ => Ok(()),
        };
    };
    if let Some(Value::String(r)) = s.get("$ref") {
        let target = resolve(root, r).ok_or_else(|| format!("schema reference {r} not found"))?;
        check_at(root, target, v, path, depth + 1)?;
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => is_type(v, t),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| is_type(v, t)),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "{} must be {}, got {}",
                name(path),
                describe_type(t),
                kind(v)
            ));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        let listed: Vec<String> = options.iter().map(Value::to_string).collect();
        return Err(format!(
            "{} must be one of {}",
            name(path),
            listed.join(", ")
        ));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{} must be {c}", name(path)));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = s.get(key) {
            let mut first_error = None;
            let matched = branches
                .iter()
                .any(|b| match check_at(root, b, v, path, depth + 1) {
                    Ok(()) => true,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        false
                    }
                });
            if !matched {
                return Err(first_error
                    .unwrap_or_else(|| format!("{} matches no allowed shape", name(path))));
            }
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for b in all {
            check_at(root, b, v, path, depth + 1)?;
        }
    }
    match v {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            for (k, item) in map {
                let at = join(path, k);
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check_at(root, sub, item, &at, depth + 1)?,
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            // Sorted: the order must not depend on how the
                            // JSON map happens to keep its keys.
                            let mut known: Vec<&str> = props
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            known.sort_unstable();
                            return Err(if known.is_empty() {
                                format!("unknown argument {}: this tool takes none", name(&at))
                            } else {
                                format!(
                                    "unknown argument {}; known: {}",
                                    name(&at),
                                    known.join(", ")
                                )
                            });
                        }
                        Some(extra @ Value::Object(_)) => {
                            check_at(root, extra, item, &at, depth + 1)?
                        }
                        _ => {}
                    },
                }
            }
            // After the unknown ones: `txt` for `text` is better reported as
            // the typo it is than as a missing `text`.
            if let Some(Value::Array(required)) = s.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        return Err(format!("{} is required", name(&join(path, r))));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                return Err(format!("{} needs at least {min} items", name(path)));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                return Err(format!("{} takes at most {max} items", name(path)));
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_at(root, item_schema, item, &format!("{path}[{i}]"), depth + 1)?;
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                return Err(format!(
                    "{} must have at least {min} characters",
                    name(path)
                ));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                return Err(format!("{} must have at most {max} characters", name(path)));
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), n.as_f64())
                && x < min
            {
                return Err(format!("{} must be at least {min}", name(path)));
            }
            if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), n.as_f64())
                && x > max
            {
                return Err(format!("{} must be at most {max}", name(path)));
            }
        }
        _ => {}
    }
    Ok(())
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn describe_type(t: &Value) -> String {
    match t {
        Value::String(t) => article(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(article)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.to_string(),
    }
}

fn article(t: &str) -> String {
    match t {
        "null" => "null".into(),
        "integer" | "object" | "array" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn name(path: &str) -> String {
    if path.is_empty() {
        "the arguments".into()
    } else {
        format!("`{path}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
                "order": {"$ref": "#/$defs/Order"},
                "labels": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["query"],
            "additionalProperties": false,
            "$defs": {"Order": {"type": "string", "enum": ["asc", "desc"]}},
        })
    }

    #[test]
    fn accepts_what_the_schema_allows() {
        check(&schema(), &json!({"query": "up"})).unwrap();
        check(
            &schema(),
            &json!({"query": "up", "limit": null, "order": "desc", "labels": ["a"]}),
        )
        .unwrap();
        check(&schema(), &json!({"query": "up", "limit": 5.0})).unwrap();
    }

    #[test]
    fn names_the_argument_at_fault() {
        let cases = [
            (json!({}), "`query` is required"),
            (
                json!({"query": 3}),
                "`query` must be a string, got an integer",
            ),
            (
                json!({"query": ""}),
                "`query` must have at least 1 characters",
            ),
            (
                json!({"query": "up", "limit": 0}),
                "`limit` must be at least 1",
            ),
            (
                json!({"query": "up", "limit": 2.5}),
                "`limit` must be an integer or null, got a fractional number",
            ),
            (
                json!({"query": "up", "order": "up"}),
                "`order` must be one of \"asc\", \"desc\"",
            ),
            (
                json!({"query": "up", "labels": ["a", 1]}),
                "`labels[1]` must be a string, got an integer",
            ),
            (
                json!({"query": "up", "qeury": "x"}),
                "unknown argument `qeury`; known: labels, limit, order, query",
            ),
            (
                json!({"qeury": "up"}),
                "unknown argument `qeury`; known: labels, limit, order, query",
            ),
            (json!("up"), "the arguments must be an object, got a string"),
        ];
        for (args, want) in cases {
            assert_eq!(check(&schema(), &args).unwrap_err(), want, "{args}");
        }
    }
}
