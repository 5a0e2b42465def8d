//! Finding the line of a key path (`machine[0].dead_boards[3]`) in the scenario text, so that
//! errors found after deserialising still point at the right line.

use crate::input::line_of;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A table key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

/// Splits `a.b[2].c` into steps (keys never contain `.` or `[` in scenarios).
pub fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => part.split_at(i),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            if let Ok(i) = r[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &r[end + 1..];
        }
    }
    out
}

/// The parsed document with spans.
pub struct Locator<'a> {
    text: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    /// Indexes `text` (a document that does not parse locates nothing).
    pub fn new(text: &'a str) -> Locator<'a> {
        Locator {
            text,
            root: DeTable::parse(text).ok(),
        }
    }

    /// The text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The 1-based line of the deepest part of `path` that exists in the document: the key's
    /// line for a table key, the element's line for an array index.
    pub fn line(&self, path: &str) -> Option<usize> {
        self.find(path).map(|(line, _)| line)
    }

    /// Whether every part of `path` is written in the document.
    pub fn has(&self, path: &str) -> bool {
        self.find(path).is_some_and(|(_, whole)| whole)
    }

    /// The line of the deepest part of `path` found, and whether that is all of it.
    fn find(&self, path: &str) -> Option<(usize, bool)> {
        let root = self.root.as_ref()?;
        let steps = steps(path);
        let mut matched = 0;
        let mut table: Option<&DeTable<'a>> = Some(root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'a>>]> = None;
        let mut found: Option<usize> = None;
        for step in steps.iter().copied() {
            let value = match (step, table, array) {
                (Step::Key(k), Some(t), _) => {
                    let Some((key, value)) = t.get_key_value(k) else { break };
                    found = Some(key.span().start);
                    value
                }
                (Step::Index(i), _, Some(a)) => {
                    let Some(value) = a.get(i) else { break };
                    found = Some(value.span().start);
                    value
                }
                _ => break,
            };
            matched += 1;
            table = None;
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(a) => array = Some(a.as_ref()),
                _ => {}
            }
        }
        found.map(|offset| (line_of(self.text, offset), matched == steps.len()))
    }
}

/// Dotted keys and table headers of scenarios have a handful of parts; TOML's parser gives up
/// on very deep ones ("recursion limit") without saying where.
pub const MAX_KEY_PARTS: usize = 16;

/// The first dotted key or table header of more than [`MAX_KEY_PARTS`] parts: its 1-based line
/// and its number of parts. A lexical scan (strings and comments skipped) for text the TOML
/// parser could not place.
pub fn deep_key(text: &str) -> Option<(usize, usize)> {
    #[derive(PartialEq)]
    enum Last {
        Other,
        Atom,
        Dot,
    }
    let b = text.as_bytes();
    let (mut i, mut line) = (0, 1);
    let (mut last, mut parts, mut start) = (Last::Other, 0, 1);
    let mut found: Option<(usize, usize)> = None;
    // Skips a string opened at `i` (quote `q`, tripled for multi-line strings).
    let skip_string = |i: &mut usize, line: &mut usize| {
        let q = b[*i];
        let triple = b[*i..].starts_with(&[q, q, q]);
        *i += if triple { 3 } else { 1 };
        while *i < b.len() {
            let c = b[*i];
            if c == b'\\' && q == b'"' {
                *i += 2;
                continue;
            }
            if c == b'\n' {
                if !triple {
                    return;
                }
                *line += 1;
            }
            if c == q && (!triple || b[*i..].starts_with(&[q, q, q])) {
                *i += if triple { 3 } else { 1 };
                return;
            }
            *i += 1;
        }
    };
    while i < b.len() {
        let c = b[i];
        let atom = c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'"' || c == b'\'';
        if atom {
            if last == Last::Dot {
                parts += 1;
            } else {
                if let Some(f) = found {
                    return Some(f);
                }
                parts = 1;
                start = line;
            }
            last = Last::Atom;
            if c == b'"' || c == b'\'' {
                skip_string(&mut i, &mut line);
            } else {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
                    i += 1;
                }
            }
            if parts > MAX_KEY_PARTS {
                found = Some((start, parts));
            }
            continue;
        }
        match c {
            b' ' | b'\t' => {}
            b'.' if last == Last::Atom => last = Last::Dot,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\n' => {
                line += 1;
                last = Last::Other;
            }
            _ => last = Last::Other,
        }
        if last == Last::Other
            && let Some(f) = found
        {
            return Some(f);
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_steps() {
        assert_eq!(
            steps("machine[0].dead_links[3][1]"),
            vec![
                Step::Key("machine"),
                Step::Index(0),
                Step::Key("dead_links"),
                Step::Index(3),
                Step::Index(1)
            ]
        );
        assert_eq!(steps("run"), vec![Step::Key("run")]);
    }

    #[test]
    fn finds_the_deepest_line() {
        let text = "[run]\nname = \"x\"\n\n[[machine]]\nname = \"a\"\ndead = [\n  [1, 1, 1],\n  [2, 2, 2],\n]\n\n[[machine]]\nname = \"b\"\n[machine.timing]\npower_on = \"5s\"\n";
        let l = Locator::new(text);
        assert_eq!(l.line("run.name"), Some(2));
        assert_eq!(l.line("run.missing"), Some(1));
        assert_eq!(l.line("machine[0]"), Some(4));
        assert_eq!(l.line("machine[0].dead[1]"), Some(8));
        assert_eq!(l.line("machine[0].dead[1][2]"), Some(8));
        assert_eq!(l.line("machine[1].name"), Some(12));
        assert_eq!(l.line("machine[1].timing.power_on"), Some(14));
        assert_eq!(l.line("nothing"), None);
        assert!(l.has("machine[1].timing.power_on") && l.has("machine[0].dead[1]"));
        assert!(!l.has("run.missing") && !l.has("machine[0].dead[2]") && !l.has("nothing"));
    }

    #[test]
    fn finds_deep_keys_outside_strings_and_comments() {
        let deep = vec!["k"; 20].join(".");
        let text = format!(
            "a.b.c = 1.5\nx = \"{deep}\" # {deep}\ny = \"\"\"\n{deep}\n\"\"\"\nip = \"10.0.0.1\"\n[t . \"q.r\" . u]\n\n[{deep}]\n"
        );
        assert_eq!(deep_key(&text), Some((9, 20)));
        assert_eq!(deep_key(&format!("{deep} = 1")), Some((1, 20)));
        assert_eq!(deep_key(&vec!["k"; 16].join(".")), None);
        assert_eq!(deep_key("v = [1.5, 2.5, 3.5]\nw = 1979-05-27T07:32:00.999Z\n"), None);
    }
}
