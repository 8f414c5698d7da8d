//! CloudWatch Logs filter patterns for unstructured events, for the
//! replay: `ERROR` (contains), `ERROR timeout` (both), `"connection refused"`
//! (the phrase), `?ERROR ?WARN` (either), `-healthz` (not). Terms match
//! case-sensitively, as in CloudWatch. JSON (`{ $.level = ... }`) and
//! space-delimited (`[ip, ...]`) patterns are refused with a readable error.

use brain::backends::ToolError;

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct FilterPattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

impl FilterPattern {
    pub(crate) fn parse(text: &str) -> Result<FilterPattern, ToolError> {
        let text = text.trim();
        if text.starts_with('{') || text.starts_with('[') {
            return Err(ToolError::InvalidArguments(format!(
                "`pattern`: JSON and space-delimited filter patterns are not supported by the replay; \
                 use terms such as ERROR, \"exact phrase\", ?either ?or, -exclude: {text}"
            )));
        }
        let mut p = FilterPattern::default();
        let mut rest = text;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            rest = &rest[start..];
            let (prefix, body) = match rest.chars().next() {
                Some(c @ ('?' | '-')) => (Some(c), &rest[1..]),
                _ => (None, rest),
            };
            let (term, after) = if let Some(quoted) = body.strip_prefix('"') {
                match quoted.find('"') {
                    Some(end) => (&quoted[..end], &quoted[end + 1..]),
                    None => (quoted, ""),
                }
            } else {
                let end = body.find(char::is_whitespace).unwrap_or(body.len());
                (&body[..end], &body[end..])
            };
            rest = after;
            if term.is_empty() {
                continue;
            }
            let list = match prefix {
                Some('?') => &mut p.any,
                Some('-') => &mut p.none,
                _ => &mut p.all,
            };
            list.push(term.to_owned());
        }
        Ok(p)
    }

    pub(crate) fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_phrases_alternatives_and_exclusions() {
        let m = |p: &str, s: &str| FilterPattern::parse(p).unwrap().matches(s);
        assert!(m("", "anything"));
        assert!(m("ERROR timeout", "ERROR: read timeout"));
        assert!(!m("ERROR timeout", "ERROR: refused"));
        assert!(m(
            "\"too many clients\"",
            "FATAL: sorry, too many clients already"
        ));
        assert!(!m("\"too many clients\"", "too many other clients"));
        assert!(m("?ERROR ?WARN", "WARN pool"));
        assert!(!m("?ERROR ?WARN", "INFO pool"));
        assert!(!m("GET -healthz", "GET /healthz"));
        assert!(!m("error", "ERROR"));
    }

    #[test]
    fn json_patterns_are_refused_readably() {
        let e = FilterPattern::parse("{ $.level = \"error\" }").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
