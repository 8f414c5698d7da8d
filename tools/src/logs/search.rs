//! Reading log text the agent already has, line by line: `search_log_lines`
//! (matches with context, first and last with their time) and
//! `count_log_lines_over_time` (matching lines per minute, or per chosen
//! bucket, and where the rate jumped). Timestamps are read from RFC 3339
//! and ISO dates, klog and syslog headers, epoch seconds or milliseconds,
//! and the time field of JSON lines.

use super::{TIME_KEYS, printable};
use crate::typed;
use brain::backends::{ToolError, ToolOutput, ToolSpec};
use brain::vocabulary::Risk;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

pub const SEARCH_LOG_LINES: &str = "search_log_lines";
pub const COUNT_LOG_LINES_OVER_TIME: &str = "count_log_lines_over_time";
/// Characters of one line in the text for a model.
const LINE_CHARS: usize = 300;
const MAX_BUCKETS: i64 = 10_000;
const SHOWN_BUCKETS: usize = 60;

/// Arguments of `search_log_lines`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLogLinesArgs {
    /// The log text, one entry per line.
    pub text: String,
    /// What to look for: text such as `connection refused`, or a regular
    /// expression such as `timeout|deadline exceeded` when `regex` is true.
    pub pattern: String,
    /// Read `pattern` as a regular expression (Rust syntax). Default: false.
    #[serde(default)]
    pub regex: bool,
    /// Match upper and lower case exactly. Default: false.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Lines shown before and after each match (default 2, at most 20).
    #[serde(default)]
    pub context: Option<usize>,
    /// Matches shown (default 50, at most 500); all are counted.
    #[serde(default)]
    pub max_matches: Option<usize>,
}

/// Arguments of `count_log_lines_over_time`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountLogLinesArgs {
    /// The log text, one entry per line, each starting with or holding a timestamp.
    pub text: String,
    /// Count only lines containing this text (or matching it when `regex`
    /// is true), e.g. `ERROR` or `status=5\d\d`. Default: every line.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Read `pattern` as a regular expression. Default: false.
    #[serde(default)]
    pub regex: bool,
    /// Match upper and lower case exactly. Default: false.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Bucket width such as `10s`, `1m`, `5m`, `1h`. Default: `1m`.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Year of timestamps that carry none (klog `E1124 10:42:00`, syslog
    /// `Nov 24 10:42:00`). Default: the year of the text's full dates, else this year.
    #[serde(default)]
    pub year: Option<i32>,
}

pub(super) fn specs() -> Vec<ToolSpec> {
    vec![
        typed::spec::<SearchLogLinesArgs>(
            SEARCH_LOG_LINES,
            "Find the log lines matching a text or regular expression in log text you already have, \
             with a few lines of context around each, the match count, and the first and last match \
             with their timestamps. Use it to read the raw lines behind a template or to check when an \
             error first appeared.",
            Risk::Read,
            Duration::from_secs(30),
        ),
        typed::spec::<CountLogLinesArgs>(
            COUNT_LOG_LINES_OVER_TIME,
            "Count the log lines matching a pattern per minute (or per chosen bucket) by their \
             timestamps, and name where the rate jumped ('from 0.2/min to 40/min at 10:42'). Use it \
             to date when errors started or stopped and line them up with deploys and metrics.",
            Risk::Read,
            Duration::from_secs(30),
        ),
    ]
}

/// The matcher both tools use: a substring or a regular expression.
fn matcher(pattern: &str, regex: bool, case_sensitive: bool) -> Result<Regex, ToolError> {
    if pattern.is_empty() {
        return Err(ToolError::InvalidArguments(
            "`pattern` must not be empty".into(),
        ));
    }
    let source = if regex {
        pattern.to_owned()
    } else {
        regex::escape(pattern)
    };
    RegexBuilder::new(&source)
        .case_insensitive(!case_sensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ToolError::InvalidArguments(format!("`pattern` is not a valid regex: {e}")))
}

pub fn search_log_lines(a: &SearchLogLinesArgs) -> Result<ToolOutput, ToolError> {
    let re = matcher(&a.pattern, a.regex, a.case_sensitive)?;
    let context = a.context.unwrap_or(2).min(20);
    let max = a.max_matches.unwrap_or(50).clamp(1, 500);
    let lines: Vec<&str> = a.text.lines().collect();
    let hits: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| re.is_match(l))
        .map(|(i, _)| i)
        .collect();
    let year = default_year(&a.text);
    let at = |i: usize| -> Value {
        let time = lines.get(i).and_then(|l| timestamp(l, year));
        json!({"line": i + 1, "time": time, "text": lines.get(i).map(|l| printable(l, LINE_CHARS))})
    };
    let mut text = format!(
        "{} of {} lines match {:?}",
        hits.len(),
        lines.len(),
        a.pattern
    );
    let (first, last) = (hits.first().map(|i| at(*i)), hits.last().map(|i| at(*i)));
    for (word, hit) in [("first", &first), ("last", &last)] {
        if let Some(h) = hit {
            let when = h["time"]
                .as_str()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default();
            let _ = write!(text, "; {word} on line {}{when}", h["line"]);
        }
    }
    text.push('\n');
    let mut printed: Option<usize> = None;
    for &h in hits.iter().take(max) {
        let from = h.saturating_sub(context);
        let to = (h + context).min(lines.len().saturating_sub(1));
        let from = printed.map_or(from, |p| from.max(p + 1));
        if printed.is_some_and(|p| from > p + 1) {
            text.push_str("--\n");
        }
        for i in from..=to {
            let mark = if re.is_match(lines.get(i).unwrap_or(&"")) {
                '>'
            } else {
                ' '
            };
            let line = printable(lines.get(i).unwrap_or(&""), LINE_CHARS);
            let _ = writeln!(text, "{mark}{:>6}  {line}", i + 1);
        }
        printed = Some(to.max(printed.unwrap_or(0)));
    }
    if hits.len() > max {
        let _ = writeln!(
            text,
            "… {} more matches not shown; raise `max_matches` or narrow the pattern",
            hits.len() - max
        );
    }
    let shown: Vec<Value> = hits.iter().take(max).map(|i| at(*i)).collect();
    Ok(ToolOutput {
        text,
        data: json!({"matches": hits.len(), "lines": lines.len(), "first": first, "last": last, "shown": shown}),
        truncated: hits.len() > max,
    })
}

pub fn count_log_lines_over_time(a: &CountLogLinesArgs) -> Result<ToolOutput, ToolError> {
    let re = match a.pattern.as_deref() {
        Some(p) => Some(matcher(p, a.regex, a.case_sensitive)?),
        None => None,
    };
    let bucket = typed::parse_duration(a.bucket.as_deref().unwrap_or("1m"))
        .map_err(|e| ToolError::InvalidArguments(format!("`bucket`: {e}")))?;
    let width = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX);
    if width < 1000 {
        return Err(ToolError::InvalidArguments(
            "`bucket` must be at least 1s".into(),
        ));
    }
    let year = a.year.unwrap_or_else(|| default_year(&a.text));
    let (mut matched, mut untimed, mut total) = (0usize, 0usize, 0usize);
    let mut times: Vec<i64> = Vec::new();
    for line in a.text.lines().filter(|l| !l.trim().is_empty()) {
        total += 1;
        if re.as_ref().is_some_and(|r| !r.is_match(line)) {
            continue;
        }
        matched += 1;
        match timestamp(line, year) {
            Some(t) => times.push(t.timestamp_millis()),
            None => untimed += 1,
        }
    }
    let what = a
        .pattern
        .as_deref()
        .map_or("lines".to_owned(), |p| format!("lines matching {p:?}"));
    let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
        let text = format!(
            "{matched} of {total} {what}; none has a timestamp this tool reads (RFC 3339/ISO, klog, syslog, epoch, JSON time field)"
        );
        return Ok(ToolOutput {
            text,
            data: json!({"matched": matched, "lines": total, "untimed": untimed, "buckets": []}),
            truncated: false,
        });
    };
    let first = lo.div_euclid(width);
    let n = hi.div_euclid(width) - first + 1;
    if n > MAX_BUCKETS {
        return Err(ToolError::InvalidArguments(format!(
            "the lines span {n} buckets of {}; use a larger `bucket`",
            a.bucket.as_deref().unwrap_or("1m")
        )));
    }
    let mut counts = vec![0u64; usize::try_from(n).unwrap_or(0)];
    for t in &times {
        let i = usize::try_from(t.div_euclid(width) - first).unwrap_or(0);
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    let start_of = |i: usize| {
        DateTime::from_timestamp_millis((first + i as i64).saturating_mul(width))
            .unwrap_or_default()
    };
    let multi_day = hi - lo >= 86_400_000;
    let clock = |t: DateTime<Utc>| {
        if multi_day {
            t.format("%m-%d %H:%M").to_string()
        } else if width % 60_000 == 0 {
            t.format("%H:%M").to_string()
        } else {
            t.format("%H:%M:%S").to_string()
        }
    };
    let unit = bucket_unit(width);
    let mut text = format!(
        "{matched} of {total} {what}; {} with a timestamp from {} to {} in {} buckets of {unit}",
        times.len(),
        clock(start_of(0)),
        clock(start_of(counts.len().saturating_sub(1))),
        counts.len()
    );
    if untimed > 0 {
        let _ = write!(text, "; {untimed} matching lines without a timestamp");
    }
    text.push('\n');
    let jump = jump(&counts);
    if let Some(j) = &jump {
        let verb = if j.after > j.before { "rose" } else { "fell" };
        let _ = writeln!(
            text,
            "rate {verb} from {}/{unit} to {}/{unit} at {}",
            rate(j.before),
            rate(j.after),
            clock(start_of(j.at))
        );
    }
    if let Some((i, peak)) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, usize::MAX - i))
    {
        let _ = writeln!(text, "peak {peak}/{unit} at {}", clock(start_of(i)));
    }
    let nonzero: Vec<usize> = (0..counts.len())
        .filter(|i| counts.get(*i).is_some_and(|c| *c > 0))
        .collect();
    let shown: Vec<usize> = if counts.len() <= SHOWN_BUCKETS {
        (0..counts.len()).collect()
    } else {
        nonzero.iter().copied().take(SHOWN_BUCKETS).collect()
    };
    if counts.len() > SHOWN_BUCKETS {
        text.push_str("non-empty buckets:\n");
    }
    for i in &shown {
        let _ = writeln!(
            text,
            "{} {}",
            clock(start_of(*i)),
            counts.get(*i).copied().unwrap_or(0)
        );
    }
    let left = if counts.len() > SHOWN_BUCKETS {
        nonzero.len().saturating_sub(SHOWN_BUCKETS)
    } else {
        0
    };
    if left > 0 {
        let _ = writeln!(
            text,
            "… {left} more non-empty buckets not shown; use a larger `bucket`"
        );
    }
    let buckets: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"start": start_of(i), "count": c}))
        .collect();
    let jump_data =
        jump.map(|j| json!({"at": start_of(j.at), "before": j.before, "after": j.after}));
    Ok(ToolOutput {
        text,
        data: json!({"matched": matched, "lines": total, "untimed": untimed, "bucket_s": width / 1000,
            "buckets": buckets, "jump": jump_data}),
        truncated: left > 0,
    })
}

fn rate(v: f64) -> String {
    if v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn bucket_unit(width_ms: i64) -> String {
    match width_ms {
        60_000 => "min".into(),
        3_600_000 => "h".into(),
        1000 => "s".into(),
        w => super::super::prometheus::stats::human(w),
    }
}

/// Where the per-bucket rate moved from one level to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jump {
    /// The first bucket of the new level.
    pub at: usize,
    /// Mean count per bucket before and from `at` on.
    pub before: f64,
    pub after: f64,
}

/// The single split of `counts` that best separates two levels (largest
/// between-group sum of squares), if the levels differ by at least 2x and
/// by 3 lines per bucket.
pub fn jump(counts: &[u64]) -> Option<Jump> {
    let n = counts.len();
    if n < 2 {
        return None;
    }
    let total: f64 = counts.iter().map(|c| *c as f64).sum();
    let mut best: Option<(f64, Jump)> = None;
    let mut left = 0.0;
    for k in 1..n {
        left += counts.get(k - 1).copied().unwrap_or(0) as f64;
        let (n1, n2) = (k as f64, (n - k) as f64);
        let (m1, m2) = (left / n1, (total - left) / n2);
        let score = n1 * n2 / n as f64 * (m1 - m2) * (m1 - m2);
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((
                score,
                Jump {
                    at: k,
                    before: m1,
                    after: m2,
                },
            ));
        }
    }
    let (_, j) = best?;
    let (lo, hi) = (j.before.min(j.after), j.before.max(j.after));
    (hi - lo >= 3.0 && hi >= 2.0 * lo).then_some(j)
}

// ---------------------------------------------------------------------------
// Timestamps

static ISO: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(\d{4})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(?:\s?(Z|[+-]\d{2}:?\d{2}))?",
    )
    .ok()
});
static KLOG: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[IWEF](\d{2})(\d{2})\s+(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?").ok()
});
static SYSLOG: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:<\d+>)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})").ok()
});
static EPOCH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\[?(\d{10}|\d{13})(?:\.(\d{1,9}))?(?:\]|\s|$)").ok());

/// The year of the first full date in `text`, else this year.
fn default_year(text: &str) -> i32 {
    text.lines()
        .take(1000)
        .find_map(|l| iso(l, false))
        .map_or_else(|| Utc::now().year(), |t| t.year())
}

/// The time a line was written, if it says; `year` for formats without one.
pub fn timestamp(line: &str, year: i32) -> Option<DateTime<Utc>> {
    let line = line.trim_start();
    let head = line.get(..line.len().min(64)).unwrap_or(line);
    iso(head, true)
        .or_else(|| klog(head, year))
        .or_else(|| syslog(head, year))
        .or_else(|| epoch_text(head))
        .or_else(|| json_time(line, year))
        .or_else(|| iso(line.get(..line.len().min(512)).unwrap_or(""), false))
}

fn fraction_ns(m: Option<regex::Match<'_>>) -> u32 {
    m.map_or(0, |f| {
        let digits = f.as_str();
        let padded = format!("{digits:0<9}");
        padded.get(..9).and_then(|d| d.parse().ok()).unwrap_or(0)
    })
}

fn num<T: std::str::FromStr>(c: &regex::Captures<'_>, i: usize) -> Option<T> {
    c.get(i)?.as_str().parse().ok()
}

fn civil(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ns: u32) -> Option<DateTime<Utc>> {
    let naive = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_nano_opt(h, mi, s, ns)?;
    Some(Utc.from_utc_datetime(&naive))
}

fn iso(text: &str, anchored: bool) -> Option<DateTime<Utc>> {
    let c = ISO.as_ref()?.captures(text)?;
    let whole = c.get(0)?;
    if anchored
        && !text
            .get(..whole.start())?
            .trim_start_matches(['[', ' '])
            .is_empty()
    {
        return None;
    }
    let t = civil(
        num(&c, 1)?,
        num(&c, 2)?,
        num(&c, 3)?,
        num(&c, 4)?,
        num(&c, 5)?,
        num(&c, 6)?,
        fraction_ns(c.get(7)),
    )?;
    let offset_s = match c.get(8).map(|m| m.as_str()) {
        None | Some("Z") => 0,
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z.chars().filter(char::is_ascii_digit).collect();
            let h: i64 = digits.get(..2)?.parse().ok()?;
            let m: i64 = digits.get(2..4)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    t.checked_sub_signed(chrono::Duration::seconds(offset_s))
}

fn klog(text: &str, year: i32) -> Option<DateTime<Utc>> {
    let c = KLOG.as_ref()?.captures(text)?;
    civil(
        year,
        num(&c, 1)?,
        num(&c, 2)?,
        num(&c, 3)?,
        num(&c, 4)?,
        num(&c, 5)?,
        fraction_ns(c.get(6)),
    )
}

fn syslog(text: &str, year: i32) -> Option<DateTime<Utc>> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = SYSLOG.as_ref()?.captures(text)?;
    let month = MONTHS
        .iter()
        .position(|m| Some(*m) == c.get(1).map(|x| x.as_str()))?;
    civil(
        year,
        u32::try_from(month + 1).ok()?,
        num(&c, 2)?,
        num(&c, 3)?,
        num(&c, 4)?,
        num(&c, 5)?,
        0,
    )
}

fn epoch(value: f64) -> Option<DateTime<Utc>> {
    // Seconds until 2286, milliseconds after: both plausible for logs.
    let ms = if value.abs() < 1e10 {
        value * 1000.0
    } else {
        value
    };
    (ms.is_finite() && ms > 0.0 && ms < 1e14)
        .then(|| DateTime::from_timestamp_millis(ms as i64))
        .flatten()
}

fn epoch_text(text: &str) -> Option<DateTime<Utc>> {
    let c = EPOCH.as_ref()?.captures(text)?;
    let whole: f64 = num(&c, 1)?;
    let frac = c
        .get(2)
        .and_then(|f| format!("0.{}", f.as_str()).parse::<f64>().ok())
        .unwrap_or(0.0);
    let value = whole + frac;
    // Readings in seconds keep their fraction; in milliseconds it is sub-ms.
    epoch(value)
}

fn json_time(line: &str, year: i32) -> Option<DateTime<Utc>> {
    let line = line.trim();
    if !(line.starts_with('{') && line.ends_with('}')) {
        return None;
    }
    let map: serde_json::Map<String, Value> = serde_json::from_str(line).ok()?;
    TIME_KEYS.iter().find_map(|k| match map.get(*k)? {
        Value::String(s) => iso(s, true)
            .or_else(|| klog(s, year))
            .or_else(|| syslog(s, year))
            .or_else(|| epoch_text(s)),
        Value::Number(n) => epoch(n.as_f64()?),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn timestamps_are_read_in_the_formats_logs_use() {
        let cases = [
            (
                "2024-11-24T10:42:05.250Z ERROR boom",
                "2024-11-24T10:42:05.250Z",
            ),
            (
                "[2024-11-24 10:42:05,250] WARN x",
                "2024-11-24T10:42:05.250Z",
            ),
            ("2024-11-24T12:42:05+02:00 x", "2024-11-24T10:42:05Z"),
            ("2024/11/24 10:42:05 http: panic", "2024-11-24T10:42:05Z"),
            (
                "E1124 10:42:05.123456       1 reflector.go:138] x",
                "2024-11-24T10:42:05.123456Z",
            ),
            (
                "Nov 24 10:42:05 host sshd[12]: Failed",
                "2024-11-24T10:42:05Z",
            ),
            ("<34>Nov  4 10:42:05 host x", "2024-11-04T10:42:05Z"),
            ("1732444925 GET /", "2024-11-24T10:42:05Z"),
            ("1732444925.5 GET /", "2024-11-24T10:42:05.500Z"),
            ("1732444925500 GET /", "2024-11-24T10:42:05.500Z"),
            (
                r#"{"ts":1732444925.25,"msg":"x"}"#,
                "2024-11-24T10:42:05.250Z",
            ),
            (
                r#"{"msg":"x","time":"2024-11-24T10:42:05Z"}"#,
                "2024-11-24T10:42:05Z",
            ),
            (
                "level=error ts=2024-11-24T10:42:05Z msg=x",
                "2024-11-24T10:42:05Z",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(timestamp(line, 2024), Some(at(want)), "{line}");
        }
        for line in [
            "",
            "GET /api 200 12ms",
            "E9999 99:99:99 x",
            "2024-13-45T99:00:00Z",
            "{",
        ] {
            assert_eq!(timestamp(line, 2024), None, "{line}");
        }
    }

    #[test]
    fn a_jump_is_named_at_its_first_bucket() {
        let counts = [0, 0, 1, 0, 0, 40, 42, 38, 41];
        let j = jump(&counts).unwrap();
        assert_eq!(j.at, 5);
        assert!(j.before < 1.0 && j.after > 39.0, "{j:?}");
        // Noise is not a jump; nothing to split is none.
        assert_eq!(jump(&[3, 4, 3, 5, 4, 3]), None);
        assert_eq!(jump(&[]), None);
        assert_eq!(jump(&[7]), None);
    }

    #[test]
    fn lines_fall_in_their_minute_and_untimed_ones_are_counted_apart() {
        let mut text = String::new();
        for m in 0..10 {
            let n = if m < 6 { 1 } else { 20 };
            for i in 0..n {
                text.push_str(&format!(
                    "2024-11-24T10:{m:02}:{:02}Z ERROR db down\n",
                    i * 2
                ));
            }
            text.push_str(&format!("2024-11-24T10:{m:02}:59Z INFO ok\n"));
        }
        text.push_str("ERROR without a time\n");
        let out = count_log_lines_over_time(&CountLogLinesArgs {
            text,
            pattern: Some("error".into()),
            regex: false,
            case_sensitive: false,
            bucket: None,
            year: None,
        })
        .unwrap();
        assert_eq!(out.data["matched"], 87);
        assert_eq!(out.data["untimed"], 1);
        assert_eq!(out.data["buckets"].as_array().unwrap().len(), 10);
        assert_eq!(out.data["buckets"][6]["count"], 20);
        assert!(
            out.text.contains("rate rose from 1/min to 20/min at 10:06"),
            "{}",
            out.text
        );
    }

    #[test]
    fn bad_patterns_and_buckets_are_readable_errors() {
        let e = matcher("(", true, false).unwrap_err();
        assert!(e.to_string().contains("`pattern`"), "{e}");
        assert!(matcher("", false, false).is_err());
        // A literal is escaped, not read as a regex.
        assert!(matcher("a.b(", false, false).unwrap().is_match("x a.b( y"));
        let args = |bucket: &str| CountLogLinesArgs {
            text: "2024-01-01T00:00:00Z a\n2024-12-31T00:00:00Z a".into(),
            pattern: None,
            regex: false,
            case_sensitive: false,
            bucket: Some(bucket.into()),
            year: None,
        };
        assert!(count_log_lines_over_time(&args("0s")).is_err());
        let e = count_log_lines_over_time(&args("1m")).unwrap_err();
        assert!(e.to_string().contains("larger `bucket`"), "{e}");
        assert!(count_log_lines_over_time(&args("1d")).is_ok());
    }
}
