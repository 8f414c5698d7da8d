//! Documents to sections: Markdown (with YAML front matter), plain text,
//! HTML and PDF. A section is the text under one heading with the path of
//! headings above it, so every chunk can say where in the document it is.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Deserialize;

/// The formats the knowledge base reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Html,
    Pdf,
}

impl Format {
    /// The format from a file name's extension, else from a media type.
    pub fn detect(name: &str, mime: Option<&str>) -> Option<Format> {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| !e.contains('/'))
            .unwrap_or_default();
        match ext.as_str() {
            "md" | "markdown" => return Some(Format::Markdown),
            "txt" | "text" | "log" => return Some(Format::Text),
            "html" | "htm" => return Some(Format::Html),
            "pdf" => return Some(Format::Pdf),
            // Any other extension names a format we do not read, whatever
            // the media type claims.
            "" => {}
            _ => return None,
        }
        let mime = mime?.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "text/markdown" | "text/x-markdown" => Some(Format::Markdown),
            "text/plain" => Some(Format::Text),
            "text/html" | "application/xhtml+xml" => Some(Format::Html),
            "application/pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown",
            Format::Text => "text/plain",
            Format::Html => "text/html",
            Format::Pdf => "application/pdf",
        }
    }
}

/// Front matter of a runbook (every field optional for other documents).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FrontMatter {
    pub id: Option<String>,
    pub title: Option<String>,
    pub services: Vec<String>,
    pub categories: Vec<String>,
    pub actions: Vec<String>,
    pub risk: Option<String>,
    /// `runbook`, `postmortem` or `doc`.
    #[serde(rename = "type")]
    pub doc_type: Option<String>,
}

/// Text under one heading.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Headings from the top (the document title excluded) to this one.
    pub path: Vec<String>,
    pub text: String,
}

/// A parsed document.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub title: Option<String>,
    pub meta: FrontMatter,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the file is empty")]
    Empty,
    #[error("the file holds no text")]
    NoText,
    #[error("not valid UTF-8 text (at byte {0})")]
    NotUtf8(usize),
    #[error("front matter, line {line}: {message}")]
    FrontMatter { line: usize, message: String },
    #[error("unreadable PDF: {0}")]
    Pdf(String),
}

/// Parse `bytes` as `format`.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let parsed = match format {
        Format::Pdf => text(&pdf_text(bytes)?),
        Format::Markdown => markdown(utf8(bytes)?)?,
        Format::Text => text(utf8(bytes)?),
        Format::Html => html(utf8(bytes)?),
    };
    if parsed.sections.iter().all(|s| s.text.trim().is_empty()) {
        return Err(ParseError::NoText);
    }
    Ok(parsed)
}

fn utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    let s = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8(e.valid_up_to()))?;
    Ok(s.strip_prefix('\u{feff}').unwrap_or(s))
}

/// Split `---\nyaml\n---\n` off the top.
fn front_matter(src: &str) -> Result<(FrontMatter, &str), ParseError> {
    let Some(rest) = src
        .strip_prefix("---\n")
        .or_else(|| src.strip_prefix("---\r\n"))
    else {
        return Ok((FrontMatter::default(), src));
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            let meta: FrontMatter = yaml_serde::from_str(yaml).map_err(|e| {
                let line = e.location().map_or(0, |l| l.line()) + 1;
                ParseError::FrontMatter {
                    line,
                    message: e.to_string(),
                }
            })?;
            return Ok((meta, body));
        }
        offset += line.len();
    }
    Err(ParseError::FrontMatter {
        line: 1,
        message: "`---` opens front matter that no `---` closes".into(),
    })
}

fn level(l: HeadingLevel) -> usize {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Builds sections from a stream of headings and text blocks.
#[derive(Default)]
struct Sections {
    title: Option<String>,
    /// (level, heading) of the open headings.
    stack: Vec<(usize, String)>,
    text: String,
    out: Vec<Section>,
}

impl Sections {
    fn flush(&mut self) {
        let text = tidy(&self.text);
        if !text.is_empty() {
            let path = self.stack.iter().map(|(_, h)| h.clone()).collect();
            self.out.push(Section { path, text });
        }
        self.text.clear();
    }

    fn heading(&mut self, lvl: usize, heading: String) {
        self.flush();
        // The first top-level heading is the document's title, not a section.
        if lvl == 1 && self.title.is_none() && self.out.is_empty() && self.stack.is_empty() {
            self.title = Some(heading);
            return;
        }
        while self.stack.last().is_some_and(|(l, _)| *l >= lvl) {
            self.stack.pop();
        }
        self.stack.push((lvl, heading));
    }

    fn finish(mut self, meta: FrontMatter) -> Parsed {
        self.flush();
        Parsed {
            title: meta.title.clone().or(self.title),
            meta,
            sections: self.out,
        }
    }
}

/// Collapse runs of blank lines and trailing spaces.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

fn markdown(src: &str) -> Result<Parsed, ParseError> {
    let (meta, body) = front_matter(src)?;
    let mut b = Sections::default();
    let mut heading: Option<(usize, String)> = None;
    let mut list_depth = 0usize;
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for event in Parser::new_ext(body, opts) {
        match event {
            Event::Start(Tag::Heading { level: l, .. }) => {
                heading = Some((level(l), String::new()))
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((l, h)) = heading.take() {
                    b.heading(l, h.trim().to_owned());
                }
            }
            Event::Text(t) | Event::Code(t) => match &mut heading {
                Some((_, h)) => h.push_str(&t),
                None => b.text.push_str(&t),
            },
            Event::SoftBreak | Event::HardBreak => match &mut heading {
                Some((_, h)) => h.push(' '),
                None => b.text.push('\n'),
            },
            Event::Start(Tag::List(_)) => {
                list_depth += 1;
                b.text.push('\n');
            }
            Event::End(TagEnd::List(_)) => {
                list_depth = list_depth.saturating_sub(1);
                b.text.push('\n');
            }
            Event::Start(Tag::Item) => {
                b.text.push('\n');
                b.text.push_str(&"  ".repeat(list_depth.saturating_sub(1)));
                b.text.push_str("- ");
            }
            Event::Start(Tag::CodeBlock(_)) => b.text.push_str("\n\n"),
            Event::End(TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::BlockQuote(_)) => {
                b.text.push_str("\n\n");
            }
            Event::End(TagEnd::TableCell) => b.text.push_str(" | "),
            Event::End(TagEnd::TableRow | TagEnd::TableHead) => b.text.push('\n'),
            // Comments and tags carry no prose; keep the text between them.
            Event::Html(t) | Event::InlineHtml(t) if !t.trim_start().starts_with('<') => {
                b.text.push_str(&t);
            }
            _ => {}
        }
    }
    Ok(b.finish(meta))
}

/// Plain text: the first line is the title when it looks like one; lines
/// underlined with `===`/`---` or in ALL CAPS open sections.
fn text(src: &str) -> Parsed {
    let mut b = Sections::default();
    let lines: Vec<&str> = src.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        let underlined = !line.trim().is_empty()
            && next.len() >= 3
            && (next.chars().all(|c| c == '=') || next.chars().all(|c| c == '-'));
        if underlined {
            let lvl = if next.starts_with('=') { 1 } else { 2 };
            b.heading(lvl, line.trim().to_owned());
            i += 2;
            continue;
        }
        b.text.push_str(line);
        b.text.push('\n');
        i += 1;
    }
    let mut parsed = b.finish(FrontMatter::default());
    if parsed.title.is_none() {
        parsed.title = src
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .filter(|l| l.len() <= 120)
            .map(str::to_owned);
    }
    parsed
}

const HTML_BLOCKS: &str = "h1, h2, h3, h4, h5, h6, p, li, pre, td, th, blockquote, dt, dd";

fn html(src: &str) -> Parsed {
    let doc = scraper::Html::parse_document(src);
    let mut b = Sections::default();
    let title = scraper::Selector::parse("title")
        .ok()
        .and_then(|sel| doc.select(&sel).next())
        .map(|t| t.text().collect::<String>().trim().to_owned())
        .filter(|t| !t.is_empty());
    let Ok(blocks) = scraper::Selector::parse(HTML_BLOCKS) else {
        return b.finish(FrontMatter::default());
    };
    let block_names = [
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "p",
        "li",
        "pre",
        "td",
        "th",
        "blockquote",
        "dt",
        "dd",
    ];
    for el in doc.select(&blocks) {
        // A block inside another block was already read with its parent.
        let nested = el.ancestors().any(|a| {
            a.value()
                .as_element()
                .is_some_and(|e| block_names.contains(&e.name()))
        });
        if nested {
            continue;
        }
        let name = el.value().name();
        let raw: String = el.text().collect();
        if let Some(lvl) = name
            .strip_prefix('h')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|_| name.len() == 2)
        {
            b.heading(lvl, squash(&raw));
            continue;
        }
        let body = if name == "pre" { raw } else { squash(&raw) };
        if name == "li" {
            b.text.push_str("- ");
        }
        b.text.push_str(&body);
        b.text
            .push_str(if name == "li" || name == "td" || name == "th" {
                "\n"
            } else {
                "\n\n"
            });
    }
    let mut parsed = b.finish(FrontMatter::default());
    if let Some(t) = title {
        parsed.title = Some(t);
    }
    parsed
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of a PDF. The extractor panics on some malformed files; that
/// is caught here and reported as an unreadable PDF.
fn pdf_text(bytes: &[u8]) -> Result<String, ParseError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ParseError::Pdf("it does not start with %PDF-".into()));
    }
    let owned = bytes.to_vec();
    let result = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem(&owned));
    match result {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(ParseError::Pdf(e.to_string())),
        Err(_) => Err(ParseError::Pdf(
            "the PDF's structure could not be read".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn markdown_sections_keep_their_heading_path_and_front_matter() {
        let src = "---\nid: oom\ntitle: OOM kills\nservices: [payments-api]\ncategories: [oom_killed]\n---\n\
                   # OOM kills\n\nIntro text.\n\n## Confirm\n\nRun `kubectl describe pod`.\n\n\
                   ### With PromQL\n\n```\nsum(rate(x[5m]))\n```\n\n## Remediation\n\n1. Raise the limit\n2. Roll out\n";
        let p = parse(Format::Markdown, src.as_bytes()).unwrap();
        assert_eq!(p.title.as_deref(), Some("OOM kills"));
        assert_eq!(p.meta.services, ["payments-api"]);
        let paths: Vec<String> = p.sections.iter().map(|s| s.path.join(" > ")).collect();
        assert_eq!(
            paths,
            ["", "Confirm", "Confirm > With PromQL", "Remediation"]
        );
        assert!(p.sections[1].text.contains("kubectl describe pod"));
        assert!(p.sections[2].text.contains("sum(rate(x[5m]))"));
        assert!(p.sections[3].text.contains("- Raise the limit"));
    }

    #[test]
    fn broken_front_matter_names_the_line() {
        let src = "---\nid: x\nservices: [a\n---\n# T\ntext\n";
        let err = parse(Format::Markdown, src.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ParseError::FrontMatter { line, .. } if line >= 2),
            "{err:?}"
        );
    }

    #[test]
    fn html_headings_open_sections_and_nested_blocks_are_read_once() {
        let src = "<html><head><title>Failover</title></head><body><h1>Failover</h1>\
                   <p>Before you start.</p><h2>Steps</h2><ul><li><p>Promote the replica</p></li>\
                   <li>Repoint DNS</li></ul><script>evil()</script></body></html>";
        let p = parse(Format::Html, src.as_bytes()).unwrap();
        assert_eq!(p.title.as_deref(), Some("Failover"));
        assert_eq!(p.sections.len(), 2);
        assert_eq!(p.sections[1].path, ["Steps"]);
        assert_eq!(p.sections[1].text.matches("Promote the replica").count(), 1);
        assert!(!p.sections[1].text.contains("evil"));
    }

    #[test]
    fn empty_and_binary_input_are_refused() {
        assert_eq!(parse(Format::Text, b"  \n\n"), Err(ParseError::Empty));
        assert!(matches!(
            parse(Format::Text, &[0x66, 0xff, 0xfe]),
            Err(ParseError::NotUtf8(1))
        ));
        assert!(matches!(
            parse(Format::Pdf, b"not a pdf"),
            Err(ParseError::Pdf(_))
        ));
    }

    #[test]
    fn formats_are_detected_by_extension_then_media_type() {
        assert_eq!(Format::detect("a.MD", None), Some(Format::Markdown));
        assert_eq!(
            Format::detect("blob", Some("application/pdf")),
            Some(Format::Pdf)
        );
        assert_eq!(
            Format::detect("x.docx", Some("application/octet-stream")),
            None
        );
    }
}
