//! The memory a run may use: 80 % of the smaller of the memory available (`MemAvailable` in
//! `/proc/meminfo`) and the address-space limit (`RLIMIT_AS`, when one is set); 8 GiB when
//! neither can be read. The simulation library estimates what a scenario needs
//! ([`spinnbed_sim::scenario::Scenario::memory_estimate`]); the command line, which may look at
//! the machine, decides whether that fits.

use spinnbed_sim::scenario::MemoryEstimate;

/// The budget when nothing can be read.
const FALLBACK: u64 = 8 << 30;

/// Bytes a run may use.
pub fn budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_available(&t));
    budget_of(available, address_space_limit())
}

/// 80 % of the smaller of what is known.
fn budget_of(available: Option<u64>, limit: Option<u64>) -> u64 {
    let bytes = match (available, limit) {
        (Some(a), Some(l)) => a.min(l),
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) => FALLBACK,
    };
    bytes / 5 * 4
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The soft `RLIMIT_AS`, if one is set.
fn address_space_limit() -> Option<u64> {
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::AS).ok()?;
    (soft != rlimit::INFINITY).then_some(soft)
}

/// Refuses an estimate that does not fit the budget (exit code 2).
pub fn check(est: &MemoryEstimate) -> Result<(), crate::Failure> {
    est.check(budget()).map_err(crate::Failure::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_80_percent_of_the_smaller_known_bound() {
        let meminfo = "MemTotal:       16318412 kB\nMemFree:         1022272 kB\nMemAvailable:    4194304 kB\n";
        assert_eq!(mem_available(meminfo), Some(4 << 30));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(budget_of(Some(4 << 30), None), (4u64 << 30) / 5 * 4);
        assert_eq!(budget_of(Some(4 << 30), Some(2 << 30)), (2u64 << 30) / 5 * 4);
        assert_eq!(budget_of(None, Some(1 << 30)), (1u64 << 30) / 5 * 4);
        assert_eq!(budget_of(None, None), (8u64 << 30) / 5 * 4);
    }
}
