//! [`MachineTiming`]: how long one machine's hardware takes — the scenario's
//! `[machine.timing]`, used alike by the emulated machine (power and boot), by fixed-delay
//! hardware (BMP batches) and by the host's BMP controllers (how often and how far apart a
//! batch is tried).

use crate::time::Duration;

/// How long one machine's hardware takes. [`MachineTiming::default`] gives the values on each
/// field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTiming {
    /// A BMP powering boards on and loading their FPGAs (default 5 s).
    pub power_on: Duration,
    /// A BMP powering boards off (default 50 ms: BC&MP switches the supplies off at once,
    /// scamp_timing.md §10.2).
    pub power_off: Duration,
    /// One FPGA register write, e.g. a link STOP bit (default 10 ms).
    pub link_write: Duration,
    /// A board booting: from a complete boot image to SC&MP running (default 3 s).
    pub boot: Duration,
    /// Wait before trying a failed BMP batch again (default 15 s, the reference's).
    pub bmp_retry_delay: Duration,
    /// Attempts per BMP batch before its boards are declared failed (default 2, the
    /// reference's).
    pub bmp_tries: u32,
}

impl Default for MachineTiming {
    fn default() -> MachineTiming {
        MachineTiming {
            power_on: Duration::from_secs(5),
            power_off: Duration::from_millis(50),
            link_write: Duration::from_millis(10),
            boot: Duration::from_secs(3),
            bmp_retry_delay: Duration::from_secs(15),
            bmp_tries: 2,
        }
    }
}
