//! Label and field selectors, parsed and matched as the API server does.
//! The replay filters with them; the live client sends them and filters
//! the answer again, so an emulator or an aggregated API that ignores a
//! selector cannot widen the answer.

use serde_json::Value;

/// `app=web,tier!=db` style selectors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub labels: Option<String>,
    pub fields: Option<String>,
    label_reqs: Vec<Req>,
    field_reqs: Vec<Req>,
}

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selector {
    /// Parse; a malformed selector is an error naming it.
    pub fn new(labels: Option<&str>, fields: Option<&str>) -> Result<Selector, String> {
        let labels = labels.map(str::trim).filter(|s| !s.is_empty());
        let fields = fields.map(str::trim).filter(|s| !s.is_empty());
        Ok(Selector {
            label_reqs: labels.map(parse).transpose()?.unwrap_or_default(),
            field_reqs: fields.map(parse).transpose()?.unwrap_or_default(),
            labels: labels.map(str::to_owned),
            fields: fields.map(str::to_owned),
        })
    }

    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Only a field selector, e.g. `involvedObject.name=x`.
    pub fn fields(fields: &str) -> Selector {
        Selector::new(None, Some(fields)).unwrap_or_default()
    }

    /// Whether `obj` (in API shape) is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let field = |k: &str| field_value(obj, k);
        self.label_reqs.iter().all(|r| r.holds(label))
            && self.field_reqs.iter().all(|r| r.holds(|k| field(k)))
    }
}

/// A field selector's value: `metadata.name`, `spec.nodeName`,
/// `involvedObject.kind`..., as text (numbers and booleans too).
fn field_value<'a>(obj: &'a Value, path: &str) -> Option<&'a str> {
    let mut v = obj;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s),
        Value::Bool(true) => Some("true"),
        Value::Bool(false) => Some("false"),
        _ => None,
    }
}

impl Req {
    fn holds<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Req::Eq(k, v) => get(k).unwrap_or("") == v,
            Req::NotEq(k, v) => get(k).unwrap_or("") != v,
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        }
    }
}

fn parse(text: &str) -> Result<Vec<Req>, String> {
    let bad = |why: &str| format!("selector `{text}`: {why}");
    let mut out = Vec::new();
    for part in split_top(text) {
        let p = part.trim();
        if p.is_empty() {
            return Err(bad("empty requirement"));
        }
        let req = if let Some((k, v)) = p.split_once("!=") {
            Req::NotEq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, vs)) = set_op(p, " notin ") {
            Req::NotIn(k, vs)
        } else if let Some((k, vs)) = set_op(p, " in ") {
            Req::In(k, vs)
        } else if let Some(k) = p.strip_prefix('!') {
            Req::NotExists(k.trim().into())
        } else if p.contains(char::is_whitespace) || p.contains(['(', ')']) {
            return Err(bad(&format!("cannot read `{p}`")));
        } else {
            Req::Exists(p.into())
        };
        out.push(req);
    }
    Ok(out)
}

/// `k in (a,b)` → (`k`, [`a`, `b`]).
fn set_op(p: &str, op: &str) -> Option<(String, Vec<String>)> {
    let (k, rest) = p.split_once(op)?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some((
        k.trim().to_owned(),
        inner.split(',').map(|v| v.trim().to_owned()).collect(),
    ))
}

/// Split at commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_and_field_selectors_match_like_the_api_server() {
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "fe"}},
                         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let m = |l: Option<&str>, f: Option<&str>| Selector::new(l, f).unwrap().matches(&pod);
        assert!(m(Some("app=web"), None));
        assert!(m(Some("app==web,tier"), None));
        assert!(!m(Some("app!=web"), None));
        assert!(m(Some("app in (web, api),!canary"), None));
        assert!(!m(Some("tier notin (fe)"), None));
        assert!(m(None, Some("spec.nodeName=n1,status.phase!=Failed")));
        assert!(!m(None, Some("metadata.name=b")));
        assert!(m(None, None));
        assert!(Selector::new(Some("app in web"), None).is_err());
        assert!(Selector::new(Some("a,,b"), None).is_err());
    }
}
