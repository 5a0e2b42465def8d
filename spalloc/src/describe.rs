//! How jobs, boards and links are described to clients: the helpers both front ends (the v1
//! JSON-line [`server`](crate::server) and the [`rest`](crate::rest) API) need, so that a job
//! made through one reads the same through the other.

use crate::pyjson;
use serde::Serialize;
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::{Board, Link, Physical};

/// A job's request as v1 `list_jobs` shows it: the JSON of `[args, kwargs]`, as the
/// reference's client would have sent it for that request. A job made by a v1 client keeps
/// what that client sent instead; jobs made by spinnbed's simulated users and through the
/// REST API are shown with this.
pub fn v1_original(request: &Request, machine: Option<&str>, tags: Option<&[String]>) -> String {
    let args: Vec<i64> = match request.shape {
        Shape::AnyBoard => vec![],
        Shape::Boards { n, .. } => vec![n as i64],
        Shape::Triads { w, h } | Shape::TriadsAt { w, h, .. } => vec![w as i64, h as i64],
        Shape::Board { board } => vec![board.x as i64, board.y as i64, board.z as i64],
    };
    // A rectangle rooted at a board (REST only) shows its root as an extra keyword.
    let board = match request.shape {
        Shape::TriadsAt { root, .. } => Some(xyz(&root)),
        _ => None,
    };
    let min_ratio = match request.shape {
        Shape::Boards { min_ratio, .. } => min_ratio,
        _ => 0.0,
    };
    #[derive(Serialize)]
    struct Kw<'a> {
        machine: Option<&'a str>,
        tags: Option<&'a [String]>,
        min_ratio: f64,
        max_dead_boards: Option<u32>,
        max_dead_links: Option<u32>,
        require_torus: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        board: Option<(u16, u16, u8)>,
    }
    let kw = Kw {
        machine,
        tags,
        min_ratio,
        max_dead_boards: request.max_dead_boards,
        max_dead_links: request.max_dead_links,
        require_torus: request.require_torus,
        board,
    };
    pyjson::to_string(&(args, kw))
}

/// A board as an `(x, y, z)` tuple (a JSON array of three).
pub fn xyz(b: &Board) -> (u16, u16, u8) {
    (b.x, b.y, b.z)
}

/// A board from client integers; `None` if they fit no board.
pub fn board_of(x: i64, y: i64, z: i64) -> Option<Board> {
    Some(Board::new(
        u16::try_from(x).ok()?,
        u16::try_from(y).ok()?,
        u8::try_from(z).ok()?,
    ))
}

/// A physical position from client integers; `None` if they fit none.
pub fn physical_of(cabinet: i64, frame: i64, board: i64) -> Option<Physical> {
    Some(Physical::new(
        u16::try_from(cabinet).ok()?,
        u16::try_from(frame).ok()?,
        u16::try_from(board).ok()?,
    ))
}

/// The Java allocation service's name of the board-level direction a link leaves a board
/// in. Its compass is tilted with respect to the chips' (to go straight up a board goes N then
/// NW): the six links pair up with the three FPGAs as the Java `Direction` enum says (N and E
/// on the N/NE FPGA, SE and S on the E/S FPGA, W and NW on the SW/W FPGA), which gives chip
/// link north → `N`, north-east → `E`, east → `SE`, south → `S`, south-west → `W`,
/// west → `NW`; opposite links get opposite directions (N/S, E/W, SE/NW).
pub const fn java_direction(link: Link) -> &'static str {
    match link {
        Link::North => "N",
        Link::NorthEast => "E",
        Link::East => "SE",
        Link::South => "S",
        Link::SouthWest => "W",
        Link::West => "NW",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_original_reads_as_the_client_would_have_sent_it() {
        let mut r = Request::new(Shape::Boards { n: 3, min_ratio: 0.333 });
        r.max_dead_boards = Some(0);
        assert_eq!(
            v1_original(&r, None, Some(&["default".to_string()])),
            r#"[[3], {"machine": null, "tags": ["default"], "min_ratio": 0.333, "max_dead_boards": 0, "max_dead_links": null, "require_torus": false}]"#
        );
        let r = Request::new(Shape::Board {
            board: Board::new(1, 2, 0),
        });
        assert!(v1_original(&r, Some("m"), None).starts_with(r#"[[1, 2, 0], {"machine": "m", "tags": null"#));
    }

    #[test]
    fn directions_pair_up_as_opposites() {
        let opposite = |d: &str| match d {
            "N" => "S",
            "S" => "N",
            "E" => "W",
            "W" => "E",
            "SE" => "NW",
            "NW" => "SE",
            _ => unreachable!(),
        };
        for l in Link::ALL {
            assert_eq!(java_direction(l.opposite()), opposite(java_direction(l)), "{l}");
        }
        let all: std::collections::BTreeSet<&str> = Link::ALL.iter().map(|l| java_direction(*l)).collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn client_integers_fit_boards_or_not() {
        assert_eq!(board_of(1, 2, 0), Some(Board::new(1, 2, 0)));
        assert_eq!(board_of(-1, 2, 0), None);
        assert_eq!(board_of(0, 0, 256), None);
        assert_eq!(physical_of(1, 2, 3), Some(Physical::new(1, 2, 3)));
        assert_eq!(physical_of(1, 2, 1 << 20), None);
    }
}
