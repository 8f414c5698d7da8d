//! Secret and personal-data redaction for everything that leaves the process.
//!
//! Every prompt goes through [`Redactor::redact`] before it is handed to any
//! LLM provider, local or hosted. Redaction is done here, in code, because a
//! model cannot be trusted to ignore a credential it has already been shown,
//! and because a hosted provider may log what it receives.
//!
//! # How it works
//!
//! The redactor holds an ordered list of rules. Each rule is a regex plus a
//! *kind* (the name that appears in the placeholder and in the counts) and an
//! optional acceptance check. A rule either replaces its whole match or only
//! a named capture group, so context survives: `password=[REDACTED:password]`
//! keeps the key, `postgres://app:[REDACTED:password]@db:5432/x` keeps
//! scheme, user, host and path, `Authorization: Bearer [REDACTED:bearer_token]`
//! keeps the header and scheme.
//!
//! In a pass, every rule is matched against the same text, and a single
//! [`RegexSet`] scan first tells which rules can match at all, so a clean
//! prompt costs one scan. The spans found are then resolved by priority:
//! specific token formats (PEM blocks, JWTs, AWS/GitHub/Slack/... keys) beat
//! contextual rules (URL passwords, `Authorization` and `Cookie` headers,
//! `key=value` pairs), which beat custom patterns, emails and IP addresses.
//! When a contextual rule's value overlaps a span already taken, the rest of
//! its value is still redacted (a key named `password` means the whole value
//! is secret); pattern rules that overlap are simply dropped.
//!
//! Placeholders look like `[REDACTED:kind]`. A placeholder already in the
//! text is never rewritten, nor is anything overlapping it. Because a new
//! placeholder can change what is around it (it ends a word, for one),
//! passes repeat until one changes nothing, so the output is a fixed point
//! and redacting it again returns it unchanged.
//!
//! # Where the line is drawn
//!
//! Ordinary operations text must survive, or the model cannot help:
//!
//! * Token formats are only matched with their documented prefixes and
//!   lengths (`AKIA`/`ASIA` + 16, `ghp_`..., `xoxb-`..., `AIza` + 35, ...).
//!   OpenAI-style `sk-` keys must also contain an upper-case letter and a
//!   digit, so lower-case resource names such as `sk-payments-7d9f8b6c5d`
//!   pass.
//! * An AWS secret access key (40 base64 characters) is only recognised next
//!   to a key name such as `aws_secret_access_key` or right after its access
//!   key id (the credentials CSV); 40-hex git SHAs and UUIDs are left alone.
//! * The generic `key = value` rule fires only when the key *ends* in a
//!   secret word (`password`, `passwd`, `passphrase`, `secret`, `token`,
//!   `api_key`, `access_key`, `private_key`, `secret_key`, ...), so
//!   `password_reset_total`, `token_count=5`, `max_tokens: 512`,
//!   `secretName: tls` and `next_token` survive. It needs an explicit
//!   separator in a recognisable layout: `key=value` / `key = "value"`
//!   (env, logfmt, query strings, TOML/HCL, properties), `"key": value`
//!   (JSON, also escaped inside a JSON string), `key: value` at the start of a
//!   line (YAML, headers, `kubectl describe`), `Key:value` with a capitalised
//!   key and no space (Go `%+v`), `--key value`, `-H "X-Api-Key: v"`,
//!   `<key>value</key>` and `name: KEY` / `value: v` pairs (Kubernetes, ECS,
//!   .NET `<add key= value=>`). Prose such as "the token bucket is empty",
//!   "invalid token: expired" mid-line, `password= in` or
//!   `secret:prod/db` is not touched.
//! * Values that are obviously not secrets are kept: empty values, `null`,
//!   `true`/`false`, masks (`****`, `[FILTERED]`, `<redacted>`), Terraform's
//!   `(sensitive value)`, references (`$DB_PASSWORD`, `${TOKEN}`,
//!   `{{ .Values.token }}`, `os.environ[`, `self.password`), JSON objects
//!   and arrays, and `kubectl describe secret` sizes (`8 bytes`).
//! * Emails are redacted by default (`git@host` SSH remotes are not);
//!   IPv4 addresses only when [`RedactionConfig::ip_addresses`] is set,
//!   since addresses are usually what an incident is about.
//!
//! # Known limits
//!
//! Unquoted `key=value` values end at whitespace, a quote, or a `,`, `;` or
//! `&` followed by a letter (the next `name=` pair), so a password with such
//! a sequence is only partly redacted; YAML `key: value` lines take the rest
//! of the line. A line that *starts* with `token: ` or `password: ` is
//! treated as YAML even if it is prose. Multi-line YAML block scalars under
//! a secret key, Kubernetes `Secret` data under arbitrary key names, IPv6
//! addresses and secrets with neither a key name nor a recognisable format
//! are not detected.

use regex::{Captures, Regex, RegexSet, RegexSetBuilder};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What to redact beyond the secrets that are always removed (`[llm.redaction]`;
/// defined with the rest of the configuration in `brain`).
///
/// Secrets (keys, tokens, passwords, private keys) cannot be switched off:
/// safety is a property of the gateway, not of each deployment's config.
pub use brain::config::RedactionConfig;

/// Why a [`Redactor`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// An operator-supplied pattern does not compile.
    ///
    /// The regex error is part of the message (not a `source()`), so a
    /// config error printed once says what is wrong and where.
    #[error("redaction extra_patterns[{index}] `{pattern}` is not a valid regex: {reason}")]
    InvalidPattern {
        index: usize,
        pattern: String,
        reason: regex::Error,
    },
    /// An operator-supplied key name has characters a key cannot have.
    #[error(
        "redaction extra_keys[{index}] `{key}` must be non-empty and contain only letters, digits, `_`, `-` and `.`"
    )]
    InvalidKey { index: usize, key: String },
    /// A built-in rule does not compile (a bug; covered by tests).
    #[error("built-in redaction rule `{kind}` does not compile: {reason}")]
    Builtin {
        kind: &'static str,
        reason: regex::Error,
    },
    /// The combined rule set is too large for the regex engine.
    #[error("redaction rule set does not compile: {0}")]
    Set(regex::Error),
}

/// Redacted text and how many placeholders of each kind were inserted, so
/// the gateway can meter and audit what was removed without keeping it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub counts: BTreeMap<&'static str, usize>,
}

impl Redacted {
    /// Total number of placeholders inserted.
    #[must_use]
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// True when nothing was redacted.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Compiled redaction rules. Cheap to share (`Arc`) and safe to use from
/// many tasks; build it once at start-up.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    set: RegexSet,
    placeholder: Regex,
}

/// How a rule names what it found.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Fixed(&'static str),
    /// Derived from the match, e.g. from the key name (`db_password` is a
    /// password, `GITHUB_TOKEN` a token).
    Derived(fn(&Captures<'_>) -> &'static str),
}

/// What to do when a match overlaps a span a higher-priority rule took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    /// Drop the match: it was probably a partial, wrong reading.
    Drop,
    /// Redact whatever part of the value is still visible: the context
    /// (a key name, a URL's userinfo) says the whole value is secret.
    Fill,
}

/// Decides whether a match is really a secret, given its captures and the
/// secret text.
type Accept = fn(&Captures<'_>, &str) -> bool;

#[derive(Debug, Clone)]
struct Rule {
    kind: Kind,
    regex: Regex,
    accept: Accept,
    overlap: Overlap,
}

/// Names of the capture group holding the secret, in order of preference.
/// Rules without any of them replace their whole match.
const SECRET_GROUPS: [&str; 5] = ["secret", "eq", "dq", "sq", "bare"];

/// Characters of a configuration key (`spring.datasource.password`,
/// `x-api-key`, `DB_PASSWORD`).
const KEY_CHAR: &str = r"[A-Za-z0-9_.\-]";

/// Words a key must end with for its value to be treated as secret.
/// Ending, not containing: `password_reset_total` and `token_count` are
/// metrics, not secrets.
const KEY_WORDS: &str = r"pass(?:word|wd|phrase)|secret(?:[_.\-]?key(?:[_.\-]?base)?)?|token|api[_.\-]?key|access[_.\-]?key|private[_.\-]?key|(?:signing|encryption|master|auth|app|session)[_.\-]?key|key[_.\-]?data";

/// Keys that end in a secret word but hold identifiers, names or model
/// vocabulary (compared lower-case, without `_`, `-` and `.`).
const KEY_DENYLIST: [&str; 15] = [
    "nexttoken",
    "pagetoken",
    "pagingtoken",
    "paginationtoken",
    "continuationtoken",
    "synctoken",
    "resumetoken",
    "existingsecret",
    "eostoken",
    "bostoken",
    "padtoken",
    "unktoken",
    "septoken",
    "clstoken",
    "masktoken",
];

/// Values that are flags, nulls or masks rather than secrets.
const INERT_WORDS: [&str; 16] = [
    "null",
    "nil",
    "none",
    "true",
    "false",
    "yes",
    "no",
    "undefined",
    "redacted",
    "filtered",
    "masked",
    "hidden",
    "sensitive",
    "sensitive value",
    "omitted",
    "removed",
];

// Value shapes shared by the key-based rules. Each regex uses each group
// name at most once.
const V_ESCAPED: &str = r#"\\"(?P<eq>[^"\r\n]*?)\\""#;
const V_DOUBLE: &str = r#""(?P<dq>(?:[^"\\\r\n]|\\.)*)""#;
const V_SINGLE: &str = r"'(?P<sq>[^'\r\n]*)'";
/// Unquoted `key=value`: ends at whitespace, a quote, or a `&`, `;` or `,`
/// that starts the next `name=` pair (`&3` inside a password is kept);
/// shell escapes such as `\ ` are part of the value.
const BARE_EQ: &str = r#"(?P<bare>[^\s"',;&=\\](?:[^\s"',;&\\]|\\[^"\r\n]|[&;,][^A-Za-z_\s"'])*)"#;
const BARE_JSON: &str = r#"(?P<bare>[^\s"',}\]\\]+)"#;
const BARE_LINE: &str = r#"(?P<bare>[^\s"'#|>][^\r\n]*?)[ \t]*(?:[ \t]#[^\r\n]*)?\r?$"#;
const BARE_GO: &str = r#"(?P<bare>[^\s"',})\]\[{][^\s,})\]]*)"#;
const BARE_CLI: &str = r#"(?P<bare>[^\s"'\-][^\s"']*)"#;
const BARE_HEADER: &str = r#"(?P<bare>[^\s"']+)"#;
const BARE_XML: &str = r"(?P<bare>[^<\r\n]+)";

impl Redactor {
    /// Compiles the built-in rules plus the configured extras.
    ///
    /// # Errors
    ///
    /// [`RedactError::InvalidPattern`] for an extra pattern that does not
    /// compile (naming its index and text), [`RedactError::InvalidKey`] for
    /// a malformed extra key; the other variants mean a built-in rule is
    /// broken.
    pub fn new(config: &RedactionConfig) -> Result<Self, RedactError> {
        let key = key_group(&config.extra_keys)?;
        let mut rules = Vec::new();
        for (kind, pattern, accept, overlap) in token_rules() {
            rules.push(builtin(Kind::Fixed(kind), &pattern, accept, overlap)?);
        }
        for (kind, pattern, accept) in context_rules() {
            rules.push(builtin(kind, &pattern, accept, Overlap::Fill)?);
        }
        for (pattern, accept) in keyed_rules(&key) {
            rules.push(builtin(
                Kind::Derived(key_kind),
                &pattern,
                accept,
                Overlap::Fill,
            )?);
        }
        for (index, pattern) in config.extra_patterns.iter().enumerate() {
            let regex = Regex::new(pattern).map_err(|reason| RedactError::InvalidPattern {
                index,
                pattern: pattern.clone(),
                reason,
            })?;
            rules.push(Rule {
                kind: Kind::Fixed("custom"),
                regex,
                accept: accept_any,
                overlap: Overlap::Drop,
            });
        }
        if config.emails {
            rules.push(builtin(
                Kind::Fixed("email"),
                EMAIL,
                accept_email,
                Overlap::Drop,
            )?);
        }
        if config.ip_addresses {
            rules.push(builtin(
                Kind::Fixed("ipv4"),
                IPV4,
                accept_any,
                Overlap::Drop,
            )?);
        }
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.regex.as_str()))
            .size_limit(64 << 20)
            .build()
            .map_err(RedactError::Set)?;
        let placeholder =
            Regex::new(r"\[REDACTED:[a-z0-9_]+\]").map_err(|reason| RedactError::Builtin {
                kind: "placeholder",
                reason,
            })?;
        Ok(Self {
            rules,
            set,
            placeholder,
        })
    }

    /// Returns `text` with every secret replaced by `[REDACTED:kind]`.
    ///
    /// Runs passes until one changes nothing, so the result is a fixed
    /// point and redacting it again is a no-op: a placeholder can open a
    /// word boundary that lets another rule match (`abc123curl -u a:b`
    /// becomes `abc[REDACTED:custom]curl -u a:b`), and the next pass
    /// catches that. Almost every prompt needs one pass (clean) or two.
    /// Each pass is linear in the length of the text: one [`RegexSet`]
    /// scan, then one scan per rule that can match.
    #[must_use]
    pub fn redact(&self, text: &str) -> Redacted {
        let mut result = Redacted {
            text: text.to_owned(),
            counts: BTreeMap::new(),
        };
        for _ in 0..MAX_PASSES {
            let Some(pass) = self.pass(&result.text) else {
                break;
            };
            result.text = pass.text;
            for (kind, n) in pass.counts {
                *result.counts.entry(kind).or_insert(0) += n;
            }
        }
        result
    }

    /// One redaction pass; `None` when it would change nothing.
    fn pass(&self, text: &str) -> Option<Redacted> {
        let hits = self.set.matches(text);
        if !hits.matched_any() {
            return None;
        }
        let mut spans = Spans::default();
        for m in self.placeholder.find_iter(text) {
            spans.protect(m.start(), m.end());
        }
        for index in &hits {
            if let Some(rule) = self.rules.get(index) {
                rule.collect(text, &mut spans);
            }
        }
        spans.render(text)
    }
}

/// Every pass that changes the text turns at least one visible character
/// into a placeholder, so passes always terminate; this cap only bounds the
/// cost of adversarial input (the result is then still redacted, just
/// possibly not a fixed point).
const MAX_PASSES: usize = 8;

impl Rule {
    /// Offers every accepted match of this rule to `spans`.
    fn collect(&self, text: &str, spans: &mut Spans) {
        for caps in self.regex.captures_iter(text) {
            let Some(secret) = secret_match(&caps) else {
                continue;
            };
            if secret.is_empty() || !(self.accept)(&caps, secret.as_str()) {
                continue;
            }
            let kind = match self.kind {
                Kind::Fixed(kind) => kind,
                Kind::Derived(derive) => derive(&caps),
            };
            spans.claim(text, secret.start(), secret.end(), kind, self.overlap);
        }
    }
}

/// The part of a match to replace: the first secret group that took part,
/// else the whole match.
fn secret_match<'t>(caps: &Captures<'t>) -> Option<regex::Match<'t>> {
    SECRET_GROUPS
        .iter()
        .find_map(|name| caps.name(name))
        .or_else(|| caps.get(0))
}

fn builtin(
    kind: Kind,
    pattern: &str,
    accept: Accept,
    overlap: Overlap,
) -> Result<Rule, RedactError> {
    let name = match kind {
        Kind::Fixed(name) => name,
        Kind::Derived(_) => "keyed value",
    };
    let regex =
        Regex::new(pattern).map_err(|reason| RedactError::Builtin { kind: name, reason })?;
    Ok(Rule {
        kind,
        regex,
        accept,
        overlap,
    })
}

/// The `(?P<key>...)` group shared by the key-based rules, including the
/// operator's extra key names.
fn key_group(extra: &[String]) -> Result<String, RedactError> {
    let mut words = String::from(KEY_WORDS);
    for (index, key) in extra.iter().enumerate() {
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(RedactError::InvalidKey {
                index,
                key: key.clone(),
            });
        }
        words.push('|');
        words.push_str(&regex::escape(key));
    }
    Ok(format!(
        r"(?P<key>{KEY_CHAR}*?(?:{words})|(?:{KEY_CHAR}*[_.\-])?pass|{KEY_CHAR}*\.key)"
    ))
}

/// A PEM private key, complete.
const PEM_BLOCK: &str = r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----";
/// A PEM private key cut off before its END line (truncated logs): the
/// header and the base64 lines that follow it, raw or `\n`-escaped.
const PEM_TRUNCATED: &str = r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:[ \t]*(?:\r?\n|\\r?\\n)?[ \t]*[A-Za-z0-9+/=]{16,})+";
/// Letters and digits in any script: internationalised addresses
/// (`müller@example.de`) are personal data too.
const EMAIL: &str = r"[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}";
const IPV4: &str = r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?-u:\b)";

/// Secrets recognisable by their own format, highest priority first.
fn token_rules() -> Vec<(&'static str, String, Accept, Overlap)> {
    let drop = |kind: &'static str, pattern: &str| {
        (
            kind,
            pattern.to_owned(),
            accept_any as Accept,
            Overlap::Drop,
        )
    };
    vec![
        drop("private_key", PEM_BLOCK),
        drop("private_key", PEM_TRUNCATED),
        drop(
            "jwt",
            r"(?-u:\b)eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        ),
        drop(
            "aws_access_key",
            r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
        ),
        // The credentials CSV and `id secret` pairs: a key id followed by
        // its 40-character secret.
        drop(
            "aws_secret_key",
            r#"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}[ \t]*[,;:|= \t][ \t]*["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        ),
        drop(
            "github_token",
            r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{20,255}(?-u:\b)",
        ),
        drop("github_token", r"(?-u:\b)github_pat_[A-Za-z0-9_]{22,255}"),
        drop("gitlab_token", r"(?-u:\b)glpat-[A-Za-z0-9_\-]{20,}"),
        drop(
            "slack_token",
            r"(?-u:\b)(?:xox[abposre](?:\.xox[bp])?|xapp)-[A-Za-z0-9\-]{10,}",
        ),
        drop(
            "slack_webhook",
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9/_\-]+)",
        ),
        drop("anthropic_key", r"(?-u:\b)sk-ant-[A-Za-z0-9_\-]{20,}"),
        (
            "openai_key",
            r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}".to_owned(),
            accept_mixed_case_key,
            Overlap::Drop,
        ),
        drop("google_api_key", r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}"),
        drop(
            "stripe_key",
            r"(?-u:\b)(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}|whsec_[0-9A-Za-z]{20,})",
        ),
        drop("npm_token", r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)"),
        drop("vault_token", r"(?-u:\b)hv[sbr]\.[A-Za-z0-9_\-]{20,}"),
    ]
}

/// Secrets recognised by what surrounds them, highest priority first.
fn context_rules() -> Vec<(Kind, String, Accept)> {
    use Kind::{Derived, Fixed};
    vec![
        (
            Fixed("aws_secret_key"),
            r#"(?i)(?:aws)?[_.\-]?secret[_.\-]?(?:access)?[_.\-]?key\\?["']?[ \t]*(?:=>|:|=)[ \t]*\\?["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#.to_owned(),
            accept_any,
        ),
        (
            Fixed("password"),
            r#"(?i)(?-u:\b)[a-z][a-z0-9+.\-]*://[^\s/@:"'<>]*:(?P<secret>[^\s/@"'<>?#]+(?:@[^\s/@"'<>?#]+)*)@"#.to_owned(),
            accept_not_inert,
        ),
        (
            Derived(authorization_kind),
            r#"(?i)(?-u:\b)(?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*\\?["']?\[?[ \t]*(?:(?P<scheme>bearer|basic|token|bot|apikey|sso-key|aws4-hmac-sha256)[ \t]+)?(?P<secret>[^\s"',;\\\]]+)"#.to_owned(),
            accept_authorization,
        ),
        (
            Fixed("bearer_token"),
            r"(?i)(?-u:\b)bearer[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)".to_owned(),
            accept_opaque_token,
        ),
        (
            Fixed("password"),
            r#"(?-u:\b)curl(?-u:\b)(?:[^\r\n]|\\\r?\n)*?[ \t](?:-u|--user)[ \t]*["']?[^\s:"']*:(?P<secret>[^\s"']+)"#.to_owned(),
            accept_not_inert,
        ),
        (
            Fixed("password"),
            r#"(?-u:\b)mysql(?:dump|admin)?(?-u:\b)[^\r\n]*?[ \t]-p(?P<secret>[^\s"'][^\s"']*)"#.to_owned(),
            accept_not_inert,
        ),
        (
            Derived(connection_string_kind),
            r#"(?i);[ \t]*(?P<key>password|pwd|accountkey|sharedaccesskey)[ \t]*=[ \t]*(?P<secret>[^;"'\r\n]+)"#.to_owned(),
            accept_not_inert,
        ),
        (
            Fixed("cookie"),
            r#"(?im)(?:^|[\s"'])cookie\\?["']?[ \t]*:[ \t]*(?P<secret>[^\r\n"']+)"#.to_owned(),
            accept_not_inert,
        ),
        (
            Fixed("cookie"),
            r#"(?i)(?-u:\b)set-cookie\\?["']?[ \t]*:[ \t]*[^=;\s"']+=(?P<secret>[^;\r\n"']+)"#.to_owned(),
            accept_not_inert,
        ),
        (
            Fixed("azure_sas"),
            r#"[?&]sig=(?P<secret>[^&\s"'<>]+)"#.to_owned(),
            accept_not_inert,
        ),
        (
            Fixed("basic_auth"),
            r#""auth"[ \t]*:[ \t]*"(?P<secret>[A-Za-z0-9+/]{8,}={0,2})""#.to_owned(),
            accept_any,
        ),
    ]
}

/// Values of keys that end in a secret word, one rule per layout, highest
/// priority first. `key` is the shared `(?P<key>...)` group.
fn keyed_rules(key: &str) -> Vec<(String, Accept)> {
    vec![
        (
            format!(
                r#"(?i)\\?["']{key}\\?["'][ \t]*(?:=>|:|=)[ \t]*(?:{V_ESCAPED}|{V_DOUBLE}|{V_SINGLE}|{BARE_JSON})"#
            ),
            accept_keyed,
        ),
        (
            format!(
                r#"(?i)(?-u:\b)(?:name|key)\\?["']?[ \t]*[:=][ \t]*\\?["']?{key}\\?["']?(?:[ \t]*,[ \t]*|[ \t]*\r?\n[ \t]*|[ \t]+)\\?["']?value\\?["']?[ \t]*[:=][ \t]*(?:{V_ESCAPED}|{V_DOUBLE}|{V_SINGLE}|{BARE_JSON})"#
            ),
            accept_keyed,
        ),
        (
            format!(
                r"(?im)^[ \t]*(?:-[ \t]+)?{key}[ \t]*:[ \t]*(?:{V_DOUBLE}|{V_SINGLE}|{BARE_LINE})"
            ),
            accept_keyed,
        ),
        (
            format!(r#"(?i)(?:-H|--header)[ \t]*["']?{key}[ \t]*:[ \t]*{BARE_HEADER}"#),
            accept_keyed,
        ),
        (
            format!(
                r"(?i)(?:^|[^A-Za-z0-9_.\-]){key}(?:=>?|[ \t]+=>?[ \t]*)(?:{V_ESCAPED}|{V_DOUBLE}|{V_SINGLE}|{BARE_EQ})"
            ),
            accept_keyed,
        ),
        (
            format!(r"(?i)(?:^|[\s{{(,\[]){key}:\[?(?:{V_DOUBLE}|{BARE_GO})"),
            accept_go_field,
        ),
        (
            format!(r#"(?i)(?:^|[\s"'])--?{key}[ \t]+(?:{V_DOUBLE}|{V_SINGLE}|{BARE_CLI})"#),
            accept_keyed,
        ),
        (format!(r"(?i)<{key}>{BARE_XML}</"), accept_keyed),
    ]
}

fn accept_any(_: &Captures<'_>, _: &str) -> bool {
    true
}

fn accept_not_inert(_: &Captures<'_>, secret: &str) -> bool {
    !is_inert(secret)
}

/// Random keys mix cases and digits; lower-case resource names that happen
/// to start with `sk-` do not.
fn accept_mixed_case_key(_: &Captures<'_>, secret: &str) -> bool {
    let body = secret.trim_start_matches("sk-");
    body.chars().any(|c| c.is_ascii_uppercase()) && body.chars().any(|c| c.is_ascii_digit())
}

/// A bare `Bearer xxx` outside a header: only opaque strings with a digit,
/// so prose like "bearer authentication is required" stays.
fn accept_opaque_token(_: &Captures<'_>, secret: &str) -> bool {
    !is_inert(secret) && secret.chars().any(|c| c.is_ascii_digit())
}

/// With a scheme (`Bearer`, `Basic`) any real value is a credential;
/// without one, require something token-like so "authorization: denied"
/// survives.
fn accept_authorization(caps: &Captures<'_>, secret: &str) -> bool {
    if is_inert(secret) {
        return false;
    }
    caps.name("scheme").is_some()
        || secret.len() >= 16
        || secret.chars().any(|c| c.is_ascii_digit())
}

/// `git@github.com:org/repo` is an SSH remote, not a person.
fn accept_email(_: &Captures<'_>, secret: &str) -> bool {
    !secret.to_ascii_lowercase().starts_with("git@")
}

/// The acceptance check of every key-based rule.
fn accept_keyed(caps: &Captures<'_>, secret: &str) -> bool {
    let key = caps.name("key").map(|m| m.as_str()).unwrap_or_default();
    if key_is_denied(key) || is_inert(secret) {
        return false;
    }
    !(caps.name("bare").is_some() && is_code_reference(key, secret))
}

/// Go's `%+v` prints exported, capitalised field names (`Password:x`);
/// lower-case `secret:prod/db` is usually a reference, not a value. The
/// exception is OpenSSL's `pass:xxx` argument.
fn accept_go_field(caps: &Captures<'_>, secret: &str) -> bool {
    let key = caps.name("key").map(|m| m.as_str()).unwrap_or_default();
    let exported = key.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    (exported || key == "pass") && accept_keyed(caps, secret)
}

fn key_is_denied(key: &str) -> bool {
    let normal: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KEY_DENYLIST.iter().any(|word| normal.ends_with(word))
}

/// Values that carry no secret: empty, null/boolean words, masks, template
/// and environment references, nested JSON/YAML structures, Terraform's
/// `(sensitive value)` and `kubectl describe secret` sizes.
fn is_inert(value: &str) -> bool {
    let v = value.trim();
    // Code and prose end values with punctuation: `password=None):`.
    let word = v.trim_end_matches([')', ']', '}', ':', ';', ',']);
    if v.is_empty() || is_inert_word(word) || is_mask(v) || is_reference(v) {
        return true;
    }
    if let Some(inner) = unwrap_brackets(v) {
        return is_inert_word(inner)
            || inner.is_empty()
            || v.starts_with('<')
            || v.starts_with('{')
            || inner.contains([',', ' ', '"', '\''])
            || inner.to_ascii_lowercase().starts_with("sensitive")
            || inner.to_ascii_lowercase().starts_with("redacted");
    }
    let lower = v.to_ascii_lowercase();
    v == "{"
        || v == "["
        // `<set to the key 'token' in secret 'api'>` (kubectl describe).
        || (v.starts_with('<') && v.contains('>'))
        || lower.starts_with("(sensitive")
        || lower.starts_with("{{")
        || lower.starts_with("{%")
        || (v.starts_with('{') && v.contains(':'))
        || is_byte_count(&lower)
}

fn is_inert_word(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    INERT_WORDS.contains(&lower.as_str())
}

/// `****`, `xxxx`, `...`, `•••`.
fn is_mask(v: &str) -> bool {
    v.chars().count() >= 3 && v.chars().all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '•'))
}

/// `$VAR`, `${VAR}`, `$(cmd)`, `%(name)s`, `%{name}`, `#{expr}`.
fn is_reference(v: &str) -> bool {
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some('$'), Some(c)) => c == '{' || c == '(' || c == '_' || c.is_ascii_alphabetic(),
        (Some('%'), Some('(' | '{')) | (Some('#'), Some('{')) => true,
        _ => false,
    }
}

/// The inside of a value wrapped in matching `[]`, `<>`, `()` or `{}`.
fn unwrap_brackets(v: &str) -> Option<&str> {
    let close = match v.chars().next()? {
        '[' => ']',
        '<' => '>',
        '(' => ')',
        '{' => '}',
        _ => return None,
    };
    if v.len() >= 2 && v.ends_with(close) {
        v.get(1..v.len() - 1).map(str::trim)
    } else {
        None
    }
}

/// `kubectl describe secret` prints sizes, not values: `password: 8 bytes`.
fn is_byte_count(lower: &str) -> bool {
    lower
        .strip_suffix(" bytes")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Source code in stack traces: `password=os.environ[`,
/// `token=config.get(`, `password=password`, `api_key=self.api_key`.
fn is_code_reference(key: &str, value: &str) -> bool {
    if value.ends_with('(') || value.ends_with('[') {
        return true;
    }
    let key = key.trim_start_matches('-').to_ascii_lowercase();
    let value = value
        .trim_end_matches([')', ']', '}', ':', ';', ','])
        .to_ascii_lowercase();
    value == key || value.ends_with(&format!(".{key}"))
}

/// `db_password` → `password`, `GITHUB_TOKEN` → `token`, anything else
/// (`client_secret`, `x-api-key`, `tls.key`) → `secret`.
fn key_kind(caps: &Captures<'_>) -> &'static str {
    let key = caps
        .name("key")
        .map(|m| m.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    if key.contains("pass") {
        "password"
    } else if key.ends_with("token") {
        "token"
    } else {
        "secret"
    }
}

fn authorization_kind(caps: &Captures<'_>) -> &'static str {
    let scheme = caps
        .name("scheme")
        .map(|m| m.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "basic" => "basic_auth",
        "bearer" | "token" | "bot" => "bearer_token",
        _ => "authorization",
    }
}

/// ADO/JDBC `Password=`/`Pwd=` are passwords; Azure `AccountKey=` and
/// `SharedAccessKey=` are keys.
fn connection_string_kind(caps: &Captures<'_>) -> &'static str {
    let key = caps
        .name("key")
        .map(|m| m.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    if key == "password" || key == "pwd" {
        "password"
    } else {
        "azure_key"
    }
}

/// Non-overlapping spans of the original text, keyed by start offset.
/// `kind == None` marks an existing placeholder that must be kept as is.
#[derive(Default)]
struct Spans {
    by_start: BTreeMap<usize, (usize, Option<&'static str>)>,
}

impl Spans {
    fn protect(&mut self, start: usize, end: usize) {
        self.by_start.insert(start, (end, None));
    }

    /// Takes `start..end` for `kind` unless an earlier (higher-priority)
    /// span overlaps it; see [`Overlap`] for what happens then.
    fn claim(
        &mut self,
        text: &str,
        start: usize,
        end: usize,
        kind: &'static str,
        overlap: Overlap,
    ) {
        let taken: Vec<(usize, usize, Option<&'static str>)> = self
            .by_start
            .range(..end)
            .rev()
            .take_while(|(_, (taken_end, _))| *taken_end > start)
            .map(|(&s, &(e, k))| (s, e, k))
            .collect();
        if taken.is_empty() {
            self.by_start.insert(start, (end, Some(kind)));
            return;
        }
        // Touching a placeholder that was already in the input means this
        // text was redacted before; filling around it would make a second
        // pass redact more than the first.
        if overlap == Overlap::Drop || taken.iter().any(|(_, _, k)| k.is_none()) {
            return;
        }
        // `taken` is in descending order; walk it ascending to find gaps.
        let mut cursor = start;
        let mut gaps = Vec::new();
        for &(s, e, _) in taken.iter().rev() {
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        for (s, e) in gaps {
            if text.get(s..e).is_some_and(worth_filling) {
                self.by_start.insert(s, (e, Some(kind)));
            }
        }
    }

    /// The text with claimed spans replaced; `None` if nothing was claimed.
    fn render(self, text: &str) -> Option<Redacted> {
        if self.by_start.values().all(|(_, kind)| kind.is_none()) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut counts = BTreeMap::new();
        let mut pos = 0;
        for (start, (end, kind)) in self.by_start {
            out.push_str(text.get(pos..start).unwrap_or_default());
            match kind {
                Some(kind) => {
                    let _ = write!(out, "[REDACTED:{kind}]");
                    *counts.entry(kind).or_insert(0) += 1;
                }
                None => out.push_str(text.get(start..end).unwrap_or_default()),
            }
            pos = end;
        }
        out.push_str(text.get(pos..).unwrap_or_default());
        Some(Redacted { text: out, counts })
    }
}

/// A leftover piece of a secret value is worth a placeholder if it holds
/// anything beyond punctuation, whitespace and `\n`-style escapes.
fn worth_filling(piece: &str) -> bool {
    let stripped = piece
        .replace("\\n", "")
        .replace("\\r", "")
        .replace("\\t", "");
    stripped.chars().any(char::is_alphanumeric)
}
