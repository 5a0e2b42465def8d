//! The machine description of `sim replay` (replay-parity.md):
//! `{"name": …, "width": W, "height": H, "dead_boards": [[x, y, z], …],
//! "dead_links": [[x, y, z, "north"], …]}` with width and height in triads.

use super::{InputError, line_of};
use json_spanned_value::spanned::Spanned;
use serde::Deserialize;
use spinnbed_core::geometry::{Board, Link, Machine, MachineSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    width: Spanned<i64>,
    height: Spanned<i64>,
    #[serde(default)]
    dead_boards: Vec<Spanned<(i64, i64, i64)>>,
    #[serde(default)]
    dead_links: Vec<Spanned<(i64, i64, i64, String)>>,
}

/// The same shape without spans, read only to name the field of a type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Plain {
    name: String,
    width: i64,
    height: i64,
    #[serde(default)]
    dead_boards: Vec<(i64, i64, i64)>,
    #[serde(default)]
    dead_links: Vec<(i64, i64, i64, String)>,
}

/// Largest width or height in triads (SpiNNaker's largest machine is 20 x 20; 256 leaves room
/// for what-if studies while keeping a machine's tables in memory).
pub const MAX_TRIADS: u16 = 256;

/// Reads a machine description; errors name the file, line and field.
pub fn parse(file: &str, text: &str) -> Result<Machine, InputError> {
    let raw: Raw = json_spanned_value::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        // The path of the offending value (e.g. `dead_boards[0]`), where serde can name it.
        let mut de = serde_json::Deserializer::from_str(text);
        let field = match serde_path_to_error::deserialize::<_, Plain>(&mut de) {
            Err(pe) => Some(pe.path().to_string()).filter(|p| !p.is_empty() && p != "."),
            Ok(_) => None,
        };
        // serde_json says "trailing characters" of a tuple with too many elements.
        let msg = match field.as_deref() {
            Some(f) if msg.starts_with("trailing characters") && f.starts_with("dead_boards[") => {
                "too many elements: expected [x, y, z] (3 elements)".to_string()
            }
            Some(f) if msg.starts_with("trailing characters") && f.starts_with("dead_links[") => {
                "too many elements: expected [x, y, z, \"link\"] (4 elements)".to_string()
            }
            _ => msg,
        };
        InputError::at(file, Some(e.line()), field.as_deref(), msg)
    })?;
    let err = |span: (usize, usize), field: String, msg: String| {
        InputError::at(file, Some(line_of(text, span.0)), Some(&field), msg)
    };
    let dim = |v: &Spanned<i64>, field: &str| -> Result<u16, InputError> {
        u16::try_from(**v)
            .ok()
            .filter(|d| (1..=MAX_TRIADS).contains(d))
            .ok_or_else(|| {
                err(
                    v.span(),
                    field.to_string(),
                    format!("must be an integer from 1 to {MAX_TRIADS} triads (got {})", **v),
                )
            })
    };
    let width = dim(&raw.width, "width")?;
    let height = dim(&raw.height, "height")?;
    let board = |(x, y, z): (i64, i64, i64), span: (usize, usize), field: String| -> Result<Board, InputError> {
        if x < 0 || y < 0 || z < 0 || x >= width as i64 || y >= height as i64 || z > 2 {
            return Err(err(
                span,
                field,
                format!(
                    "board ({x}, {y}, {z}) is outside the {width} x {height} triad machine (0 <= x < {width}, 0 <= y < {height}, 0 <= z <= 2)"
                ),
            ));
        }
        Ok(Board::new(x as u16, y as u16, z as u8))
    };
    let mut dead_boards = Vec::new();
    for (i, b) in raw.dead_boards.iter().enumerate() {
        dead_boards.push(board(**b, b.span(), format!("dead_boards[{i}]"))?);
    }
    let mut dead_links = Vec::new();
    for (i, l) in raw.dead_links.iter().enumerate() {
        let (x, y, z, name) = &**l;
        let b = board((*x, *y, *z), l.span(), format!("dead_links[{i}]"))?;
        let link = Link::parse(name).ok_or_else(|| {
            err(
                l.span(),
                format!("dead_links[{i}][3]"),
                format!("unknown link {name:?} (expected east, north_east, north, west, south_west or south)"),
            )
        })?;
        dead_links.push((b, link));
    }
    let spec = MachineSpec {
        dead_boards,
        dead_links,
        ..MachineSpec::new(raw.name.get_ref().clone(), width, height)
    };
    Machine::new(spec).map_err(|e| InputError::at(file, None, None, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_machine() {
        let text = r#"{"name": "m", "width": 4, "height": 2,
            "dead_boards": [[0, 0, 1]],
            "dead_links": [[1, 1, 2, "north_east"]]}"#;
        let m = parse("m.json", text).unwrap();
        assert_eq!((m.width(), m.height()), (4, 2));
        assert!(m.dead_boards().contains(&Board::new(0, 0, 1)));
        assert!(m.dead_links().contains(&(Board::new(1, 1, 2), Link::NorthEast)));
    }

    #[test]
    fn type_errors_and_huge_machines_name_the_field() {
        let e = parse("m.json", "{\"name\": \"m\",\n \"width\": 2.5, \"height\": 2}").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("width")));
        let e = parse(
            "m.json",
            "{\"name\": \"m\", \"width\": 2, \"height\": 2,\n \"dead_boards\": [[0, 0]]}",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("dead_boards[0]")));
        // Extra elements are refused, saying how many there should be.
        let e = parse(
            "m.json",
            "{\"name\": \"m\", \"width\": 2, \"height\": 2,\n \"dead_boards\": [[0, 0, 1, 5]]}",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("dead_boards[0]")));
        assert!(e.to_string().contains("expected [x, y, z] (3 elements)"), "{e}");
        let e = parse("m.json", "{\"name\": 5, \"width\": 2, \"height\": 2}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        let e = parse("m.json", "{\"name\": \"m\", \"width\": 65535, \"height\": 65535}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("width"));
        assert!(e.to_string().contains("from 1 to 256"), "{e}");
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = "{\"name\": \"m\", \"width\": 4, \"height\": 2,\n \"dead_boards\": [[0, 0, 1],\n [4, 0, 0]]}";
        let e = parse("m.json", text).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("dead_boards[1]"));
        assert!(
            e.to_string()
                .starts_with("m.json: line 3: dead_boards[1]: board (4, 0, 0) is outside"),
            "{e}"
        );
        let e = parse("m.json", "{\"name\": \"m\", \"width\": 0, \"height\": 2}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("width"));
        let e = parse(
            "m.json",
            "{\"name\": \"m\", \"width\": 1, \"height\": 2,\n\"dead_links\": [[0,0,0,\"up\"]]}",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("dead_links[0][3]")));
        let e = parse("m.json", "{\"name\": \"m\",\n \"width\": 1, \"heigth\": 2}").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("heigth"), "{e}");
        let e = parse("m.json", "{\"name\": \"m\", \"width\": \"wide\"}").unwrap_err();
        assert!(e.message.contains("invalid type"), "{e}");
    }
}
