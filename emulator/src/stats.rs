//! Counters an emulator keeps about the traffic it saw, so that simulations can report what the
//! machine did (how many requests of each kind, how many were dropped and why) and tests can
//! check that a datagram was dropped for the expected reason.

use spinnbed_core::proto::scp::{Command, ReturnCode};
use std::collections::BTreeMap;
use std::fmt;

/// Traffic counters (see [`crate::Emulator::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to [`crate::Emulator::handle_datagram`].
    pub datagrams_in: u64,
    /// Datagrams produced by [`crate::Emulator::poll_transmit`] (replies and EIEIO).
    pub datagrams_out: u64,
    /// Payload bytes in.
    pub bytes_in: u64,
    /// Payload bytes out.
    pub bytes_out: u64,
    /// Datagrams that could not be parsed at all (bad SDP framing, bad boot packet, bad EIEIO);
    /// dropped.
    pub malformed: u64,
    /// Datagrams to an (IP, port) nobody listens on; dropped.
    pub dropped_unknown_dst: u64,
    /// Datagrams to a silent BMP; dropped.
    pub dropped_bmp_silent: u64,
    /// BMP requests for a board number its frame does not have (nothing answers on the CAN
    /// bus); dropped.
    pub dropped_no_board: u64,
    /// Datagrams to a board that is switched off or still loading its FPGAs; dropped.
    pub dropped_board_off: u64,
    /// Datagrams to a dead board; dropped.
    pub dropped_dead: u64,
    /// SCP datagrams to an unbooted board (only the boot ROM runs); dropped.
    pub dropped_unbooted: u64,
    /// SCP requests other than CMD_VER while SC&MP is still booting; dropped.
    pub dropped_booting: u64,
    /// Reply-wanted requests dropped because all 8 transient IP tags were busy (as SC&MP does).
    pub dropped_tags_busy: u64,
    /// SC&MP requests dropped because all of the board's message buffers were held (as SC&MP
    /// does when `sark_msg_get` fails; [`crate::ScampTiming::msg_buffers`]).
    pub dropped_buffers_full: u64,
    /// BMP requests dropped because its receive buffers were full while it was busy
    /// ([`crate::ScampTiming::bmp_rx_buffers`]).
    pub dropped_bmp_busy: u64,
    /// Reply-wanted BMP requests dropped because all its transient tags were held.
    pub dropped_bmp_tags_busy: u64,
    /// Replies with nowhere to go (the request named an IP tag that is not set).
    pub dropped_no_tag: u64,
    /// Delayed replies dropped because their board was switched off, reset or died meanwhile.
    pub dropped_stale: u64,
    /// Boot packets received by a board's boot ROM (port 54321).
    pub boot_packets: u64,
    /// Boot packets to a board that is not running its boot ROM (booting or booted); ignored.
    pub boot_ignored: u64,
    /// Complete boot images received (each boots one set of boards).
    pub boots: u64,
    /// Boot CONTROL packets that arrived with blocks missing.
    pub boots_incomplete: u64,
    /// SC&MP / SARK requests by command.
    pub scamp_commands: BTreeMap<Command, u64>,
    /// BMP requests by command.
    pub bmp_commands: BTreeMap<Command, u64>,
    /// SCP replies sent, by return code.
    pub return_codes: BTreeMap<ReturnCode, u64>,
    /// EIEIO datagrams streamed to the host through IP tags.
    pub eieio_out: u64,
    /// EIEIO datagrams received through reverse IP tags.
    pub eieio_in: u64,
    /// Datagrams received through reverse IP tags that were not valid EIEIO (still delivered).
    pub reverse_tag_other: u64,
    /// Writes and fills refused with RC_BUF because [`crate::Config::memory_limit`] was reached.
    pub memory_refused: u64,
    /// Boards switched on when the counters were read (a snapshot, not a counter).
    pub boards_powered: u64,
    /// Microseconds the boards' Ethernet-chip SC&MP servers spent serving requests (pushing
    /// forwarded requests over P2P included), summed over boards.
    pub scamp_busy_us: u64,
    /// Microseconds SC&MP requests waited for their board's server, summed over requests.
    pub scamp_wait_us: u64,
    /// Microseconds other chips' monitors spent sending P2P replies back, summed.
    pub p2p_busy_us: u64,
    /// Most SC&MP message buffers held at once on one board.
    pub scamp_held_max: u64,
    /// Microseconds the BMPs spent serving requests, summed over BMPs.
    pub bmp_busy_us: u64,
    /// Microseconds BMP requests waited for their BMP, summed over requests.
    pub bmp_wait_us: u64,
    /// Most requests waiting at once for one BMP.
    pub bmp_waiting_max: u64,
}

impl Stats {
    /// Total datagrams dropped without an answer, for any reason (malformed included).
    pub fn dropped(&self) -> u64 {
        self.malformed
            + self.dropped_unknown_dst
            + self.dropped_bmp_silent
            + self.dropped_no_board
            + self.dropped_board_off
            + self.dropped_dead
            + self.dropped_unbooted
            + self.dropped_booting
            + self.dropped_tags_busy
            + self.dropped_buffers_full
            + self.dropped_bmp_busy
            + self.dropped_bmp_tags_busy
            + self.dropped_no_tag
    }

    /// Counts a request by command. Unknown codes are kept one by one up to
    /// [`MAX_UNKNOWN_CODES`](Self::MAX_UNKNOWN_CODES) of them; after that they share the entry
    /// `Unknown(0xFFFF)`, so a flood of garbage cannot grow the map without bound.
    pub(crate) fn count(map: &mut BTreeMap<Command, u64>, c: Command) {
        let c = match c {
            Command::Unknown(_) if !map.contains_key(&c) => {
                let unknown = map.keys().filter(|k| matches!(k, Command::Unknown(_))).count();
                if unknown >= Self::MAX_UNKNOWN_CODES {
                    Command::Unknown(0xFFFF)
                } else {
                    c
                }
            }
            c => c,
        };
        *map.entry(c).or_insert(0) += 1;
    }

    /// Distinct unknown command codes counted one by one (see [`count`](Self::count)).
    pub const MAX_UNKNOWN_CODES: usize = 16;
}

/// A short human summary: the totals on one line, then only the counters that are not zero
/// (`name=value` pairs, commands and return codes by name).
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} datagrams in ({} B), {} out ({} B), {} dropped",
            self.datagrams_in,
            self.bytes_in,
            self.datagrams_out,
            self.bytes_out,
            self.dropped()
        )?;
        let counters = [
            ("malformed", self.malformed),
            ("unknown_dst", self.dropped_unknown_dst),
            ("bmp_silent", self.dropped_bmp_silent),
            ("no_board", self.dropped_no_board),
            ("board_off", self.dropped_board_off),
            ("dead", self.dropped_dead),
            ("unbooted", self.dropped_unbooted),
            ("booting", self.dropped_booting),
            ("tags_busy", self.dropped_tags_busy),
            ("buffers_full", self.dropped_buffers_full),
            ("bmp_busy", self.dropped_bmp_busy),
            ("bmp_tags_busy", self.dropped_bmp_tags_busy),
            ("no_tag", self.dropped_no_tag),
            ("stale", self.dropped_stale),
        ];
        let mut first = true;
        for (name, n) in counters.iter().filter(|(_, n)| *n > 0) {
            write!(f, "{}{name}={n}", if first { " (" } else { ", " })?;
            first = false;
        }
        if !first {
            write!(f, ")")?;
        }
        if self.boards_powered > 0 {
            write!(f, "; {} board(s) powered", self.boards_powered)?;
        }
        let list = |m: &BTreeMap<Command, u64>| {
            m.iter()
                .map(|(c, n)| format!("{c:?}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !self.bmp_commands.is_empty() {
            write!(f, "\n  BMP commands: {}", list(&self.bmp_commands))?;
        }
        if !self.scamp_commands.is_empty() {
            write!(f, "\n  SC&MP commands: {}", list(&self.scamp_commands))?;
        }
        if !self.return_codes.is_empty() {
            let codes: Vec<String> = self.return_codes.iter().map(|(c, n)| format!("{c:?}={n}")).collect();
            write!(f, "\n  replies: {}", codes.join(" "))?;
        }
        if self.boot_packets > 0 {
            write!(
                f,
                "\n  boot: {} packets, {} ignored, {} images ({} incomplete)",
                self.boot_packets, self.boot_ignored, self.boots, self.boots_incomplete
            )?;
        }
        if self.eieio_out + self.eieio_in + self.reverse_tag_other > 0 {
            write!(
                f,
                "\n  EIEIO: {} streamed out, {} in through reverse tags ({} not EIEIO)",
                self.eieio_out, self.eieio_in, self.reverse_tag_other
            )?;
        }
        if self.memory_refused > 0 {
            write!(f, "\n  memory refused (RC_BUF): {}", self.memory_refused)?;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        if self.scamp_busy_us + self.p2p_busy_us > 0 {
            write!(
                f,
                "\n  SC&MP servers: busy {:.3} ms, P2P replies {:.3} ms, requests waited {:.3} ms in all, at most {} buffers held on a board",
                ms(self.scamp_busy_us),
                ms(self.p2p_busy_us),
                ms(self.scamp_wait_us),
                self.scamp_held_max
            )?;
        }
        if self.bmp_busy_us > 0 {
            write!(
                f,
                "\n  BMP servers: busy {:.3} ms, requests waited {:.3} ms in all, at most {} waiting for a BMP",
                ms(self.bmp_busy_us),
                ms(self.bmp_wait_us),
                self.bmp_waiting_max
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_only_what_happened() {
        let mut s = Stats {
            datagrams_in: 12,
            datagrams_out: 9,
            bytes_in: 300,
            bytes_out: 200,
            malformed: 2,
            dropped_board_off: 1,
            ..Stats::default()
        };
        Stats::count(&mut s.scamp_commands, Command::Ver);
        Stats::count(&mut s.scamp_commands, Command::Ver);
        s.return_codes.insert(ReturnCode::Ok, 9);
        let text = s.to_string();
        assert_eq!(
            text,
            "12 datagrams in (300 B), 9 out (200 B), 3 dropped (malformed=2, board_off=1)\n  \
             SC&MP commands: Ver=2\n  replies: Ok=9"
        );
        assert_eq!(
            Stats::default().to_string(),
            "0 datagrams in (0 B), 0 out (0 B), 0 dropped"
        );
    }

    #[test]
    fn unknown_commands_cannot_grow_the_map_without_bound() {
        let mut map = BTreeMap::new();
        for code in 1000..3000u16 {
            Stats::count(&mut map, Command::from_code(code));
        }
        Stats::count(&mut map, Command::Ver);
        assert!(map.len() <= Stats::MAX_UNKNOWN_CODES + 2, "{}", map.len());
        assert_eq!(map.values().sum::<u64>(), 2001);
        assert_eq!(map[&Command::Ver], 1);
    }
}
