//! Structured answers: strict JSON extraction and JSON Schema checking.
//!
//! A model's text is never trusted to be what was asked for. An answer
//! requested as JSON must be one JSON value (optionally inside one code
//! fence) that validates against the schema; a tool call must name an
//! offered tool and carry valid arguments. The validator covers the part of
//! JSON Schema that tool and answer schemas use: `type`, `properties`,
//! `required`, `additionalProperties: false`, `enum`, `const`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `minimum`/`maximum`.
//! Unknown keywords are ignored, as the specification says.

use serde_json::Value;

/// The JSON value an answer consists of, or why it is not one.
pub fn parse_json_answer(text: &str) -> Result<Value, String> {
    let t = strip_fence(text.trim());
    serde_json::from_str::<Value>(t).map_err(|e| format!("not a single JSON value: {e}"))
}

/// `text` without one surrounding Markdown code fence.
fn strip_fence(t: &str) -> &str {
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// Check `value` against `schema`; the error names the JSON path.
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    check(value, schema, "$")
}

fn type_matches(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        _ => true,
    }
}

fn check(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(()); // `true` or a non-object schema accepts anything here
    };
    match s.get("type") {
        Some(Value::String(ty)) if !type_matches(value, ty) => {
            return Err(format!("{path}: expected {ty}, got {}", kind(value)));
        }
        Some(Value::Array(types))
            if !types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(value, t)) =>
        {
            return Err(format!(
                "{path}: expected one of {types:?}, got {}",
                kind(value)
            ));
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        return Err(format!(
            "{path}: {value} is not one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return Err(format!("{path}: must be {c}"));
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = s.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        return Err(format!("{path}: missing required field `{r}`"));
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(v, sub, &format!("{path}.{k}"))?,
                    None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{path}: unexpected field `{k}`"));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                return Err(format!("{path}: needs at least {min} items, has {n}"));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                return Err(format!("{path}: allows at most {max} items, has {n}"));
            }
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(v, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && n < min
            {
                return Err(format!("{path}: shorter than {min} characters"));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && n > max
            {
                return Err(format!("{path}: longer than {max} characters"));
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                return Err(format!("{path}: below the minimum {min}"));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                return Err(format!("{path}: above the maximum {max}"));
            }
        }
        _ => {}
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "required": ["category", "confidence"], "additionalProperties": false,
               "properties": {"category": {"type": "string", "enum": ["oom", "bad_deploy"]},
                              "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                              "steps": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}})
    }

    #[test]
    fn a_fenced_answer_is_accepted_and_prose_is_not() {
        assert_eq!(
            parse_json_answer("```json\n{\"a\": 1}\n```").unwrap(),
            json!({"a": 1})
        );
        assert!(parse_json_answer("Sure! {\"a\": 1}").is_err());
        assert!(parse_json_answer("{\"a\": 1} and more").is_err());
    }

    #[test]
    fn validation_names_the_path_of_the_first_problem() {
        let s = schema();
        assert!(validate(&json!({"category": "oom", "confidence": 0.7}), &s).is_ok());
        let e = validate(&json!({"category": "cpu", "confidence": 0.7}), &s).unwrap_err();
        assert!(e.starts_with("$.category"), "{e}");
        let e = validate(&json!({"category": "oom"}), &s).unwrap_err();
        assert!(e.contains("`confidence`"), "{e}");
        let e = validate(&json!({"category": "oom", "confidence": 2}), &s).unwrap_err();
        assert!(e.contains("maximum"), "{e}");
        let e = validate(
            &json!({"category": "oom", "confidence": 1, "steps": ["a", 3]}),
            &s,
        )
        .unwrap_err();
        assert_eq!(e, "$.steps[1]: expected string, got number");
        let e = validate(&json!({"category": "oom", "confidence": 1, "x": 1}), &s).unwrap_err();
        assert!(e.contains("unexpected field `x`"), "{e}");
    }
}
