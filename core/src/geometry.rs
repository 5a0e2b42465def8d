//! SpiNNaker machine geometry: boards in triads, links, chips, physical locations and IPs.

/// One of the six links of a board (or chip), numbered anticlockwise as the hardware does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[repr(u8)]
pub enum Link {
    /// Link 0.
    East = 0,
    /// Link 1.
    NorthEast = 1,
    /// Link 2.
    North = 2,
    /// Link 3.
    West = 3,
    /// Link 4.
    SouthWest = 4,
    /// Link 5.
    South = 5,
}

impl Link {
    /// All six links in hardware order (the order every loop over links uses).
    pub const ALL: [Link; 6] = [
        Link::East,
        Link::NorthEast,
        Link::North,
        Link::West,
        Link::SouthWest,
        Link::South,
    ];

    /// The link with hardware number `n` (0..=5).
    pub const fn from_u8(n: u8) -> Option<Link> {
        match n {
            0 => Some(Link::East),
            1 => Some(Link::NorthEast),
            2 => Some(Link::North),
            3 => Some(Link::West),
            4 => Some(Link::SouthWest),
            5 => Some(Link::South),
            _ => None,
        }
    }

    /// The link pointing the other way.
    pub const fn opposite(self) -> Link {
        match self {
            Link::East => Link::West,
            Link::NorthEast => Link::SouthWest,
            Link::North => Link::South,
            Link::West => Link::East,
            Link::SouthWest => Link::NorthEast,
            Link::South => Link::North,
        }
    }
}
