//! A parser for the PromQL subset the scenario replay evaluates (see
//! [`SUBSET`]). Whatever lies outside it is refused with the part named,
//! never parsed into something that would answer differently.

use regex::Regex;

/// What the replay understands, for error messages and tool descriptions.
pub const SUBSET: &str = "selectors with =, !=, =~, !~ matchers; range selectors [5m] inside \
rate, irate, increase, delta, deriv, avg/min/max/sum/count/last_over_time; abs, \
histogram_quantile; sum/avg/min/max/count by/without, topk, bottomk; + - * / % ^ and \
comparisons (with bool) between scalars and vectors and between vectors with the same labels";

/// Functions over a range vector.
pub const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
];

#[derive(Debug, Clone)]
pub enum Expr {
    Number(f64),
    /// An instant vector selector.
    Selector(Vec<Matcher>),
    /// A range vector selector: matchers and the range in milliseconds.
    Range(Vec<Matcher>, i64),
    Call(String, Vec<Expr>),
    Aggregate {
        op: AggOp,
        grouping: Grouping,
        /// `k` of topk/bottomk.
        param: Option<Box<Expr>>,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        return_bool: bool,
    },
    Neg(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Topk,
    Bottomk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// No clause: everything in one group.
    None,
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }
    fn precedence(self) -> u8 {
        match self {
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le => 1,
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 3,
            BinOp::Pow => 4,
        }
    }
}

/// One label matcher; regexes are anchored at both ends, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Matcher {
    pub fn new(label: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            label: label.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Whether a label's value (empty when absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => value == self.value,
            (MatchOp::Ne, _) => value != self.value,
            (MatchOp::Re, Some(r)) => r.is_match(value),
            (MatchOp::NotRe, Some(r)) => !r.is_match(value),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    /// The text between `[` and `]`.
    Range(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    /// `=`, `!=`, `=~`, `!~`, `==`, `+` …
    Op(&'static str),
}

fn lex(input: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while chars.get(i).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
            }
            '{' | '}' | '(' | ')' | ',' => {
                out.push(match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => Tok::Comma,
                });
                i += 1;
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or("unclosed `[`")?;
                out.push(Tok::Range(
                    chars[i + 1..i + end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_owned(),
                ));
                i += end + 1;
            }
            '"' | '\'' | '`' => {
                let (s, len) = lex_string(&chars[i..])?;
                out.push(Tok::Str(s));
                i += len;
            }
            '@' => return Err("the `@` modifier is not supported by the scenario replay".into()),
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
                {
                    // exponent sign: 1e-3
                    i += 1;
                    if matches!(chars.get(i - 1), Some('e' | 'E'))
                        && matches!(chars.get(i), Some('+' | '-'))
                    {
                        i += 1;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                let n: f64 = text.parse().map_err(|_| {
                    format!("`{text}` is not a number (durations go inside [..] here; offsets are not supported)")
                })?;
                out.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = ["==", "!=", "=~", "!~", ">=", "<="]
                    .into_iter()
                    .find(|o| *o == two)
                    .or_else(|| {
                        ["=", "+", "-", "*", "/", "%", "^", ">", "<"]
                            .into_iter()
                            .find(|o| o.starts_with(c))
                    })
                    .ok_or_else(|| format!("unexpected character {c:?}"))?;
                out.push(Tok::Op(op));
                i += op.len();
            }
        }
    }
    Ok(out)
}

fn lex_string(chars: &[char]) -> Result<(String, usize), String> {
    let quote = chars.first().copied().unwrap_or('"');
    let mut s = String::new();
    let mut i = 1;
    loop {
        match chars.get(i) {
            None => return Err("unterminated string".into()),
            Some(&c) if c == quote => return Ok((s, i + 1)),
            Some('\\') if quote != '`' => {
                let e = chars.get(i + 1).ok_or("unterminated string")?;
                s.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    other => *other,
                });
                i += 2;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// Parse `input` into an expression of the subset.
pub fn parse(input: &str) -> Result<Expr, String> {
    let toks = lex(input)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr(0)?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(format!("unexpected {} after the expression", describe(t))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Range(r) => format!("`[{r}]`"),
        Tok::LBrace => "`{`".into(),
        Tok::RBrace => "`}`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Op(o) => format!("`{o}`"),
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, want: &Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            Some(t) => Err(format!(
                "expected {} but found {}",
                describe(want),
                describe(&t)
            )),
            None => Err(format!(
                "expected {} but the expression ended",
                describe(want)
            )),
        }
    }

    fn binop(&self) -> Option<BinOp> {
        match self.peek()? {
            Tok::Op(o) => Some(match *o {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "%" => BinOp::Mod,
                "^" => BinOp::Pow,
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                ">" => BinOp::Gt,
                "<" => BinOp::Lt,
                ">=" => BinOp::Ge,
                "<=" => BinOp::Le,
                _ => return None,
            }),
            Tok::Ident(w) if matches!(w.as_str(), "and" | "or" | "unless" | "atan2") => None,
            _ => None,
        }
    }

    /// Precedence climbing; `^` is right-associative.
    fn expr(&mut self, min_prec: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        loop {
            if let Some(Tok::Ident(w)) = self.peek()
                && matches!(w.as_str(), "and" | "or" | "unless" | "atan2")
            {
                return Err(format!(
                    "the `{w}` operator is not supported by the scenario replay"
                ));
            }
            let Some(op) = self.binop() else { break };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let mut return_bool = false;
            while let Some(Tok::Ident(w)) = self.peek() {
                match w.as_str() {
                    "bool" if op.is_comparison() => {
                        return_bool = true;
                        self.pos += 1;
                    }
                    m @ ("on" | "ignoring" | "group_left" | "group_right") => {
                        return Err(format!(
                            "vector matching with `{m}` is not supported by the scenario replay; \
                             aggregate both sides to the same labels with `sum by (...)` instead"
                        ));
                    }
                    _ => break,
                }
            }
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                return_bool,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Op("-")) => {
                self.pos += 1;
                // -a^b is -(a^b)
                let e = self.expr(BinOp::Pow.precedence())?;
                Ok(Expr::Neg(Box::new(e)))
            }
            Some(Tok::Op("+")) => {
                self.pos += 1;
                self.expr(BinOp::Pow.precedence())
            }
            _ => {
                let e = self.primary()?;
                self.postfix(e)
            }
        }
    }

    fn postfix(&mut self, e: Expr) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Range(r)) => {
                let r = r.clone();
                self.pos += 1;
                if r.contains(':') {
                    return Err(format!(
                        "subqueries (`[{r}]`) are not supported by the scenario replay"
                    ));
                }
                let Expr::Selector(m) = e else {
                    return Err(format!("a range `[{r}]` must follow a metric selector"));
                };
                let d = brain::scenario::parse_duration(&r)?;
                let ms = d.num_milliseconds();
                if ms <= 0 {
                    return Err(format!("the range `[{r}]` must be positive"));
                }
                self.postfix(Expr::Range(m, ms))
            }
            Some(Tok::Ident(w)) if w == "offset" => {
                Err("the `offset` modifier is not supported by the scenario replay".into())
            }
            _ => Ok(e),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            None => Err("the expression ended early".into()),
            Some(Tok::Num(n)) => Ok(Expr::Number(n)),
            Some(Tok::LParen) => {
                let e = self.expr(0)?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::LBrace) => {
                let matchers = self.matchers(None)?;
                if !matchers.iter().any(|m| !m.matches("")) {
                    return Err("a selector must have at least one matcher that does not match the empty string".into());
                }
                Ok(Expr::Selector(matchers))
            }
            Some(Tok::Ident(name)) => self.after_ident(name),
            Some(t) => Err(format!("unexpected {}", describe(&t))),
        }
    }

    fn after_ident(&mut self, name: String) -> Result<Expr, String> {
        match name.as_str() {
            "Inf" | "inf" => return Ok(Expr::Number(f64::INFINITY)),
            "NaN" | "nan" => return Ok(Expr::Number(f64::NAN)),
            _ => {}
        }
        let agg = match name.as_str() {
            "sum" => Some(AggOp::Sum),
            "avg" => Some(AggOp::Avg),
            "min" => Some(AggOp::Min),
            "max" => Some(AggOp::Max),
            "count" => Some(AggOp::Count),
            "topk" => Some(AggOp::Topk),
            "bottomk" => Some(AggOp::Bottomk),
            "stddev" | "stdvar" | "quantile" | "count_values" | "group" => {
                return Err(format!(
                    "the `{name}` aggregation is not supported by the scenario replay"
                ));
            }
            _ => None,
        };
        if let Some(op) = agg {
            return self.aggregate(op);
        }
        match self.peek() {
            Some(Tok::LParen) => {
                if !RANGE_FUNCTIONS.contains(&name.as_str())
                    && !matches!(name.as_str(), "abs" | "histogram_quantile")
                {
                    return Err(format!(
                        "the function `{name}` is not supported by the scenario replay (supported: {SUBSET})"
                    ));
                }
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        args.push(self.expr(0)?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                }
                self.expect(&Tok::RParen)?;
                check_call(&name, &args)?;
                Ok(Expr::Call(name, args))
            }
            Some(Tok::LBrace) => {
                self.pos += 1;
                self.matchers(Some(&name)).map(Expr::Selector)
            }
            _ => Ok(Expr::Selector(vec![Matcher::new(
                "__name__",
                MatchOp::Eq,
                &name,
            )?])),
        }
    }

    fn aggregate(&mut self, op: AggOp) -> Result<Expr, String> {
        let mut grouping = self.grouping()?;
        self.expect(&Tok::LParen)?;
        let param = if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            let k = self.expr(0)?;
            self.expect(&Tok::Comma)?;
            Some(Box::new(k))
        } else {
            None
        };
        let expr = self.expr(0)?;
        self.expect(&Tok::RParen)?;
        if grouping == Grouping::None {
            grouping = self.grouping()?;
        }
        Ok(Expr::Aggregate {
            op,
            grouping,
            param,
            expr: Box::new(expr),
        })
    }

    fn grouping(&mut self) -> Result<Grouping, String> {
        let by = match self.peek() {
            Some(Tok::Ident(w)) if w == "by" => true,
            Some(Tok::Ident(w)) if w == "without" => false,
            _ => return Ok(Grouping::None),
        };
        self.pos += 1;
        self.expect(&Tok::LParen)?;
        let mut labels = Vec::new();
        loop {
            match self.next() {
                Some(Tok::RParen) => break,
                Some(Tok::Ident(l)) => labels.push(l),
                Some(Tok::Comma) => {}
                Some(t) => {
                    return Err(format!(
                        "expected a label name in the grouping, found {}",
                        describe(&t)
                    ));
                }
                None => return Err("unclosed grouping `(`".into()),
            }
        }
        Ok(if by {
            Grouping::By(labels)
        } else {
            Grouping::Without(labels)
        })
    }

    /// After `{`: `label op "value"`, … `}`.
    fn matchers(&mut self, name: Option<&str>) -> Result<Vec<Matcher>, String> {
        let mut out = Vec::new();
        if let Some(n) = name {
            out.push(Matcher::new("__name__", MatchOp::Eq, n)?);
        }
        loop {
            let label = match self.next() {
                Some(Tok::RBrace) => break,
                Some(Tok::Comma) => continue,
                Some(Tok::Ident(l)) => l,
                Some(t) => {
                    return Err(format!(
                        "expected a label name in the selector, found {}",
                        describe(&t)
                    ));
                }
                None => return Err("unclosed `{`".into()),
            };
            let op = match self.next() {
                Some(Tok::Op("=")) => MatchOp::Eq,
                Some(Tok::Op("!=")) => MatchOp::Ne,
                Some(Tok::Op("=~")) => MatchOp::Re,
                Some(Tok::Op("!~")) => MatchOp::NotRe,
                _ => return Err(format!("expected =, !=, =~ or !~ after `{label}`")),
            };
            let value = match self.next() {
                Some(Tok::Str(s)) => s,
                _ => return Err(format!("expected a quoted value after `{label}`")),
            };
            out.push(Matcher::new(&label, op, &value)?);
        }
        Ok(out)
    }
}

fn check_call(name: &str, args: &[Expr]) -> Result<(), String> {
    let range_arg = |args: &[Expr]| matches!(args, [Expr::Range(..)]);
    if RANGE_FUNCTIONS.contains(&name) {
        if !range_arg(args) {
            return Err(format!(
                "{name}() takes one range selector such as metric[5m]"
            ));
        }
        return Ok(());
    }
    match (name, args.len()) {
        ("abs", 1) | ("histogram_quantile", 2) => Ok(()),
        ("abs" | "histogram_quantile", _) => Err(format!("wrong number of arguments to {name}()")),
        _ => Err(format!(
            "the function `{name}` is not supported by the scenario replay (supported: {SUBSET})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        for q in [
            "up",
            r#"http_requests_total{job="api", code=~"5.."}"#,
            r#"sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (service) (rate(http_requests_total[5m])) > 0.05"#,
            "sum(rate(x[1m])) without (pod)",
            "topk(3, rate(x[5m]))",
            "-x * 100 ^ 2",
            "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))",
            "x > bool 1",
            "{__name__=~\"node_.*\"}",
        ] {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn refuses_what_it_does_not_evaluate_and_names_it() {
        for (q, part) in [
            (
                "label_replace(up, \"a\", \"b\", \"c\", \"d\")",
                "label_replace",
            ),
            ("up offset 5m", "offset"),
            ("rate(x[5m:1m])", "subqueries"),
            ("a and b", "`and`"),
            ("a / on(job) b", "`on`"),
            ("quantile(0.5, x)", "quantile"),
            ("up @ 100", "@"),
            ("rate(x)", "range selector"),
            ("{job=~\".*\"}", "empty string"),
            ("sum(x", "ended"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains(part), "{q}: {e}");
        }
    }

    #[test]
    fn regex_matchers_are_anchored() {
        let m = Matcher::new("code", MatchOp::Re, "5..").unwrap();
        assert!(m.matches("503"));
        assert!(!m.matches("1503"));
        let n = Matcher::new("code", MatchOp::NotRe, "2.*").unwrap();
        assert!(n.matches("503") && !n.matches("200"));
    }
}
