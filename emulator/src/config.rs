//! How the emulated machine behaves where real hardware leaves room: how long power, FPGA loading
//! and booting take, what the firmware calls itself, how much memory the emulator may spend on
//! emulated SDRAM, and how fast a running application streams EIEIO to the host.
//!
//! Every default is either a documented firmware fact (protocols.md §9) or, where nothing is
//! documented (board boot time, FPGA load time), a value consistent with what real clients wait
//! for (both clients sleep 5 s after power-on and 2 s after sending a boot image).

use spinnbed_core::time::Duration;
use spinnbed_core::timing::MachineTiming;

/// Emulator configuration. [`Config::default`] gives the values described on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Power and boot times of every machine without its own entry in `machine_timing`
    /// (default [`MachineTiming::default`]). `power_on`: from a board being switched on to its
    /// FPGAs being loaded and its chips released from reset; a power-on command whose mask holds
    /// board 0 (the BMP's own board) is answered when board 0 has finished, other commands at
    /// once (see [`crate::Emulator`]). `power_off`: the BMP answers a power-off command whose
    /// mask holds board 0 this long after board 0 was switched off; without board 0 at once.
    /// `boot`: from a complete boot image (CONTROL(1) after every block) to SC&MP running with
    /// its P2P address known; until then CMD_VER answers with P2P address 0xFFFF.
    pub timing: MachineTiming,
    /// Transient IP tag timeout code after boot (default 9: 10 ms · 2⁸ = 2.56 s, the SC&MP
    /// default). CMD_IPTAG TTO changes it per board.
    pub tag_timeout_code: u8,
    /// Delay of a CMD_COUNT reply (default 10 ms, as SC&MP waits for the chips of its board).
    pub count_delay: Duration,
    /// Extra delay per P2P hop, each way, for a request the receiving Ethernet chip forwards to
    /// another chip (default 1 µs). Zero answers forwarded requests at once.
    pub hop_delay: Duration,
    /// Build date reported by CMD_VER (arg3), Unix seconds (default 1 700 000 000).
    pub build_date: u32,
    /// SC&MP version string (default "4.0.0"; spinnman insists on 4.x).
    pub scamp_version: String,
    /// BC&MP version string (default "2.1.2"; spinnman accepts major 1 or 2).
    pub bmp_version: String,
    /// First byte of each chip's SDRAM heap (default 0x6024_0000; CMD_ALLOC hands out blocks
    /// above it, sv `sdram_base` reports it).
    pub sdram_heap_base: u32,
    /// End of each chip's SDRAM heap, exclusive (default 0x6780_0000 = `sdram_sys`, the top
    /// 8 MiB being system SDRAM). With the defaults a fresh heap reports 123 469 792 free bytes,
    /// the figure spinnman uses.
    pub sdram_heap_end: u32,
    /// Most bytes of emulated memory (SDRAM, SysRAM, other memory-mapped areas) the emulator
    /// materialises in 4 KiB pages over all chips (default 1 GiB). A write that would need more
    /// is refused with RC_BUF and counted in [`crate::Stats::memory_refused`]. Fills of whole
    /// pages and reads of unwritten memory cost nothing.
    pub memory_limit: usize,
    /// EIEIO live-output streaming of running applications.
    pub eieio: EieioConfig,
    /// Power and boot times of particular machines, by name, in place of `timing` (default:
    /// none).
    pub machine_timing: std::collections::BTreeMap<String, MachineTiming>,
}

impl Config {
    /// The power and boot times of machine `name`.
    pub fn timing_of(&self, name: &str) -> MachineTiming {
        self.machine_timing.get(name).copied().unwrap_or(self.timing)
    }
}

/// How a booted board with a running application streams EIEIO data to the host.
///
/// A board streams while at least one of its application cores is RUNNING and one of its user
/// IP tags 0–7 is set (not reverse); it sends through the lowest such tag, from its Ethernet
/// IP, port 17893 (with the STRIP flag the datagram is the bare EIEIO message, as live output is
/// normally configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EieioConfig {
    /// Datagrams per second per streaming board (default 10; 0 disables streaming).
    pub rate: u32,
    /// 32-bit keys per datagram (default 63, the most a 256-byte KEY_32_BIT message holds;
    /// clamped to 1..=63).
    pub keys_per_packet: u8,
}

impl Default for EieioConfig {
    fn default() -> EieioConfig {
        EieioConfig {
            rate: 10,
            keys_per_packet: 63,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            timing: MachineTiming::default(),
            tag_timeout_code: 9,
            count_delay: Duration::from_millis(10),
            hop_delay: Duration::from_micros(1),
            build_date: 1_700_000_000,
            scamp_version: "4.0.0".to_string(),
            bmp_version: "2.1.2".to_string(),
            sdram_heap_base: 0x6024_0000,
            sdram_heap_end: 0x6780_0000,
            memory_limit: 1 << 30,
            eieio: EieioConfig::default(),
            machine_timing: std::collections::BTreeMap::new(),
        }
    }
}

/// Lifetime of an IP tag with timeout code `code`: 10 ms · 2^(code − 1), or `None` (no timeout)
/// for code 0. Codes above 15 are treated as 15.
pub fn tag_lifetime(code: u8) -> Option<Duration> {
    if code == 0 {
        None
    } else {
        Some(Duration::from_millis(10u64 << (code.min(15) - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lifetimes() {
        assert_eq!(tag_lifetime(9), Some(Duration::from_millis(2560)));
        assert_eq!(tag_lifetime(1), Some(Duration::from_millis(10)));
        assert_eq!(tag_lifetime(0), None);
        assert_eq!(tag_lifetime(200), tag_lifetime(15));
    }
}
