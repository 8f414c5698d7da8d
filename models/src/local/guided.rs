//! Constrained decoding of flat JSON objects.
//!
//! A 0.5B model asked for `{"category": ..., "confidence": ...}` forgets
//! fields, invents enum values and wraps the answer in prose. For the
//! schemas agents use on the critical path (an object of enums, numbers,
//! booleans and short strings) the engine writes the JSON structure itself
//! and lets the model choose only the values, each restricted to what the
//! schema allows: an enum value is picked token by token among the tokens
//! that keep it a prefix of an allowed value, a number only from digit
//! tokens, a string never contains a quote or a control character. The
//! result is valid by construction; it is still parsed and validated.
//! Other schemas fall back to free generation with strict parsing.

use serde_json::Value;

/// One piece of the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Text the engine writes as is.
    Literal(String),
    /// Exactly one of these texts (JSON-encoded values).
    Choice(Vec<String>),
    /// A JSON number.
    Number { integer: bool },
    /// The inside of a JSON string, at most this many characters.
    Text { max_chars: usize },
}

/// The plan for `schema`, if it is a flat object this module can guide.
pub fn plan(schema: &Value) -> Option<Vec<Segment>> {
    if schema.get("type")?.as_str()? != "object" {
        return None;
    }
    let props = schema.get("properties")?.as_object()?;
    if props.is_empty() {
        return None;
    }
    // Required fields first, in the schema's order, then the others.
    let mut names: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.iter().any(|n| !props.contains_key(*n)) {
        return None;
    }
    for k in props.keys() {
        if !names.contains(&k.as_str()) {
            names.push(k);
        }
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // The literal ends at the colon: the model writes the space
        // itself, as `: "` and `: 0` are single natural tokens that a
        // separately fed space would break.
        let sep = if i == 0 { "{" } else { ", " };
        out.push(Segment::Literal(format!(
            "{sep}{}:",
            Value::String((*name).to_owned())
        )));
        out.extend(field(props.get(*name)?)?);
    }
    out.push(Segment::Literal("}".into()));
    Some(merge_literals(out))
}

fn field(s: &Value) -> Option<Vec<Segment>> {
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        let texts: Vec<String> = options.iter().map(|o| format!(" {o}")).collect();
        return (!texts.is_empty()).then(|| vec![Segment::Choice(texts)]);
    }
    match s.get("type")?.as_str()? {
        "boolean" => Some(vec![Segment::Choice(vec![" true".into(), " false".into()])]),
        "number" => Some(vec![Segment::Number { integer: false }]),
        "integer" => Some(vec![Segment::Number { integer: true }]),
        "string" => {
            let max = s.get("maxLength").and_then(Value::as_u64).unwrap_or(200) as usize;
            Some(vec![
                Segment::Literal(" \"".into()),
                Segment::Text { max_chars: max },
                Segment::Literal("\"".into()),
            ])
        }
        _ => None,
    }
}

fn merge_literals(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for s in segments {
        match (out.last_mut(), s) {
            (Some(Segment::Literal(a)), Segment::Literal(b)) => a.push_str(&b),
            (_, s) => out.push(s),
        }
    }
    out
}

/// Whether `text` may continue towards one of `options`, and whether it
/// already is one that no longer option extends.
pub fn choice_state(text: &str, options: &[String]) -> (bool, bool) {
    let viable = options.iter().any(|o| o.starts_with(text));
    let done = options.iter().any(|o| o == text)
        && !options
            .iter()
            .any(|o| o.len() > text.len() && o.starts_with(text));
    (viable, done)
}

/// Whether `piece` may extend a number `so_far`.
pub fn number_piece_ok(so_far: &str, piece: &str, integer: bool) -> bool {
    if piece.is_empty() {
        return false;
    }
    let mut text = so_far.to_owned();
    for c in piece.chars() {
        let ok = match c {
            '0'..='9' => true,
            // The one space after the colon.
            ' ' => text.is_empty(),
            '-' => text.trim_start().is_empty(),
            '.' => !integer && !text.contains('.') && text.chars().any(|d| d.is_ascii_digit()),
            _ => false,
        };
        if !ok {
            return false;
        }
        text.push(c);
    }
    // No leading zeros such as 007, which JSON forbids.
    let digits = text.trim_start().trim_start_matches('-');
    !(digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."))
}

/// Whether `piece` may appear inside a JSON string without escaping.
pub fn text_piece_ok(piece: &str) -> bool {
    !piece.is_empty()
        && !piece
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_flat_object_becomes_literals_and_holes_required_first() {
        let p = plan(
            &json!({"type": "object", "required": ["category", "confidence"],
            "properties": {"note": {"type": "string", "maxLength": 40},
                           "confidence": {"type": "number"},
                           "category": {"enum": ["oom", "bad_deploy"]}}}),
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                Segment::Literal("{\"category\":".into()),
                Segment::Choice(vec![" \"oom\"".into(), " \"bad_deploy\"".into()]),
                Segment::Literal(", \"confidence\":".into()),
                Segment::Number { integer: false },
                Segment::Literal(", \"note\": \"".into()),
                Segment::Text { max_chars: 40 },
                Segment::Literal("\"}".into()),
            ]
        );
        assert!(plan(&json!({"type": "object", "properties": {"x": {"type": "array"}}})).is_none());
        assert!(plan(&json!({"type": "array"})).is_none());
    }

    #[test]
    fn constraints_admit_only_valid_pieces() {
        let opts = vec!["\"oom\"".to_owned(), "\"oom_kill\"".to_owned()];
        assert_eq!(choice_state("\"oo", &opts), (true, false));
        assert_eq!(choice_state("\"oom\"", &opts), (true, true));
        assert_eq!(choice_state("\"cpu", &opts), (false, false));
        assert!(number_piece_ok("", "0", false));
        assert!(number_piece_ok("", " 0", false));
        assert!(!number_piece_ok(" 1", " 2", false));
        assert!(number_piece_ok("0", ".85", false));
        assert!(!number_piece_ok("0", "7", false), "no leading zero");
        assert!(!number_piece_ok("1", ".5", true), "integers have no point");
        assert!(!number_piece_ok("", "85%", false));
        assert!(text_piece_ok(" memory limit"));
        assert!(!text_piece_ok("limit\","));
        assert!(!text_piece_ok("a\nb"));
    }
}
