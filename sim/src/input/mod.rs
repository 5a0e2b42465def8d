//! Reading the user's input files: machine descriptions, traces and scenarios.
//!
//! Every reader reports bad input as an [`InputError`] that names the file, the line and the
//! field, so that a user can go straight to the mistake.

pub mod machine_json;
pub mod replay_csv;

use crate::quantity::units::format_bytes;
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

/// The largest input file read, and the most a gzipped one may decompress to: 1 GiB.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Reads a text file, transparently gunzipping it when it starts with the gzip magic bytes.
/// The file, and its decompressed text, may be at most [`MAX_INPUT_BYTES`].
pub fn read_text(path: &Path) -> Result<String, InputError> {
    read_text_limited(path, MAX_INPUT_BYTES)
}

/// [`read_text`] with another size limit.
fn read_text_limited(path: &Path, limit: u64) -> Result<String, InputError> {
    let name = path.display().to_string();
    let bytes = read_bytes(path, limit)?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| InputError::at(&name, None, None, format!("bad gzip data: {e}")))?;
        if out.len() as u64 > limit {
            return Err(InputError::at(
                &name,
                None,
                None,
                format!(
                    "decompresses to more than {} (the largest input read); is it the right file?",
                    format_bytes(limit)
                ),
            ));
        }
        out
    } else {
        bytes
    };
    decode_utf8(&name, bytes)
}

/// Reads a whole file of at most `limit` bytes.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let name = path.display().to_string();
    let cannot = |e: std::io::Error| InputError::at(&name, None, None, format!("cannot read: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let too_big = |size: u64| {
        InputError::at(
            &name,
            None,
            None,
            format!(
                "the file is {}, more than {} (the largest input read)",
                format_bytes(size),
                format_bytes(limit)
            ),
        )
    };
    let size = file.metadata().map_err(cannot)?.len();
    if size > limit {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // `take`: the file may grow while it is read.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The bytes of `file` as UTF-8 text; otherwise an error naming the line and column of the
/// first bad byte.
pub fn decode_utf8(file: &str, bytes: Vec<u8>) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..upto].iter().filter(|b| **b == b'\n').count();
        let column = 1 + upto - bytes[..upto].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        InputError::at(
            file,
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

    /// Before: a gzipped input was inflated without bound (a 28 MB bomb became 6 GB in
    /// memory) and any file was read whole whatever its size.
    #[test]
    fn inputs_and_their_decompressed_text_are_bounded() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("spinnbed-bomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bomb = dir.join("bomb.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 3 << 20]).unwrap();
        let packed = gz.finish().unwrap();
        assert!(packed.len() < 64 << 10);
        std::fs::write(&bomb, &packed).unwrap();
        let e = read_text_limited(&bomb, 1 << 20).unwrap_err();
        assert_eq!(e.file, bomb.display().to_string());
        assert!(e.message.contains("decompresses to more than 1MiB"), "{e}");
        assert_eq!(read_text_limited(&bomb, 4 << 20).unwrap().len(), 3 << 20);
        let plain = dir.join("big.csv");
        std::fs::write(&plain, vec![b'b'; (1 << 20) + 1]).unwrap();
        let e = read_text_limited(&plain, 1 << 20).unwrap_err();
        assert!(e.message.contains("the file is 1048577B, more than 1MiB"), "{e}");
        assert_eq!(read_text(&plain).unwrap().len(), (1 << 20) + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
