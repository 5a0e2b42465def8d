//! The row of every CSV file a run writes, and how they are written and read.
//!
//! Times are [`Secs`]: seconds with at most three decimals (`12.5`, `30`, `0.007`), exact to
//! the millisecond. Absent values (a job never started) are empty fields.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A time or duration as output files write it: seconds with at most three decimals, from a
/// whole number of microseconds (rounded to the nearest millisecond, half up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Secs(pub u64);

impl Secs {
    /// From microseconds.
    pub fn from_micros(us: u64) -> Secs {
        Secs(us)
    }

    /// Microseconds.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Seconds.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.saturating_add(500) / 1000;
        let (whole, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:03}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Secs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses non-negative decimal seconds exactly (at most six decimals), in one pass.
fn parse_secs(text: &str) -> Option<u64> {
    let b = text.trim().as_bytes();
    let mut i = 0;
    let mut whole: u64 = 0;
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        whole = whole.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac: u64 = 0;
    let mut places = 0;
    if i < b.len() {
        if b[i] != b'.' {
            return None;
        }
        i += 1;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if places == 6 {
                return None;
            }
            frac = frac * 10 + u64::from(d - b'0');
            places += 1;
            i += 1;
        }
        if i != b.len() {
            return None;
        }
    }
    whole.checked_mul(1_000_000)?.checked_add(frac * 10u64.pow(6 - places))
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secs, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("non-negative seconds with at most six decimals")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secs, E> {
                parse_secs(v)
                    .map(Secs)
                    .ok_or_else(|| E::custom(format!("{v:?} is not a time in seconds")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secs, E> {
                v.checked_mul(1_000_000)
                    .map(Secs)
                    .ok_or_else(|| E::custom("time too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Secs, E> {
                if (0.0..1.8e13).contains(&v) {
                    Ok(Secs((v * 1e6).round() as u64))
                } else {
                    Err(E::custom(format!("{v} is not a time in seconds")))
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// A yes/no column written `1` or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bit(pub bool);

impl Serialize for Bit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(self.0))
    }
}

impl<'de> Deserialize<'de> for Bit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bit, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim() {
            "1" | "true" => Ok(Bit(true)),
            "0" | "false" => Ok(Bit(false)),
            other => Err(de::Error::custom(format!("{other:?} is not 0 or 1"))),
        }
    }
}

/// A CSV row type and its columns, in order.
pub trait Row: Serialize + DeserializeOwned {
    /// The header line's column names.
    const COLUMNS: &'static [&'static str];
}

/// One row of `jobs.csv`. Its text columns are `String`s, or `&str`s borrowed from the CSV
/// record when read (`JobRow<&str>`), which spares a reader of many rows their allocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRow<S = String> {
    /// The workload's job id.
    pub id: u64,
    /// Owner.
    pub owner: S,
    /// Size class.
    pub class: S,
    /// What it asked for (`board`, `boards(n,ratio)`, `rect(wxh)`, `board(x,y,z)`).
    pub request: S,
    /// The machine it ran on (empty if none).
    pub machine: S,
    /// Submission.
    pub submit_s: Secs,
    /// Allocation.
    pub start_s: Option<Secs>,
    /// Boards powered and configured.
    pub ready_s: Option<Secs>,
    /// Destruction.
    pub end_s: Option<Secs>,
    /// Start − submit.
    pub wait_s: Option<Secs>,
    /// Boards held.
    pub boards: u64,
    /// Triads touched.
    pub triads: u64,
    /// `completed`, `cancelled`, `timed_out`, `failed`, `never_started` or `unfinished`.
    pub outcome: S,
    /// Why it ended, in the reference's words.
    pub reason: S,
}

impl Row for JobRow {
    const COLUMNS: &'static [&'static str] = &[
        "id", "owner", "class", "request", "machine", "submit_s", "start_s", "ready_s", "end_s", "wait_s", "boards",
        "triads", "outcome", "reason",
    ];
}

/// One row of `timeline.csv`: the machine at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// When.
    pub t_s: Secs,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs holding boards.
    pub running: u64,
    /// Boards allocated.
    pub allocated_boards: u64,
    /// Boards powered.
    pub powered_boards: u64,
    /// Live boards neither allocated nor powered.
    pub idle_boards: u64,
    /// Dead boards.
    pub dead_boards: u64,
}

impl Row for TimelineRow {
    const COLUMNS: &'static [&'static str] = &[
        "t_s",
        "queued",
        "running",
        "allocated_boards",
        "powered_boards",
        "idle_boards",
        "dead_boards",
    ];
}

/// One row of `boards.csv`: a board's place and use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    /// Machine name.
    pub machine: String,
    /// Triad x.
    pub x: u16,
    /// Triad y.
    pub y: u16,
    /// Board within the triad (0–2).
    pub z: u8,
    /// Physical cabinet (empty if the board has no location).
    pub cabinet: Option<u16>,
    /// Physical frame.
    pub frame: Option<u16>,
    /// Physical board.
    pub board: Option<u16>,
    /// Dead.
    pub dead: Bit,
    /// Time allocated.
    pub allocated_s: Secs,
    /// Time powered.
    pub powered_s: Secs,
    /// Dead links leaving the board, `;`-separated names (`east;north`).
    pub dead_links: String,
}

impl Row for BoardRow {
    const COLUMNS: &'static [&'static str] = &[
        "machine",
        "x",
        "y",
        "z",
        "cabinet",
        "frame",
        "board",
        "dead",
        "allocated_s",
        "powered_s",
        "dead_links",
    ];
}

/// One row of `scp.csv`: a sample period's SCP traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScpRow {
    /// End of the period.
    pub t_s: Secs,
    /// Requests submitted.
    pub requests: u64,
    /// Resends.
    pub retries: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Requests that failed.
    pub failures: u64,
    /// User data moved.
    pub bytes: u64,
    /// User data rate over the period, Mbit/s (3 decimals).
    pub goodput_mbps: f64,
}

impl Row for ScpRow {
    const COLUMNS: &'static [&'static str] = &[
        "t_s",
        "requests",
        "retries",
        "timeouts",
        "failures",
        "bytes",
        "goodput_mbps",
    ];
}

/// One row of `scp_jobs.csv`: one job's SCP traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScpJobRow {
    /// The workload's job id.
    pub id: u64,
    /// Requests.
    pub requests: u64,
    /// Resends.
    pub retries: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Requests that failed.
    pub failures: u64,
    /// SCP bytes on the wire.
    pub bytes: u64,
    /// User data moved.
    pub data_bytes: u64,
    /// Time in the user's transfers.
    pub transfer_s: Secs,
    /// The transfers' goodput, Mbit/s (3 decimals).
    pub goodput_mbps: f64,
}

impl Row for ScpJobRow {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "requests",
        "retries",
        "timeouts",
        "failures",
        "bytes",
        "data_bytes",
        "transfer_s",
        "goodput_mbps",
    ];
}

/// One row of `live.csv`: one streaming job's live output (runs with `[host.live_output]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRow {
    /// The workload's job id.
    pub id: u64,
    /// The machine it ran on.
    pub machine: String,
    /// The board that streamed (the job's root board): triad x.
    pub x: u16,
    /// Triad y.
    pub y: u16,
    /// Board within the triad.
    pub z: u8,
    /// When the application was started (empty if it never was).
    pub started_s: Option<Secs>,
    /// When it was stopped (empty if it was not: the job ended under its user).
    pub stopped_s: Option<Secs>,
    /// Events the board sent (empty where that is not known: real hardware).
    pub sent: Option<u64>,
    /// Distinct events the host's listener received.
    pub delivered: u64,
    /// Events lost: sent − delivered where `sent` is known, else `detected`.
    pub dropped: u64,
    /// Events the listener found missing from gaps in the stream's counter (a loss at the very
    /// end of a stream leaves no gap).
    pub detected: u64,
    /// Events received again (duplicated datagrams).
    pub duplicates: u64,
    /// Datagrams the listener received from the board.
    pub datagrams: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// Median latency, board send to host arrival, ms (empty if not measured).
    pub latency_p50_ms: Option<f64>,
    /// 99th-percentile latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// Largest latency, ms.
    pub latency_max_ms: Option<f64>,
    /// Starting or stopping the stream failed.
    pub failed: Bit,
}

impl Row for LiveRow {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "machine",
        "x",
        "y",
        "z",
        "started_s",
        "stopped_s",
        "sent",
        "delivered",
        "dropped",
        "detected",
        "duplicates",
        "datagrams",
        "bytes",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
        "failed",
    ];
}

/// One row of the SCP windowing study's `scp.csv`: one cell of the grid. Files written before
/// the study had network conditions lack `network`, `goodput_sd_mbps`, `scamp_drops`,
/// `paced_ms` and `failed`; they read as empty and zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowingRow {
    /// Network condition (`[[study.network]]` name).
    #[serde(default)]
    pub network: String,
    /// SCP policy.
    pub policy: String,
    /// `read` or `write`.
    pub op: String,
    /// Loss probability.
    pub loss: f64,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
    /// Mean goodput, Mbit/s.
    pub goodput_mbps: f64,
    /// Standard deviation of the seeds' goodputs, Mbit/s.
    #[serde(default)]
    pub goodput_sd_mbps: f64,
    /// What a window of 8 could reach, Mbit/s.
    pub bound_mbps: f64,
    /// Mean resends per transfer.
    pub retries: f64,
    /// Mean timeouts per transfer.
    pub timeouts: f64,
    /// Mean requests SC&MP dropped per transfer (transient tags or buffers full).
    #[serde(default)]
    pub scamp_drops: f64,
    /// Mean time transmissions waited for a token bucket per transfer, ms.
    #[serde(default)]
    pub paced_ms: f64,
    /// Transfers that failed.
    #[serde(default)]
    pub failed: u32,
}

impl Row for WindowingRow {
    const COLUMNS: &'static [&'static str] = &[
        "network",
        "policy",
        "op",
        "loss",
        "rtt_ms",
        "goodput_mbps",
        "goodput_sd_mbps",
        "bound_mbps",
        "retries",
        "timeouts",
        "scamp_drops",
        "paced_ms",
        "failed",
    ];
}

/// Writes rows as CSV: the header, then one line per row.
pub fn to_csv<R: Row>(rows: impl IntoIterator<Item = R>) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(R::COLUMNS)?;
    for r in rows {
        w.serialize(r)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of<R: Row>(row: R) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        text.lines().next().unwrap().to_string()
    }

    /// Each row type's declared columns are its fields, in order.
    #[test]
    fn columns_are_the_fields() {
        let s = Secs(1);
        let cases = [
            (
                header_of(JobRow {
                    id: 1,
                    owner: String::new(),
                    class: String::new(),
                    request: String::new(),
                    machine: String::new(),
                    submit_s: s,
                    start_s: None,
                    ready_s: None,
                    end_s: None,
                    wait_s: None,
                    boards: 0,
                    triads: 0,
                    outcome: String::new(),
                    reason: String::new(),
                }),
                JobRow::COLUMNS,
            ),
            (
                header_of(TimelineRow {
                    t_s: s,
                    queued: 0,
                    running: 0,
                    allocated_boards: 0,
                    powered_boards: 0,
                    idle_boards: 0,
                    dead_boards: 0,
                }),
                TimelineRow::COLUMNS,
            ),
            (
                header_of(BoardRow {
                    machine: String::new(),
                    x: 0,
                    y: 0,
                    z: 0,
                    cabinet: None,
                    frame: None,
                    board: None,
                    dead: Bit(false),
                    allocated_s: s,
                    powered_s: s,
                    dead_links: String::new(),
                }),
                BoardRow::COLUMNS,
            ),
            (
                header_of(ScpRow {
                    t_s: s,
                    requests: 0,
                    retries: 0,
                    timeouts: 0,
                    failures: 0,
                    bytes: 0,
                    goodput_mbps: 0.0,
                }),
                ScpRow::COLUMNS,
            ),
            (
                header_of(ScpJobRow {
                    id: 0,
                    requests: 0,
                    retries: 0,
                    timeouts: 0,
                    failures: 0,
                    bytes: 0,
                    data_bytes: 0,
                    transfer_s: s,
                    goodput_mbps: 0.0,
                }),
                ScpJobRow::COLUMNS,
            ),
            (
                header_of(LiveRow {
                    id: 0,
                    machine: String::new(),
                    x: 0,
                    y: 0,
                    z: 0,
                    started_s: None,
                    stopped_s: None,
                    sent: None,
                    delivered: 0,
                    dropped: 0,
                    detected: 0,
                    duplicates: 0,
                    datagrams: 0,
                    bytes: 0,
                    latency_p50_ms: None,
                    latency_p99_ms: None,
                    latency_max_ms: None,
                    failed: Bit(false),
                }),
                LiveRow::COLUMNS,
            ),
            (
                header_of(WindowingRow {
                    network: String::new(),
                    policy: String::new(),
                    op: String::new(),
                    loss: 0.0,
                    rtt_ms: 0.0,
                    goodput_mbps: 0.0,
                    goodput_sd_mbps: 0.0,
                    bound_mbps: 0.0,
                    retries: 0.0,
                    timeouts: 0.0,
                    scamp_drops: 0.0,
                    paced_ms: 0.0,
                    failed: 0,
                }),
                WindowingRow::COLUMNS,
            ),
        ];
        for (header, columns) in cases {
            assert_eq!(header, columns.join(","));
        }
    }

    #[test]
    fn seconds_are_written_with_at_most_three_decimals_and_read_back() {
        for (us, text) in [
            (12_500_000, "12.5"),
            (30_000_000, "30"),
            (7_000, "0.007"),
            (1_499, "0.001"),
            (1_500, "0.002"),
            (0, "0"),
        ] {
            assert_eq!(Secs(us).to_string(), text);
        }
        for (text, us) in [("12.5", 12_500_000), ("30", 30_000_000), ("0.000001", 1)] {
            assert_eq!(parse_secs(text), Some(us));
        }
        for bad in ["", "-1", "1e3", "1.2.3", "x", "1.1234567", "99999999999999999999"] {
            assert_eq!(parse_secs(bad), None, "{bad}");
        }
    }

    /// A machine name with a comma or a quote survives the round trip (it used to corrupt
    /// boards.csv, which was written by hand).
    #[test]
    fn rows_round_trip_through_csv_whatever_the_names() {
        let row = BoardRow {
            machine: "lab, \"west\" wing".into(),
            x: 1,
            y: 2,
            z: 0,
            cabinet: Some(0),
            frame: None,
            board: Some(3),
            dead: Bit(true),
            allocated_s: Secs(1_500_000),
            powered_s: Secs(0),
            dead_links: "east;north".into(),
        };
        let bytes = to_csv([row.clone()]).unwrap();
        let mut r = csv::Reader::from_reader(&bytes[..]);
        let back: Vec<BoardRow> = r.deserialize().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, vec![row]);
        // An empty file still has its header.
        assert_eq!(
            to_csv(Vec::<ScpRow>::new()).unwrap(),
            b"t_s,requests,retries,timeouts,failures,bytes,goodput_mbps\n"
        );
    }
}
