//! Log clustering: a Drain-style template miner (after He et al., "Drain:
//! An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017) and the
//! `logs` backend, so that an agent reads "3 templates, one new since the
//! deploy" instead of 5,000 lines.
//!
//! A line goes through three steps:
//! 1. **Prepare** ([`prepare`]): a JSON line gives its message (`msg`,
//!    `message` or `log`, plus an `error` field) and its level; leading
//!    timestamps and klog headers are stripped, and the level is read from
//!    them or from the first words (`ERROR`, `[warn]`, `level=info`).
//! 2. **Mask** ([`mask`]): in each whitespace-separated token, variable parts
//!    become typed placeholders: `<TS>` (ISO-8601/RFC 3339 dates, times of
//!    day), `<UUID>`, `<IP>` (IPv4 or IPv6, with port), `<HEX>` (`0x…` and
//!    runs of 8+ hex digits that mix digits and letters), `<NUM>` (integers,
//!    floats, durations such as `250ms` or `1m30s`, sizes such as `12MiB`,
//!    percentages). Quoted strings stay text unless
//!    [`DrainConfig::mask_quoted`] asks for `<STR>`.
//! 3. **Cluster** ([`Drain`]): a fixed-depth tree routes the masked tokens by
//!    their count and first tokens to a leaf, whose most similar template
//!    takes the line when similar enough; positions where lines disagree
//!    become `<*>`.
//!
//! Memory is bounded: at most [`DrainConfig::max_clusters`] templates live at
//! once (the least recently seen is dropped and counted), the tree is pruned
//! with them, lines are cut at [`DrainConfig::max_line_bytes`], and a
//! template keeps at most [`DrainConfig::max_values`] example values for at
//! most 16 of its variable positions.
//!
//! The backend also searches lines and counts them over time (`search.rs`).

mod search;

pub use search::{
    COUNT_LOG_LINES_OVER_TIME, CountLogLinesArgs, Jump, SEARCH_LOG_LINES, SearchLogLinesArgs,
    count_log_lines_over_time, jump, search_log_lines, timestamp,
};

use crate::typed;
use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use brain::vocabulary::Risk;
use regex::{Captures, Regex};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;
use std::time::Duration;

/// Where the lines of a template disagree.
pub const WILDCARD: &str = "<*>";
/// Every placeholder a template can hold.
pub const PLACEHOLDERS: [&str; 7] = [
    WILDCARD, "<TS>", "<UUID>", "<IP>", "<HEX>", "<NUM>", "<STR>",
];

/// Longer lines are cut here before anything else, JSON parsing included.
const MAX_JSON_BYTES: usize = 64 * 1024;
const MAX_VALUE_CHARS: usize = 80;
const MAX_TRACKED_POSITIONS: usize = 16;
/// A frequency shift needs this many lines on one side to mean something.
const MIN_SHIFT_COUNT: u64 = 5;
/// A template's share of lines must grow or shrink this much to be flagged.
const SHIFT_FACTOR: f64 = 3.0;

// ---------------------------------------------------------------------------
// Configuration and levels

/// How the miner clusters; the defaults suit service logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// A line joins the most similar template of its leaf when at least this
    /// share of its tokens equal the template's (`<*>` counts as unequal).
    pub similarity: f64,
    /// Depth of the tree as in the paper, counting the root, the token-count
    /// layer, `depth - 3` layers keyed by the first tokens and the leaves:
    /// the default 4 routes by the first token only. Clamped to 3..=8.
    pub depth: usize,
    /// Children of a tree node before further tokens share its `<*>` child.
    pub max_children: usize,
    /// Templates kept at once; a new one beyond this drops the least
    /// recently seen.
    pub max_clusters: usize,
    /// Distinct example values kept per variable position.
    pub max_values: usize,
    /// Bytes of a line (of a JSON line's message) that are clustered.
    pub max_line_bytes: usize,
    /// Mask double-quoted strings as `<STR>`; a quoted string with spaces is
    /// then one token.
    pub mask_quoted: bool,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            similarity: 0.4,
            depth: 4,
            max_children: 100,
            max_clusters: 1000,
            max_values: 5,
            max_line_bytes: 4096,
            mask_quoted: false,
        }
    }
}

impl DrainConfig {
    fn sanitized(mut self) -> Self {
        // `contains` is false for NaN too.
        if !(0.0..=1.0).contains(&self.similarity) {
            self.similarity = DrainConfig::default().similarity;
        }
        self.depth = self.depth.clamp(3, 8);
        self.max_children = self.max_children.max(1);
        self.max_clusters = self.max_clusters.max(1);
        self.max_line_bytes = self.max_line_bytes.clamp(64, MAX_JSON_BYTES);
        self
    }

    fn token_layers(&self) -> usize {
        self.depth.saturating_sub(3)
    }
}

/// A log level, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// A level as loggers spell it (`WARN`, `warning`, `err`, `critical`…).
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "trace" | "trc" | "finest" | "finer" => Level::Trace,
            "debug" | "dbg" | "dbug" | "fine" => Level::Debug,
            "info" | "inf" | "information" | "informational" | "notice" => Level::Info,
            "warn" | "wrn" | "warning" => Level::Warn,
            "error" | "err" | "eror" | "severe" => Level::Error,
            "fatal" | "ftl" | "crit" | "critical" | "panic" | "dpanic" | "alert" | "emerg"
            | "emergency" => Level::Fatal,
            _ => return None,
        })
    }

    /// pino and bunyan write levels as numbers: 10 trace … 60 fatal.
    fn from_number(n: f64) -> Option<Level> {
        Some(match n {
            n if n >= 60.0 => Level::Fatal,
            n if n >= 50.0 => Level::Error,
            n if n >= 40.0 => Level::Warn,
            n if n >= 30.0 => Level::Info,
            n if n >= 20.0 => Level::Debug,
            n if n >= 10.0 => Level::Trace,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------
// Preparing a line

/// A line made ready for masking: the message to cluster and its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub message: String,
    pub level: Option<Level>,
}

const MESSAGE_KEYS: [&str; 5] = ["msg", "message", "log", "MESSAGE", "@message"];
const LEVEL_KEYS: [&str; 6] = [
    "level",
    "severity",
    "lvl",
    "log.level",
    "levelname",
    "@level",
];
const ERROR_KEYS: [&str; 4] = ["error", "err", "error.message", "exception"];
const TIME_KEYS: [&str; 6] = ["time", "ts", "timestamp", "@timestamp", "date", "t"];

/// The message and level of one raw line, cut to `max_bytes`.
pub fn prepare(line: &str, max_bytes: usize) -> Prepared {
    prepare_at(cut(line.trim(), MAX_JSON_BYTES), max_bytes, 0)
}

fn prepare_at(line: &str, max_bytes: usize, depth: u8) -> Prepared {
    let (rest, header_level) = strip_headers(line);
    // Docker's json-file driver wraps a line that may itself be JSON: look
    // one level down, no further.
    if depth < 2
        && rest.starts_with('{')
        && rest.ends_with('}')
        && let Ok(map) = serde_json::from_str::<Map<String, Value>>(rest)
    {
        let mut p = from_json(&map, max_bytes, depth);
        p.level = p.level.or(header_level);
        return p;
    }
    let message = cut(rest, max_bytes);
    Prepared {
        level: header_level.or_else(|| level_in_words(message)),
        message: message.to_owned(),
    }
}

fn from_json(map: &Map<String, Value>, max_bytes: usize, depth: u8) -> Prepared {
    let level = LEVEL_KEYS
        .iter()
        .find_map(|k| map.get(*k))
        .and_then(|v| match v {
            Value::String(s) => Level::parse(s),
            Value::Number(n) => n.as_f64().and_then(Level::from_number),
            _ => None,
        });
    let Some(message) = MESSAGE_KEYS.iter().find_map(|k| map.get(*k)) else {
        // No message: the field names are the template, sorted whatever
        // order serde_json keeps.
        let mut fields: Vec<String> = map
            .iter()
            .filter(|(k, _)| !TIME_KEYS.contains(&k.as_str()) && !LEVEL_KEYS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", first_line(v)))
            .collect();
        fields.sort_unstable();
        return Prepared {
            message: cut(&fields.join(" "), max_bytes).to_owned(),
            level,
        };
    };
    // A message with a stack trace under it: the first line names the event.
    let mut p = prepare_at(&first_line(message), max_bytes, depth + 1);
    if let Some(error) = ERROR_KEYS.iter().find_map(|k| map.get(*k)) {
        p.message = cut(
            &format!("{} error={}", p.message, first_line(error)),
            max_bytes,
        )
        .to_owned();
    }
    p.level = level.or(p.level);
    p
}

fn first_line(v: &Value) -> String {
    let text = match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    };
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

/// Leading timestamps and klog headers, up to three of them stacked
/// (`kubectl logs --timestamps` before a klog line).
static HEADER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:(?P<klog>[IWEF])\d{4}\s+\d{2}:\d{2}:\d{2}(?:\.\d+)?\s+\d+\s+[^\s\]]+\]",
        r"|\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?",
        r"|\d{4}/\d{2}/\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?",
        r"|[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2})\s*",
    ))
    .ok()
});

fn strip_headers(line: &str) -> (&str, Option<Level>) {
    let mut rest = line.trim_start();
    let mut level = None;
    let Some(re) = HEADER.as_ref() else {
        return (rest, None);
    };
    for _ in 0..3 {
        let Some(caps) = re.captures(rest) else { break };
        if let Some(k) = caps.name("klog") {
            level = level.or(match k.as_str() {
                "I" => Some(Level::Info),
                "W" => Some(Level::Warn),
                "E" => Some(Level::Error),
                "F" => Some(Level::Fatal),
                _ => None,
            });
        }
        let end = caps.get(0).map_or(0, |m| m.end());
        if end == 0 {
            break;
        }
        rest = rest.get(end..).unwrap_or("").trim_start();
    }
    (rest, level)
}

/// A level among the first words: `ERROR`, `[warn]`, `error:`,
/// `level=info`; a lower-case word alone is prose, not a level.
fn level_in_words(message: &str) -> Option<Level> {
    message.split_whitespace().take(4).find_map(|word| {
        if let Some((key, value)) = word.split_once('=') {
            let key = key.to_ascii_lowercase();
            return matches!(key.as_str(), "level" | "lvl" | "severity")
                .then(|| Level::parse(value.trim_matches('"')))
                .flatten();
        }
        let bracketed = word.starts_with(['[', '(', '<']);
        let inner = word.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '<' | '>'));
        let name = inner.split(':').next().unwrap_or("");
        let upper = name.len() >= 3 && name.bytes().all(|b| b.is_ascii_uppercase());
        let colon = inner.len() > name.len();
        (bracketed || upper || colon)
            .then(|| Level::parse(name))
            .flatten()
    })
}

// ---------------------------------------------------------------------------
// Masking

const UNIT: &str = r"ns|us|µs|ms|min|s|m|h|d|[KMGTPE]i?B|[kKMGTPE]b?|B|b";

fn mask_pattern(quoted: bool) -> String {
    let str_ = if quoted {
        r#"(?P<str>"(?:[^"\\]|\\.)*")|"#
    } else {
        ""
    };
    // Order matters: at one position the first alternative that matches wins,
    // so a time of day is not read as IPv6 nor a float as a hex run.
    format!(
        concat!(
            "{str_}",
            r"(?P<ts>\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T_]\d{{2}}:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?",
            r"|\b\d{{1,2}}:\d{{2}}:\d{{2}}(?:[.,]\d+)?(?:Z|[+-]\d{{2}}:?\d{{2}})?)",
            r"|(?P<uuid>\b[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}\b)",
            r"|(?P<ip4>\b\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}(?:/\d{{1,2}})?(?::\d{{1,5}})?\b)",
            r"|(?P<ip6>\[[0-9a-fA-F:.]+\](?::\d{{1,5}})?|[0-9a-fA-F]{{0,4}}:[0-9a-fA-F]{{0,4}}:[0-9a-fA-F:.]*)",
            r"|(?P<num>\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:(?:{unit})(?:\d+(?:\.\d+)?(?:{unit}))*)?(?:%|\b))",
            r"|(?P<hex>\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]{{8,}}\b)",
        ),
        str_ = str_,
        unit = UNIT
    )
}

// A pattern that fails to compile (a bug caught by the tests) leaves tokens
// unmasked rather than failing a tool call.
static MASK: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(&mask_pattern(false)).ok());
static MASK_QUOTED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&mask_pattern(true)).ok());
static NUMBERS: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\b\d+(?:\.\d+)?\b").ok());

/// `message` with the variable parts of each token replaced by typed
/// placeholders, tokens joined by one space.
pub fn mask(message: &str, mask_quoted: bool) -> String {
    let tokens: Vec<Cow<'_, str>> = tokenize(message, mask_quoted)
        .into_iter()
        .map(|t| mask_token(t, mask_quoted))
        .collect();
    tokens.join(" ")
}

fn mask_token(token: &str, quoted: bool) -> Cow<'_, str> {
    // Every kind but `<STR>` holds a digit; most words have none.
    let maskable = token.bytes().any(|b| b.is_ascii_digit()) || (quoted && token.contains('"'));
    if !maskable {
        return Cow::Borrowed(token);
    }
    let re = if quoted { &*MASK_QUOTED } else { &*MASK };
    match re {
        Some(re) => re.replace_all(token, |caps: &Captures<'_>| replacement(caps)),
        None => Cow::Borrowed(token),
    }
}

fn replacement(caps: &Captures<'_>) -> String {
    let whole = caps.get(0).map_or("", |m| m.as_str());
    let is = |name: &str| caps.name(name).is_some();
    if is("str") {
        "<STR>".into()
    } else if is("ts") {
        "<TS>".into()
    } else if is("uuid") {
        "<UUID>".into()
    } else if is("ip4") {
        let addr = whole.split([':', '/']).next().unwrap_or("");
        if addr.parse::<Ipv4Addr>().is_ok() {
            "<IP>".into()
        } else {
            mask_numbers(whole)
        }
    } else if is("ip6") {
        ipv6(whole)
    } else if is("num") {
        "<NUM>".into()
    } else {
        hex(whole)
    }
}

/// An IPv6 candidate is any run with two colons; only a real address is
/// masked, keeping a colon that ends the token (`fe80::1:` in `dial fe80::1: refused`).
fn ipv6(candidate: &str) -> String {
    let trimmed = candidate.trim_end_matches([':', '.']);
    for (core, tail) in [
        (candidate, ""),
        (trimmed, candidate.get(trimmed.len()..).unwrap_or("")),
    ] {
        let addr = match core.strip_prefix('[') {
            Some(inner) => inner.split(']').next().unwrap_or(""),
            None => core,
        };
        if addr.parse::<Ipv6Addr>().is_ok() {
            return format!("<IP>{tail}");
        }
    }
    mask_numbers(candidate)
}

fn hex(run: &str) -> String {
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    if run.starts_with("0x") || run.starts_with("0X") {
        "<HEX>".into()
    } else if digits == run.len() {
        "<NUM>".into()
    } else if digits > 0 {
        "<HEX>".into()
    } else {
        // Letters only (`deadbeefcafe`) are more likely words than ids.
        run.to_owned()
    }
}

fn mask_numbers(text: &str) -> String {
    match NUMBERS.as_ref() {
        Some(re) => re.replace_all(text, "<NUM>").into_owned(),
        None => text.to_owned(),
    }
}

/// Whitespace-separated tokens; with `quoted`, a double-quoted span is part
/// of its token even across spaces.
fn tokenize(message: &str, quoted: bool) -> Vec<&str> {
    if !quoted {
        return message.split_whitespace().collect();
    }
    let mut out = Vec::new();
    let (mut start, mut in_quote, mut escaped) = (None, false, false);
    for (i, c) in message.char_indices() {
        if in_quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quote = false,
                _ => {}
            }
        } else if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(message.get(s..i).unwrap_or(""));
            }
        } else {
            start.get_or_insert(i);
            in_quote = c == '"';
        }
    }
    if let Some(s) = start {
        out.push(message.get(s..).unwrap_or(""));
    }
    out
}

fn is_variable(token: &str) -> bool {
    PLACEHOLDERS.iter().any(|p| token.contains(p))
}

/// The literal text before the first placeholder of a template token and
/// after the last: `("status=", "")` for `status=<NUM>`.
fn frame(template: &str) -> (&str, &str) {
    let start = PLACEHOLDERS
        .iter()
        .filter_map(|p| template.find(p))
        .min()
        .unwrap_or(0);
    let end = PLACEHOLDERS
        .iter()
        .filter_map(|p| template.rfind(p).map(|i| i + p.len()))
        .max()
        .unwrap_or(template.len());
    (
        template.get(..start).unwrap_or(""),
        template.get(end..).unwrap_or(""),
    )
}

/// The part of `raw` that the placeholders of `template` stand for:
/// `503` for `status=<NUM>` over `status=503`.
fn value_of<'a>(template: &str, raw: &'a str) -> &'a str {
    let (prefix, suffix) = frame(template);
    let value = raw.strip_prefix(prefix).unwrap_or(raw);
    value.strip_suffix(suffix).unwrap_or(value)
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// `s` with control characters made visible and at most `max` characters.
fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// The miner

/// A template's id, stable for the life of its [`Drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Baseline,
    Current,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    clusters: Vec<ClusterId>,
}

#[derive(Debug)]
struct Cluster {
    tokens: Vec<String>,
    /// Keys from the root to the leaf holding this cluster, to prune on eviction.
    path: Vec<String>,
    /// Positions of `tokens` holding a placeholder, ascending.
    variable: Vec<usize>,
    count: u64,
    baseline_count: u64,
    first_line: usize,
    last_line: usize,
    last_seen: u64,
    example: String,
    level: Option<Level>,
    values: BTreeMap<usize, Values>,
    baseline_template: Option<String>,
}

#[derive(Debug, Default)]
struct Values {
    seen: Vec<String>,
    more: bool,
}

impl Values {
    fn add(&mut self, value: &str, max: usize) {
        let value = printable(value, MAX_VALUE_CHARS);
        if self.seen.contains(&value) {
            return;
        }
        if self.seen.len() < max {
            self.seen.push(value);
        } else {
            self.more = true;
        }
    }

    /// Values of the typed token `old` made whole tokens again, now that
    /// the position is `<*>`: `118` of `(Pool.java:<NUM>)` is `(Pool.java:118)`.
    fn reframe(&mut self, old: &str) {
        let (prefix, suffix) = frame(old);
        for v in &mut self.seen {
            *v = printable(&format!("{prefix}{v}{suffix}"), MAX_VALUE_CHARS);
        }
    }
}

impl Cluster {
    /// Turn every position where `tokens` differ into `<*>`; whether any did.
    /// `keep_old` records the replaced literal as a value (current lines had it).
    fn generalize(&mut self, tokens: &[String], keep_old: bool, max_values: usize) -> bool {
        let mut widened = false;
        for (i, (t, line)) in self.tokens.iter_mut().zip(tokens).enumerate() {
            if t == line || t == WILDCARD {
                continue;
            }
            let old = std::mem::replace(t, WILDCARD.to_owned());
            widened = true;
            if self.variable.contains(&i) {
                if let Some(values) = self.values.get_mut(&i) {
                    values.reframe(&old);
                }
            } else {
                self.variable.push(i);
                self.variable.sort_unstable();
                if keep_old && self.values.len() < MAX_TRACKED_POSITIONS {
                    self.values.entry(i).or_default().add(&old, max_values);
                }
            }
        }
        widened
    }

    fn record_values(&mut self, raw: &[&str], max_values: usize) {
        for &i in &self.variable {
            let (Some(t), Some(r)) = (self.tokens.get(i), raw.get(i)) else {
                continue;
            };
            if !self.values.contains_key(&i) && self.values.len() >= MAX_TRACKED_POSITIONS {
                continue;
            }
            let v = value_of(t, r);
            if !v.is_empty() {
                self.values.entry(i).or_default().add(v, max_values);
            }
        }
    }
}

/// An online template miner: feed it lines, read its [`Summary`].
///
/// Feed the baseline (if any) first with [`Drain::add_baseline_line`], then
/// the lines to explain with [`Drain::add_line`]; both shape the same
/// templates, so a template of the current lines is "new" exactly when no
/// baseline line fell into it.
#[derive(Debug)]
pub struct Drain {
    config: DrainConfig,
    root: Node,
    clusters: HashMap<ClusterId, Cluster>,
    /// `(last seen, id)`: the first entry is the next to evict.
    lru: BTreeSet<(u64, ClusterId)>,
    next_id: u64,
    seq: u64,
    line_no: usize,
    lines: u64,
    baseline_lines: u64,
    evicted_clusters: u64,
    evicted_lines: u64,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new(DrainConfig::default())
    }
}

impl Drain {
    /// A miner with `config`, out-of-range values clamped.
    pub fn new(config: DrainConfig) -> Drain {
        Drain {
            config: config.sanitized(),
            root: Node::default(),
            clusters: HashMap::new(),
            lru: BTreeSet::new(),
            next_id: 0,
            seq: 0,
            line_no: 0,
            lines: 0,
            baseline_lines: 0,
            evicted_clusters: 0,
            evicted_lines: 0,
        }
    }

    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// Cluster the next line; `None` for a blank line. Lines are numbered
    /// from 1 in the order given, blank ones included.
    pub fn add_line(&mut self, line: &str) -> Option<ClusterId> {
        self.line_no = self.line_no.saturating_add(1);
        self.ingest(line, Side::Current)
    }

    /// Every line of `text`.
    pub fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            self.add_line(line);
        }
    }

    /// Learn one line of the baseline: it shapes templates and counts as
    /// baseline only.
    pub fn add_baseline_line(&mut self, line: &str) -> Option<ClusterId> {
        self.ingest(line, Side::Baseline)
    }

    /// Every line of `baseline`.
    pub fn add_baseline_text(&mut self, baseline: &str) {
        for line in baseline.lines() {
            self.add_baseline_line(line);
        }
    }

    /// Count `n` lines as read without clustering them, so that later line
    /// numbers still point into the whole text.
    pub fn skip_lines(&mut self, n: usize) {
        self.line_no = self.line_no.saturating_add(n);
    }

    /// Templates alive now; never more than `max_clusters`.
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// Non-blank current lines clustered so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    fn ingest(&mut self, line: &str, side: Side) -> Option<ClusterId> {
        let quoted = self.config.mask_quoted;
        let prepared = prepare(line, self.config.max_line_bytes);
        let raw = tokenize(&prepared.message, quoted);
        if raw.is_empty() {
            return None;
        }
        let tokens: Vec<String> = raw
            .iter()
            .map(|t| mask_token(t, quoted).into_owned())
            .collect();
        self.seq += 1;
        match side {
            Side::Current => self.lines += 1,
            Side::Baseline => self.baseline_lines += 1,
        }
        let id = match self.search(&tokens) {
            Some(id) => id,
            None => self.create(&tokens),
        };
        self.absorb(id, &tokens, &raw, line, prepared.level, side);
        Some(id)
    }

    /// The cluster of the leaf for `tokens` most similar to them, if similar enough.
    fn search(&self, tokens: &[String]) -> Option<ClusterId> {
        let mut node = self.root.children.get(&tokens.len().to_string())?;
        for t in tokens.iter().take(self.config.token_layers()) {
            let key = route_key(t);
            node = node
                .children
                .get(key)
                .or_else(|| node.children.get(WILDCARD))?;
        }
        let mut best: Option<(usize, usize, ClusterId)> = None;
        for id in &node.clusters {
            let Some(c) = self.clusters.get(id) else {
                continue;
            };
            let (equal, wild) = similarity(&c.tokens, tokens);
            // Ties go to the more general template, as in the paper.
            if best.is_none_or(|(e, w, _)| equal > e || (equal == e && wild > w)) {
                best = Some((equal, wild, *id));
            }
        }
        let (equal, _, id) = best?;
        (equal as f64 / tokens.len() as f64 >= self.config.similarity).then_some(id)
    }

    fn create(&mut self, tokens: &[String]) -> ClusterId {
        while self.clusters.len() >= self.config.max_clusters && self.evict_oldest() {}
        let id = ClusterId(self.next_id);
        self.next_id += 1;
        let path = self.place(tokens, id);
        let variable = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| is_variable(t))
            .map(|(i, _)| i)
            .collect();
        self.clusters.insert(
            id,
            Cluster {
                tokens: tokens.to_vec(),
                path,
                variable,
                count: 0,
                baseline_count: 0,
                first_line: 0,
                last_line: 0,
                last_seen: 0,
                example: String::new(),
                level: None,
                values: BTreeMap::new(),
                baseline_template: None,
            },
        );
        id
    }

    /// Put `id` in the leaf for `tokens`, growing the tree; the path taken.
    fn place(&mut self, tokens: &[String], id: ClusterId) -> Vec<String> {
        let max_children = self.config.max_children;
        let length = tokens.len().to_string();
        let mut path = vec![length.clone()];
        let mut node = self.root.children.entry(length).or_default();
        for t in tokens.iter().take(self.config.token_layers()) {
            let mut key = route_key(t);
            if !node.children.contains_key(key) && node.children.len() >= max_children {
                key = WILDCARD;
            }
            path.push(key.to_owned());
            node = node.children.entry(key.to_owned()).or_default();
        }
        node.clusters.push(id);
        path
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, id)) = self.lru.pop_first() else {
            return false;
        };
        if let Some(c) = self.clusters.remove(&id) {
            prune(&mut self.root, &c.path, id);
            self.evicted_clusters += 1;
            self.evicted_lines += c.count;
        }
        true
    }

    fn absorb(
        &mut self,
        id: ClusterId,
        tokens: &[String],
        raw: &[&str],
        line: &str,
        level: Option<Level>,
        side: Side,
    ) {
        let max_values = self.config.max_values;
        let Some(c) = self.clusters.get_mut(&id) else {
            return;
        };
        self.lru.remove(&(c.last_seen, id));
        c.last_seen = self.seq;
        self.lru.insert((self.seq, id));
        if side == Side::Current
            && c.baseline_count > 0
            && c.baseline_template.is_none()
            && c.tokens
                .iter()
                .zip(tokens)
                .any(|(t, l)| t != l && t != WILDCARD)
        {
            c.baseline_template = Some(c.tokens.join(" "));
        }
        c.generalize(tokens, side == Side::Current && c.count > 0, max_values);
        c.level = c.level.max(level);
        match side {
            Side::Baseline => {
                c.baseline_count += 1;
                if c.example.is_empty() {
                    c.example = printable(cut(line, self.config.max_line_bytes), usize::MAX);
                }
            }
            Side::Current => {
                if c.count == 0 {
                    c.first_line = self.line_no;
                    c.example = printable(cut(line, self.config.max_line_bytes), usize::MAX);
                }
                c.count += 1;
                c.last_line = self.line_no;
                c.record_values(raw, max_values);
            }
        }
    }

    /// Templates of the current lines, most frequent first, compared with the
    /// baseline when one was given (an empty baseline is none).
    pub fn summary(&self) -> Summary {
        let compared = self.baseline_lines > 0;
        let mut templates = Vec::new();
        let mut gone = Vec::new();
        for (id, c) in &self.clusters {
            if c.count == 0 {
                if compared && c.baseline_count > 0 {
                    gone.push(Gone {
                        template: c.tokens.join(" "),
                        baseline_count: c.baseline_count,
                        example: c.example.clone(),
                        level: c.level,
                    });
                }
                continue;
            }
            let (change, ratio) = if compared {
                compare(c.count, self.lines, c.baseline_count, self.baseline_lines)
            } else {
                (None, None)
            };
            let wildcards = c
                .values
                .iter()
                .map(|(&position, v)| Wildcard {
                    position,
                    token: c.tokens.get(position).cloned().unwrap_or_default(),
                    values: v.seen.clone(),
                    more: v.more,
                })
                .collect();
            templates.push(Template {
                id: *id,
                template: c.tokens.join(" "),
                count: c.count,
                first_line: c.first_line,
                last_line: c.last_line,
                example: c.example.clone(),
                level: c.level,
                wildcards,
                baseline_count: c.baseline_count,
                change,
                ratio,
                baseline_template: c.baseline_template.clone(),
            });
        }
        templates.sort_by(|a, b| b.count.cmp(&a.count).then(a.first_line.cmp(&b.first_line)));
        gone.sort_by(|a, b| {
            b.baseline_count
                .cmp(&a.baseline_count)
                .then(a.template.cmp(&b.template))
        });
        Summary {
            lines: self.lines,
            baseline_lines: compared.then_some(self.baseline_lines),
            templates,
            gone,
            omitted_templates: 0,
            omitted_lines: 0,
            evicted_templates: self.evicted_clusters,
            evicted_lines: self.evicted_lines,
        }
    }
}

/// The routing key of a token: tokens with digits or placeholders share `<*>`.
fn route_key(token: &str) -> &str {
    if token.bytes().any(|b| b.is_ascii_digit()) || is_variable(token) {
        WILDCARD
    } else {
        token
    }
}

/// Positions where `template` equals `tokens`, and its `<*>` positions.
fn similarity(template: &[String], tokens: &[String]) -> (usize, usize) {
    template
        .iter()
        .zip(tokens)
        .fold((0, 0), |(equal, wild), (t, l)| {
            if t == WILDCARD {
                (equal, wild + 1)
            } else if t == l {
                (equal + 1, wild)
            } else {
                (equal, wild)
            }
        })
}

/// Remove `id` from the leaf at `path`, dropping nodes left empty; whether
/// `node` itself is now empty.
fn prune(node: &mut Node, path: &[String], id: ClusterId) -> bool {
    match path.split_first() {
        None => node.clusters.retain(|c| *c != id),
        Some((key, rest)) => {
            if node
                .children
                .get_mut(key)
                .is_some_and(|child| prune(child, rest, id))
            {
                node.children.remove(key);
            }
        }
    }
    node.clusters.is_empty() && node.children.is_empty()
}

fn compare(
    count: u64,
    lines: u64,
    baseline_count: u64,
    baseline_lines: u64,
) -> (Option<Change>, Option<f64>) {
    if baseline_count == 0 {
        return (Some(Change::New), None);
    }
    let share = count as f64 / lines.max(1) as f64;
    let baseline_share = baseline_count as f64 / baseline_lines.max(1) as f64;
    let ratio = share / baseline_share;
    let change = if count.max(baseline_count) < MIN_SHIFT_COUNT {
        Change::Same
    } else if ratio >= SHIFT_FACTOR {
        Change::More
    } else if ratio <= 1.0 / SHIFT_FACTOR {
        Change::Fewer
    } else {
        Change::Same
    };
    (Some(change), Some((ratio * 100.0).round() / 100.0))
}

// ---------------------------------------------------------------------------
// What the miner reports

/// What the current lines say, compared with the baseline when one was given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Non-blank lines clustered.
    pub lines: u64,
    /// Non-blank baseline lines; `None` without a baseline.
    pub baseline_lines: Option<u64>,
    /// Templates of the current lines, most frequent first.
    pub templates: Vec<Template>,
    /// Baseline templates no current line fell into, most frequent first.
    pub gone: Vec<Gone>,
    /// Templates left out by [`Summary::top`], and their lines.
    pub omitted_templates: usize,
    pub omitted_lines: u64,
    /// Templates dropped to bound memory, and their current lines.
    pub evicted_templates: u64,
    pub evicted_lines: u64,
}

/// One template of the current lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub id: ClusterId,
    /// Tokens joined by one space, placeholders in place of variable parts.
    pub template: String,
    pub count: u64,
    /// Line numbers (from 1, blank lines counted) of its first and last line.
    pub first_line: usize,
    pub last_line: usize,
    /// Its first current line, as given (cut to `max_line_bytes`).
    pub example: String,
    /// The most severe level seen.
    pub level: Option<Level>,
    /// Example values of its variable tokens, left to right.
    pub wildcards: Vec<Wildcard>,
    /// Baseline lines in this template.
    pub baseline_count: u64,
    /// How it compares with the baseline; `None` without one.
    pub change: Option<Change>,
    /// Its share of current lines over its share of baseline lines.
    pub ratio: Option<f64>,
    /// The template as the baseline had it, when current lines differ where
    /// all baseline lines agreed (`connection to db established` before,
    /// `connection to db <*>` now).
    pub baseline_template: Option<String>,
}

/// Values seen at one variable position of a template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wildcard {
    /// Token index in the template, from 0.
    pub position: usize,
    /// The template's token there, e.g. `status=<NUM>`.
    pub token: String,
    /// Distinct values, in order of first appearance (`503` for `status=503`).
    pub values: Vec<String>,
    /// Whether more distinct values were seen than kept.
    pub more: bool,
}

/// A baseline template that no current line fell into.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gone {
    pub template: String,
    pub baseline_count: u64,
    pub example: String,
    pub level: Option<Level>,
}

/// A template's frequency against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// No baseline line fell into it.
    New,
    /// Its share of lines grew at least threefold.
    More,
    /// Its share of lines shrank at least threefold.
    Fewer,
    Same,
}

impl Summary {
    /// Keep `n` templates: new and more frequent ones first, then errors,
    /// then the most frequent; shown most frequent first. Also keeps at most
    /// `n` gone templates.
    pub fn top(mut self, n: usize) -> Summary {
        self.gone.truncate(n);
        if self.templates.len() <= n {
            return self;
        }
        let rank = |t: &Template| match (t.change, t.level) {
            (Some(Change::New | Change::More), _) => 0,
            (_, Some(Level::Error | Level::Fatal)) => 1,
            _ => 2,
        };
        // Stable: within a rank, the most frequent first.
        self.templates.sort_by_key(rank);
        let dropped = self.templates.split_off(n);
        self.templates
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.first_line.cmp(&b.first_line)));
        self.omitted_templates += dropped.len();
        self.omitted_lines += dropped.iter().map(|t| t.count).sum::<u64>();
        self
    }

    /// Summarize `text`, compared with `baseline` when given.
    pub fn of(text: &str, baseline: Option<&str>, config: DrainConfig) -> Summary {
        let mut drain = Drain::new(config);
        if let Some(b) = baseline {
            drain.add_baseline_text(b);
        }
        drain.add_text(text);
        drain.summary()
    }
}

// ---------------------------------------------------------------------------
// The `logs` backend

/// The name of the tool.
pub const CLUSTER_LOG_LINES: &str = "cluster_log_lines";
const DEFAULT_TOP: u32 = 20;
const MAX_TOP: u32 = 100;
/// Beyond this, only the last lines of a text are clustered: the most
/// recent are the ones an incident is about.
pub const MAX_INPUT_LINES: usize = 200_000;
/// Characters of a template, example or value list in the text for a
/// model; `data` has them whole.
const TEXT_CHARS: usize = 300;

const DESCRIPTION: &str = "Group log lines into templates (Drain log parsing), so that thousands of lines read as \
a handful of patterns. For each template: how many lines matched, the level, the first and last line number, and \
example values of its variable parts, shown as <NUM> (numbers, durations, sizes), <IP> (addresses with port), <TS> \
(times), <UUID>, <HEX> (hex ids) or <*> (words that differ between lines). Pass `baseline` (logs from before a \
deploy, from a healthy replica, or the previous container's logs) to flag templates that are NEW, much MORE or FEWER \
frequent, or GONE. Use it on log text you already have, before reading raw lines. Understands plain text, JSON lines \
(msg/message/log and level fields), klog and timestamp-prefixed lines; quoted strings are kept as text.";

/// Arguments of `cluster_log_lines`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterLogLinesArgs {
    /// The log text, one entry per line: plain text, JSON lines or klog.
    /// Leading timestamps and klog headers are ignored.
    pub text: String,
    /// Log text to compare against, e.g. from before a deploy or the
    /// previous container. Templates absent from it are flagged NEW, much
    /// more or less frequent ones MORE or FEWER, and its templates absent
    /// now GONE.
    #[serde(default)]
    pub baseline: Option<String>,
    /// How many templates to show (default 20, at most 100). New and more
    /// frequent ones come first, then errors, then the most frequent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub top: Option<u32>,
}

/// Log clustering over text the agent already has; reads nothing else.
#[derive(Debug, Clone, Default)]
pub struct LogsBackend {
    config: DrainConfig,
}

impl LogsBackend {
    pub fn new(config: DrainConfig) -> LogsBackend {
        LogsBackend { config }
    }
}

#[async_trait]
impl ToolBackend for LogsBackend {
    fn name(&self) -> &str {
        "logs"
    }

    fn tools(&self) -> Vec<ToolSpec> {
        let mut specs = vec![typed::spec::<ClusterLogLinesArgs>(
            CLUSTER_LOG_LINES,
            DESCRIPTION,
            Risk::Read,
            Duration::from_secs(30),
        )];
        specs.extend(search::specs());
        specs
    }

    async fn call(&self, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        // Scanning 200,000 lines is CPU work too: off the async workers.
        let blocking = |f: Box<dyn FnOnce() -> Result<ToolOutput, ToolError> + Send>| async move {
            tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| ToolError::Backend(format!("reading log lines: {e}")))?
        };
        match tool {
            SEARCH_LOG_LINES => {
                let a: SearchLogLinesArgs = typed::parse(args)?;
                return blocking(Box::new(move || search_log_lines(&a))).await;
            }
            COUNT_LOG_LINES_OVER_TIME => {
                let a: CountLogLinesArgs = typed::parse(args)?;
                return blocking(Box::new(move || count_log_lines_over_time(&a))).await;
            }
            CLUSTER_LOG_LINES => {}
            other => return Err(ToolError::UnknownTool(other.to_owned())),
        }
        let args: ClusterLogLinesArgs = typed::parse(args)?;
        let config = self.config.clone();
        // Clustering 200,000 lines is CPU work: keep it off the async workers.
        tokio::task::spawn_blocking(move || cluster_log_lines(&args, config))
            .await
            .map_err(|e| ToolError::Backend(format!("clustering log lines: {e}")))
    }
}

/// The tool's answer: a table for a model in `text`, the same as JSON in `data`.
pub fn cluster_log_lines(args: &ClusterLogLinesArgs, config: DrainConfig) -> ToolOutput {
    let top = args.top.unwrap_or(DEFAULT_TOP).clamp(1, MAX_TOP) as usize;
    let mut drain = Drain::new(config);
    let skipped_baseline = args
        .baseline
        .as_deref()
        .map_or(0, |b| feed(&mut drain, b, Side::Baseline));
    let skipped = feed(&mut drain, &args.text, Side::Current);
    let full = drain.summary();
    let changes = ChangeCounts::of(&full);
    let summary = full.top(top);
    let mut text = String::new();
    if skipped + skipped_baseline > 0 {
        let _ = writeln!(
            text,
            "only the last {MAX_INPUT_LINES} lines of each text were clustered: {skipped} earlier lines skipped, \
             {skipped_baseline} of the baseline"
        );
    }
    if args.baseline.is_some() && summary.baseline_lines.is_none() {
        text.push_str("the baseline has no lines: nothing was compared\n");
    }
    text.push_str(&render(&summary, changes));
    let mut data = serde_json::to_value(&summary).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut data {
        map.insert("skipped_lines".into(), skipped.into());
        map.insert("skipped_baseline_lines".into(), skipped_baseline.into());
    }
    ToolOutput {
        text,
        data,
        truncated: false,
    }
}

/// Feed the last [`MAX_INPUT_LINES`] lines of `text`; how many were skipped.
fn feed(drain: &mut Drain, text: &str, side: Side) -> usize {
    let skip = text.lines().count().saturating_sub(MAX_INPUT_LINES);
    if side == Side::Current {
        drain.skip_lines(skip);
    }
    for line in text.lines().skip(skip) {
        match side {
            Side::Current => drain.add_line(line),
            Side::Baseline => drain.add_baseline_line(line),
        };
    }
    skip
}

/// How many templates changed, counted before [`Summary::top`] leaves some out.
#[derive(Debug, Clone, Copy)]
struct ChangeCounts {
    new: usize,
    more: usize,
    fewer: usize,
    gone: usize,
}

impl ChangeCounts {
    fn of(s: &Summary) -> ChangeCounts {
        let n = |c: Change| s.templates.iter().filter(|t| t.change == Some(c)).count();
        ChangeCounts {
            new: n(Change::New),
            more: n(Change::More),
            fewer: n(Change::Fewer),
            gone: s.gone.len(),
        }
    }
}

/// The summary as a compact table, one template per row with its values below.
fn render(s: &Summary, changes: ChangeCounts) -> String {
    let mut out = String::new();
    let total = s.templates.len() + s.omitted_templates;
    let _ = write!(out, "{} lines in {total} templates", s.lines);
    if s.omitted_templates > 0 {
        let _ = write!(out, ", {} shown", s.templates.len());
    }
    if let Some(b) = s.baseline_lines {
        let ChangeCounts {
            new,
            more,
            fewer,
            gone,
        } = changes;
        let _ = write!(
            out,
            "; against a baseline of {b} lines: {new} NEW, {more} MORE, {fewer} FEWER, {gone} GONE"
        );
    }
    out.push('\n');
    if s.evicted_templates > 0 {
        let _ = writeln!(
            out,
            "{} lines fell in {} rare templates dropped to bound memory",
            s.evicted_lines, s.evicted_templates
        );
    }
    if s.templates.is_empty() {
        out.push_str("no log lines: the text is empty or blank\n");
    } else {
        out.push_str("count  level  change      template\n");
    }
    for t in &s.templates {
        render_template(&mut out, t);
    }
    if s.omitted_templates > 0 {
        let _ = writeln!(
            out,
            "… {} more templates with {} lines not shown; raise `top` to see them",
            s.omitted_templates, s.omitted_lines
        );
    }
    if !s.gone.is_empty() {
        out.push_str("GONE since the baseline (baseline count, level, template):\n");
        for g in &s.gone {
            let level = g.level.map_or("-", Level::as_str);
            let template = printable(&g.template, TEXT_CHARS);
            let _ = writeln!(out, "{:>5}  {level:<5}  {template}", g.baseline_count);
        }
    }
    out
}

fn render_template(out: &mut String, t: &Template) {
    let change = match (t.change, t.ratio) {
        (Some(Change::New), _) => "NEW".to_owned(),
        (Some(Change::More), Some(r)) => format!("MORE x{r:.1}"),
        (Some(Change::Fewer), Some(r)) => format!("FEWER x{r:.2}"),
        _ => String::new(),
    };
    let level = t.level.map_or("-", Level::as_str);
    let template = printable(&t.template, TEXT_CHARS);
    let _ = writeln!(out, "{:>5}  {level:<5}  {change:<10}  {template}", t.count);
    let mut detail = format!("lines {}-{}", t.first_line, t.last_line);
    for w in &t.wildcards {
        let more = if w.more { ", …" } else { "" };
        // `<IP>:` and `<NUM>)` read better without the punctuation around them.
        let label = w.token.trim_matches(|c: char| {
            matches!(
                c,
                ':' | ',' | ';' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | '\''
            )
        });
        let _ = write!(detail, "; {label} ({}{more})", w.values.join(", "));
    }
    let _ = writeln!(out, "       {}", printable(&detail, TEXT_CHARS));
    if let Some(b) = &t.baseline_template {
        let _ = writeln!(out, "       baseline had: {}", printable(b, TEXT_CHARS));
    }
    if matches!(t.change, Some(Change::New | Change::More)) {
        let _ = writeln!(out, "       e.g. {}", printable(&t.example, TEXT_CHARS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_count(node: &Node) -> usize {
        node.children.values().map(|c| 1 + node_count(c)).sum()
    }

    #[test]
    fn the_mask_patterns_compile() {
        assert!(MASK.is_some() && MASK_QUOTED.is_some() && NUMBERS.is_some() && HEADER.is_some());
    }

    #[test]
    fn each_variable_kind_is_masked() {
        let cases = [
            ("10.0.3.17", "<IP>"),
            ("dial tcp 10.0.3.17:5432: connect", "dial tcp <IP>: connect"),
            ("from 192.168.0.0/16,", "from <IP>,"),
            ("2001:db8::8a2e:370:7334", "<IP>"),
            ("[2001:db8::1]:443", "<IP>"),
            ("addr=::1", "addr=<IP>"),
            ("dial fe80::1: refused", "dial <IP>: refused"),
            (
                "req 550e8400-e29b-41d4-a716-446655440000 done",
                "req <UUID> done",
            ),
            ("at 0x7ffd5c3a", "at <HEX>"),
            (
                "trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
                "trace_id=<HEX>",
            ),
            ("took 250ms", "took <NUM>"),
            ("latency=1.5s size=12MiB", "latency=<NUM> size=<NUM>"),
            ("retry in 1m30s (3/5)", "retry in <NUM> (<NUM>/<NUM>)"),
            ("cpu 99.5% load 1e-3", "cpu <NUM> load <NUM>"),
            (
                "GET /api/orders/1234 status=503",
                "GET /api/orders/<NUM> status=<NUM>",
            ),
            ("at 2024-11-24T10:00:00.123Z", "at <TS>"),
            (
                "since 2024-11-24T10:00:00+01:00 or 2024-11-24",
                "since <TS> or <TS>",
            ),
            ("at 10:00:00.123 ok", "at <TS> ok"),
        ];
        for (input, masked) in cases {
            assert_eq!(mask(input, false), masked, "{input}");
        }
    }

    #[test]
    fn words_that_only_contain_digits_or_hex_letters_stay() {
        let text = "v2 http2 sha256 user_123 deadbeefcafe ipv6 std::io::Error k8s";
        assert_eq!(mask(text, false), text);
    }

    #[test]
    fn quoted_strings_are_masked_only_when_asked() {
        let line = r#"lookup user="jane doe" failed: "no such \"user\"" code=7"#;
        assert_eq!(
            mask(line, false),
            r#"lookup user="jane doe" failed: "no such \"user\"" code=<NUM>"#
        );
        assert_eq!(
            mask(line, true),
            "lookup user=<STR> failed: <STR> code=<NUM>"
        );
    }

    #[test]
    fn headers_and_timestamps_are_stripped_and_give_the_level() {
        let cases = [
            (
                "E1124 10:00:00.123456       1 reflector.go:138] Failed to watch *v1.Pod",
                "Failed to watch *v1.Pod",
                Some(Level::Error),
            ),
            (
                "2024-11-24T10:00:00.5Z W1124 10:00:00.123456 7 leader.go:9] lost lease",
                "lost lease",
                Some(Level::Warn),
            ),
            (
                "2024-11-24 10:00:00,123 ERROR [main] c.a.Pool - pool exhausted",
                "ERROR [main] c.a.Pool - pool exhausted",
                Some(Level::Error),
            ),
            (
                "2024/11/24 10:00:00 listening on :8080",
                "listening on :8080",
                None,
            ),
            (
                "Nov 24 10:00:00 host sshd[42]: [warn] bad key",
                "host sshd[42]: [warn] bad key",
                Some(Level::Warn),
            ),
            (
                "ts=2024-11-24T10:00:00Z level=info msg=ok",
                "ts=2024-11-24T10:00:00Z level=info msg=ok",
                Some(Level::Info),
            ),
            ("error: disk full", "error: disk full", Some(Level::Error)),
            ("info about the error", "info about the error", None),
        ];
        for (line, message, level) in cases {
            let p = prepare(line, 4096);
            assert_eq!((p.message.as_str(), p.level), (message, level), "{line}");
        }
    }

    #[test]
    fn json_lines_give_their_message_and_level() {
        let cases = [
            (
                r#"{"ts":1,"level":"warn","msg":"slow query","ms":812}"#,
                "slow query",
                Some(Level::Warn),
            ),
            (
                r#"{"severity":"ERROR","message":"boom\n\tat x.y(Z.java:1)"}"#,
                "boom",
                Some(Level::Error),
            ),
            (
                r#"{"lvl":"info","msg":"payment failed","error":"card declined"}"#,
                "payment failed error=card declined",
                Some(Level::Info),
            ),
            (
                r#"{"level":50,"msg":"pino says"}"#,
                "pino says",
                Some(Level::Error),
            ),
            // Docker's json-file wrapping a klog line.
            (
                r#"{"log":"E1124 10:00:00.123456 1 a.go:1] watch failed\n","stream":"stderr"}"#,
                "watch failed",
                Some(Level::Error),
            ),
            (
                r#"{"time":"2024-11-24T10:00:00Z","user":"jane","action":"login"}"#,
                "action=login user=jane",
                None,
            ),
            ("{not json at all}", "{not json at all}", None),
        ];
        for (line, message, level) in cases {
            let p = prepare(line, 4096);
            assert_eq!((p.message.as_str(), p.level), (message, level), "{line}");
        }
    }

    #[test]
    fn a_template_keeps_distinct_values_up_to_the_bound() {
        let mut drain = Drain::default();
        for i in 0..50 {
            drain.add_line(&format!(
                "request failed status={} from 10.0.0.{}",
                500 + i % 4,
                i
            ));
        }
        let s = drain.summary();
        assert_eq!(s.templates.len(), 1);
        let t = &s.templates[0];
        assert_eq!(t.template, "request failed status=<NUM> from <IP>");
        assert_eq!((t.count, t.first_line, t.last_line), (50, 1, 50));
        let status = &t.wildcards[0];
        assert_eq!(
            (status.position, status.token.as_str()),
            (2, "status=<NUM>")
        );
        assert_eq!(status.values, ["500", "501", "502", "503"]);
        assert!(!status.more);
        let ip = &t.wildcards[1];
        assert_eq!(ip.values.len(), 5);
        assert_eq!(ip.values[0], "10.0.0.0");
        assert!(ip.more);
    }

    #[test]
    fn a_literal_that_starts_to_vary_keeps_its_first_value() {
        let mut drain = Drain::default();
        drain.add_text("user alice logged in\nuser bob logged in\nuser carol logged in");
        let s = drain.summary();
        assert_eq!(s.templates[0].template, "user <*> logged in");
        assert_eq!(
            s.templates[0].wildcards[0].values,
            ["alice", "bob", "carol"]
        );
    }

    #[test]
    fn clusters_and_tree_stay_bounded_under_random_lines() {
        let config = DrainConfig {
            max_clusters: 200,
            ..DrainConfig::default()
        };
        let bound = config.max_clusters;
        let mut drain = Drain::new(config);
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut word = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Letters only, so that masking cannot make lines alike.
            (0..6)
                .map(|i| char::from(b'a' + ((seed >> (i * 5)) % 26) as u8))
                .collect::<String>()
        };
        for i in 0..100_000 {
            let length = 1 + i % 7;
            let line: Vec<String> = (0..length).map(|_| word()).collect();
            drain.add_line(&line.join(" "));
            assert!(
                drain.cluster_count() <= bound,
                "line {i}: {} clusters",
                drain.cluster_count()
            );
        }
        // Nodes live only on the paths of live clusters: a length node and
        // `depth - 3` token nodes each.
        assert!(node_count(&drain.root) <= bound * (drain.config.token_layers() + 1));
        assert_eq!(drain.lru.len(), drain.cluster_count());
        let s = drain.summary();
        assert!(s.evicted_templates > 90_000, "{}", s.evicted_templates);
        let kept: u64 = s.templates.iter().map(|t| t.count).sum();
        assert_eq!(kept + s.evicted_lines, 100_000);
    }

    #[test]
    fn no_input_makes_it_panic() {
        let mut junk = Vec::new();
        let mut x = 7u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            junk.push((x >> 16) as u8);
        }
        let junk = String::from_utf8_lossy(&junk).into_owned();
        let huge = format!("{{\"msg\":\"{}\"}}", "é1 ".repeat(300_000));
        let long_line = "x".repeat(1_000_000);
        let inputs = [
            "",
            "\n\n   \n",
            "{",
            "{}",
            "[2001:db8::1",
            "::::::",
            "\"unterminated",
            &junk,
            &huge,
            &long_line,
        ];
        for quoted in [false, true] {
            let mut drain = Drain::new(DrainConfig {
                mask_quoted: quoted,
                ..DrainConfig::default()
            });
            for input in inputs {
                drain.add_baseline_text(input);
                drain.add_text(input);
            }
            let s = drain.summary();
            assert!(
                s.templates
                    .iter()
                    .all(|t| t.example.len() <= 4096 * 3 && t.template.len() <= 4096 * 5)
            );
        }
        assert_eq!(Summary::of("", None, DrainConfig::default()).templates, []);
    }

    #[test]
    fn out_of_range_config_is_clamped() {
        let drain = Drain::new(DrainConfig {
            similarity: f64::NAN,
            depth: 0,
            max_children: 0,
            max_clusters: 0,
            max_values: 0,
            max_line_bytes: 0,
            mask_quoted: false,
        });
        let c = drain.config();
        assert_eq!(
            (
                c.similarity,
                c.depth,
                c.max_children,
                c.max_clusters,
                c.max_line_bytes
            ),
            (0.4, 3, 1, 1, 64)
        );
    }
}
