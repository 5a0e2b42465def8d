//! Reading the user's input files: machine descriptions, traces and scenarios.
//!
//! Every reader reports bad input as an [`InputError`] that names the file, the line and the
//! field, so that a user can go straight to the mistake.

pub mod machine_json;
pub mod replay_csv;

use std::fmt;
use std::path::Path;

/// Something wrong in an input file, located as precisely as the format allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file (as the user named it).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field or key path, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl InputError {
    /// An error at a line and field.
    pub fn at(file: &str, line: Option<usize>, field: Option<&str>, message: impl Into<String>) -> InputError {
        InputError {
            file: file.to_string(),
            line,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ": line {l}")?;
        }
        if let Some(k) = &self.field {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// Reads a text file, transparently gunzipping it when it starts with the gzip magic bytes.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| InputError::at(&name, None, None, format!("cannot read: {e}")))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| InputError::at(&name, None, None, format!("bad gzip data: {e}")))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..upto].iter().filter(|b| **b == b'\n').count();
        let column = 1 + upto - bytes[..upto].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        InputError::at(
            &name,
            Some(line),
            None,
            format!("not UTF-8 text (bad byte {:#04x} at column {column})", bytes[upto]),
        )
    })
}

/// The 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_utf8_is_named_by_line_and_column() {
        let dir = std::env::temp_dir().join(format!("spinnbed-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        std::fs::write(&path, b"id,submit_s\n1,0\n2,\xff5\n").unwrap();
        let e = read_text(&path).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(
            e.to_string().contains("not UTF-8 text (bad byte 0xff at column 3)"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
