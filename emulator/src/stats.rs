//! Counters an emulator keeps about the traffic it saw, so that simulations can report what the
//! machine did (how many requests of each kind, how many were dropped and why) and tests can
//! check that a datagram was dropped for the expected reason.

use spinnbed_core::proto::scp::{Command, ReturnCode};
use std::collections::BTreeMap;

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
            + self.dropped_no_tag
    }

    pub(crate) fn count(map: &mut BTreeMap<Command, u64>, c: Command) {
        *map.entry(c).or_insert(0) += 1;
    }
}
