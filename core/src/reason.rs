//! Why jobs end and why BMP work fails, as values: the scheduler, the service, the host side
//! and the drivers pass these around, and their `Display` gives the reference server's exact
//! words (what spalloc clients read back from `get_job_state`).

use core::fmt;
use std::net::Ipv4Addr;

/// Why a BMP batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BmpFailure {
    /// The BMP did not carry the batch out in any of its attempts: "Requests failed on BMP
    /// 10.0.0.0".
    RequestsFailed {
        /// The BMP.
        bmp: Ipv4Addr,
    },
}

impl fmt::Display for BmpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BmpFailure::RequestsFailed { bmp } => write!(f, "Requests failed on BMP {bmp}"),
        }
    }
}

/// Why a job was destroyed (or, while still queued, cancelled).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DestroyReason {
    /// No machine could ever run the job: "No suitable machines available."
    NoSuitableMachine,
    /// Its keepalive lapsed: "Job timed out."
    TimedOut,
    /// Its machine was removed or replaced: "Machine removed."
    MachineRemoved,
    /// Powering or configuring its boards failed: "Machine configuration failed. Error: …".
    ConfigurationFailed(BmpFailure),
    /// Whoever destroyed it said why (a client's `destroy_job` reason), or said nothing.
    Requested(Option<String>),
    /// A client's `destroy_job` gave a reason that is not text (a number, a list, …). The
    /// reference keeps the value itself and gives it back as it came (a number stays a
    /// number); where it puts the reason into words ("Cancelled: 42") it uses Python's `str()`.
    RequestedValue {
        /// The value, as JSON.
        json: String,
        /// The value in words: Python's `str()` of it.
        text: String,
    },
}

impl fmt::Display for DestroyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestroyReason::NoSuitableMachine => f.write_str("No suitable machines available."),
            DestroyReason::TimedOut => f.write_str("Job timed out."),
            DestroyReason::MachineRemoved => f.write_str("Machine removed."),
            DestroyReason::ConfigurationFailed(e) => write!(f, "Machine configuration failed. Error: {e}"),
            DestroyReason::Requested(Some(text)) => f.write_str(text),
            DestroyReason::Requested(None) => Ok(()),
            DestroyReason::RequestedValue { text, .. } => f.write_str(text),
        }
    }
}

impl DestroyReason {
    /// A reason given in words.
    pub fn requested(text: impl Into<String>) -> DestroyReason {
        DestroyReason::Requested(Some(text.into()))
    }
}

/// How a job ended: why, and whether it was still queued — the reference then reports
/// "Cancelled: " and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct JobEnd {
    /// Why.
    pub reason: DestroyReason,
    /// It had not been allocated.
    pub queued: bool,
}

impl fmt::Display for JobEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.queued {
            f.write_str("Cancelled: ")?;
        }
        self.reason.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_reference_writes_them() {
        let bmp = BmpFailure::RequestsFailed {
            bmp: Ipv4Addr::new(10, 0, 0, 0),
        };
        let cases = [
            (
                DestroyReason::NoSuitableMachine,
                false,
                "No suitable machines available.",
            ),
            (
                DestroyReason::NoSuitableMachine,
                true,
                "Cancelled: No suitable machines available.",
            ),
            (DestroyReason::TimedOut, false, "Job timed out."),
            (DestroyReason::TimedOut, true, "Cancelled: Job timed out."),
            (DestroyReason::MachineRemoved, false, "Machine removed."),
            (
                DestroyReason::ConfigurationFailed(bmp),
                false,
                "Machine configuration failed. Error: Requests failed on BMP 10.0.0.0",
            ),
            (DestroyReason::requested("done"), false, "done"),
            (DestroyReason::Requested(None), true, "Cancelled: "),
            (
                DestroyReason::RequestedValue {
                    json: "[1, \"a\"]".into(),
                    text: "[1, 'a']".into(),
                },
                true,
                "Cancelled: [1, 'a']",
            ),
        ];
        for (reason, queued, text) in cases {
            assert_eq!(JobEnd { reason, queued }.to_string(), text);
        }
    }
}
