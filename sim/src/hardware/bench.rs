//! A host and a transport stepped together in virtual time, one operation after another,
//! without a world around them: the SCP study's cells, the calibration's predictions and tests
//! power a board, boot it and move data through this.

use super::transport::{Transport, settle};
use spinnbed_core::geometry::FrameId;
use spinnbed_core::host::{
    BootConfig, BootEvent, BootOutcome, Host, HostEvent, Transfer, TransferEvent, TransferReport,
};
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{BatchId, BmpBatch};
use spinnbed_core::time::Instant;
use std::net::Ipv4Addr;

/// A host and a transport (the simulated machine) at virtual time `now`.
pub struct Bench<T> {
    /// The host; replace it to change policy between steps.
    pub host: Host,
    /// The transport.
    pub machine: T,
    /// Virtual time, moved on by [`Bench::run_until`].
    pub now: Instant,
}

impl<T: Transport> Bench<T> {
    /// A bench at time zero.
    pub fn new(host: Host, machine: T) -> Bench<T> {
        Bench {
            host,
            machine,
            now: Instant::ZERO,
        }
    }

    /// Moves datagrams and time until `f` says an event finishes the step (true), or nothing is
    /// left to do (false).
    pub fn run_until(&mut self, mut f: impl FnMut(&HostEvent) -> bool) -> bool {
        loop {
            settle(&mut self.host, &mut self.machine, self.now);
            while let Some(ev) = self.host.poll_event() {
                if f(&ev) {
                    return true;
                }
            }
            let next = [self.host.poll_timeout(), self.machine.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) => self.now = self.now.max(t),
                None => return false,
            }
        }
    }

    /// Powers on `boards` of frame (0, 0) of `machine` through its BMP at `bmp` and waits for
    /// the batch to end; false if it never did.
    pub fn power_on(&mut self, machine: &str, bmp: Ipv4Addr, boards: Vec<u16>) -> bool {
        let batch = BmpBatch {
            id: BatchId(1),
            job: JobId(1),
            machine: machine.into(),
            frame: FrameId { cabinet: 0, frame: 0 },
            bmp,
            power_on: boards,
            power_off: Vec::new(),
            links: Vec::new(),
        };
        self.host.submit_bmp_batch(self.now, batch);
        self.run_until(|e| matches!(e, HostEvent::BatchDone { .. }))
    }

    /// Boots the board at `ip` with `config` and waits; true if it booted.
    pub fn boot(&mut self, ip: Ipv4Addr, config: BootConfig) -> bool {
        if self.host.start_boot(self.now, ip, config).is_err() {
            return false;
        }
        let mut booted = false;
        self.run_until(|e| match e {
            HostEvent::Boot {
                event: BootEvent::Done(o),
                ..
            } => {
                booted = matches!(o, BootOutcome::Booted { .. });
                true
            }
            _ => false,
        });
        booted
    }

    /// Runs `transfer` to its end: its report or why it failed (`None` if it never ended).
    pub fn transfer(&mut self, transfer: Transfer) -> Option<Result<TransferReport, String>> {
        self.host.start_transfer(transfer);
        let mut result = None;
        self.run_until(|e| match e {
            HostEvent::Transfer {
                event: TransferEvent::Done(r),
                ..
            } => {
                result = Some(r.clone());
                true
            }
            _ => false,
        });
        result
    }
}
