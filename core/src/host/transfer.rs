//! Memory transfers: write or read N bytes at an address of a chip through an SCP client.
//!
//! The data moves in ≤ 256-byte CMD_WRITE / CMD_READ chunks, each with the access type both
//! real clients choose for it (word if address and length are multiples of 4, halfword if
//! even, else byte: [`read_chunks`] / [`write_chunks`]). The transfer hands out up to
//! `max_in_flight` chunk requests at a time (16 by default: twice the largest window), so the
//! client's policy, not the transfer, decides how many are on the wire.
//!
//! The outcome is a [`TransferReport`] (bytes, chunks, start and end, and for reads the data)
//! or the first chunk's failure.

use super::{MAX_WINDOW, OpRequest, Operation, Outcome, RequestOptions, ScpRequest};
use crate::proto::scp::{ReadChunks, Request, read_chunks};
use crate::proto::sdp;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::SocketAddrV4;

#[cfg(doc)]
use crate::proto::scp::write_chunks;

/// What a finished transfer moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// First address.
    pub addr: u32,
    /// Bytes moved.
    pub bytes: usize,
    /// Chunks (SCP requests).
    pub chunks: usize,
    /// When the transfer started.
    pub started: Instant,
    /// When the last chunk was acknowledged.
    pub finished: Instant,
    /// The bytes read (empty for writes).
    pub data: Vec<u8>,
}

impl TransferReport {
    /// Time from start to the last acknowledgement.
    pub fn duration(&self) -> Duration {
        self.finished.saturating_duration_since(self.started)
    }

    /// Payload bytes per second (0 for an instantaneous transfer).
    pub fn throughput_bps(&self) -> f64 {
        let s = self.duration().as_secs_f64();
        if s > 0.0 { self.bytes as f64 / s } else { 0.0 }
    }
}

/// What a transfer reports (once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// The transfer ended.
    Done(Result<TransferReport, String>),
}

/// A chunked SDRAM write or read. See the module documentation.
#[derive(Debug, Clone)]
pub struct Transfer {
    remote: SocketAddrV4,
    dest: sdp::Address,
    addr: u32,
    len: usize,
    write: Option<Vec<u8>>,
    chunks: ReadChunks,
    total: usize,
    issued: usize,
    acked: usize,
    max_in_flight: usize,
    options: RequestOptions,
    buffer: Vec<u8>,
    started: Instant,
    done: bool,
    requests: VecDeque<OpRequest>,
    events: VecDeque<TransferEvent>,
}

impl Transfer {
    fn new(
        now: Instant,
        remote: SocketAddrV4,
        dest: sdp::Address,
        addr: u32,
        len: usize,
        write: Option<Vec<u8>>,
    ) -> Self {
        let chunks = read_chunks(addr, len);
        let total = chunks.len();
        let mut t = Transfer {
            remote,
            dest,
            addr,
            len,
            buffer: if write.is_none() { vec![0; len] } else { Vec::new() },
            write,
            chunks,
            total,
            issued: 0,
            acked: 0,
            max_in_flight: 2 * MAX_WINDOW,
            options: RequestOptions::DEFAULT,
            started: now,
            done: false,
            requests: VecDeque::new(),
            events: VecDeque::new(),
        };
        if total == 0 {
            t.finish(now);
        }
        t
    }

    /// Writes `data` at `addr` on `dest` (a chip's core 0, normally) through `remote` (the
    /// board's Ethernet chip, port 17893).
    pub fn write(now: Instant, remote: SocketAddrV4, dest: sdp::Address, addr: u32, data: Vec<u8>) -> Transfer {
        let len = data.len();
        Transfer::new(now, remote, dest, addr, len, Some(data))
    }

    /// Reads `len` bytes at `addr` on `dest` through `remote`.
    pub fn read(now: Instant, remote: SocketAddrV4, dest: sdp::Address, addr: u32, len: usize) -> Transfer {
        Transfer::new(now, remote, dest, addr, len, None)
    }

    /// Sets how many chunk requests may be handed out at once (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Transfer {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets the chunk requests' options.
    pub fn with_options(mut self, options: RequestOptions) -> Transfer {
        self.options = options;
        self
    }

    /// The endpoint the requests go to.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// Bytes to move.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-byte transfer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the transfer was made.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Chunks acknowledged so far.
    pub fn chunks_done(&self) -> usize {
        self.acked
    }

    /// True once the outcome has been reported.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The outcome, once.
    pub fn poll_event(&mut self) -> Option<TransferEvent> {
        self.events.pop_front()
    }

    fn offset_of(&self, index: usize) -> usize {
        index.saturating_mul(crate::proto::scp::MAX_DATA_LEN)
    }

    fn fill(&mut self) {
        while !self.done && self.issued - self.acked < self.max_in_flight {
            let Some(chunk) = self.chunks.next() else { break };
            let index = self.issued;
            let offset = self.offset_of(index);
            let request = match &self.write {
                Some(data) => {
                    let bytes = data.get(offset..offset + chunk.len as usize).unwrap_or(&[]);
                    ScpRequest::new(
                        self.dest,
                        &Request::Write {
                            addr: chunk.addr,
                            access: chunk.access,
                            data: bytes,
                        },
                    )
                }
                None => ScpRequest::new(self.dest, &chunk.request()),
            };
            let Ok(request) = request else { break };
            self.issued += 1;
            self.requests.push_back(OpRequest {
                remote: self.remote,
                request: request.with_options(self.options),
                token: index as u32,
            });
        }
    }

    fn finish(&mut self, now: Instant) {
        self.done = true;
        self.events.push_back(TransferEvent::Done(Ok(TransferReport {
            addr: self.addr,
            bytes: self.len,
            chunks: self.total,
            started: self.started,
            finished: now,
            data: core::mem::take(&mut self.buffer),
        })));
    }

    fn fail(&mut self, reason: String) {
        self.done = true;
        self.requests.clear();
        self.events.push_back(TransferEvent::Done(Err(reason)));
    }
}

impl Operation for Transfer {
    fn poll_request(&mut self) -> Option<OpRequest> {
        if self.requests.is_empty() {
            self.fill();
        }
        self.requests.pop_front()
    }

    fn handle_outcome(&mut self, now: Instant, token: u32, outcome: Outcome) {
        if self.done {
            return;
        }
        let index = token as usize;
        let offset = self.offset_of(index);
        let chunk_len = self.len.saturating_sub(offset).min(crate::proto::scp::MAX_DATA_LEN);
        let chunk_addr = self.addr.wrapping_add(offset as u32);
        match outcome {
            Err(reason) => self.fail(format!("chunk {index} at {chunk_addr:#010x}: {reason}")),
            Ok(reply) => {
                if self.write.is_none() {
                    let body = reply.body();
                    match self.buffer.get_mut(offset..offset + chunk_len) {
                        Some(out) if body.len() == chunk_len => out.copy_from_slice(body),
                        _ => {
                            return self.fail(format!(
                                "chunk {index} at {chunk_addr:#010x}: {} bytes read, {chunk_len} expected",
                                body.len()
                            ));
                        }
                    }
                }
                self.acked += 1;
                if self.acked >= self.total {
                    self.finish(now);
                }
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::policy::Policy;
    use crate::host::runner::{Host, HostConfig, HostEvent};
    use crate::host::testkit::{Net, addr, board_ip, run_until_idle};
    use crate::proto::scp::{AccessType, RequestMessage, write_chunks};

    fn result(h: &mut Host) -> Result<TransferReport, String> {
        let mut out = None;
        while let Some(e) = h.poll_event() {
            if let HostEvent::Transfer {
                event: TransferEvent::Done(r),
                ..
            } = e
            {
                out = Some(r);
            }
        }
        out.expect("a transfer result")
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 256) as u8).collect()
    }

    #[test]
    fn write_then_read_100_kib_with_each_policy() {
        for policy in [Policy::spinnman(), Policy::rig(), Policy::adaptive()] {
            let mut h = Host::new(HostConfig::for_policy(policy));
            let mut net = Net::new()
                .with_delay(Duration::from_micros(340))
                .drop_requests([17, 200]);
            let data = pattern(100 * 1024);
            let remote = addr(board_ip(0), 17893);
            let dest = sdp::Address::scp(1, 2, 0);
            h.start_transfer(Transfer::write(Instant::ZERO, remote, dest, 0x6000_0000, data.clone()));
            run_until_idle(&mut h, &mut net, Instant::from_secs(600));
            let w = result(&mut h).unwrap();
            assert_eq!((w.bytes, w.chunks), (102_400, 400), "{}", policy.name());
            assert!(w.data.is_empty());
            assert!(net.max_outstanding() <= policy.max_window());
            let stored: Vec<u8> = (0..data.len() as u32).map(|i| net.memory[&(0x6000_0000 + i)]).collect();
            assert_eq!(stored, data, "{}", policy.name());

            let start = net.clock;
            h.start_transfer(Transfer::read(start, remote, dest, 0x6000_0000, data.len()));
            run_until_idle(&mut h, &mut net, Instant::from_secs(1200));
            let r = result(&mut h).unwrap();
            assert_eq!(r.data, data, "{}", policy.name());
            assert_eq!(r.started, start);
            let rate = r.throughput_bps();
            match policy {
                // Window 8 at 0.34 ms: ≥ 90 % of 8 × 256 B / RTT.
                Policy::Adaptive(_) | Policy::Spinnman(_) => {
                    assert!(rate >= 0.9 * 8.0 * 256.0 / 340e-6, "{} {rate}", policy.name())
                }
                Policy::Rig(_) => assert!(rate <= 256.0 / 340e-6, "{rate}"),
            }
            assert!(h.is_idle());
        }
    }

    #[test]
    fn chunks_use_the_clients_access_types() {
        let mut h = Host::new(HostConfig::for_policy(Policy::adaptive()));
        let mut net = Net::new();
        let data = pattern(600);
        let remote = addr(board_ip(0), 17893);
        h.start_transfer(Transfer::write(
            Instant::ZERO,
            remote,
            sdp::Address::scp(0, 0, 0),
            0x7000_0001,
            data.clone(),
        ));
        run_until_idle(&mut h, &mut net, Instant::from_secs(10));
        assert_eq!(result(&mut h).unwrap().chunks, 3);
        let sent = net.sent_scp();
        let expect: Vec<(u32, AccessType, usize)> = write_chunks(0x7000_0001, &data)
            .map(|c| (c.addr, c.access, c.data.len()))
            .collect();
        let got: Vec<(u32, AccessType, usize)> = sent
            .iter()
            .map(|s| match RequestMessage::parse_udp(&s.bytes).unwrap().request {
                Request::Write { addr, access, data } => (addr, access, data.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, expect);
        assert_eq!(got[0].1, AccessType::Byte);
    }

    #[test]
    fn failures_and_empty_transfers() {
        let mut h = Host::new(HostConfig::for_policy(Policy::rig()));
        let mut net = Net::new().silent();
        let remote = addr(board_ip(5), 17893);
        h.start_transfer(Transfer::read(
            Instant::ZERO,
            remote,
            sdp::Address::scp(0, 0, 0),
            0x6000_0000,
            1000,
        ));
        run_until_idle(&mut h, &mut net, Instant::from_secs(100));
        assert_eq!(
            result(&mut h).unwrap_err(),
            "chunk 0 at 0x60000000: timed out after 5 attempts"
        );
        assert!(h.is_idle(), "the other chunks were cancelled");

        let mut t = Transfer::write(Instant::from_secs(3), remote, sdp::Address::scp(0, 0, 0), 0, Vec::new());
        assert!(t.is_empty() && t.is_done());
        assert!(t.poll_request().is_none());
        match t.poll_event() {
            Some(TransferEvent::Done(Ok(r))) => assert_eq!((r.bytes, r.duration()), (0, Duration::ZERO)),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod study {
    //! A small version of the policy study: 256 KiB writes at several loss rates and RTTs.
    use super::*;
    use crate::host::policy::Policy;
    use crate::host::runner::{Host, HostConfig, HostEvent};
    use crate::host::testkit::{Net, addr, board_ip, run_until_idle};

    /// Mean throughput (B/s) over `seeds` runs, and failures.
    fn throughput(policy: Policy, loss: f64, rtt: Duration, seeds: u64) -> (f64, usize) {
        throughput_with(policy, loss, rtt, Duration::ZERO, seeds)
    }

    fn throughput_with(policy: Policy, loss: f64, rtt: Duration, jitter: Duration, seeds: u64) -> (f64, usize) {
        let mut total = 0.0;
        let mut failed = 0;
        for seed in 0..seeds {
            let mut h = Host::new(HostConfig::for_policy(policy));
            let mut net = Net::new()
                .with_delay(rtt)
                .with_loss(loss, seed + 1)
                .with_jitter(jitter, seed + 1);
            let data = vec![0x5Au8; 256 * 1024];
            let remote = addr(board_ip(0), 17893);
            h.start_transfer(Transfer::write(
                Instant::ZERO,
                remote,
                sdp::Address::scp(0, 0, 0),
                0x6000_0000,
                data,
            ));
            run_until_idle(&mut h, &mut net, Instant::from_secs(100_000));
            if std::env::var("HOST_STUDY_DEBUG").is_ok() {
                let st = h.stats().scp;
                eprintln!(
                    "  {} seed {seed}: tx {} fast {} timeouts {} spurious {} reductions {}",
                    policy.name(),
                    st.transmissions,
                    st.fast_resends,
                    st.timeouts,
                    st.spurious_resends,
                    st.window_reductions
                );
            }
            while let Some(e) = h.poll_event() {
                if let HostEvent::Transfer {
                    event: TransferEvent::Done(r),
                    ..
                } = e
                {
                    match r {
                        Ok(r) => total += r.throughput_bps(),
                        Err(_) => failed += 1,
                    }
                }
            }
        }
        (total / seeds as f64, failed)
    }

    #[test]
    fn adaptive_beats_both_references() {
        for rtt_us in [340, 5_000] {
            let rtt = Duration::from_micros(rtt_us);
            let ideal = 8.0 * 256.0 / rtt.as_secs_f64();
            for loss in [0.0, 0.01, 0.05, 0.2] {
                let (a, af) = throughput(Policy::adaptive(), loss, rtt, 3);
                let (s, _) = throughput(Policy::spinnman(), loss, rtt, 3);
                let (r, _) = throughput(Policy::rig(), loss, rtt, 3);
                eprintln!(
                    "rtt {rtt_us} us loss {loss}: adaptive {:.0} kB/s, spinnman {:.0}, rig {:.0} (ideal {:.0})",
                    a / 1e3,
                    s / 1e3,
                    r / 1e3,
                    ideal / 1e3
                );
                assert_eq!(af, 0);
                assert!(a >= s && a >= r, "rtt {rtt_us} loss {loss}: {a} vs {s} / {r}");
                if loss == 0.0 {
                    assert!(a >= 0.9 * ideal, "{a} vs {ideal}");
                }
                if loss >= 0.05 {
                    assert!(a >= 2.0 * s, "rtt {rtt_us} loss {loss}: {a} vs spinnman {s}");
                }
            }
        }
    }

    #[test]
    fn adaptive_survives_reordering() {
        let rtt = Duration::from_micros(340);
        for jitter_us in [100, 340, 2_000] {
            for loss in [0.0, 0.05] {
                let jitter = Duration::from_micros(jitter_us);
                let (a, af) = throughput_with(Policy::adaptive(), loss, rtt, jitter, 3);
                let (s, _) = throughput_with(Policy::spinnman(), loss, rtt, jitter, 3);
                let (r, _) = throughput_with(Policy::rig(), loss, rtt, jitter, 3);
                eprintln!(
                    "jitter {jitter_us} us loss {loss}: adaptive {:.0} kB/s, spinnman {:.0}, rig {:.0}",
                    a / 1e3,
                    s / 1e3,
                    r / 1e3
                );
                assert_eq!(af, 0);
                assert!(a >= s && a >= r, "jitter {jitter_us} loss {loss}: {a} vs {s} / {r}");
            }
        }
    }
}
