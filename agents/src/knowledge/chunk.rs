//! Sections to chunks small enough for the embedder. A chunk never spans
//! two sections, so its heading path is exact; a long section is cut at
//! paragraph, then line, then sentence boundaries, with one unit of
//! overlap so a step is not separated from the sentence that explains it.

use super::parse::Section;

/// A piece of a section, ready to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Headings from the top to this chunk's section.
    pub path: Vec<String>,
    pub text: String,
}

/// Split `sections` into chunks of at most about `max_chars`.
pub fn chunk(sections: &[Section], max_chars: usize) -> Vec<Chunk> {
    let max_chars = max_chars.max(200);
    let mut out = Vec::new();
    for s in sections {
        for text in split(&s.text, max_chars) {
            out.push(Chunk {
                path: s.path.clone(),
                text,
            });
        }
    }
    out
}

fn split(text: &str, max: usize) -> Vec<String> {
    if text.len() <= max {
        return vec![text.to_owned()];
    }
    let units = units(text, max);
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut last_unit: Option<&str> = None;
    for u in &units {
        if !current.is_empty() && current.len() + u.len() + 1 > max {
            out.push(std::mem::take(&mut current));
            // Overlap: repeat the previous unit when it is short.
            if let Some(prev) = last_unit.filter(|p| p.len() + u.len() < max / 2) {
                current.push_str(prev);
                current.push('\n');
            }
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(u);
        last_unit = Some(u);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Paragraphs, with any longer than `max` cut into lines, then sentences,
/// then at a char boundary.
fn units(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if para.len() <= max {
            out.push(para);
            continue;
        }
        for line in para.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.len() <= max {
                out.push(line);
                continue;
            }
            for sentence in sentences(line) {
                let mut rest = sentence;
                while rest.len() > max {
                    let mut cut = max;
                    while !rest.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let cut = rest[..cut]
                        .rfind(' ')
                        .filter(|&c| c > max / 2)
                        .unwrap_or(cut);
                    out.push(&rest[..cut]);
                    rest = rest[cut..].trim_start();
                }
                if !rest.is_empty() {
                    out.push(rest);
                }
            }
        }
    }
    out
}

fn sentences(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        if matches!(bytes[i], b'.' | b'!' | b'?') && bytes.get(i + 1) == Some(&b' ') {
            out.push(line[start..=i].trim());
            start = i + 1;
        }
    }
    if start < line.len() {
        out.push(line[start..].trim());
    }
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(path: &[&str], text: &str) -> Section {
        Section {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn short_sections_are_one_chunk_each_and_keep_their_path() {
        let c = chunk(
            &[
                section(&["Confirm"], "a"),
                section(&["Remediation", "Step 1"], "b"),
            ],
            500,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].path, ["Remediation", "Step 1"]);
    }

    #[test]
    fn long_sections_are_cut_at_paragraphs_within_the_limit_and_lose_nothing() {
        let paras: Vec<String> = (0..30)
            .map(|i| format!("Paragraph {i} says something useful about failover."))
            .collect();
        let text = paras.join("\n\n");
        let c = chunk(&[section(&["Steps"], &text)], 300);
        assert!(c.len() > 3);
        for ch in &c {
            assert!(ch.text.len() <= 300, "{} chars", ch.text.len());
        }
        for p in &paras {
            assert!(c.iter().any(|ch| ch.text.contains(p.as_str())), "lost {p}");
        }
    }

    #[test]
    fn one_huge_line_is_cut_at_sentences_and_char_boundaries() {
        let text = "Ünïcödé sentence number one goes here. ".repeat(60);
        let c = chunk(&[section(&[], &text)], 250);
        assert!(c.iter().all(|ch| ch.text.len() <= 250));
        let words: usize = c.iter().map(|ch| ch.text.matches("Ünïcödé").count()).sum();
        assert!(words >= 60);
    }
}
