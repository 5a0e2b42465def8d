//! spinnbed-emulator: an emulated SpiNNaker machine, sans-IO — datagrams in, datagrams and timers
//! out, no sockets, no clock, no randomness.
//!
//! The [`Emulator`] holds any number of [`Machine`]s. Each frame's BMP answers SCP on its BMP IP
//! (port 17893): power, FPGA registers, board information. Each board answers on its Ethernet
//! IP: the boot ROM on port 54321 while unbooted, SC&MP on port 17893 once booted, and reverse IP
//! tags on their receive ports. Real clients (spinnman 1!7.4.1, rig 2.4.1) and spinnbed's own
//! host code talk to it unchanged: replies come from the (IP, port) the request was sent to and
//! go to the request's source, with the firmware's reply layout (protocols.md §11).
//!
//! The driver owns time and the network, as with quinn-proto:
//!
//! ```
//! use spinnbed_core::geometry::Machine;
//! use spinnbed_core::time::Instant;
//! use spinnbed_core::datagram::Datagram;
//! use spinnbed_emulator::{Config, Emulator};
//! use std::net::{Ipv4Addr, SocketAddrV4};
//!
//! let m = Machine::single_board("m", Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 2)).unwrap();
//! let mut emu = Emulator::new(&[m], Config::default());
//! // rig's `sver` to the BMP, board 0.
//! let sver = vec![0, 0, 0x87, 0xff, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
//! emu.handle_datagram(Instant::ZERO, Datagram {
//!     src: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000),
//!     dst: SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 17893),
//!     payload: sver,
//! });
//! // The BMP answers when it has served the request (`ScampTiming::bmp_service`, 100 µs).
//! assert!(emu.poll_transmit().is_none());
//! let due = emu.poll_timeout().unwrap();
//! assert_eq!(due, Instant(100));
//! emu.handle_timeout(due);
//! let reply = emu.poll_transmit().unwrap();
//! assert_eq!(reply.src, SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 17893));
//! while let Some(t) = emu.poll_timeout() {
//!     emu.handle_timeout(t); // nothing pending any more, but this is the loop
//! }
//! ```
//!
//! Modules: [`config`] (timings and limits), `board` (power, FPGAs, IP tags, runtime), `chip`
//! (cores, memory, router, system variables), `memory` (sparse pages, the memory map,
//! allocators), `topology` (booted sets, flood fill, routes), `bmp` (BC&MP), `scamp` (SC&MP and
//! SARK), `eieio` (live output and reverse tags), [`stats`].
//!
//! Behaviour decisions where the firmware notes are silent are documented on [`Emulator`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bmp;
mod board;
mod chip;
pub mod config;
mod eieio;
mod memory;
mod scamp;
pub mod stats;
mod topology;

pub use config::{Config, EieioConfig, ScampOp, ScampTiming};
pub use eieio::{LIVE_MAGIC, LiveOutputStats, StreamParams, user_register_address};
pub use stats::Stats;

use board::{BoardSlot, BootPhase, Phase, Runtime, local_index};
use memory::Budget;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::{Board, Chip, FrameId, Link, Machine};
use spinnbed_core::proto::boot::{self, BootOutcome, BootReassembler, SystemVariables};
use spinnbed_core::proto::scp::ReturnCode;
use spinnbed_core::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use topology::{Bmp, BootedSet, MachineState};

/// The UDP port of SC&MP and of the BMP.
pub const SCP_PORT: u16 = 17893;
/// The UDP port of the boot ROM.
pub const BOOT_PORT: u16 = boot::PORT;

/// What a board is doing, as [`Emulator::board_state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoardState {
    /// Switched off, still loading its FPGAs after power-on, or unknown.
    Off,
    /// Running its boot ROM: answers boot packets only.
    Unbooted,
    /// SC&MP starting: CMD_VER answers P2P address 0xFFFF, nothing else answers.
    Booting,
    /// SC&MP running.
    Booted,
}

/// Something an operator would want in a log: a board's power or boot state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A board finished powering on (FPGAs loaded).
    PoweredOn {
        /// Machine name.
        machine: String,
        /// The board.
        board: Board,
    },
    /// A board was switched off.
    PoweredOff {
        /// Machine name.
        machine: String,
        /// The board.
        board: Board,
    },
    /// A boot image arrived at a board: it and the boards it reaches start SC&MP.
    BootStarted {
        /// Machine name.
        machine: String,
        /// The board the image was sent to.
        root: Board,
        /// How many boards boot together.
        boards: usize,
    },
    /// SC&MP is running on a booted set.
    Booted {
        /// Machine name.
        machine: String,
        /// The set's root board.
        root: Board,
        /// Its chip dimensions.
        width: u32,
        /// Its chip dimensions.
        height: u32,
    },
}

/// Who owns an IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Bmp { m: usize, f: usize },
    Board { m: usize, b: usize },
}

/// Where a delayed datagram comes from (checked again when it is due).
#[derive(Debug, Clone, Copy)]
enum Source {
    Bmp {
        m: usize,
        f: usize,
    },
    Board {
        m: usize,
        b: usize,
        runtime_gen: u32,
        /// The IP tag the reply goes through.
        tag: TagUse,
    },
}

/// What sending a board's reply does to the IP tag it goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagUse {
    /// Frees transient tag (tag, generation) (if it is still that allocation).
    Release(u8, u32),
    /// Counts one more datagram sent through the tag.
    Count(u8),
}

/// A datagram waiting for its time.
#[derive(Debug)]
struct Pending {
    datagram: Datagram,
    from: Source,
    rc: Option<ReturnCode>,
}

/// Something scheduled.
#[derive(Debug)]
enum Timer {
    Send(Box<Pending>),
    PowerSwitch {
        m: usize,
        b: usize,
        generation: u32,
        on: bool,
    },
    PowerReady {
        m: usize,
        b: usize,
        generation: u32,
    },
    BootDone {
        m: usize,
        set: u32,
    },
    Eieio {
        m: usize,
        b: usize,
        generation: u32,
    },
}

/// An emulated SpiNNaker installation: BMPs, boards, boot ROMs, SC&MP monitors and EIEIO
/// endpoints of one or more machines.
///
/// Feed it with [`handle_datagram`](Self::handle_datagram) and
/// [`handle_timeout`](Self::handle_timeout); drain [`poll_transmit`](Self::poll_transmit) after
/// each; ask [`poll_timeout`](Self::poll_timeout) for the next deadline. It never panics on any
/// input: malformed datagrams are counted in [`Stats`] and dropped, or answered RC_LEN / RC_CMD /
/// RC_ARG as the firmware would.
///
/// # Behaviour where the firmware notes are silent
///
/// - **Power.** A power-on command switches each board of the mask on after `delay × board
///   number` ms; a board then loads its FPGAs for [`Config::power_on`] before its chips run (boot
///   ROM, [`BoardState::Unbooted`]). Powering on a board that is already on restarts that
///   sequence (FPGAs reloaded, chips reset). As BC&MP does, the BMP answers after its *own*
///   board's sequence (board 0: [`Config::power_on`] or [`Config::power_off`]) when the mask
///   holds board 0, and at once otherwise; the other boards are told over CAN and switch in the
///   background. Boards not in the frame are ignored. A switched-off, reset or dead board loses
///   all SC&MP state (tags, memory, apps, queued requests). The BMP keeps answering other
///   requests while a power command is pending (the real BC&MP busy-waits through board 0's
///   sequence and buffers four frames meanwhile; that is not modelled).
/// - **Timing.** Each board's SC&MP and each frame's BMP is one FIFO server with a service
///   time per request and bounded buffers ([`ScampTiming`], per machine: [`Config::scamp_of`]).
///   A request is executed when it arrives (its effects are visible at once, in arrival order,
///   which is the server's order) and its reply leaves when the model says its service (and, for
///   another chip, its P2P transfers) completes. Requests the firmware would drop for want of a
///   buffer or a tag are dropped unexecuted and counted in [`Stats`].
/// - **BMP replies** carry tag 8, come from the requested board (port 0, cpu = board) and go to
///   port 7, cpu `0xE0 | board`, address = frame number, as BC&MP rewrites the source before
///   swapping. A request for a board number the frame does not have gets no answer. CMD_VER
///   reports flash block 0, frame = the frame number, CAN id = board id = the board number.
/// - **Dead boards** (in the machine description or by [`set_board_dead`](Self::set_board_dead))
///   keep a working BMP and FPGAs; only the SpiNNaker chips are silent. Boards dead in the
///   description have no endpoints.
/// - **Booting** starts when CONTROL(1) arrives after every block; the sv block the host patched
///   into the image (bytes 384–511) becomes the booted chips' sv. The flood fill crosses a link
///   when both boards are up, the link is neither dead, failed nor STOP'd on either side, and the
///   neighbour is unbooted. Unbooted boards do not broadcast HELLO packets.
/// - **(255, 255)** means the Ethernet chip that received the request. Requests to another chip
///   of the booted set are forwarded if a path of usable board links exists from the receiving
///   board, otherwise RC_ROUTE; the reply is delayed by the P2P transfers
///   ([`ScampTiming::p2p_time`]; without the timing model 2 × hops × [`ScampTiming::p2p_hop`]). Checks
///   run in the order RC_LEN, RC_ROUTE, RC_CPU, RC_PORT (any non-zero port), then the command's
///   own RC_ARG / RC_CMD.
/// - **Memory map.** SDRAM (0x6…/0x7…), SysRAM (0xE5…/0xF5…), ITCM, DTCM, router, system
///   controller, watchdog, Ethernet and ROM are emulated (sparse; ROM ignores writes); a transfer
///   not inside one of them is answered RC_ARG (SC&MP would fault). FILL needs a word-aligned
///   address and a multiple of 4 bytes (else RC_ARG). Halfword/word transfers move
///   `len / size` units, as SARK does. Past [`Config::memory_limit`], writes get RC_BUF.
/// - **IP tags** are per board, whatever chip a CMD_IPTAG names. A reply-wanted request with tag
///   0xFF takes a transient tag (8–15; [`ScampTiming::transient_tags`] of them) when it arrives
///   and frees it when its reply is sent; when all are busy the request is dropped unexecuted. A request naming another tag is answered through that tag (dropped if
///   it is not set). Reverse tags on port 17893, 54321 or 0 are refused with RC_ARG.
/// - **Applications.** CMD_AR (and APP_COPY_RUN, AS, flood-fill end) puts cores in READY (wait
///   flag) or RUNNING; signals START/SYNC0/SYNC1/PAUSE/CONT/STOP/EXIT move them as SARK would.
///   Signals (CMD_SIG multicast — root chip only — or nearest-neighbour, CMD_NNP SIG0) reach
///   every chip of the booted set. Flood-fill data is accepted and not stored. CMD_COUNT counts
///   the application cores (not the monitor) of the addressed chip's board, taken when the
///   request arrives; a second COUNT on the board while one is pending gets RC_P2P_BUSY.
/// - **Not emulated** (answered RC_CMD): CMD_SROM, CMD_DPRI, CMD_RUN, CMD_APLX and the BMP's
///   flash, EEPROM-write, I2C, PWM and Xilinx commands. BMP memory reads return zeros.
pub struct Emulator {
    cfg: Config,
    machines: Vec<MachineState>,
    by_ip: BTreeMap<Ipv4Addr, Owner>,
    out: VecDeque<Datagram>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    stats: Stats,
    budget: Budget,
    next_set: u32,
    /// Board hops from (machine, board) to every board of its set; cleared on any change of
    /// topology (power, boot, faults, STOP bits).
    routes: BTreeMap<(usize, usize), Vec<u16>>,
    events: VecDeque<Event>,
    /// Bumped whenever IP tags may have changed (a CMD_IPTAG, a board losing its SC&MP state).
    tags_epoch: u64,
}

impl core::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Emulator")
            .field("machines", &self.machines.len())
            .field("endpoints", &self.by_ip.len())
            .field("pending_out", &self.out.len())
            .field("timers", &self.timers.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Emulator {
    /// An emulator for `machines`, every board switched off.
    ///
    /// If two machines use the same IP address, the first keeps it.
    pub fn new(machines: &[Machine], config: Config) -> Emulator {
        let mut by_ip = BTreeMap::new();
        let mut states = Vec::with_capacity(machines.len());
        for (m, machine) in machines.iter().enumerate() {
            let mut state = MachineState {
                machine: machine.clone(),
                boards: Vec::new(),
                bmps: Vec::new(),
                sets: BTreeMap::new(),
                timing: config.timing_of(machine.name()),
                scamp: config.scamp_of(machine.name()),
            };
            let n = usize::from(machine.width()) * usize::from(machine.height()) * 3;
            state.boards = (0..n).map(|_| None).collect();
            let mut frames: BTreeMap<FrameId, usize> = BTreeMap::new();
            for (f, (frame, ip)) in machine.bmps().enumerate() {
                frames.insert(frame, f);
                state.bmps.push(Bmp {
                    frame,
                    ip,
                    silent: false,
                    boards: Vec::new(),
                    server: Default::default(),
                });
                by_ip.entry(ip).or_insert(Owner::Bmp { m, f });
            }
            for b in machine.boards() {
                let (Some(p), Some(i)) = (machine.location(b), state.index(b)) else {
                    continue;
                };
                let dead = machine.dead_boards().contains(&b);
                let ip = machine.board_ip(b);
                state.boards[i] = Some(BoardSlot::new(b, p, ip, dead));
                if let Some(&f) = frames.get(&p.frame_id()) {
                    let list = &mut state.bmps[f].boards;
                    let n = usize::from(p.board);
                    if list.len() <= n {
                        list.resize(n + 1, None);
                    }
                    list[n] = Some(i);
                }
                if let (Some(ip), false) = (ip, dead) {
                    by_ip.entry(ip).or_insert(Owner::Board { m, b: i });
                }
            }
            states.push(state);
        }
        let budget = Budget::new(config.memory_limit);
        Emulator {
            cfg: config,
            machines: states,
            by_ip,
            out: VecDeque::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            stats: Stats::default(),
            budget,
            next_set: 0,
            routes: BTreeMap::new(),
            events: VecDeque::new(),
            tags_epoch: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every (IP, port) the emulator answers on, sorted: each BMP at its IP, port 17893; each
    /// board not dead in its machine description at its IP, ports 17893 (SCP) and 54321 (boot).
    ///
    /// Reverse IP tags add endpoints while they are set: see
    /// [`reverse_tag_endpoints`](Self::reverse_tag_endpoints).
    pub fn endpoints(&self) -> Vec<SocketAddrV4> {
        let mut v = Vec::with_capacity(self.by_ip.len() * 2);
        for (ip, owner) in &self.by_ip {
            v.push(SocketAddrV4::new(*ip, SCP_PORT));
            if matches!(owner, Owner::Board { .. }) {
                v.push(SocketAddrV4::new(*ip, BOOT_PORT));
            }
        }
        v.sort();
        v
    }

    /// The addresses (BMPs and boards not dead in the description) of the machine called
    /// `machine`, sorted; empty if there is no such machine.
    pub fn machine_addresses(&self, machine: &str) -> Vec<Ipv4Addr> {
        let Some(i) = self.machines.iter().position(|ms| ms.machine.name() == machine) else {
            return Vec::new();
        };
        self.by_ip
            .iter()
            .filter(|(_, o)| match o {
                Owner::Bmp { m, .. } | Owner::Board { m, .. } => *m == i,
            })
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// A counter that changes whenever the IP tags may have changed (a CMD_IPTAG was handled, a
    /// board was switched off, reset or died): a driver serving reverse tags over real sockets
    /// re-reads [`reverse_tag_endpoints`](Self::reverse_tag_endpoints) when it moves (and now and
    /// then, for tags that time out).
    pub fn tags_epoch(&self) -> u64 {
        self.tags_epoch
    }

    /// The (board IP, receive port) of every reverse IP tag currently set on a booted board.
    pub fn reverse_tag_endpoints(&self, now: Instant) -> Vec<SocketAddrV4> {
        let mut v = Vec::new();
        for ms in &self.machines {
            for s in ms.boards.iter().flatten() {
                let (Some(ip), Some(rt)) = (s.ip, s.runtime.as_ref()) else {
                    continue;
                };
                for t in &rt.tags {
                    if t.valid(now) && t.has(spinnbed_core::proto::scp::IptagFlags::REVERSE) {
                        v.push(SocketAddrV4::new(ip, t.rx_port));
                    }
                }
            }
        }
        v.sort();
        v
    }

    /// The next power or boot change, for logs.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handles one datagram arriving at `now` (first running any timers due by then). `dst`
    /// selects the endpoint; a datagram to an unknown endpoint is counted and dropped.
    pub fn handle_datagram(&mut self, now: Instant, d: Datagram) {
        self.handle_timeout(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += d.payload.len() as u64;
        let port = d.dst.port();
        match self.by_ip.get(d.dst.ip()).copied() {
            Some(Owner::Bmp { m, f }) if port == SCP_PORT => self.bmp_datagram(now, m, f, &d),
            Some(Owner::Board { m, b }) => match port {
                SCP_PORT => self.scp_datagram(now, m, b, &d),
                BOOT_PORT => self.boot_datagram(now, m, b, &d),
                p => self.reverse_tag_datagram(now, m, b, p, &d),
            },
            _ => self.stats.dropped_unknown_dst += 1,
        }
    }

    /// The next datagram to send, if any. Replies come from the (IP, port) the request was sent
    /// to and go to the request's source.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        let d = self.out.pop_front()?;
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += d.payload.len() as u64;
        Some(d)
    }

    /// When [`handle_timeout`](Self::handle_timeout) next needs to run, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// Runs everything due at or before `now`, in time order (then in the order scheduled).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            let (t, _) = *entry.key();
            if t > now {
                break;
            }
            let timer = entry.remove();
            self.run_timer(t, timer);
        }
    }

    /// Traffic counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.boards_powered = self
            .machines
            .iter()
            .flat_map(|m| m.boards.iter().flatten())
            .filter(|b| b.switched_on)
            .count() as u64;
        s
    }

    /// Marks a board dead (it never answers, even powered; its SC&MP state is lost) or alive
    /// again (it then runs its boot ROM if powered). Unknown machines or boards are ignored.
    pub fn set_board_dead(&mut self, machine: &str, board: Board, dead: bool) {
        let Some((m, b)) = self.find(machine, board) else {
            return;
        };
        if let Some(s) = self.machines[m].slot_mut(b) {
            s.dead = dead;
        }
        if dead {
            self.drop_runtime(m, b);
        }
        self.topology_changed();
    }

    /// Makes a frame's BMP ignore (or answer again) every datagram. Power sequences already
    /// under way still complete, but their replies are not sent while silent.
    pub fn set_bmp_silent(&mut self, machine: &str, frame: FrameId, silent: bool) {
        if let Some(ms) = self.machines.iter_mut().find(|ms| ms.machine.name() == machine)
            && let Some(bmp) = ms.bmps.iter_mut().find(|b| b.frame == frame)
        {
            bmp.silent = silent;
        }
    }

    /// Fails (or repairs) the link leaving `board` through `link`; a failed link carries
    /// nothing in either direction (no flood fill, no P2P routes).
    pub fn set_link_failed(&mut self, machine: &str, board: Board, link: Link, failed: bool) {
        let Some((m, b)) = self.find(machine, board) else {
            return;
        };
        if let Some(s) = self.machines[m].slot_mut(b) {
            if failed {
                s.failed_links |= 1 << link as u8;
            } else {
                s.failed_links &= !(1 << link as u8);
            }
        }
        self.topology_changed();
    }

    /// Puts a board straight into the state its BMP left it in before the emulator (re)started:
    /// powered on (FPGAs loaded, not booted) with the STOP bits of `stopped` links set, or off.
    /// A restarted server uses this so that the emulated machine, like real hardware, keeps
    /// its boards powered across the server's restart. Unknown machines or boards are ignored.
    pub fn restore_power(&mut self, now: Instant, machine: &str, board: Board, on: bool, stopped: &[Link]) {
        let Some((m, b)) = self.find(machine, board) else {
            return;
        };
        self.drop_runtime(m, b);
        let Some(s) = self.machines[m].slot_mut(b) else {
            return;
        };
        s.power_gen = s.power_gen.wrapping_add(1);
        s.fpga = Default::default();
        s.switched_on = on;
        s.phase = if on { Phase::On { since: now } } else { Phase::Off };
        if on {
            for &l in stopped {
                let (f, addr) = spinnbed_core::proto::scp::fpga::stop_register(l);
                s.fpga[f as usize].stop |= 1 << (addr >> 16);
            }
        }
        self.topology_changed();
    }

    /// What a board is doing ([`BoardState::Off`] for unknown boards).
    pub fn board_state(&self, machine: &str, board: Board) -> BoardState {
        let Some(s) = self.find(machine, board).and_then(|(m, b)| self.machines[m].slot(b)) else {
            return BoardState::Off;
        };
        if !matches!(s.phase, Phase::On { .. }) {
            return BoardState::Off;
        }
        match s.runtime.as_ref().map(|r| r.phase) {
            None => BoardState::Unbooted,
            Some(BootPhase::Booting) => BoardState::Booting,
            Some(BootPhase::Booted) => BoardState::Booted,
        }
    }

    /// The BMP's power switch for a board: true from the moment it is switched on (after its
    /// stagger delay; its FPGAs may still be loading) until it is switched off.
    pub fn power(&self, machine: &str, board: Board) -> bool {
        self.find(machine, board)
            .and_then(|(m, b)| self.machines[m].slot(b))
            .is_some_and(|s| s.switched_on)
    }

    /// `len` bytes of SDRAM at `addr` (0x6… or 0x7…) of board-local chip `chip` of a booted or
    /// booting board; zeros for anything else (unbooted boards, untouched memory, addresses
    /// outside SDRAM).
    pub fn sdram(&self, machine: &str, board: Board, chip: Chip, addr: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let Some(rt) = self
            .find(machine, board)
            .and_then(|(m, b)| self.machines[m].slot(b))
            .and_then(|s| s.runtime.as_ref())
        else {
            return out;
        };
        let (Some(i), Some(memory::Area::Sdram(off))) = (
            local_index(chip.x, chip.y),
            memory::area(addr, u32::try_from(len).unwrap_or(u32::MAX)),
        ) else {
            return out;
        };
        if let Some(c) = rt.chip(i) {
            c.sdram.read(off, &mut out);
        }
        out
    }

    /// P2P coordinates of a booting or booted board's Ethernet chip.
    pub fn board_chip(&self, machine: &str, board: Board) -> Option<Chip> {
        let (m, b) = self.find(machine, board)?;
        let rt = self.machines[m].slot(b)?.runtime.as_ref()?;
        Some(Chip::new(rt.eth.0, rt.eth.1))
    }

    /// P2P dimensions (width, height in chips) of the booted machine a board belongs to.
    pub fn booted_dimensions(&self, machine: &str, board: Board) -> Option<(u32, u32)> {
        let (m, b) = self.find(machine, board)?;
        let ms = &self.machines[m];
        let rt = ms.slot(b)?.runtime.as_ref()?;
        ms.sets.get(&rt.set).map(|s| s.dims)
    }

    /// True if the board's FPGA has its STOP bit set for `link`.
    pub fn link_stopped(&self, machine: &str, board: Board, link: Link) -> bool {
        self.find(machine, board)
            .and_then(|(m, b)| self.machines[m].slot(b))
            .is_some_and(|s| s.stopped(link))
    }

    /// An estimate of the heap and inline memory this emulator uses, in bytes (board and chip
    /// state, materialised memory pages, tables, queues). Not exact — allocator overheads are
    /// approximated — but it moves with everything that grows.
    pub fn memory_estimate(&self) -> usize {
        use core::mem::size_of;
        let mut total = size_of::<Emulator>();
        total += self.by_ip.len() * (size_of::<(Ipv4Addr, Owner)>() + 16);
        total += self
            .out
            .iter()
            .map(|d| size_of::<Datagram>() + d.payload.capacity())
            .sum::<usize>();
        total += self.timers.len() * (size_of::<((Instant, u64), Timer)>() + 16 + size_of::<Pending>() + 300);
        total += self.routes.values().map(|v| v.capacity() * 2 + 64).sum::<usize>();
        for ms in &self.machines {
            total += size_of::<MachineState>();
            // The validated machine description: per-board location, address and index maps.
            total += ms.machine.board_positions() * 96 + ms.machine.bmps().count() * 64;
            total += ms.boards.capacity() * size_of::<Option<BoardSlot>>();
            for s in ms.boards.iter().flatten() {
                if s.boot_rom.is_some() {
                    total += size_of::<BootReassembler>() + boot::MAX_IMAGE_LEN;
                }
                if let Some(rt) = &s.runtime {
                    total += size_of::<Runtime>() + rt.chips.capacity() * size_of::<Option<Box<chip::ChipState>>>();
                    total += rt.chips.iter().flatten().map(|c| c.heap_bytes()).sum::<usize>();
                }
            }
            total += ms
                .bmps
                .iter()
                .map(|b| size_of::<Bmp>() + b.boards.capacity() * size_of::<Option<usize>>())
                .sum::<usize>();
            total += ms
                .sets
                .values()
                .map(|s| size_of::<BootedSet>() + 128 + s.boards.capacity() * size_of::<usize>() + 32)
                .sum::<usize>();
        }
        total
    }

    // ------------------------------------------------------------------------------------
    // Internals shared by the modules
    // ------------------------------------------------------------------------------------

    fn find(&self, machine: &str, board: Board) -> Option<(usize, usize)> {
        let m = self.machines.iter().position(|ms| ms.machine.name() == machine)?;
        let b = self.machines[m].index(board)?;
        self.machines[m].slot(b)?;
        Some((m, b))
    }

    fn schedule(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }

    /// Queues a datagram for sending now.
    fn send(&mut self, d: Datagram, rc: Option<ReturnCode>) {
        if let Some(rc) = rc {
            *self.stats.return_codes.entry(rc).or_insert(0) += 1;
        }
        self.out.push_back(d);
    }

    fn topology_changed(&mut self) {
        self.routes.clear();
    }

    /// Drops a board's SC&MP state (power-off, reset, death), leaving its booted set.
    fn drop_runtime(&mut self, m: usize, b: usize) {
        let ms = &mut self.machines[m];
        let Some(slot) = ms.slot_mut(b) else {
            return;
        };
        slot.boot_rom = None;
        let Some(rt) = slot.runtime.take() else {
            return;
        };
        self.tags_epoch += 1;
        slot.runtime_gen = slot.runtime_gen.wrapping_add(1);
        self.budget.used = self.budget.used.saturating_sub(rt.data_pages());
        if let Some(set) = ms.sets.get_mut(&rt.set) {
            set.boards.retain(|&x| x != b);
            if set.boards.is_empty() {
                ms.sets.remove(&rt.set);
            }
        }
        self.topology_changed();
    }

    fn run_timer(&mut self, t: Instant, timer: Timer) {
        match timer {
            Timer::Send(p) => self.send_pending(*p),
            Timer::PowerSwitch { m, b, generation, on } => self.power_switch(t, m, b, generation, on),
            Timer::PowerReady { m, b, generation } => {
                if let Some(s) = self.machines[m].slot_mut(b)
                    && s.power_gen == generation
                    && matches!(s.phase, Phase::Starting { .. })
                {
                    s.phase = Phase::On { since: t };
                    let board = s.board;
                    let machine = self.machines[m].machine.name().to_string();
                    self.events.push_back(Event::PoweredOn { machine, board });
                    self.topology_changed();
                }
            }
            Timer::BootDone { m, set } => self.boot_done(m, set),
            Timer::Eieio { m, b, generation } => self.stream_tick(t, m, b, generation),
        }
    }

    fn send_pending(&mut self, p: Pending) {
        match p.from {
            Source::Bmp { m, f } => {
                if self.machines[m].bmps[f].silent {
                    self.stats.dropped_bmp_silent += 1;
                    return;
                }
            }
            Source::Board { m, b, runtime_gen, tag } => {
                let Some(s) = self.machines[m].slot_mut(b) else {
                    return;
                };
                let alive = s.is_up() && s.runtime_gen == runtime_gen;
                let Some(rt) = s.runtime.as_mut().filter(|_| alive) else {
                    self.stats.dropped_stale += 1;
                    return;
                };
                match tag {
                    TagUse::Release(t, generation) => {
                        if let Some(entry) = rt.tags.get_mut(usize::from(t))
                            && entry.generation == generation
                        {
                            entry.clear();
                        }
                    }
                    TagUse::Count(t) => {
                        if let Some(entry) = rt.tags.get_mut(usize::from(t)) {
                            entry.count = entry.count.wrapping_add(1);
                        }
                    }
                }
            }
        }
        self.send(p.datagram, p.rc);
    }

    /// Switches a board on or off (a power command's step for that board).
    fn power_switch(&mut self, t: Instant, m: usize, b: usize, generation: u32, on: bool) {
        let power_on = self.machines[m].timing.power_on;
        let Some(s) = self.machines[m].slot(b) else {
            return;
        };
        if s.power_gen != generation {
            return;
        }
        self.drop_runtime(m, b);
        let Some(s) = self.machines[m].slot_mut(b) else {
            return;
        };
        s.fpga = Default::default();
        s.switched_on = on;
        if on {
            let ready_at = t + power_on;
            s.phase = Phase::Starting { ready_at };
            self.schedule(ready_at, Timer::PowerReady { m, b, generation });
        } else {
            let was_on = !matches!(s.phase, Phase::Off);
            s.phase = Phase::Off;
            if was_on {
                let board = s.board;
                let machine = self.machines[m].machine.name().to_string();
                self.events.push_back(Event::PoweredOff { machine, board });
            }
        }
        self.topology_changed();
    }

    /// Starts a power command on the boards of `mask` in frame `f`; returns when the BMP should
    /// answer: after its own board's (board 0's) sequence if the mask holds it, else at once
    /// (the other boards are told over CAN and switch in the background).
    fn start_power(&mut self, now: Instant, m: usize, f: usize, on: bool, delay_ms: u16, mask: u32) -> Instant {
        let mut done = now;
        for n in 0..32u32 {
            if mask & (1 << n) == 0 {
                continue;
            }
            let Some(b) = self.machines[m].bmps[f].boards.get(n as usize).copied().flatten() else {
                continue;
            };
            let Some(s) = self.machines[m].slot_mut(b) else {
                continue;
            };
            s.power_gen = s.power_gen.wrapping_add(1);
            let generation = s.power_gen;
            let at = now + Duration::from_millis(u64::from(delay_ms) * u64::from(n));
            let t = self.machines[m].timing;
            if n == 0 {
                done = at + if on { t.power_on } else { t.power_off };
            }
            if at <= now {
                self.power_switch(now, m, b, generation, on);
            } else {
                self.schedule(at, Timer::PowerSwitch { m, b, generation, on });
            }
        }
        done
    }

    /// A datagram for a board's boot ROM (port 54321).
    fn boot_datagram(&mut self, now: Instant, m: usize, b: usize, d: &Datagram) {
        let Some(s) = self.machines[m].slot_mut(b) else {
            return;
        };
        if s.dead {
            self.stats.dropped_dead += 1;
            return;
        }
        if !s.is_up() {
            self.stats.dropped_board_off += 1;
            return;
        }
        if s.runtime.is_some() {
            self.stats.boot_ignored += 1;
            return;
        }
        self.stats.boot_packets += 1;
        let rom = s.boot_rom.get_or_insert_with(|| Box::new(BootReassembler::new()));
        match rom.handle_datagram(&d.payload) {
            BootOutcome::Malformed(_) => self.stats.malformed += 1,
            BootOutcome::Complete(image) => {
                s.boot_rom = None;
                self.stats.boots += 1;
                self.boot(now, m, b, &image);
            }
            BootOutcome::Incomplete { .. } => {
                s.boot_rom = None;
                self.stats.boots_incomplete += 1;
            }
            _ => {}
        }
    }

    /// Boots every board the flood fill from `root` reaches, as one P2P machine.
    fn boot(&mut self, now: Instant, m: usize, root: usize, image: &[u8]) {
        let mut patch = Box::new([0u8; 128]);
        match SystemVariables::from_image(image) {
            Ok(_) => patch.copy_from_slice(&image[boot::SV_PATCH_OFFSET..boot::SV_PATCH_OFFSET + 128]),
            Err(_) => patch.copy_from_slice(&SystemVariables::default().to_bytes()),
        }
        let ms = &self.machines[m];
        let members = ms.flood(root);
        let Some(root_board) = ms.slot(root).map(|s| s.board) else {
            return;
        };
        let boards: Vec<Board> = members.iter().filter_map(|&i| ms.slot(i).map(|s| s.board)).collect();
        let (dims, wrap) = ms.set_shape(root_board, &boards);
        let single = members.len() == 1;
        let eths: Vec<(u32, u32)> = boards
            .iter()
            .map(|&bd| ms.eth_chip(root_board, bd, dims, single))
            .collect();
        let id = self.next_set;
        self.next_set = self.next_set.wrapping_add(1);
        let until = now + self.machines[m].timing.boot;
        let tto = self.cfg.tag_timeout_code;
        let ms = &mut self.machines[m];
        for (&i, &eth) in members.iter().zip(&eths) {
            if let Some(s) = ms.slot_mut(i) {
                s.boot_rom = None;
                s.runtime = Some(Box::new(Runtime::new(id, eth, tto)));
                s.runtime_gen = s.runtime_gen.wrapping_add(1);
            }
        }
        ms.sets.insert(
            id,
            BootedSet {
                root,
                root_board,
                dims,
                wrap,
                single,
                patch,
                boards: members,
                started: until,
            },
        );
        self.schedule(until, Timer::BootDone { m, set: id });
        let machine = self.machines[m].machine.name().to_string();
        self.events.push_back(Event::BootStarted {
            machine,
            root: root_board,
            boards: boards.len(),
        });
        self.topology_changed();
    }

    fn boot_done(&mut self, m: usize, set: u32) {
        let ms = &mut self.machines[m];
        let Some(members) = ms.sets.get(&set).map(|s| s.boards.clone()) else {
            return;
        };
        if let Some(bs) = ms.sets.get(&set) {
            let (width, height) = bs.dims;
            self.events.push_back(Event::Booted {
                machine: ms.machine.name().to_string(),
                root: bs.root_board,
                width,
                height,
            });
        }
        let ms = &mut self.machines[m];
        for b in members {
            if let Some(rt) = ms.slot_mut(b).and_then(|s| s.runtime.as_mut())
                && rt.set == set
            {
                rt.phase = BootPhase::Booted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_state_is_small() {
        use core::mem::size_of;
        assert!(
            size_of::<Option<BoardSlot>>() <= 160,
            "{}",
            size_of::<Option<BoardSlot>>()
        );
    }
}
