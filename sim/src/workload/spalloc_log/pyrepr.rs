//! Python literals as `repr()` prints them, read back: what the reference's job log writes for
//! `create_job`'s arguments (`%s` of a tuple and of a dict).
//!
//! `ast.literal_eval` would almost do, but not quite: the log also holds `set()`, `nan` and
//! `inf`, which are not literals. This reader takes `None`, `True`, `False`, integers (any
//! size: those beyond 128 bits are kept as text), floats (`60.0`, `1e-05`, `nan`, `inf`,
//! `-inf`), strings in single or double quotes with every escape (and `b`/`r`/`u` prefixes),
//! tuples, lists, dicts, sets (`{'a', 'b'}`, `set()`, `frozenset({...})`), nested to a bounded
//! depth. It never panics; a mistake is a [`PyError`] with the byte offset where reading stopped.

use std::fmt;

/// A Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer that fits in 128 bits.
    Int(i128),
    /// An integer too large for 128 bits, as written.
    BigInt(String),
    /// A float (also `nan`, `inf`, `-inf`).
    Float(f64),
    /// A string (or bytes, read as text).
    Str(String),
    /// A tuple.
    Tuple(Vec<Py>),
    /// A list.
    List(Vec<Py>),
    /// A set or frozenset, in written order.
    Set(Vec<Py>),
    /// A dict, in written order.
    Dict(Vec<(Py, Py)>),
}

impl Py {
    /// Python's truth value.
    pub fn truthy(&self) -> bool {
        match self {
            Py::None => false,
            Py::Bool(b) => *b,
            Py::Int(i) => *i != 0,
            Py::BigInt(_) => true,
            Py::Float(f) => *f != 0.0,
            Py::Str(s) => !s.is_empty(),
            Py::Tuple(v) | Py::List(v) | Py::Set(v) => !v.is_empty(),
            Py::Dict(v) => !v.is_empty(),
        }
    }

    /// Roughly how Python's `repr` writes it (for messages).
    pub fn repr(&self) -> String {
        let join = |v: &[Py]| v.iter().map(Py::repr).collect::<Vec<_>>().join(", ");
        match self {
            Py::None => "None".into(),
            Py::Bool(true) => "True".into(),
            Py::Bool(false) => "False".into(),
            Py::Int(i) => i.to_string(),
            Py::BigInt(s) => s.clone(),
            Py::Float(f) if f.is_nan() => "nan".into(),
            Py::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
            Py::Float(f) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            Py::Float(f) => f.to_string(),
            Py::Str(s) => format!("{s:?}"),
            Py::Tuple(v) if v.len() == 1 => format!("({},)", v[0].repr()),
            Py::Tuple(v) => format!("({})", join(v)),
            Py::List(v) => format!("[{}]", join(v)),
            Py::Set(v) if v.is_empty() => "set()".into(),
            Py::Set(v) => format!("{{{}}}", join(v)),
            Py::Dict(v) => format!(
                "{{{}}}",
                v.iter()
                    .map(|(k, x)| format!("{}: {}", k.repr(), x.repr()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Why a literal could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyError {
    /// Byte offset (from the start of the text given) where reading stopped.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

/// Deepest nesting read (the log's arguments nest two or three deep).
pub const MAX_DEPTH: usize = 64;

/// Reads one literal at the start of `text` (after optional spaces); returns it and the offset
/// just past it.
pub fn parse_prefix(text: &str) -> Result<(Py, usize), PyError> {
    let mut p = Parser { s: text, pos: 0 };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

/// Reads `text` as exactly one literal (spaces around it allowed).
#[cfg(test)]
pub fn parse(text: &str) -> Result<Py, PyError> {
    let mut p = Parser { s: text, pos: 0 };
    let v = p.value(0)?;
    p.spaces();
    if p.pos != text.len() {
        return Err(p.error("unexpected text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> PyError {
        PyError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Py, PyError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} deep")));
        }
        self.spaces();
        match self.peek() {
            None => Err(self.error("expected a value, found the end of the text")),
            Some(b'(') => {
                self.pos += 1;
                let (items, comma) = self.items(b')', depth)?;
                // `(x)` is just x; `(x,)` and `()` are tuples.
                if items.len() == 1 && !comma {
                    Ok(items.into_iter().next().expect("one item"))
                } else {
                    Ok(Py::Tuple(items))
                }
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Py::List(self.items(b']', depth)?.0))
            }
            Some(b'{') => {
                self.pos += 1;
                self.brace(depth)
            }
            Some(b'\'' | b'"') => self.string(false).map(Py::Str),
            Some(c) if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.') => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.word(depth),
            Some(_) => {
                let c = self.s[self.pos..].chars().next().expect("not at the end");
                Err(self.error(format!("unexpected {c:?}")))
            }
        }
    }

    /// Comma-separated values up to `close`; also says whether a comma was seen.
    fn items(&mut self, close: u8, depth: usize) -> Result<(Vec<Py>, bool), PyError> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.spaces();
            if self.eat(close) {
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            self.spaces();
            if self.eat(b',') {
                comma = true;
                continue;
            }
            if self.eat(close) {
                return Ok((items, comma));
            }
            return Err(self.error(format!("expected ',' or '{}'", close as char)));
        }
    }

    /// After `{`: a dict or a set.
    fn brace(&mut self, depth: usize) -> Result<Py, PyError> {
        self.spaces();
        if self.eat(b'}') {
            return Ok(Py::Dict(Vec::new()));
        }
        let first = self.value(depth + 1)?;
        self.spaces();
        if self.eat(b':') {
            let mut pairs = vec![(first, self.value(depth + 1)?)];
            loop {
                self.spaces();
                if self.eat(b'}') {
                    return Ok(Py::Dict(pairs));
                }
                if !self.eat(b',') {
                    return Err(self.error("expected ',' or '}' in a dict"));
                }
                self.spaces();
                if self.eat(b'}') {
                    return Ok(Py::Dict(pairs));
                }
                let k = self.value(depth + 1)?;
                self.spaces();
                if !self.eat(b':') {
                    return Err(self.error("expected ':' after a dict key"));
                }
                pairs.push((k, self.value(depth + 1)?));
            }
        }
        let mut items = vec![first];
        loop {
            self.spaces();
            if self.eat(b'}') {
                return Ok(Py::Set(items));
            }
            if !self.eat(b',') {
                return Err(self.error("expected ',' or '}' in a set"));
            }
            self.spaces();
            if self.eat(b'}') {
                return Ok(Py::Set(items));
            }
            items.push(self.value(depth + 1)?);
        }
    }

    fn number(&mut self) -> Result<Py, PyError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
            // `-inf`, `+nan`.
            if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                let w = self.ident();
                return match w {
                    "inf" => Ok(Py::Float(if negative { f64::NEG_INFINITY } else { f64::INFINITY })),
                    "nan" => Ok(Py::Float(f64::NAN)),
                    _ => Err(PyError {
                        offset: start,
                        message: format!("not a number: {:?}", &self.s[start..self.pos]),
                    }),
                };
            }
        }
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'_' => {}
                b'.' => float = true,
                b'e' | b'E' => {
                    float = true;
                    if matches!(self.s.as_bytes().get(self.pos + 1), Some(b'-' | b'+')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
            self.pos += 1;
        }
        let text: String = self.s[start..self.pos].chars().filter(|c| *c != '_').collect();
        let bad = || PyError {
            offset: start,
            message: format!("not a number: {:?}", &self.s[start..self.pos]),
        };
        if float {
            return text.parse::<f64>().map(Py::Float).map_err(|_| bad());
        }
        let digits = text.trim_start_matches(['-', '+']);
        if digits.is_empty() {
            return Err(bad());
        }
        match text.parse::<i128>() {
            Ok(i) => Ok(Py::Int(i)),
            Err(_) if digits.bytes().all(|c| c.is_ascii_digit()) => Ok(Py::BigInt(text)),
            Err(_) => Err(bad()),
        }
    }

    fn ident(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn word(&mut self, depth: usize) -> Result<Py, PyError> {
        let start = self.pos;
        let w = self.ident().to_string();
        match w.as_str() {
            "None" => Ok(Py::None),
            "True" => Ok(Py::Bool(true)),
            "False" => Ok(Py::Bool(false)),
            "nan" => Ok(Py::Float(f64::NAN)),
            "inf" => Ok(Py::Float(f64::INFINITY)),
            "set" | "frozenset" => {
                if !self.eat(b'(') {
                    return Err(self.error(format!("expected '(' after {w}")));
                }
                self.spaces();
                if self.eat(b')') {
                    return Ok(Py::Set(Vec::new()));
                }
                let inner = self.value(depth + 1)?;
                self.spaces();
                if !self.eat(b')') {
                    return Err(self.error(format!("expected ')' to close {w}(...)")));
                }
                match inner {
                    Py::Set(v) | Py::List(v) | Py::Tuple(v) => Ok(Py::Set(v)),
                    Py::Dict(v) if v.is_empty() => Ok(Py::Set(Vec::new())),
                    other => Err(PyError {
                        offset: start,
                        message: format!("{w}(...) of {} is not a literal", other.repr()),
                    }),
                }
            }
            _ => {
                // String prefixes: b'..', r'..', u'..', rb'..', br'..'.
                let lower = w.to_ascii_lowercase();
                let prefix = matches!(lower.as_str(), "b" | "r" | "u" | "rb" | "br");
                if prefix && matches!(self.peek(), Some(b'\'' | b'"')) {
                    return self.string(lower.contains('r')).map(Py::Str);
                }
                Err(PyError {
                    offset: start,
                    message: format!("unknown name {w:?} (expected a literal)"),
                })
            }
        }
    }

    /// A quoted string (the quote is next); `raw` keeps backslashes as written.
    fn string(&mut self, raw: bool) -> Result<String, PyError> {
        let start = self.pos;
        let quote = self.peek().expect("a quote");
        let triple = self.s[self.pos..].starts_with(if quote == b'\'' { "'''" } else { "\"\"\"" });
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let rest = &self.s[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(PyError {
                    offset: start,
                    message: "a string that is never closed".into(),
                });
            };
            if c as u32 == quote as u32 {
                if !triple {
                    self.pos += 1;
                    return Ok(out);
                }
                let close = if quote == b'\'' { "'''" } else { "\"\"\"" };
                if rest.starts_with(close) {
                    self.pos += 3;
                    return Ok(out);
                }
            }
            if c == '\n' && !triple {
                return Err(self.error("a line break inside a string"));
            }
            self.pos += c.len_utf8();
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.s[self.pos..].chars().next() else {
                continue;
            };
            if raw {
                out.push('\\');
                out.push(e);
                self.pos += e.len_utf8();
                continue;
            }
            self.pos += e.len_utf8();
            match e {
                '\n' => {}
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut v = e.to_digit(8).expect("octal digit");
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                // Python keeps unknown escapes as written.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, n: usize) -> Result<char, PyError> {
        let digits = self.s.get(self.pos..self.pos + n).unwrap_or("");
        if digits.len() != n || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.error(format!("a \\x, \\u or \\U escape needs {n} hex digits")));
        }
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad hex escape"))?;
        self.pos += n;
        char::from_u32(v).ok_or_else(|| self.error(format!("escape {v:#x} is not a character")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Py {
        Py::Str(v.into())
    }

    #[test]
    fn the_logs_arguments_read_back() {
        assert_eq!(parse("()").unwrap(), Py::Tuple(vec![]));
        assert_eq!(parse("(2,)").unwrap(), Py::Tuple(vec![Py::Int(2)]));
        assert_eq!(parse("(2)").unwrap(), Py::Int(2));
        assert_eq!(
            parse("(3, 2, 1)").unwrap(),
            Py::Tuple(vec![Py::Int(3), Py::Int(2), Py::Int(1)])
        );
        let kw = parse(
            "{'owner': 'user5', 'keepalive': None, 'machine': None, 'tags': {'default'}, 'min_ratio': 0.333, \
             'max_dead_boards': 0, 'max_dead_links': None, 'require_torus': False}",
        )
        .unwrap();
        let Py::Dict(pairs) = kw else { panic!() };
        assert_eq!(pairs[0], (s("owner"), s("user5")));
        assert_eq!(pairs[1], (s("keepalive"), Py::None));
        assert_eq!(pairs[3], (s("tags"), Py::Set(vec![s("default")])));
        assert_eq!(pairs[4], (s("min_ratio"), Py::Float(0.333)));
        assert_eq!(pairs[7], (s("require_torus"), Py::Bool(false)));
    }

    #[test]
    fn every_literal_form() {
        assert_eq!(parse("set()").unwrap(), Py::Set(vec![]));
        assert_eq!(
            parse("frozenset({1, 2})").unwrap(),
            Py::Set(vec![Py::Int(1), Py::Int(2)])
        );
        assert_eq!(parse("{'a', 'b',}").unwrap(), Py::Set(vec![s("a"), s("b")]));
        assert_eq!(parse("{}").unwrap(), Py::Dict(vec![]));
        assert_eq!(parse("[1, [2, (3,)], []]").unwrap().repr(), "[1, [2, (3,)], []]");
        assert_eq!(parse("60.0").unwrap(), Py::Float(60.0));
        assert_eq!(parse("1e-05").unwrap(), Py::Float(1e-5));
        assert_eq!(parse("-1.5E+3").unwrap(), Py::Float(-1500.0));
        assert!(matches!(parse("nan").unwrap(), Py::Float(f) if f.is_nan()));
        assert_eq!(parse("inf").unwrap(), Py::Float(f64::INFINITY));
        assert_eq!(parse("-inf").unwrap(), Py::Float(f64::NEG_INFINITY));
        assert_eq!(parse("-7").unwrap(), Py::Int(-7));
        assert_eq!(parse("1_000").unwrap(), Py::Int(1000));
        assert_eq!(
            parse("123456789012345678901234567890123456789012").unwrap(),
            Py::BigInt("123456789012345678901234567890123456789012".into())
        );
        assert_eq!(parse("True").unwrap(), Py::Bool(true));
        assert_eq!(parse(r#""it's""#).unwrap(), s("it's"));
        assert_eq!(
            parse(r"'say \'hi\' \\ \n\t\x41\u00e9\U0001F600\101'").unwrap(),
            s("say 'hi' \\ \n\tAé😀A")
        );
        assert_eq!(parse(r"b'\x00ab'").unwrap(), s("\0ab"));
        assert_eq!(parse(r"r'\d'").unwrap(), s("\\d"));
        assert_eq!(parse("'ünï ) from x'").unwrap(), s("ünï ) from x"));
        assert_eq!(
            parse("{'k': {'n': [None, 1.5]}}").unwrap().repr(),
            "{\"k\": {\"n\": [None, 1.5]}}"
        );
    }

    #[test]
    fn mistakes_say_where() {
        for (text, at) in [
            ("(1, 2", 5),
            ("{'a': 1", 7),
            ("'open", 0),
            ("[1 2]", 3),
            ("foo", 0),
            ("{'a' 1}", 5),
            ("set(1)", 0),
            ("'\\x4'", 3),
            ("--1", 0),
            ("", 0),
            ("(1,) x", 5),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.offset, at, "{text:?}: {e}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
    }

    #[test]
    fn a_prefix_stops_after_the_value() {
        let (v, end) = parse_prefix("(1, 2),{'owner': 'x'}) from h").unwrap();
        assert_eq!(v, Py::Tuple(vec![Py::Int(1), Py::Int(2)]));
        assert_eq!(end, 6);
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let samples = [
            "(",
            "{",
            "[",
            "'",
            "\"",
            "\\",
            "{1:",
            "{1,",
            "b",
            "rb'",
            "'\\",
            "'\\U0011ffff'",
            "1e",
            "1e+",
            ".",
            "-",
            "+inf",
            "-nan",
            "frozenset(",
            "set(()",
            "(,)",
            "{,}",
            "é",
            "'\u{0}'",
        ];
        for t in samples {
            let _ = parse(t);
            for cut in 0..=t.len() {
                if t.is_char_boundary(cut) {
                    let _ = parse(&t[..cut]);
                }
            }
        }
    }
}
