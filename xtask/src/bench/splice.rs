//! Moving marked parts of BENCHMARKS.md from one version of the file to
//! another, so that a run of one part of the suite (`--only flood`) can
//! update its parts of the existing file and leave the rest as the last
//! full run wrote it, and a run of the other parts can keep them.
//!
//! A part is either a block of lines from `<!-- bench:NAME begin -->` to
//! `<!-- bench:NAME end -->` or one line holding `<!-- bench:NAME -->` (a
//! row of a table). HTML comments do not show when Markdown is rendered.

use std::ops::Range;

use anyhow::{Result, bail};

/// Where a part goes in a file that does not have it yet.
#[derive(Clone, Copy, Debug)]
pub enum Anchor {
    /// After the last row of the first table under this heading.
    TableEnd(&'static str),
    /// Just before this heading.
    Before(&'static str),
    /// At the end of the section under this heading (before the next
    /// `## ` heading, or at the end of the file).
    SectionEnd(&'static str),
    /// First in the section under this heading (after the heading's line
    /// and the blank line under it).
    After(&'static str),
}

/// One marked part.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    pub name: &'static str,
    pub anchor: Anchor,
}

impl Part {
    /// The line that opens a block part.
    pub fn begin(&self) -> String {
        format!("<!-- bench:{} begin -->", self.name)
    }

    /// The line that closes a block part.
    pub fn end(&self) -> String {
        format!("<!-- bench:{} end -->", self.name)
    }

    /// The marker of a one-line part, somewhere on its line.
    pub fn inline(&self) -> String {
        format!("<!-- bench:{} -->", self.name)
    }

    /// `body` as a block part (blank lines around it, so Markdown sees
    /// the markers as HTML blocks of their own).
    pub fn block(&self, body: &str) -> String {
        format!(
            "{}\n\n{}\n\n{}\n",
            self.begin(),
            body.trim_end(),
            self.end()
        )
    }

    /// The part's lines in `doc`, from the start of its first line to the
    /// end of its last (newline included).
    fn find(&self, doc: &str) -> Option<Range<usize>> {
        if let Some(b) = doc.find(&self.begin()) {
            let e = b + doc[b..].find(&self.end())?;
            return Some(line_start(doc, b)..line_end(doc, e));
        }
        let i = doc.find(&self.inline())?;
        Some(line_start(doc, i)..line_end(doc, i))
    }
}

/// `into` with each of `parts` that `from` has put in: in the place of the
/// part in `into`, or where its anchor says. A part `from` lacks is left
/// as it is in `into`.
pub fn transplant(from: &str, into: &str, parts: &[Part]) -> Result<String> {
    let mut out = into.to_owned();
    for part in parts {
        let Some(src) = part.find(from) else {
            continue;
        };
        let text = &from[src];
        match part.find(&out) {
            Some(dst) => out.replace_range(dst, text),
            None => {
                let Some((at, text)) = insertion(&out, part.anchor, text) else {
                    bail!(
                        "cannot place {:?} in the existing file: it has no {:?}",
                        part.name,
                        part.anchor
                    );
                };
                out.insert_str(at, &text);
            }
        }
    }
    Ok(out)
}

/// Where `text` goes in `doc` by `anchor`, with the blank lines it needs
/// around it there.
fn insertion(doc: &str, anchor: Anchor, text: &str) -> Option<(usize, String)> {
    match anchor {
        Anchor::TableEnd(heading) => {
            let start = heading_line(doc, heading, 0)?;
            let mut end = line_end(doc, start);
            let mut seen_row = false;
            for line in doc[end..].split_inclusive('\n') {
                if line.starts_with('|') {
                    seen_row = true;
                } else if seen_row || line.starts_with("## ") {
                    break;
                }
                end += line.len();
            }
            seen_row.then(|| (end, text.to_owned()))
        }
        Anchor::Before(heading) => {
            let at = heading_line(doc, heading, 0)?;
            Some((at, format!("{text}\n")))
        }
        Anchor::After(heading) => {
            let start = heading_line(doc, heading, 0)?;
            let mut at = line_end(doc, start);
            if doc[at..].starts_with('\n') {
                at += 1;
            }
            Some((at, format!("{text}\n")))
        }
        Anchor::SectionEnd(heading) => {
            let start = heading_line(doc, heading, 0)?;
            match heading_line(doc, "## ", line_end(doc, start)) {
                Some(next) => Some((next, format!("{text}\n"))),
                None if doc.ends_with('\n') => Some((doc.len(), format!("\n{text}"))),
                None => Some((doc.len(), format!("\n\n{text}"))),
            }
        }
    }
}

/// The start of the first line at or after `from` that starts with
/// `prefix`.
fn heading_line(doc: &str, prefix: &str, from: usize) -> Option<usize> {
    let mut at = from;
    for line in doc[from..].split_inclusive('\n') {
        if line.starts_with(prefix) {
            return Some(at);
        }
        at += line.len();
    }
    None
}

fn line_start(doc: &str, i: usize) -> usize {
    doc[..i].rfind('\n').map_or(0, |n| n + 1)
}

fn line_end(doc: &str, i: usize) -> usize {
    doc[i..].find('\n').map_or(doc.len(), |n| i + n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: Part = Part {
        name: "x-target",
        anchor: Anchor::TableEnd("## Targets"),
    };
    const SECTION: Part = Part {
        name: "x",
        anchor: Anchor::Before("## Method"),
    };
    const METHOD: Part = Part {
        name: "x-method",
        anchor: Anchor::SectionEnd("## Method"),
    };

    const FIRST: Part = Part {
        name: "x-first",
        anchor: Anchor::After("## Method"),
    };

    const OLD: &str = "# B\n\n## Targets\n\n| t | m | |\n|---|---|---|\n| a | 1 | **PASS** |\n\n\
                       ## 1. One\n\nfigures\n\n## Method\n\nhow\n\n## Notes on this run\n\n- n\n";

    fn new() -> String {
        format!(
            "# B\n\n## Targets\n\n| t | m | |\n|---|---|---|\n| a | 2 | **FAIL** |\n\
             | x {} | 9 | **PASS** |\n\n{}\n## Method\n\nhow 2\n\n{}",
            ROW.inline(),
            SECTION.block("## 4. X\n\nx figures"),
            METHOD.block("**X.** how x")
        )
    }

    #[test]
    fn parts_go_into_a_file_without_them_and_the_rest_stays() {
        let out = transplant(&new(), OLD, &[ROW, SECTION, METHOD]).unwrap();
        assert_eq!(
            out,
            format!(
                "# B\n\n## Targets\n\n| t | m | |\n|---|---|---|\n| a | 1 | **PASS** |\n\
                 | x {} | 9 | **PASS** |\n\n## 1. One\n\nfigures\n\n{}\n## Method\n\nhow\n\n{}\n\
                 ## Notes on this run\n\n- n\n",
                ROW.inline(),
                SECTION.block("## 4. X\n\nx figures"),
                METHOD.block("**X.** how x")
            )
        );
    }

    #[test]
    fn parts_replace_their_earlier_versions() {
        let once = transplant(&new(), OLD, &[ROW, SECTION, METHOD]).unwrap();
        let newer = new()
            .replace("| 9 |", "| 10 |")
            .replace("x figures", "x figures 2");
        let twice = transplant(&newer, &once, &[ROW, SECTION, METHOD]).unwrap();
        assert_eq!(
            twice,
            once.replace("| 9 |", "| 10 |")
                .replace("x figures", "x figures 2")
        );
    }

    #[test]
    fn a_part_the_source_lacks_is_left_alone() {
        let once = transplant(&new(), OLD, &[ROW, SECTION]).unwrap();
        assert_eq!(transplant(OLD, &once, &[ROW, SECTION]).unwrap(), once);
    }

    #[test]
    fn a_part_goes_first_in_its_section() {
        let from = format!("## Method\n\n{}\nhow 2\n", FIRST.block("**F.** first"));
        let out = transplant(&from, OLD, &[FIRST]).unwrap();
        assert!(
            out.contains(&format!(
                "## Method\n\n{}\nhow\n\n## Notes",
                FIRST.block("**F.** first")
            )),
            "{out}"
        );
        // And again in its place.
        assert_eq!(transplant(&from, &out, &[FIRST]).unwrap(), out);
    }

    #[test]
    fn a_file_without_the_anchor_is_refused() {
        assert!(transplant(&new(), "# B\n\nnothing here\n", &[SECTION]).is_err());
    }
}
