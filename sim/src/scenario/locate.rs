//! Finding the line of a key path (`machine[0].dead_boards[3]`) in the scenario text, so that
//! errors found after deserialising still point at the right line.

use crate::input::line_of;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The 1-based line of the deepest part of `path` that exists in the document: the key's
    /// line for a table key, the element's line for an array index.
    pub fn line(&self, path: &str) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut table: Option<&DeTable<'a>> = Some(root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'a>>]> = None;
        let mut found: Option<usize> = None;
        for step in steps(path) {
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
            table = None;
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(a) => array = Some(a.as_ref()),
                _ => {}
            }
        }
        found.map(|offset| line_of(self.text, offset))
    }
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
    }
}
