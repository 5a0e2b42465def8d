//! One SpiNN-5 board: what its BMP controls (power, the three link FPGAs, LEDs), what faults
//! were injected, its boot ROM while unbooted, and — only while SC&MP is booting or running — its
//! runtime (IP tags and the chips the host has touched).
//!
//! A switched-off board costs a few dozen bytes; everything SC&MP-related lives in a boxed
//! [`Runtime`] created at boot and dropped at power-off, reset or death.

use crate::chip::ChipState;
use spinnbed_core::geometry::{Board, Link, Physical, spinn5_chip_exists};
use spinnbed_core::proto::boot::BootReassembler;
use spinnbed_core::proto::scp::IptagFlags;
use spinnbed_core::proto::scp::fpga;
use spinnbed_core::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Power state of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Switched off.
    Off,
    /// Switched on, FPGAs loading; chips held in reset until `ready_at`.
    Starting { ready_at: Instant },
    /// Running since `since` (boot ROM or SC&MP).
    On { since: Instant },
}

/// The registers of one spI/O FPGA that the emulator keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fpga {
    /// STOP bit of each link bank (bit 0 link A, 1 link B, 2 peripheral).
    pub stop: u8,
    /// SLEN register.
    pub slen: u32,
    /// LEDO register.
    pub ledo: u32,
}

/// Design version every emulated FPGA reports in VERS.
pub(crate) const FPGA_VERSION: u32 = 0x0001_0016;

/// One board.
#[derive(Debug)]
pub(crate) struct BoardSlot {
    pub board: Board,
    pub physical: Physical,
    /// Ethernet address (None for boards without one; such boards are unreachable).
    pub ip: Option<Ipv4Addr>,
    /// Injected fault (or dead in the machine description): never answers.
    pub dead: bool,
    /// The BMP's power switch for this board.
    pub switched_on: bool,
    pub phase: Phase,
    /// Incremented by every power command touching the board (stale timers compare it).
    pub power_gen: u32,
    pub fpga: [Fpga; 3],
    /// Injected link failures, bit per [`Link`].
    pub failed_links: u8,
    /// LED state set through the BMP.
    pub bmp_leds: u32,
    pub boot_rom: Option<Box<BootReassembler>>,
    pub runtime: Option<Box<Runtime>>,
    /// Incremented whenever the runtime is created or dropped.
    pub runtime_gen: u32,
}

impl BoardSlot {
    pub(crate) fn new(board: Board, physical: Physical, ip: Option<Ipv4Addr>, dead: bool) -> BoardSlot {
        BoardSlot {
            board,
            physical,
            ip,
            dead,
            switched_on: false,
            phase: Phase::Off,
            power_gen: 0,
            fpga: [Fpga::default(); 3],
            failed_links: 0,
            bmp_leds: 0,
            boot_rom: None,
            runtime: None,
            runtime_gen: 0,
        }
    }

    /// Powered, FPGAs loaded, not dead: the chips run (boot ROM or SC&MP).
    pub(crate) fn is_up(&self) -> bool {
        !self.dead && matches!(self.phase, Phase::On { .. })
    }

    /// FPGAs loaded (whether or not the chips are dead).
    pub(crate) fn fpgas_loaded(&self) -> bool {
        matches!(self.phase, Phase::On { .. })
    }

    /// True if this board's FPGA has stopped sending over `link`.
    pub(crate) fn stopped(&self, link: Link) -> bool {
        let (f, addr) = fpga::stop_register(link);
        let bank = addr >> 16;
        self.fpga[f as usize].stop & (1 << bank) != 0
    }

    /// True if a fault was injected on `link`.
    pub(crate) fn link_failed(&self, link: Link) -> bool {
        self.failed_links & (1 << link as u8) != 0
    }

    /// Reads one FPGA register (0 unless the FPGAs are loaded).
    pub(crate) fn fpga_read(&self, f: u8, addr: u32, now: Instant) -> u32 {
        let Phase::On { since } = self.phase else {
            return 0;
        };
        let Some(regs) = self.fpga.get(f as usize) else {
            return 0;
        };
        let bank = addr >> 16;
        let off = addr & 0xFFFF;
        match bank {
            0..=2 => {
                if off == fpga::STOP {
                    u32::from(regs.stop >> bank & 1)
                } else if off <= fpga::COUNTER_LAST && bank < 2 && regs.stop & (1 << bank) == 0 {
                    // Plausible traffic counters: the first four grow with uptime while the link
                    // sends; the error counters stay at zero.
                    let index = off / 4;
                    let ms = now.saturating_duration_since(since).as_millis();
                    if index < 4 {
                        (ms.wrapping_mul(u64::from(index) + 1) * 97) as u32
                    } else {
                        0
                    }
                } else {
                    0
                }
            }
            4 => match off {
                fpga::VERS => FPGA_VERSION,
                fpga::FLAG => u32::from(f),
                fpga::SLEN => regs.slen,
                fpga::LEDO => regs.ledo,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Writes one FPGA register (ignored unless the FPGAs are loaded). Returns true if a STOP
    /// bit changed.
    pub(crate) fn fpga_write(&mut self, f: u8, addr: u32, value: u32) -> bool {
        if !self.fpgas_loaded() {
            return false;
        }
        let Some(regs) = self.fpga.get_mut(f as usize) else {
            return false;
        };
        let bank = addr >> 16;
        let off = addr & 0xFFFF;
        match (bank, off) {
            (0..=2, fpga::STOP) => {
                let before = regs.stop;
                if value & 1 != 0 {
                    regs.stop |= 1 << bank;
                } else {
                    regs.stop &= !(1 << bank);
                }
                before != regs.stop
            }
            (4, fpga::SLEN) => {
                regs.slen = value;
                false
            }
            (4, fpga::LEDO) => {
                regs.ledo = value;
                false
            }
            _ => false,
        }
    }
}

/// Where SC&MP is in its start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootPhase {
    /// Network initialisation running: CMD_VER answers P2P 0xFFFF, nothing else answers.
    Booting,
    /// Running.
    Booted,
}

/// One IP tag (`iptag_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpTag {
    /// [`IptagFlags`] bits; VALID when in use.
    pub flags: u16,
    pub ip: Ipv4Addr,
    /// Host port (forward tags).
    pub port: u16,
    /// Board port (reverse tags).
    pub rx_port: u16,
    /// Reverse tags: SDP target chip `x << 8 | y` and port/cpu byte.
    pub dest_addr: u16,
    pub dest_port: u8,
    /// When it lapses (None = never).
    pub expires: Option<Instant>,
    /// Datagrams sent or received through it.
    pub count: u32,
    /// Incremented on every (re)allocation, so a delayed reply frees only its own tag.
    pub generation: u32,
}

impl Default for IpTag {
    fn default() -> IpTag {
        IpTag {
            flags: 0,
            ip: Ipv4Addr::UNSPECIFIED,
            port: 0,
            rx_port: 0,
            dest_addr: 0,
            dest_port: 0,
            expires: None,
            count: 0,
            generation: 0,
        }
    }
}

impl IpTag {
    /// In use at `now`.
    pub(crate) fn valid(&self, now: Instant) -> bool {
        self.flags & IptagFlags::VALID.bits() != 0 && self.expires.is_none_or(|e| now < e)
    }
    pub(crate) fn has(&self, f: IptagFlags) -> bool {
        self.flags & f.bits() == f.bits()
    }
    pub(crate) fn target(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, self.port)
    }
    /// Clears the tag (keeping its generation counter).
    pub(crate) fn clear(&mut self) {
        *self = IpTag {
            generation: self.generation,
            ..IpTag::default()
        };
    }
}

/// Number of IP tags (0–7 user, 8–15 transient pool).
pub(crate) const NUM_TAGS: usize = 16;
/// First transient tag.
pub(crate) const POOL_FIRST: usize = 8;

/// EIEIO streaming state of a board (see `eieio.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stream {
    pub active: bool,
    pub generation: u32,
    /// Datagrams sent since boot (the key counter advances by `keys` per datagram).
    pub packets: u32,
    /// The running stream's settings, fixed when it started.
    pub params: crate::eieio::StreamParams,
    /// Events (keys) sent since boot.
    pub events: u64,
    /// UDP payload bytes sent since boot.
    pub bytes: u64,
}

/// SC&MP's state on a booting or booted board.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// The booted set (one P2P machine) this board belongs to.
    pub set: u32,
    /// P2P coordinates of this board's Ethernet chip.
    pub eth: (u32, u32),
    pub phase: BootPhase,
    pub tags: [IpTag; NUM_TAGS],
    /// Transient tag timeout code.
    pub tto: u8,
    /// Chips by local index (see [`local_index`]), created when first changed.
    pub chips: Vec<Option<Box<ChipState>>>,
    /// A CMD_COUNT is being answered until then.
    pub count_busy_until: Instant,
    pub stream: Stream,
    /// The Ethernet chip's SC&MP server and the chips' P2P transmitters (see
    /// [`crate::ScampTiming`]).
    pub server: ScampServer,
}

/// SC&MP's server state on one board: when the Ethernet chip's monitor is free, when other
/// chips' monitors finish sending P2P replies, and when the requests holding message buffers
/// release them.
#[derive(Debug, Default)]
pub(crate) struct ScampServer {
    /// The Ethernet chip's monitor is busy until then.
    pub free_at: Instant,
    /// Other chips of the board (local index) whose monitors are sending a P2P reply until
    /// then; entries in the past are pruned.
    pub chips: Vec<(u8, Instant)>,
    /// When each request holding a message buffer releases it (its reply is sent, or its
    /// service ends when it wants none); entries at or before `now` are free.
    pub held: Vec<Instant>,
}

impl ScampServer {
    /// When chip `local` (0: the Ethernet chip) is free to send.
    pub(crate) fn chip_free_at(&self, local: u8) -> Instant {
        if local == 0 {
            return self.free_at;
        }
        self.chips
            .iter()
            .find(|(c, _)| *c == local)
            .map_or(Instant::ZERO, |(_, t)| *t)
    }

    /// Chip `local` is busy until `until` (pruning chips idle at `now`).
    pub(crate) fn set_chip_busy(&mut self, local: u8, until: Instant, now: Instant) {
        if local == 0 {
            self.free_at = until;
            return;
        }
        self.chips.retain(|(c, t)| *c != local && *t > now);
        self.chips.push((local, until));
    }

    /// Message buffers held at `now`.
    pub(crate) fn held_at(&mut self, now: Instant) -> usize {
        self.held.retain(|&t| t > now);
        self.held.len()
    }
}

/// A BMP's server state: when it is free, when the requests it took start being served (those
/// still waiting occupy receive buffers) and when their transient tags are freed.
#[derive(Debug, Default)]
pub(crate) struct BmpServer {
    pub free_at: Instant,
    /// Service start times of the requests taken, in order; those after `now` are waiting.
    pub starts: std::collections::VecDeque<Instant>,
    /// When each held transient tag is freed (its reply is sent).
    pub tags: Vec<Instant>,
}

impl BmpServer {
    /// Requests waiting for the server at `now`.
    pub(crate) fn waiting_at(&mut self, now: Instant) -> usize {
        while self.starts.front().is_some_and(|&t| t <= now) {
            self.starts.pop_front();
        }
        self.starts.len()
    }

    /// Transient tags held at `now`.
    pub(crate) fn tags_at(&mut self, now: Instant) -> usize {
        self.tags.retain(|&t| t > now);
        self.tags.len()
    }
}

impl Runtime {
    pub(crate) fn new(set: u32, eth: (u32, u32), tto: u8) -> Runtime {
        Runtime {
            set,
            eth,
            phase: BootPhase::Booting,
            tags: [IpTag::default(); NUM_TAGS],
            tto,
            chips: Vec::new(),
            count_busy_until: Instant::ZERO,
            stream: Stream::default(),
            server: ScampServer::default(),
        }
    }

    /// The chip at local index `i`, if touched.
    pub(crate) fn chip(&self, i: usize) -> Option<&ChipState> {
        self.chips.get(i).and_then(|c| c.as_deref())
    }

    /// The chip at local index `i`, created if needed.
    pub(crate) fn chip_mut(&mut self, i: usize) -> &mut ChipState {
        if self.chips.len() <= i {
            self.chips.resize_with(i + 1, || None);
        }
        self.chips[i].get_or_insert_with(Default::default)
    }

    /// Data pages held by all chips.
    pub(crate) fn data_pages(&self) -> usize {
        self.chips.iter().flatten().map(|c| c.data_pages()).sum()
    }

    /// True if any touched chip runs an application.
    pub(crate) fn has_running_app(&self) -> bool {
        self.chips.iter().flatten().any(|c| c.has_running_app())
    }

    /// The lowest user tag usable for live output at `now`.
    pub(crate) fn output_tag(&self, now: Instant) -> Option<usize> {
        (0..POOL_FIRST).find(|&t| self.tags[t].valid(now) && !self.tags[t].has(IptagFlags::REVERSE))
    }
}

/// Index of board-local chip (x, y) among the 48 chips (in (x, y) order), or None.
pub(crate) fn local_index(x: u32, y: u32) -> Option<usize> {
    if !spinn5_chip_exists(x, y) {
        return None;
    }
    // Chips per column x: 4, 5, 6, 7, 8, 7, 6, 5.
    const START: [usize; 8] = [0, 4, 9, 15, 22, 30, 37, 43];
    let first_y = x.saturating_sub(4);
    Some(START[x as usize] + (y - first_y) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::geometry::spinn5_chips;

    #[test]
    fn local_indices_are_dense() {
        for (i, c) in spinn5_chips().enumerate() {
            assert_eq!(local_index(c.x, c.y), Some(i));
        }
        assert_eq!(local_index(0, 4), None);
        assert_eq!(local_index(8, 0), None);
    }

    #[test]
    fn fpga_registers() {
        let mut s = BoardSlot::new(Board::new(0, 0, 0), Physical::new(0, 0, 0), None, false);
        assert_eq!(s.fpga_read(1, 0x4_0004, Instant::ZERO), 0, "off");
        assert!(!s.fpga_write(1, 0x5C, 1));
        s.phase = Phase::On { since: Instant::ZERO };
        for f in 0..3 {
            assert_eq!(s.fpga_read(f, 0x4_0004, Instant::ZERO), u32::from(f));
        }
        assert!(s.fpga_write(1, 0x5C, 1));
        assert!(s.stopped(Link::SouthWest));
        assert!(!s.stopped(Link::West));
        assert_eq!(s.fpga_read(1, 0x5C, Instant::ZERO), 1);
        assert!(s.fpga_write(2, 0x1_005C, 1));
        assert!(s.stopped(Link::NorthEast));
        assert!(s.fpga_read(0, 0x0, Instant::from_secs(1)) > 0);
    }
}
