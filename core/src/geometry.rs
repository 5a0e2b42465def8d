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

impl core::fmt::Display for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Link {
    /// The reference server's name of the link (`east`, `north_east`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Link::East => "east",
            Link::NorthEast => "north_east",
            Link::North => "north",
            Link::West => "west",
            Link::SouthWest => "south_west",
            Link::South => "south",
        }
    }

    /// Parses a reference link name (`east`, `north_east`, …; case-insensitive, `-` allowed
    /// for `_`) or a hardware number `0`..`5`.
    pub fn parse(s: &str) -> Option<Link> {
        let lower = s.trim().to_ascii_lowercase().replace('-', "_");
        match lower.as_str() {
            "east" | "e" | "0" => Some(Link::East),
            "north_east" | "northeast" | "ne" | "1" => Some(Link::NorthEast),
            "north" | "n" | "2" => Some(Link::North),
            "west" | "w" | "3" => Some(Link::West),
            "south_west" | "southwest" | "sw" | "4" => Some(Link::SouthWest),
            "south" | "s" | "5" => Some(Link::South),
            _ => None,
        }
    }

    /// The chip-level step of this link: east (+1,0), north-east (+1,+1), north (0,+1),
    /// west (−1,0), south-west (−1,−1), south (0,−1).
    pub const fn chip_vector(self) -> (i32, i32) {
        match self {
            Link::East => (1, 0),
            Link::NorthEast => (1, 1),
            Link::North => (0, 1),
            Link::West => (-1, 0),
            Link::SouthWest => (-1, -1),
            Link::South => (0, -1),
        }
    }
}

/// Which dimensions of an allocation wrap around (form a torus): bit 0 = x, bit 1 = y.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WrapAround(pub u8);

impl WrapAround {
    /// No wrap-around.
    pub const NONE: WrapAround = WrapAround(0b00);
    /// Wraps along x only.
    pub const X: WrapAround = WrapAround(0b01);
    /// Wraps along y only.
    pub const Y: WrapAround = WrapAround(0b10);
    /// Wraps along both axes.
    pub const BOTH: WrapAround = WrapAround(0b11);

    /// True if it wraps along x.
    pub const fn x(self) -> bool {
        self.0 & 1 != 0
    }
    /// True if it wraps along y.
    pub const fn y(self) -> bool {
        self.0 & 2 != 0
    }
    /// True if it wraps along any axis.
    pub const fn any(self) -> bool {
        self.0 != 0
    }
    /// The union of two wrap sets.
    pub const fn union(self, other: WrapAround) -> WrapAround {
        WrapAround(self.0 | other.0)
    }
    /// The reference's name: `none`, `x`, `y` or `both`.
    pub const fn name(self) -> &'static str {
        match self.0 & 3 {
            0 => "none",
            1 => "x",
            2 => "y",
            _ => "both",
        }
    }
}

/// A board's logical position: triad (x, y) and board z ∈ {0, 1, 2} within the triad.
///
/// Within a triad board 0 is bottom-left, board 1 to its right (half a hexagon up) and board 2
/// directly above board 0. Ordering is lexicographic (x, then y, then z), as the reference's
/// tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Board {
    /// Triad column.
    pub x: u16,
    /// Triad row.
    pub y: u16,
    /// Board within the triad (0, 1 or 2).
    pub z: u8,
}

impl Board {
    /// A board at (x, y, z).
    pub const fn new(x: u16, y: u16, z: u8) -> Board {
        Board { x, y, z }
    }
}

impl core::fmt::Display for Board {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "({}, {}, {})", self.x, self.y, self.z)
    }
}

/// A chip position (x, y) in chip coordinates (of a machine, a job or a board).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Chip {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
}

impl Chip {
    /// A chip at (x, y).
    pub const fn new(x: u32, y: u32) -> Chip {
        Chip { x, y }
    }
}

/// `(dx, dy, dz)` of each link for each z, as in the reference's `link_to_vector` table.
const LINK_VECTORS: [[(i8, i8, i8); 6]; 3] = [
    // z = 0: east, north_east, north, west, south_west, south
    [(0, -1, 2), (0, 0, 1), (0, 0, 2), (-1, 0, 1), (-1, -1, 2), (-1, -1, 1)],
    // z = 1
    [(1, 0, -1), (1, 0, 1), (1, 1, -1), (0, 0, 1), (0, 0, -1), (0, -1, 1)],
    // z = 2
    [(0, 0, -1), (1, 1, -2), (0, 1, -1), (0, 1, -2), (-1, 0, -1), (0, 0, -2)],
];

/// The board-level step `(dx, dy, dz)` of leaving a board with the given z through `link`.
///
/// `z` must be 0, 1 or 2 (other values are treated as 2).
pub const fn link_vector(z: u8, link: Link) -> (i32, i32, i32) {
    let zi = if z > 2 { 2 } else { z as usize };
    let (dx, dy, dz) = LINK_VECTORS[zi][link as usize];
    (dx as i32, dy as i32, dz as i32)
}

/// The neighbour of `board` through `link` on a `width` × `height` triad torus, and whether
/// the step wrapped around in x and/or y (the reference's `board_down_link`).
///
/// `width` and `height` must be non-zero.
pub fn board_down_link(board: Board, link: Link, width: u16, height: u16) -> (Board, WrapAround) {
    debug_assert!(width > 0 && height > 0);
    let (dx, dy, dz) = link_vector(board.z, link);
    let nx = board.x as i32 + dx;
    let ny = board.y as i32 + dy;
    let w = width as i32;
    let h = height as i32;
    let x2 = nx.rem_euclid(w);
    let y2 = ny.rem_euclid(h);
    let mut wrap = 0u8;
    if x2 != nx {
        wrap |= 1;
    }
    if y2 != ny {
        wrap |= 2;
    }
    let z2 = (board.z as i32 + dz) as u8;
    (Board::new(x2 as u16, y2 as u16, z2), WrapAround(wrap))
}

/// Number of chips on a SpiNN-5 board.
pub const CHIPS_PER_BOARD: usize = 48;
/// Side of the square of chips tiled by one triad.
pub const TRIAD_CHIPS: u32 = 12;
/// Ethernet-chip offsets of boards 0, 1 and 2 inside their triad's 12 × 12 tile.
pub const BOARD_ROOTS: [(u32, u32); 3] = [(0, 0), (8, 4), (4, 8)];

/// True if board-local chip (x, y) exists on a SpiNN-5 board (48 of the 8 × 8 square:
/// `x − 4 ≤ y ≤ x + 3`).
pub const fn spinn5_chip_exists(x: u32, y: u32) -> bool {
    x < 8 && y < 8 && y + 4 >= x && y <= x + 3
}

/// The 48 board-local chips of a SpiNN-5 board, in (x, y) order.
pub fn spinn5_chips() -> impl Iterator<Item = Chip> {
    (0..8u32).flat_map(|x| {
        (0..8u32)
            .filter(move |&y| spinn5_chip_exists(x, y))
            .map(move |y| Chip::new(x, y))
    })
}

/// For each cell (x, y) of a triad's 12 × 12 chip tile: the chip's offset from its board's
/// Ethernet chip and the z of that board. Built from the board shape and the three roots.
const TILE: [[(u8, u8, u8); 12]; 12] = build_tile();

const fn build_tile() -> [[(u8, u8, u8); 12]; 12] {
    let mut t = [[(255u8, 255u8, 255u8); 12]; 12];
    let mut z = 0;
    while z < 3 {
        let (rx, ry) = BOARD_ROOTS[z];
        let mut dx = 0;
        while dx < 8 {
            let mut dy = 0;
            while dy < 8 {
                if spinn5_chip_exists(dx, dy) {
                    let tx = ((rx + dx) % 12) as usize;
                    let ty = ((ry + dy) % 12) as usize;
                    t[tx][ty] = (dx as u8, dy as u8, z as u8);
                }
                dy += 1;
            }
            dx += 1;
        }
        z += 1;
    }
    t
}

/// The Ethernet (bottom-left) chip of a board, in machine chip coordinates.
pub const fn board_to_chip(board: Board) -> Chip {
    let (ox, oy) = BOARD_ROOTS[if board.z > 2 { 0 } else { board.z as usize }];
    Chip::new(board.x as u32 * TRIAD_CHIPS + ox, board.y as u32 * TRIAD_CHIPS + oy)
}

/// Like [`board_to_chip`] for a board offset relative to an origin board (components may be
/// negative); z offsets other than 1 and 2 add nothing, as in the reference.
pub const fn board_offset_to_chip(dx: i64, dy: i64, dz: i64) -> (i64, i64) {
    let (ox, oy) = match dz {
        1 => (8, 4),
        2 => (4, 8),
        _ => (0, 0),
    };
    (dx * 12 + ox, dy * 12 + oy)
}

/// The chip's position within its own board (relative to the board's Ethernet chip).
pub const fn local_chip(chip_x: u32, chip_y: u32) -> Chip {
    let (dx, dy, _) = TILE[(chip_x % 12) as usize][(chip_y % 12) as usize];
    Chip::new(dx as u32, dy as u32)
}

/// The board owning machine chip (x, y) on a machine of `w_chips` × `h_chips` chips, wrapping
/// around as the reference's `chip_to_board` does. Dimensions must be non-zero.
pub fn chip_to_board(chip_x: u32, chip_y: u32, w_chips: u32, h_chips: u32) -> Board {
    let (ex, ey) = ethernet_chip(chip_x, chip_y, w_chips, h_chips);
    let z = match (ex % 12, ey % 12) {
        (8, 4) => 1,
        (4, 8) => 2,
        _ => 0,
    };
    Board::new((ex / 12) as u16, (ey / 12) as u16, z)
}

/// The Ethernet chip of the board owning machine chip (x, y), wrapped modulo the machine's
/// chip dimensions.
pub fn ethernet_chip(chip_x: u32, chip_y: u32, w_chips: u32, h_chips: u32) -> (u32, u32) {
    let local = local_chip(chip_x, chip_y);
    let ex = (chip_x as i64 - local.x as i64).rem_euclid(w_chips.max(1) as i64) as u32;
    let ey = (chip_y as i64 - local.y as i64).rem_euclid(h_chips.max(1) as i64) as u32;
    (ex, ey)
}

/// Chip dimensions of a `w` × `h` triad region: 12 chips per triad, plus 4 along each axis
/// that does not wrap around.
pub const fn triad_dimensions_to_chips(w: u32, h: u32, torus: WrapAround) -> (u32, u32) {
    (
        w * 12 + if torus.x() { 0 } else { 4 },
        h * 12 + if torus.y() { 0 } else { 4 },
    )
}

/// Chip width and height of a job given its boards and wrap-around: 8 × 8 for one board,
/// otherwise the chips of the triad bounding box from the lexicographically smallest to the
/// largest board. `None` for no boards.
pub fn job_dimensions(boards: &[Board], torus: WrapAround) -> Option<(u32, u32)> {
    let min = boards.iter().min()?;
    let max = boards.iter().max()?;
    if boards.len() == 1 {
        return Some((8, 8));
    }
    Some(triad_dimensions_to_chips(
        (max.x - min.x) as u32 + 1,
        (max.y - min.y) as u32 + 1,
        torus,
    ))
}

/// A board's physical position: cabinet, frame (in the cabinet) and board (in the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Physical {
    /// Cabinet number.
    pub cabinet: u16,
    /// Frame within the cabinet.
    pub frame: u16,
    /// Board within the frame (its BMP's board number).
    pub board: u16,
}

impl Physical {
    /// Position (cabinet, frame, board).
    pub const fn new(cabinet: u16, frame: u16, board: u16) -> Physical {
        Physical { cabinet, frame, board }
    }
    /// The (cabinet, frame) pair: one BMP controls each frame.
    pub const fn frame_id(self) -> FrameId {
        FrameId {
            cabinet: self.cabinet,
            frame: self.frame,
        }
    }
}

impl core::fmt::Display for Physical {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "(c{}, f{}, b{})", self.cabinet, self.frame, self.board)
    }
}

/// A frame (cabinet, frame): the unit one BMP controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FrameId {
    /// Cabinet number.
    pub cabinet: u16,
    /// Frame within the cabinet.
    pub frame: u16,
}

/// Boards per frame on standard SpiNNaker hardware.
pub const BOARDS_PER_FRAME: u16 = 24;
/// Frames per cabinet on standard SpiNNaker hardware.
pub const FRAMES_PER_CABINET: u16 = 5;

/// The standard physical layout used when a machine description gives no explicit one:
/// boards are numbered `i = (y · width + x) · 3 + z` and filled into frames of 24 boards and
/// cabinets of 5 frames (`board = i mod 24`, `frame = (i / 24) mod 5`, `cabinet = i / 120`).
///
/// This is a simple, documented packing (eight triads of a row per frame), not SpiNNer's
/// folded-torus placement; real machines give their placement explicitly (e.g.
/// [`board_locations_from_spinner_csv`]).
pub fn standard_location(board: Board, width: u16) -> Physical {
    let i = (board.y as u32 * width as u32 + board.x as u32) * 3 + board.z as u32;
    let per_frame = BOARDS_PER_FRAME as u32;
    let per_cabinet = per_frame * FRAMES_PER_CABINET as u32;
    Physical::new(
        (i / per_cabinet) as u16,
        ((i / per_frame) % FRAMES_PER_CABINET as u32) as u16,
        (i % per_frame) as u16,
    )
}

/// An IPv4 address scheme: `BMP(c, f) = base + c·cabinet_stride + f·frame_stride + bmp_offset`
/// and `board(c, f, b) = base + c·cabinet_stride + f·frame_stride + b·board_stride +
/// spinnaker_offset` (the reference's `with_standard_ips`).
///
/// With base 127.1.0.0 and the default strides a whole machine lives on loopback: BMP (c, f)
/// at 127.1.(5c+f).0 and board (c, f, b) at 127.1.(5c+f).(8b+1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IpScheme {
    /// Base address.
    pub base: core::net::Ipv4Addr,
    /// Added once per cabinet.
    pub cabinet_stride: core::net::Ipv4Addr,
    /// Added once per frame.
    pub frame_stride: core::net::Ipv4Addr,
    /// Added once per board.
    pub board_stride: core::net::Ipv4Addr,
    /// Added to a frame's address to give its BMP's.
    pub bmp_offset: core::net::Ipv4Addr,
    /// Added to a board's address to give its Ethernet chip's.
    pub spinnaker_offset: core::net::Ipv4Addr,
}

impl Default for IpScheme {
    fn default() -> IpScheme {
        IpScheme::standard(core::net::Ipv4Addr::new(192, 168, 0, 0))
    }
}

/// An address computation left the 32-bit IPv4 space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IP address of {what} overflows 255.255.255.255")]
pub struct IpOverflow {
    /// Which address was being computed.
    pub what: String,
}

impl IpScheme {
    /// The standard strides (cabinet 0.0.5.0, frame 0.0.1.0, board 0.0.0.8, BMP +0,
    /// SpiNNaker +1) with the given base.
    pub const fn standard(base: core::net::Ipv4Addr) -> IpScheme {
        use core::net::Ipv4Addr;
        IpScheme {
            base,
            cabinet_stride: Ipv4Addr::new(0, 0, 5, 0),
            frame_stride: Ipv4Addr::new(0, 0, 1, 0),
            board_stride: Ipv4Addr::new(0, 0, 0, 8),
            bmp_offset: Ipv4Addr::new(0, 0, 0, 0),
            spinnaker_offset: Ipv4Addr::new(0, 0, 0, 1),
        }
    }

    fn frame_base(&self, frame: FrameId) -> Option<u64> {
        let v = u32::from(self.base) as u64
            + frame.cabinet as u64 * u32::from(self.cabinet_stride) as u64
            + frame.frame as u64 * u32::from(self.frame_stride) as u64;
        Some(v)
    }

    fn to_ip(v: u64, what: impl FnOnce() -> String) -> Result<core::net::Ipv4Addr, IpOverflow> {
        u32::try_from(v)
            .map(core::net::Ipv4Addr::from)
            .map_err(|_| IpOverflow { what: what() })
    }

    /// The BMP address of a frame.
    pub fn bmp_ip(&self, frame: FrameId) -> Result<core::net::Ipv4Addr, IpOverflow> {
        let v = self.frame_base(frame).unwrap_or(u64::MAX) + u32::from(self.bmp_offset) as u64;
        Self::to_ip(v, || {
            format!("the BMP of cabinet {} frame {}", frame.cabinet, frame.frame)
        })
    }

    /// The Ethernet-chip address of a board.
    pub fn board_ip(&self, p: Physical) -> Result<core::net::Ipv4Addr, IpOverflow> {
        let v = self.frame_base(p.frame_id()).unwrap_or(u64::MAX)
            + p.board as u64 * u32::from(self.board_stride) as u64
            + u32::from(self.spinnaker_offset) as u64;
        Self::to_ip(v, || format!("board {p}"))
    }
}

/// Where the boards of a machine physically are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Layout {
    /// [`standard_location`] for every board position.
    #[default]
    Standard,
    /// An explicit (x, y, z) → (cabinet, frame, board) map.
    Explicit(Vec<(Board, Physical)>),
}

/// How a machine's BMP and board IP addresses are found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Addressing {
    /// Computed from the physical locations by an [`IpScheme`].
    Scheme(IpScheme),
    /// Listed explicitly.
    Explicit {
        /// One address per frame's BMP.
        bmps: Vec<(FrameId, core::net::Ipv4Addr)>,
        /// One address per board's Ethernet chip.
        boards: Vec<(Board, core::net::Ipv4Addr)>,
    },
}

impl Default for Addressing {
    fn default() -> Addressing {
        Addressing::Scheme(IpScheme::default())
    }
}

/// Everything needed to describe a machine, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MachineSpec {
    /// Unique machine name.
    pub name: String,
    /// Tags jobs select machines by (the reference default is `{"default"}`).
    pub tags: Vec<String>,
    /// Width in triads.
    pub width: u16,
    /// Height in triads.
    pub height: u16,
    /// Boards that must never be allocated.
    pub dead_boards: Vec<Board>,
    /// Directional dead links: leaving `board` through `link` is impossible.
    pub dead_links: Vec<(Board, Link)>,
    /// Physical placement.
    pub layout: Layout,
    /// IP addresses.
    pub addressing: Addressing,
}

impl MachineSpec {
    /// A `width` × `height` machine named `name` with tag "default", no dead boards or links,
    /// the standard layout and the standard IP scheme on `base`.
    pub fn new(name: impl Into<String>, width: u16, height: u16) -> MachineSpec {
        MachineSpec {
            name: name.into(),
            tags: vec!["default".to_string()],
            width,
            height,
            dead_boards: Vec::new(),
            dead_links: Vec::new(),
            layout: Layout::Standard,
            addressing: Addressing::default(),
        }
    }
}

/// Why a machine description is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// Width or height is zero.
    #[error("machine {machine}: width and height must be at least 1 triad (got {width} x {height})")]
    Empty {
        /// Machine name.
        machine: String,
        /// Width given.
        width: u16,
        /// Height given.
        height: u16,
    },
    /// A board position lies outside the machine.
    #[error("machine {machine}: {what} board {board} is outside the {width} x {height} triad machine")]
    Outside {
        /// Machine name.
        machine: String,
        /// Which list the board came from.
        what: &'static str,
        /// The board.
        board: Board,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// Two boards share a physical position.
    #[error("machine {machine}: boards {a} and {b} are both at physical location {at}")]
    DuplicateLocation {
        /// Machine name.
        machine: String,
        /// First board.
        a: Board,
        /// Second board.
        b: Board,
        /// The shared position.
        at: Physical,
    },
    /// A live board has no physical location or IP address.
    #[error("machine {machine}: live board {board} has no {what}")]
    Missing {
        /// Machine name.
        machine: String,
        /// The board.
        board: Board,
        /// "physical location" or "IP address".
        what: &'static str,
    },
    /// A frame in use has no BMP address.
    #[error("machine {machine}: frame (cabinet {}, frame {}) has no BMP IP address", .frame.cabinet, .frame.frame)]
    MissingBmp {
        /// Machine name.
        machine: String,
        /// The frame.
        frame: FrameId,
    },
    /// Two endpoints share an IP address.
    #[error("machine {machine}: IP address {ip} is used twice ({a} and {b})")]
    DuplicateIp {
        /// Machine name.
        machine: String,
        /// The address.
        ip: core::net::Ipv4Addr,
        /// First user.
        a: String,
        /// Second user.
        b: String,
    },
    /// The IP scheme runs past 255.255.255.255.
    #[error("machine {machine}: {source}")]
    Ip {
        /// Machine name.
        machine: String,
        /// What overflowed.
        source: IpOverflow,
    },
}

/// A validated machine: size, dead boards and links, physical layout and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    name: String,
    tags: Vec<String>,
    width: u16,
    height: u16,
    dead_boards: std::collections::BTreeSet<Board>,
    dead_links: std::collections::BTreeSet<(Board, Link)>,
    /// Dense by board index `(x · height + y) · 3 + z`.
    locations: Vec<Option<Physical>>,
    /// Boards by physical position: per frame, indexed by board number.
    positions: std::collections::BTreeMap<FrameId, Vec<Option<Board>>>,
    bmp_ips: std::collections::BTreeMap<FrameId, core::net::Ipv4Addr>,
    board_ips: std::collections::BTreeMap<Board, core::net::Ipv4Addr>,
}

/// A job as seen by `where_is`: its id, boards and chip dimensions.
#[derive(Debug, Clone, Copy)]
pub struct JobExtent<'a> {
    /// Job id.
    pub id: u64,
    /// The job's boards.
    pub boards: &'a [Board],
    /// Chip width of the job's machine.
    pub width: u32,
    /// Chip height of the job's machine.
    pub height: u32,
}

/// The answer to a `where_is` query: one chip (or a board's Ethernet chip) in every form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WhereIs {
    /// Machine name.
    pub machine: String,
    /// Logical board (x, y, z).
    pub logical: Board,
    /// Physical board (cabinet, frame, board).
    pub physical: Physical,
    /// Chip in machine coordinates.
    pub chip: Chip,
    /// Chip within its board.
    pub board_chip: Chip,
    /// The job on that board, if any.
    pub job_id: Option<u64>,
    /// Chip in the job's coordinates, if a job holds the board.
    pub job_chip: Option<Chip>,
}

impl Machine {
    /// Validates a description.
    pub fn new(spec: MachineSpec) -> Result<Machine, MachineError> {
        use std::collections::{BTreeMap, BTreeSet};
        let MachineSpec {
            name,
            tags,
            width,
            height,
            dead_boards,
            dead_links,
            layout,
            addressing,
        } = spec;
        if width == 0 || height == 0 {
            return Err(MachineError::Empty {
                machine: name,
                width,
                height,
            });
        }
        let inside = |b: &Board| b.x < width && b.y < height && b.z < 3;
        let outside = |what: &'static str, board: Board| MachineError::Outside {
            machine: name.clone(),
            what,
            board,
            width,
            height,
        };
        for b in &dead_boards {
            if !inside(b) {
                return Err(outside("dead", *b));
            }
        }
        for (b, _) in &dead_links {
            if !inside(b) {
                return Err(outside("dead-link", *b));
            }
        }
        let dead_boards: BTreeSet<Board> = dead_boards.into_iter().collect();
        let dead_links: BTreeSet<(Board, Link)> = dead_links.into_iter().collect();

        let mut locations = BTreeMap::new();
        match layout {
            Layout::Standard => {
                for y in 0..height {
                    for x in 0..width {
                        for z in 0..3 {
                            let b = Board::new(x, y, z);
                            locations.insert(b, standard_location(b, width));
                        }
                    }
                }
            }
            Layout::Explicit(list) => {
                for (b, p) in list {
                    if !inside(&b) {
                        return Err(outside("located", b));
                    }
                    locations.insert(b, p);
                }
            }
        }
        let mut positions = BTreeMap::new();
        for (b, p) in &locations {
            if let Some(a) = positions.insert(*p, *b) {
                return Err(MachineError::DuplicateLocation {
                    machine: name.clone(),
                    a,
                    b: *b,
                    at: *p,
                });
            }
        }

        let mut bmp_ips = BTreeMap::new();
        let mut board_ips = BTreeMap::new();
        match addressing {
            Addressing::Scheme(scheme) => {
                let ip_err = |source| MachineError::Ip {
                    machine: name.clone(),
                    source,
                };
                for (b, p) in &locations {
                    board_ips.insert(*b, scheme.board_ip(*p).map_err(ip_err)?);
                    let f = p.frame_id();
                    if let std::collections::btree_map::Entry::Vacant(e) = bmp_ips.entry(f) {
                        e.insert(scheme.bmp_ip(f).map_err(ip_err)?);
                    }
                }
            }
            Addressing::Explicit { bmps, boards } => {
                for (b, ip) in boards {
                    if !inside(&b) {
                        return Err(outside("addressed", b));
                    }
                    board_ips.insert(b, ip);
                }
                bmp_ips.extend(bmps);
            }
        }
        for y in 0..height {
            for x in 0..width {
                for z in 0..3 {
                    let b = Board::new(x, y, z);
                    if dead_boards.contains(&b) {
                        continue;
                    }
                    let Some(p) = locations.get(&b) else {
                        return Err(MachineError::Missing {
                            machine: name,
                            board: b,
                            what: "physical location",
                        });
                    };
                    if !board_ips.contains_key(&b) {
                        return Err(MachineError::Missing {
                            machine: name,
                            board: b,
                            what: "IP address",
                        });
                    }
                    if !bmp_ips.contains_key(&p.frame_id()) {
                        return Err(MachineError::MissingBmp {
                            machine: name,
                            frame: p.frame_id(),
                        });
                    }
                }
            }
        }
        let mut seen: BTreeMap<core::net::Ipv4Addr, String> = BTreeMap::new();
        let named = bmp_ips
            .iter()
            .map(|(f, ip)| (*ip, format!("BMP of cabinet {} frame {}", f.cabinet, f.frame)))
            .chain(board_ips.iter().map(|(b, ip)| (*ip, format!("board {b}"))));
        for (ip, who) in named {
            if let Some(a) = seen.insert(ip, who.clone()) {
                return Err(MachineError::DuplicateIp {
                    machine: name,
                    ip,
                    a,
                    b: who,
                });
            }
        }
        let mut dense = vec![None; width as usize * height as usize * 3];
        for (b, p) in locations {
            dense[(b.x as usize * height as usize + b.y as usize) * 3 + b.z as usize] = Some(p);
        }
        let mut by_frame: BTreeMap<FrameId, Vec<Option<Board>>> = BTreeMap::new();
        for (p, b) in positions {
            let v = by_frame.entry(p.frame_id()).or_default();
            if v.len() <= p.board as usize {
                v.resize(p.board as usize + 1, None);
            }
            v[p.board as usize] = Some(b);
        }
        Ok(Machine {
            name,
            tags,
            width,
            height,
            dead_boards,
            dead_links,
            locations: dense,
            positions: by_frame,
            bmp_ips,
            board_ips,
        })
    }

    /// The reference's `Machine.single_board`: a 1 × 1 triad machine whose boards 1 and 2 are
    /// dead, board 0 at (0, 0, 0) with the given BMP and board addresses.
    pub fn single_board(
        name: impl Into<String>,
        bmp_ip: core::net::Ipv4Addr,
        board_ip: core::net::Ipv4Addr,
    ) -> Result<Machine, MachineError> {
        let b0 = Board::new(0, 0, 0);
        let spec = MachineSpec {
            dead_boards: vec![Board::new(0, 0, 1), Board::new(0, 0, 2)],
            layout: Layout::Explicit(vec![(b0, Physical::new(0, 0, 0))]),
            addressing: Addressing::Explicit {
                bmps: vec![(FrameId { cabinet: 0, frame: 0 }, bmp_ip)],
                boards: vec![(b0, board_ip)],
            },
            ..MachineSpec::new(name, 1, 1)
        };
        Machine::new(spec)
    }

    /// Machine name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// True if `other` is the same hardware: size, physical layout and every BMP and board
    /// address (tags, dead boards and dead links may differ). The reference replaces a machine
    /// that changed anything more than those.
    pub fn same_hardware(&self, other: &Machine) -> bool {
        self.width == other.width
            && self.height == other.height
            && self.locations == other.locations
            && self.bmp_ips == other.bmp_ips
            && self.board_ips == other.board_ips
    }

    /// Tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// A description that builds this machine again, with its layout and addresses listed
    /// explicitly (for journals and for changing a machine's faults).
    pub fn spec(&self) -> MachineSpec {
        MachineSpec {
            name: self.name.clone(),
            tags: self.tags.clone(),
            width: self.width,
            height: self.height,
            dead_boards: self.dead_boards().iter().copied().collect(),
            dead_links: self.dead_links().iter().copied().collect(),
            layout: Layout::Explicit(self.locations().collect()),
            addressing: Addressing::Explicit {
                bmps: self.bmps().collect(),
                boards: self.board_ips().collect(),
            },
        }
    }
    /// Width in triads.
    pub fn width(&self) -> u16 {
        self.width
    }
    /// Height in triads.
    pub fn height(&self) -> u16 {
        self.height
    }
    /// Number of board positions (3 per triad, dead ones included).
    pub fn board_positions(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }
    /// Chip dimensions of the whole machine seen as a torus (12 per triad).
    pub fn chip_dimensions(&self) -> (u32, u32) {
        triad_dimensions_to_chips(self.width as u32, self.height as u32, WrapAround::BOTH)
    }
    /// Dead boards in order.
    pub fn dead_boards(&self) -> &std::collections::BTreeSet<Board> {
        &self.dead_boards
    }
    /// Dead links in order.
    pub fn dead_links(&self) -> &std::collections::BTreeSet<(Board, Link)> {
        &self.dead_links
    }
    /// True if the board is inside the machine and not dead.
    pub fn is_live(&self, b: Board) -> bool {
        self.contains(b) && !self.dead_boards.contains(&b)
    }
    /// True if the board position is inside the machine.
    pub fn contains(&self, b: Board) -> bool {
        b.x < self.width && b.y < self.height && b.z < 3
    }
    /// Every board position in (x, y, z) order.
    pub fn boards(&self) -> impl Iterator<Item = Board> + '_ {
        (0..self.width).flat_map(move |x| (0..self.height).flat_map(move |y| (0..3).map(move |z| Board::new(x, y, z))))
    }
    /// The physical position of a board (the reference's `get_board_position`).
    pub fn location(&self, b: Board) -> Option<Physical> {
        if !self.contains(b) {
            return None;
        }
        self.locations[self.board_index(b)]
    }
    /// The dense index of a board inside the machine: `(x · height + y) · 3 + z`.
    pub fn board_index(&self, b: Board) -> usize {
        (b.x as usize * self.height as usize + b.y as usize) * 3 + b.z as usize
    }
    /// The board at a physical position (the reference's `get_board_at_position`).
    pub fn board_at(&self, p: Physical) -> Option<Board> {
        self.positions
            .get(&p.frame_id())?
            .get(p.board as usize)
            .copied()
            .flatten()
    }
    /// Every located board with its position, in board order.
    pub fn locations(&self) -> impl Iterator<Item = (Board, Physical)> + '_ {
        self.boards().filter_map(|b| Some((b, self.location(b)?)))
    }
    /// BMP address of a frame.
    pub fn bmp_ip(&self, f: FrameId) -> Option<core::net::Ipv4Addr> {
        self.bmp_ips.get(&f).copied()
    }
    /// Every frame with its BMP address, in frame order.
    pub fn bmps(&self) -> impl Iterator<Item = (FrameId, core::net::Ipv4Addr)> + '_ {
        self.bmp_ips.iter().map(|(f, ip)| (*f, *ip))
    }
    /// Ethernet address of a board.
    pub fn board_ip(&self, b: Board) -> Option<core::net::Ipv4Addr> {
        self.board_ips.get(&b).copied()
    }
    /// Every addressed board with its address, in board order.
    pub fn board_ips(&self) -> impl Iterator<Item = (Board, core::net::Ipv4Addr)> + '_ {
        self.board_ips.iter().map(|(b, ip)| (*b, *ip))
    }

    /// `where_is` by machine chip (any integers: wrapped around the machine's chip torus).
    /// `None` if the board there has no physical location. `job_on` names the job holding a
    /// board, if any.
    pub fn where_is_chip<'a>(
        &self,
        chip_x: i64,
        chip_y: i64,
        job_on: impl Fn(Board) -> Option<JobExtent<'a>>,
    ) -> Option<WhereIs> {
        let (w, h) = self.chip_dimensions();
        let cx = chip_x.rem_euclid(w as i64) as u32;
        let cy = chip_y.rem_euclid(h as i64) as u32;
        let board_chip = local_chip(cx, cy);
        let logical = chip_to_board(cx, cy, w, h);
        let physical = self.location(logical)?;
        let job = job_on(logical);
        let job_chip = job.as_ref().map(|j| job_chip(j, logical, board_chip));
        Some(WhereIs {
            machine: self.name.clone(),
            logical,
            physical,
            chip: Chip::new(cx, cy),
            board_chip,
            job_id: job.map(|j| j.id),
            job_chip,
        })
    }

    /// `where_is` by logical board (answers for its Ethernet chip); `None` outside the machine.
    pub fn where_is_board<'a>(&self, b: Board, job_on: impl Fn(Board) -> Option<JobExtent<'a>>) -> Option<WhereIs> {
        if !self.contains(b) {
            return None;
        }
        let c = board_to_chip(b);
        self.where_is_chip(c.x as i64, c.y as i64, job_on)
    }

    /// `where_is` by physical board (answers for its Ethernet chip).
    pub fn where_is_physical<'a>(
        &self,
        p: Physical,
        job_on: impl Fn(Board) -> Option<JobExtent<'a>>,
    ) -> Option<WhereIs> {
        self.where_is_board(self.board_at(p)?, job_on)
    }

    /// `where_is` by a chip relative to a job's origin (per-component minimum board); `None`
    /// if that chip's board is not the job's.
    pub fn where_is_job_chip<'a>(
        &self,
        job: &JobExtent<'_>,
        chip_x: i64,
        chip_y: i64,
        job_on: impl Fn(Board) -> Option<JobExtent<'a>>,
    ) -> Option<WhereIs> {
        let min = component_min(job.boards)?;
        let origin = board_offset_to_chip(min.0, min.1, min.2);
        // Wrapped here (as `where_is_chip` would) so that no client's coordinate overflows.
        let (w, h) = self.chip_dimensions();
        let wrap = |c: i64, o: i64, n: u32| (i128::from(c) + i128::from(o)).rem_euclid(i128::from(n)) as i64;
        let found = self.where_is_chip(wrap(chip_x, origin.0, w), wrap(chip_y, origin.1, h), job_on)?;
        (found.job_id == Some(job.id)).then_some(found)
    }
}

fn component_min(boards: &[Board]) -> Option<(i64, i64, i64)> {
    let x = boards.iter().map(|b| b.x).min()?;
    let y = boards.iter().map(|b| b.y).min()?;
    let z = boards.iter().map(|b| b.z).min()?;
    Some((x as i64, y as i64, z as i64))
}

/// The chip's coordinates within a job: the board's offset from the job's per-component
/// minimum board, as chips, plus the chip within the board, modulo the job's dimensions.
fn job_chip(job: &JobExtent<'_>, board: Board, board_chip: Chip) -> Chip {
    let (jx, jy, jz) = component_min(job.boards).unwrap_or((0, 0, 0));
    let (cx, cy) = board_offset_to_chip(board.x as i64 - jx, board.y as i64 - jy, board.z as i64 - jz);
    let w = job.width.max(1) as i64;
    let h = job.height.max(1) as i64;
    Chip::new(
        (cx + board_chip.x as i64).rem_euclid(w) as u32,
        (cy + board_chip.y as i64).rem_euclid(h) as u32,
    )
}

/// A machine size in triads and its board locations, as read from SpiNNer.
pub type SpinnerLayout = (u16, u16, Vec<(Board, Physical)>);

/// Reads board locations from SpiNNer's `spinner-ethernet-chips` CSV (columns
/// `cabinet,frame,board,x,y`, x/y being Ethernet chip coordinates). Returns the machine size
/// in triads (inferred as `max_x / 12 + 1` × `max_y / 12 + 1`) and the map, or an error naming
/// the line.
pub fn board_locations_from_spinner_csv(text: &str) -> Result<SpinnerLayout, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 5 {
            return Err(format!(
                "line {}: expected 5 fields cabinet,frame,board,x,y, got {}",
                i + 1,
                fields.len()
            ));
        }
        if fields[0].eq_ignore_ascii_case("cabinet") {
            continue;
        }
        let mut v = [0u32; 5];
        for (k, f) in fields.iter().enumerate() {
            v[k] = f
                .parse()
                .map_err(|_| format!("line {}: field {}: not a non-negative integer: {f:?}", i + 1, k + 1))?;
        }
        if v[0] > u16::MAX as u32 || v[1] > u16::MAX as u32 || v[2] > u16::MAX as u32 {
            return Err(format!("line {}: cabinet/frame/board number too large", i + 1));
        }
        rows.push(v);
    }
    let max_x = rows.iter().map(|r| r[3]).max().unwrap_or(0);
    let max_y = rows.iter().map(|r| r[4]).max().unwrap_or(0);
    let (w, h) = (max_x / 12 + 1, max_y / 12 + 1);
    if w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err("machine too large".into());
    }
    let out = rows
        .into_iter()
        .map(|r| {
            let b = chip_to_board(r[3], r[4], 12 * w, 12 * h);
            (b, Physical::new(r[0] as u16, r[1] as u16, r[2] as u16))
        })
        .collect();
    Ok((w as u16, h as u16, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn b(x: u16, y: u16, z: u8) -> Board {
        Board::new(x, y, z)
    }

    #[test]
    fn links_are_numbered_like_the_hardware() {
        for (i, l) in Link::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
            assert_eq!(Link::from_u8(i as u8), Some(*l));
            assert_eq!(l.opposite() as usize, (i + 3) % 6);
            assert_eq!(Link::parse(l.name()), Some(*l));
        }
        assert_eq!(Link::from_u8(6), None);
        assert_eq!(Link::parse("up"), None);
    }

    #[test]
    fn board_down_link_matches_the_reference_examples() {
        let cases = [
            ((0, 0, 0), Link::North, (1, 1), (0, 0, 2), WrapAround::NONE),
            ((3, 2, 1), Link::North, (10, 10), (4, 3, 0), WrapAround::NONE),
            ((9, 8, 1), Link::NorthEast, (10, 10), (0, 8, 2), WrapAround::X),
            ((8, 9, 2), Link::NorthEast, (10, 10), (9, 0, 0), WrapAround::Y),
            ((9, 9, 2), Link::NorthEast, (10, 10), (0, 0, 0), WrapAround::BOTH),
            ((0, 0, 0), Link::South, (1, 1), (0, 0, 1), WrapAround::BOTH),
        ];
        for ((x, y, z), link, (w, h), (ex, ey, ez), wrap) in cases {
            assert_eq!(
                board_down_link(b(x, y, z), link, w, h),
                (b(ex, ey, ez), wrap),
                "{x},{y},{z} {link}"
            );
        }
        // (x, y, 0)'s east neighbour is (x, y-1, 2); board 1's north is (x+1, y+1, 0).
        assert_eq!(board_down_link(b(4, 4, 0), Link::East, 10, 10).0, b(4, 3, 2));
        assert_eq!(board_down_link(b(4, 4, 1), Link::North, 10, 10).0, b(5, 5, 0));
    }

    #[test]
    fn every_link_has_its_opposite_back() {
        for (w, h) in [(1, 1), (2, 3), (5, 4)] {
            for x in 0..w {
                for y in 0..h {
                    for z in 0..3 {
                        for l in Link::ALL {
                            let (n, wrap) = board_down_link(b(x, y, z), l, w, h);
                            assert!(n.z < 3);
                            let (back, wrap2) = board_down_link(n, l.opposite(), w, h);
                            assert_eq!(back, b(x, y, z));
                            assert_eq!(wrap.any(), wrap2.any());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn spinn5_board_has_48_chips_in_the_documented_rows() {
        assert_eq!(spinn5_chips().count(), CHIPS_PER_BOARD);
        let rows: [(u32, u32); 8] = [(0, 4), (0, 5), (0, 6), (0, 7), (1, 7), (2, 7), (3, 7), (4, 7)];
        for (y, (lo, hi)) in rows.iter().enumerate() {
            for x in 0..8 {
                assert_eq!(spinn5_chip_exists(x, y as u32), x >= *lo && x <= *hi, "({x},{y})");
            }
        }
    }

    #[test]
    fn triad_tile_is_covered_exactly_once_with_the_reference_map() {
        let map = [
            "111122222222", // y = 11
            "111122222221",
            "111122222211",
            "111122222111",
            "111100001111",
            "111000001111",
            "110000001111",
            "100000001111",
            "000000002222",
            "000000022222",
            "000000222222",
            "000002222222", // y = 0
        ];
        let mut counts = [[0u32; 12]; 12];
        for z in 0..3u32 {
            let (rx, ry) = BOARD_ROOTS[z as usize];
            for c in spinn5_chips() {
                counts[((rx + c.x) % 12) as usize][((ry + c.y) % 12) as usize] += 1;
            }
        }
        for (row, line) in map.iter().enumerate() {
            let y = 11 - row as u32;
            for (x, ch) in line.chars().enumerate() {
                assert_eq!(counts[x][y as usize], 1);
                let want = ch.to_digit(10).unwrap() as u8;
                assert_eq!(TILE[x][y as usize].2, want, "chip ({x},{y})");
            }
        }
    }

    #[test]
    fn chips_and_boards_convert_like_the_reference() {
        assert_eq!(board_to_chip(b(0, 0, 0)), Chip::new(0, 0));
        assert_eq!(board_to_chip(b(0, 0, 1)), Chip::new(8, 4));
        assert_eq!(board_to_chip(b(2, 1, 2)), Chip::new(28, 20));
        assert_eq!(chip_to_board(1, 1, 12, 12), b(0, 0, 0));
        assert_eq!(chip_to_board(5, 0, 12, 12), b(0, 0, 2));
        assert_eq!(chip_to_board(32, 16, 48, 48), b(2, 1, 1));
        // Every chip of every board maps back to that board.
        for x in 0..3 {
            for y in 0..2 {
                for z in 0..3 {
                    let e = board_to_chip(b(x, y, z));
                    for c in spinn5_chips() {
                        let got = chip_to_board(e.x + c.x, e.y + c.y, 36, 24);
                        assert_eq!(got, b(x, y, z));
                        assert_eq!(local_chip((e.x + c.x) % 36, (e.y + c.y) % 24), c);
                    }
                }
            }
        }
    }

    #[test]
    fn triad_dimensions_to_chips_matches_the_reference() {
        assert_eq!(triad_dimensions_to_chips(1, 1, WrapAround::NONE), (16, 16));
        assert_eq!(triad_dimensions_to_chips(2, 1, WrapAround::X), (24, 16));
        assert_eq!(triad_dimensions_to_chips(1, 2, WrapAround::BOTH), (12, 24));
        assert_eq!(job_dimensions(&[b(3, 1, 2)], WrapAround::NONE), Some((8, 8)));
        let triad: Vec<Board> = (0..3).map(|z| b(0, 0, z)).collect();
        assert_eq!(job_dimensions(&triad, WrapAround::NONE), Some((16, 16)));
        let two_by_one: Vec<Board> = (0..2).flat_map(|x| (0..3).map(move |z| b(x, 0, z))).collect();
        assert_eq!(job_dimensions(&two_by_one, WrapAround::X), Some((24, 16)));
        let whole: Vec<Board> = (0..2)
            .flat_map(|x| (0..3).flat_map(move |y| (0..3).map(move |z| b(x, y, z))))
            .collect();
        assert_eq!(job_dimensions(&whole, WrapAround::BOTH), Some((24, 36)));
        assert_eq!(job_dimensions(&[], WrapAround::NONE), None);
    }

    #[test]
    fn standard_ips_match_the_reference_example() {
        // Locations (x, y, z) -> (x, y, z) for a 2 x 2 machine.
        let mut locs = Vec::new();
        for x in 0..2 {
            for y in 0..2 {
                for z in 0..3 {
                    locs.push((b(x, y, z), Physical::new(x, y, z as u16)));
                }
            }
        }
        let spec = MachineSpec {
            layout: Layout::Explicit(locs),
            ..MachineSpec::new("m", 2, 2)
        };
        let m = Machine::new(spec).unwrap();
        assert_eq!(
            m.bmp_ip(FrameId { cabinet: 1, frame: 1 }),
            Some(Ipv4Addr::new(192, 168, 6, 0))
        );
        assert_eq!(m.board_ip(b(1, 0, 2)), Some(Ipv4Addr::new(192, 168, 5, 17)));
    }

    #[test]
    fn spinnaker1m_and_loopback_schemes() {
        let s = IpScheme::standard(Ipv4Addr::new(10, 11, 193, 0));
        assert_eq!(
            s.board_ip(Physical::new(0, 0, 0)).unwrap(),
            Ipv4Addr::new(10, 11, 193, 1)
        );
        assert_eq!(
            s.board_ip(Physical::new(0, 0, 1)).unwrap(),
            Ipv4Addr::new(10, 11, 193, 9)
        );
        assert_eq!(
            s.board_ip(Physical::new(0, 0, 2)).unwrap(),
            Ipv4Addr::new(10, 11, 193, 17)
        );
        let lo = IpScheme::standard(Ipv4Addr::new(127, 1, 0, 0));
        let spec = MachineSpec {
            addressing: Addressing::Scheme(lo),
            ..MachineSpec::new("SpiNNaker1M", 20, 20)
        };
        let m = Machine::new(spec).unwrap();
        assert_eq!(m.bmps().count(), 50);
        assert_eq!(m.board_ips().count(), 1200);
        assert_eq!(
            m.bmp_ip(FrameId { cabinet: 9, frame: 4 }),
            Some(Ipv4Addr::new(127, 1, 49, 0))
        );
        assert_eq!(m.board_ip(b(19, 19, 2)), Some(Ipv4Addr::new(127, 1, 49, 185)));
        assert!(m.board_ips().all(|(_, ip)| ip.is_loopback()));
        assert_eq!(m.location(b(19, 19, 2)), Some(Physical::new(9, 4, 23)));
        assert_eq!(m.board_at(Physical::new(0, 0, 3)), Some(b(1, 0, 0)));
    }

    #[test]
    fn ip_overflow_and_bad_machines_are_errors() {
        let s = IpScheme::standard(Ipv4Addr::new(255, 255, 255, 0));
        assert!(s.board_ip(Physical::new(3, 0, 0)).is_err());
        let spec = MachineSpec {
            dead_boards: vec![b(2, 0, 0)],
            ..MachineSpec::new("m", 2, 2)
        };
        let e = Machine::new(spec).unwrap_err();
        assert!(e.to_string().contains("dead board (2, 0, 0) is outside"), "{e}");
        assert!(matches!(
            Machine::new(MachineSpec::new("m", 0, 2)),
            Err(MachineError::Empty { .. })
        ));
        let spec = MachineSpec {
            layout: Layout::Explicit(vec![
                (b(0, 0, 0), Physical::new(0, 0, 0)),
                (b(0, 0, 1), Physical::new(0, 0, 0)),
            ]),
            ..MachineSpec::new("m", 1, 1)
        };
        assert!(matches!(
            Machine::new(spec),
            Err(MachineError::DuplicateLocation { .. })
        ));
        let spec = MachineSpec {
            layout: Layout::Explicit(vec![(b(0, 0, 0), Physical::new(0, 0, 0))]),
            dead_boards: vec![b(0, 0, 1)],
            ..MachineSpec::new("m", 1, 1)
        };
        let e = Machine::new(spec).unwrap_err();
        assert!(
            e.to_string().contains("live board (0, 0, 2) has no physical location"),
            "{e}"
        );
    }

    #[test]
    fn single_board_machine() {
        let m = Machine::single_board("one", Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        assert_eq!((m.width(), m.height()), (1, 1));
        assert!(m.is_live(b(0, 0, 0)) && !m.is_live(b(0, 0, 1)) && !m.is_live(b(0, 0, 2)));
        assert_eq!(m.location(b(0, 0, 0)), Some(Physical::new(0, 0, 0)));
    }

    #[test]
    fn spinner_csv_matches_the_reference_example() {
        let csv = "cabinet,frame,board,x,y\n0,0,0,0,0\n0,0,2,4,8\n0,0,4,8,4\n0,0,5,12,0\n0,0,3,16,8\n0,0,1,20,4\n";
        let (w, h, locs) = board_locations_from_spinner_csv(csv).unwrap();
        assert_eq!((w, h), (2, 1));
        let want = [
            (b(0, 0, 0), Physical::new(0, 0, 0)),
            (b(0, 0, 2), Physical::new(0, 0, 2)),
            (b(0, 0, 1), Physical::new(0, 0, 4)),
            (b(1, 0, 0), Physical::new(0, 0, 5)),
            (b(1, 0, 2), Physical::new(0, 0, 3)),
            (b(1, 0, 1), Physical::new(0, 0, 1)),
        ];
        assert_eq!(locs, want);
        assert!(
            board_locations_from_spinner_csv("0,0,x,0,0")
                .unwrap_err()
                .contains("line 1")
        );
    }

    #[test]
    fn where_is_matches_the_reference_example() {
        // 4 x 2 machine; job 1 = 2 x 2 triads at (0, 0); job 2 = board (3, 1, 2).
        let m = Machine::new(MachineSpec::new("m", 4, 2)).unwrap();
        let job1: Vec<Board> = (0..2)
            .flat_map(|x| (0..2).flat_map(move |y| (0..3).map(move |z| b(x, y, z))))
            .collect();
        let job2 = vec![b(3, 1, 2)];
        let (w1, h1) = job_dimensions(&job1, WrapAround::NONE).unwrap();
        let jobs = [
            JobExtent {
                id: 1,
                boards: &job1,
                width: w1,
                height: h1,
            },
            JobExtent {
                id: 2,
                boards: &job2,
                width: 8,
                height: 8,
            },
        ];
        let job_on = |bd: Board| jobs.iter().find(|j| j.boards.contains(&bd)).copied();

        let r = m.where_is_chip(-1, -1, job_on).unwrap();
        assert_eq!(r.logical, b(3, 1, 2));
        assert_eq!(r.chip, Chip::new(47, 23));
        assert_eq!(r.board_chip, Chip::new(7, 3));
        assert_eq!(r.job_id, Some(2));
        assert_eq!(r.job_chip, Some(Chip::new(7, 3)));

        let r = m.where_is_chip(41, 0, job_on).unwrap();
        assert_eq!(r.logical, b(3, 1, 2));
        assert_eq!(r.job_chip, Some(Chip::new(1, 4)));

        // Logical and physical forms answer for the Ethernet chip.
        let r = m.where_is_board(b(1, 1, 1), job_on).unwrap();
        assert_eq!(r.chip, Chip::new(20, 16));
        assert_eq!(r.board_chip, Chip::new(0, 0));
        assert_eq!(r.job_id, Some(1));
        assert_eq!(r.job_chip, Some(Chip::new(20, 16)));
        let p = m.location(b(1, 1, 1)).unwrap();
        assert_eq!(m.where_is_physical(p, job_on), Some(r));
        assert_eq!(m.where_is_board(b(4, 0, 0), job_on), None);
        let free = m.where_is_board(b(2, 0, 0), job_on).unwrap();
        assert_eq!((free.job_id, free.job_chip), (None, None));

        // Job-relative form: relative to the job's minimum board; must land on that job.
        let r = m.where_is_job_chip(&jobs[1], 1, 4, job_on).unwrap();
        assert_eq!(r.chip, Chip::new(41, 0));
        assert_eq!(r.logical, b(3, 1, 2));
        let r = m.where_is_job_chip(&jobs[0], 13, 5, job_on).unwrap();
        assert_eq!(r.job_chip, Some(Chip::new(13, 5)));
        assert_eq!(m.where_is_job_chip(&jobs[0], 30, 0, job_on), None);
    }
}
