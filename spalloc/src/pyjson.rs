//! JSON as the reference server (Python) reads and writes it.
//!
//! The reference encodes replies with `json.dumps` defaults: `", "` and `": "` separators,
//! non-ASCII characters escaped (`ensure_ascii`), floats as Python's `repr` (`60.0`, `1e+16`).
//! [`write_line`] writes the same bytes. Its arguments arrive as Python values, so the
//! conversions it applies (`str()`, `float()`, truthiness, `repr()` in its job log) are
//! reproduced here for JSON values.

use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

/// A `serde_json` formatter producing Python's `json.dumps` layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }
    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, value as f64)
    }
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Appends `value` as one JSON line (Python layout) to `out`.
pub fn write_line(out: &mut Vec<u8>, value: &impl Serialize) {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, PyFormatter);
    // Serialising plain data into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
    out.push(b'\n');
}

/// `value` as JSON text in Python's layout.
pub fn to_string(value: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// Python's `repr()` of a float: the shortest digits that read back the same, positional for
/// decimal exponents −4 to 15, else `d.ddde±XX`; `nan`, `inf`.
pub fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = mant.strip_prefix('-').map_or(("", mant), |m| ("-", m));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp >= 0 {
            let int_len = exp + 1;
            if n <= int_len {
                format!("{sign}{digits}{}.0", "0".repeat((int_len - n) as usize))
            } else {
                let (a, b) = digits.split_at(int_len as usize);
                format!("{sign}{a}.{b}")
            }
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

/// Python's name for the type a JSON value decodes to.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a `'` and no `"`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a JSON-decoded value.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float_repr(f).replace("NaN", "nan").replace("Infinity", "inf"),
            _ => n.to_string(),
        },
        Value::String(s) => str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `str()` of a JSON-decoded value.
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => repr(v),
    }
}

/// Python's truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Python's `float()`: numbers and booleans, and strings that read as a number.
pub fn float_of(v: &Value) -> Result<f64, String> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("cannot convert {n} to float")),
        Value::String(s) => {
            parse_py_float(s).ok_or_else(|| format!("could not convert string to float: {}", str_repr(s)))
        }
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            type_name(other)
        )),
    }
}

fn parse_py_float(s: &str) -> Option<f64> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let neg = lower.starts_with('-');
    let special = match body {
        "inf" | "infinity" => Some(f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    };
    if let Some(v) = special {
        return Some(if neg { -v } else { v });
    }
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
        return None;
    }
    t.parse().ok()
}

/// A Python integer value as the reference would use it as a dictionary key or coordinate:
/// ints, booleans (`True == 1`) and integral floats (`2.0 == 2`).
pub fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (v, s) in [
            (60.0, "60.0"),
            (0.5, "0.5"),
            (1.0e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (1765100000.123456, "1765100000.123456"),
            (123.0, "123.0"),
            (0.333, "0.333"),
            (1e300, "1e+300"),
        ] {
            assert_eq!(float_repr(v), s, "{v}");
        }
    }

    #[test]
    fn lines_use_python_separators_and_escape_non_ascii() {
        let mut out = Vec::new();
        write_line(&mut out, &json!({"a": [1, 2.0, null], "b": "é😀"}));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\": [1, 2.0, null], \"b\": \"\\u00e9\\ud83d\\ude00\"}\n"
        );
    }

    #[test]
    fn reprs_match_python() {
        let v =
            json!({"owner": "bob's", "keepalive": 60.0, "tags": null, "x": [true, false, 3], "q": "say \"hi\" 'x'"});
        assert_eq!(
            repr(&v),
            r#"{'keepalive': 60.0, 'owner': "bob's", 'q': 'say "hi" \'x\'', 'tags': None, 'x': [True, False, 3]}"#
        );
        assert_eq!(str_of(&json!("plain")), "plain");
        assert_eq!(str_of(&json!(5)), "5");
    }

    #[test]
    fn conversions_follow_python() {
        assert_eq!(float_of(&json!("60")), Ok(60.0));
        assert_eq!(float_of(&json!(" 1e3 ")), Ok(1000.0));
        assert_eq!(float_of(&json!(true)), Ok(1.0));
        assert_eq!(
            float_of(&json!("abc")),
            Err("could not convert string to float: 'abc'".to_string())
        );
        assert_eq!(
            float_of(&json!([1])),
            Err("float() argument must be a string or a real number, not 'list'".to_string())
        );
        assert!(float_of(&json!("inf")).unwrap().is_infinite());
        assert_eq!(int_of(&json!(2.0)), Some(2));
        assert_eq!(int_of(&json!(2.5)), None);
        assert_eq!(int_of(&json!(true)), Some(1));
        assert_eq!(int_of(&json!("2")), None);
        assert!(truthy(&json!("x")) && !truthy(&json!(0)) && !truthy(&json!([])));
    }
}
