//! The scenario file as written: serde structures that reject unknown keys and wrong types.
//! Ranges, cross-references and defaults are checked and filled in by `resolve`. The same
//! structures, with every key filled in, are serialised as the resolved scenario (`emit`), so
//! what is written is exactly what is read.

use crate::quantity::dist::{ByteSize, Dist, NoneOr, Q};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use spinnbed_core::time::Duration;
use std::fmt;
use std::net::Ipv4Addr;

/// A fixed-length array such as `[x, y, z]`, read as a tuple that must use up the array: TOML
/// arrays are sequences, and serde's tuples ignore elements past their own length.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuple<T>(pub T);

/// How a tuple is written in scenarios, for "expected [x, y, z] (3 elements)".
pub trait TupleForm {
    /// E.g. `[x, y, z]`.
    const FORM: &'static str;
}

impl TupleForm for (i64, i64) {
    const FORM: &'static str = "[cabinet, frame]";
}
impl TupleForm for (i64, i64, i64) {
    const FORM: &'static str = "[x, y, z]";
}
impl TupleForm for (i64, i64, i64, String) {
    const FORM: &'static str = "[x, y, z, \"link\"]";
}
impl TupleForm for (i64, i64, Ipv4Addr) {
    const FORM: &'static str = "[cabinet, frame, \"ip\"]";
}
impl TupleForm for (i64, i64, i64, Ipv4Addr) {
    const FORM: &'static str = "[x, y, z, \"ip\"]";
}
impl TupleForm for (i64, i64, i64, i64, i64, i64) {
    const FORM: &'static str = "[x, y, z, cabinet, frame, board]";
}

/// `Deserialize` for `Tuple<(A, B, …)>`: exactly `n` elements, else "invalid length".
macro_rules! tuple_impl {
    ($n:literal: $($t:ident),+) => {
        impl<'de, $($t: Deserialize<'de>),+> Deserialize<'de> for Tuple<($($t,)+)>
        where
            ($($t,)+): TupleForm,
        {
            fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
                struct V<$($t),+>(std::marker::PhantomData<($($t,)+)>);
                impl<'de, $($t: Deserialize<'de>),+> Visitor<'de> for V<$($t),+>
                where
                    ($($t,)+): TupleForm,
                {
                    type Value = ($($t,)+);
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "{} ({} elements)", <($($t,)+) as TupleForm>::FORM, $n)
                    }
                    #[allow(non_snake_case)]
                    fn visit_seq<Sq: SeqAccess<'de>>(self, mut seq: Sq) -> Result<Self::Value, Sq::Error> {
                        let mut read = 0usize;
                        $(
                            let $t: $t = seq
                                .next_element()?
                                .ok_or_else(|| de::Error::invalid_length(read, &self))?;
                            read += 1;
                        )+
                        let mut len = read;
                        while seq.next_element::<de::IgnoredAny>()?.is_some() {
                            len += 1;
                        }
                        if len != read {
                            return Err(de::Error::invalid_length(len, &self));
                        }
                        Ok(($($t,)+))
                    }
                }
                d.deserialize_seq(V(std::marker::PhantomData)).map(Tuple)
            }
        }
    };
}

impl<T: Serialize> Serialize for Tuple<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

tuple_impl!(2: T0, T1);
tuple_impl!(3: T0, T1, T2);
tuple_impl!(4: T0, T1, T2, T3);
tuple_impl!(6: T0, T1, T2, T3, T4, T5);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub run: RawRun,
    #[serde(default)]
    pub machine: Vec<RawMachine>,
    pub workload: Option<RawWorkload>,
    pub study: Option<RawStudy>,
    pub policy: Option<RawPolicy>,
    pub host: Option<RawHost>,
    pub network: Option<RawNetwork>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<RawFault>,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RawStudyKind {
    ScpWindowing,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOp {
    Read,
    Write,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStudy {
    pub kind: RawStudyKind,
    pub policies: Option<Vec<RawScpChoice>>,
    pub ops: Option<Vec<RawOp>>,
    pub losses: Option<Vec<f64>>,
    pub rtts: Option<Vec<Q<Duration>>>,
    pub bytes: Option<Q<ByteSize>>,
    pub seeds: Option<i64>,
    pub pipeline_grid: Option<RawPipelineGrid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<RawStudyNetwork>,
}

/// An SCP policy: a preset's name, or a table (`{ name, policy | pipeline, pacing }`).
pub enum RawScpChoice {
    Named(RawScp),
    Spec(RawScpSpec),
}

impl Serialize for RawScpChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawScpChoice::Named(n) => n.serialize(s),
            RawScpChoice::Spec(t) => t.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawScpChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawScpChoice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a policy name (\"spinnman\", \"spinnman-legacy\", \"rig\", \"adaptive\") or a table \
                     { name, policy or pipeline, pacing }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScpChoice, E> {
                RawScp::deserialize(de::value::StrDeserializer::<E>::new(v)).map(RawScpChoice::Named)
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<RawScpChoice, M::Error> {
                RawScpSpec::deserialize(de::value::MapAccessDeserializer::new(m)).map(RawScpChoice::Spec)
            }
        }
        d.deserialize_any(V)
    }
}

/// `{ name = "…", policy = "rig" | pipeline = { … }, pacing = { … } }`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScpSpec {
    pub name: Option<String>,
    pub policy: Option<RawScp>,
    pub pipeline: Option<RawPipeline>,
    pub pacing: Option<RawPacing>,
}

/// spinnman's pipeline: a preset (`from`) with parameters changed.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub from: Option<RawScp>,
    pub n_channels: Option<i64>,
    pub intermediate_channel_waits: Option<i64>,
    pub n_retries: Option<i64>,
    pub packet_timeout: Option<Q<Duration>>,
    pub retry_pause: Option<Q<Duration>>,
    pub retry_codes: Option<Vec<String>>,
}

/// A token bucket: spinnman's `TokenBucket(tokens, fill_rate)` and the tokens a packet costs.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPacing {
    pub tokens: i64,
    pub fill_rate: i64,
    pub per_packet: Option<RawCharge>,
}

/// Tokens per packet: a number, or `"bytes"` (the datagram's size).
pub enum RawCharge {
    Flat(i64),
    Bytes,
}

impl Serialize for RawCharge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawCharge::Flat(n) => s.serialize_i64(*n),
            RawCharge::Bytes => s.serialize_str("bytes"),
        }
    }
}

impl<'de> Deserialize<'de> for RawCharge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawCharge;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of tokens per packet, or \"bytes\" (one token per byte of the datagram)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawCharge, E> {
                Ok(RawCharge::Flat(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawCharge, E> {
                Ok(RawCharge::Flat(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCharge, E> {
                if v == "bytes" {
                    Ok(RawCharge::Bytes)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `"none"` or a token bucket.
pub enum RawPacingChoice {
    None,
    Bucket(RawPacing),
}

impl Serialize for RawPacingChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawPacingChoice::None => s.serialize_str("none"),
            RawPacingChoice::Bucket(b) => b.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawPacingChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPacingChoice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"none\" or a token bucket { tokens, fill_rate, per_packet }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPacingChoice, E> {
                if v == "none" {
                    Ok(RawPacingChoice::None)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<RawPacingChoice, M::Error> {
                RawPacing::deserialize(de::value::MapAccessDeserializer::new(m)).map(RawPacingChoice::Bucket)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[study.pipeline_grid]`: lists of pipeline parameters, crossed.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipelineGrid {
    pub from: Option<RawScp>,
    pub n_channels: Option<Vec<i64>>,
    pub intermediate_channel_waits: Option<Vec<i64>>,
    pub n_retries: Option<Vec<i64>>,
    pub packet_timeout: Option<Vec<Q<Duration>>>,
    pub retry_pause: Option<Vec<Q<Duration>>>,
    pub pacing: Option<Vec<RawPacingChoice>>,
}

/// `[[study.network]]`: a network condition.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStudyNetwork {
    pub name: String,
    pub jitter: Option<Dist<Duration>>,
    pub reorder: Option<f64>,
    pub duplicate: Option<f64>,
    pub burst: Option<RawBurst>,
    pub bandwidth_mbps: Option<f64>,
}

/// A seed: a TOML integer, or a string of digits for seeds above 2^63 − 1.
pub struct Seed(pub u64);

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            Ok(v) => s.serialize_i64(v),
            Err(_) => s.serialize_str(&self.0.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("a seed must not be negative (got {v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("expected a non-negative integer (got {v:?})")))
            }
        }
        d.deserialize_any(V).map(Seed)
    }
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawWeekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub name: String,
    pub seed: Option<Seed>,
    pub horizon: Q<Duration>,
    pub sample_period: Option<Q<Duration>>,
    pub drain_limit: Option<Q<Duration>>,
    pub start_weekday: Option<RawWeekday>,
    pub start_hour: Option<i64>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMachine {
    pub name: String,
    pub tags: Option<Vec<String>>,
    pub width: i64,
    pub height: i64,
    #[serde(default)]
    pub dead_boards: Vec<Tuple<(i64, i64, i64)>>,
    /// Written back only when not 0 (so resolved copies without it stay as they were).
    pub random_dead_boards: Option<i64>,
    #[serde(default)]
    pub dead_links: Vec<Tuple<(i64, i64, i64, String)>>,
    pub layout: Option<RawLayout>,
    pub ip: Option<RawIp>,
    pub timing: Option<RawTiming>,
    pub scamp: Option<RawScamp>,
}

/// `"standard"`, `{ spinner_csv = "path" }` or `{ boards = [[x, y, z, c, f, b], …] }`.
pub enum RawLayout {
    Standard,
    Table(RawLayoutTable),
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayoutTable {
    pub spinner_csv: Option<String>,
    pub boards: Option<Vec<Tuple<LocatedBoard>>>,
}

impl Serialize for RawLayout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawLayout::Standard => s.serialize_str("standard"),
            RawLayout::Table(t) => t.serialize(s),
        }
    }
}

/// `[x, y, z, cabinet, frame, board]`.
pub type LocatedBoard = (i64, i64, i64, i64, i64, i64);

impl<'de> Deserialize<'de> for RawLayout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLayout;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "\"standard\", { spinner_csv = \"path\" } or { boards = [[x, y, z, cabinet, frame, board], …] }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawLayout, E> {
                if v == "standard" {
                    Ok(RawLayout::Standard)
                } else {
                    Err(E::custom(format!(
                        "unknown layout {v:?} (expected \"standard\", {{ spinner_csv = \"path\" }} or {{ boards = [...] }})"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawLayout, A::Error> {
                RawLayoutTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawLayout::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[cabinet, frame, "ip"]`.
pub type AddressedFrame = (i64, i64, Ipv4Addr);

/// `[x, y, z, "ip"]`.
pub type AddressedBoard = (i64, i64, i64, Ipv4Addr);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIp {
    pub base: Option<Ipv4Addr>,
    pub cabinet_stride: Option<Ipv4Addr>,
    pub frame_stride: Option<Ipv4Addr>,
    pub board_stride: Option<Ipv4Addr>,
    pub bmp_offset: Option<Ipv4Addr>,
    pub spinnaker_offset: Option<Ipv4Addr>,
    pub bmps: Option<Vec<Tuple<AddressedFrame>>>,
    pub boards: Option<Vec<Tuple<AddressedBoard>>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTiming {
    pub power_on: Option<Q<Duration>>,
    pub power_off: Option<Q<Duration>>,
    pub link_write: Option<Q<Duration>>,
    pub boot: Option<Q<Duration>>,
    pub bmp_retry_delay: Option<Q<Duration>>,
    pub bmp_tries: Option<i64>,
}

/// `[machine.scamp]`: SC&MP's and the BMP's service times and buffers.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScamp {
    pub enabled: Option<bool>,
    pub service_base: Option<Q<Duration>>,
    pub service_read_256: Option<Q<Duration>>,
    pub service_write_256: Option<Q<Duration>>,
    pub service_fill_per_kib: Option<Q<Duration>>,
    pub transient_tags: Option<i64>,
    pub msg_buffers: Option<i64>,
    pub p2p_per_packet: Option<Q<Duration>>,
    pub p2p_hop: Option<Q<Duration>>,
    pub bmp_service: Option<Q<Duration>>,
    pub bmp_can_frame: Option<Q<Duration>>,
    pub bmp_transient_tags: Option<i64>,
    pub bmp_rx_buffers: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawSource {
    Synthetic,
    Trace,
    Swf,
    #[serde(rename = "spalloc-log")]
    SpallocLog,
    Journal,
}

impl RawSource {
    /// The name in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            RawSource::Synthetic => "synthetic",
            RawSource::Trace => "trace",
            RawSource::Swf => "swf",
            RawSource::SpallocLog => "spalloc-log",
            RawSource::Journal => "journal",
        }
    }
}

/// `[workload]`: the keys of every source; `resolve` rejects those the chosen source does not
/// use.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub source: Option<RawSource>,
    // every source; written back only when not 1 (so resolved copies without it stay as they
    // were)
    pub load_scale: Option<f64>,
    // trace, swf, spalloc-log and journal
    pub path: Option<String>,
    // synthetic
    pub jobs: Option<i64>,
    pub rate_per_hour: Option<f64>,
    pub daily: Option<Vec<f64>>,
    pub weekly: Option<Vec<f64>>,
    pub owners: Option<i64>,
    // swf
    pub procs_per_board: Option<AutoOr>,
    // trace, swf, spalloc-log and journal
    pub time_scale: Option<f64>,
    // swf
    pub skip: Option<Q<Duration>>,
    // swf, spalloc-log and journal
    pub limit: Option<i64>,
    // swf
    pub min_ratio: Option<f64>,
    pub max_dead_boards: Option<NoneOr<u32>>,
    // trace, swf, spalloc-log and journal
    pub estimate: Option<String>,
    // trace
    pub owner: Option<String>,
    // journal
    pub include_simulated: Option<bool>,
    // every source
    pub keepalive: Option<NoneOr<Duration>>,
    // synthetic
    pub lapse_probability: Option<f64>,
    pub lapse_after: Option<Dist<Duration>>,
    // every source
    pub data_in: Option<Dist<ByteSize>>,
    pub data_out: Option<Dist<ByteSize>>,
    // synthetic
    pub class: Option<Vec<RawClass>>,
}

impl RawWorkload {
    /// The keys present, with the sources that use them.
    pub fn present_keys(&self) -> Vec<(&'static str, &'static [RawSource])> {
        use RawSource::*;
        const SYN: &[RawSource] = &[Synthetic];
        const ALL: &[RawSource] = &[Synthetic, Trace, Swf, SpallocLog, Journal];
        const FILES: &[RawSource] = &[Trace, Swf, SpallocLog, Journal];
        const LIMITED: &[RawSource] = &[Swf, SpallocLog, Journal];
        const TRACE: &[RawSource] = &[Trace];
        const SWF: &[RawSource] = &[Swf];
        const JOURNAL: &[RawSource] = &[Journal];
        let mut out = Vec::new();
        let mut add = |present: bool, key: &'static str, who: &'static [RawSource]| {
            if present {
                out.push((key, who));
            }
        };
        add(self.jobs.is_some(), "jobs", SYN);
        add(self.rate_per_hour.is_some(), "rate_per_hour", SYN);
        add(self.daily.is_some(), "daily", SYN);
        add(self.weekly.is_some(), "weekly", SYN);
        add(self.owners.is_some(), "owners", SYN);
        add(self.lapse_probability.is_some(), "lapse_probability", SYN);
        add(self.lapse_after.is_some(), "lapse_after", SYN);
        add(self.data_in.is_some(), "data_in", ALL);
        add(self.data_out.is_some(), "data_out", ALL);
        add(self.class.is_some(), "class", SYN);
        add(self.path.is_some(), "path", FILES);
        add(self.time_scale.is_some(), "time_scale", FILES);
        add(self.estimate.is_some(), "estimate", FILES);
        add(self.owner.is_some(), "owner", TRACE);
        add(self.procs_per_board.is_some(), "procs_per_board", SWF);
        add(self.skip.is_some(), "skip", SWF);
        add(self.limit.is_some(), "limit", LIMITED);
        add(self.min_ratio.is_some(), "min_ratio", SWF);
        add(self.max_dead_boards.is_some(), "max_dead_boards", SWF);
        add(self.include_simulated.is_some(), "include_simulated", JOURNAL);
        out
    }
}

/// A positive number or `"auto"`.
pub struct AutoOr(pub Option<f64>);

impl Serialize for AutoOr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) => s.serialize_f64(v),
            None => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for AutoOr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<f64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive number or \"auto\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
                Ok(Some(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
                Ok(Some(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
                Ok(Some(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<f64>, E> {
                if v == "auto" {
                    Ok(None)
                } else {
                    Err(E::custom(format!("expected a positive number or \"auto\" (got {v:?})")))
                }
            }
        }
        d.deserialize_any(V).map(AutoOr)
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawKind {
    Board,
    Boards,
    Rect,
    Specific,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    pub name: String,
    pub weight: f64,
    pub kind: Option<RawKind>,
    pub boards: Option<Dist<f64>>,
    pub min_ratio: Option<f64>,
    pub max_dead_boards: Option<NoneOr<u32>>,
    pub max_dead_links: Option<NoneOr<u32>>,
    pub require_torus: Option<bool>,
    pub width: Option<Dist<f64>>,
    pub height: Option<Dist<f64>>,
    pub specific: Option<Vec<Tuple<(i64, i64, i64)>>>,
    pub duration: Dist<Duration>,
    pub estimate_factor: Option<f64>,
    pub estimate: Option<String>,
    pub machine: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawPacker {
    Spalloc,
    Anywhere,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawQueue {
    Fifo,
    Easy,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawPolicyEstimate {
    Declared,
    Actual,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub packer: Option<RawPacker>,
    pub exact_boards: Option<bool>,
    pub queue: Option<RawQueue>,
    pub backfill_depth: Option<i64>,
    pub estimate: Option<RawPolicyEstimate>,
    pub seconds_before_free: Option<Q<Duration>>,
    pub max_retired_jobs: Option<i64>,
    pub disable_peripheral_links: Option<bool>,
    pub avoid_failing_boards: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum RawHardware {
    FixedDelay,
    Emulator,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawScp {
    Spinnman,
    #[serde(rename = "spinnman-legacy")]
    SpinnmanLegacy,
    Rig,
    Adaptive,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub hardware: Option<RawHardware>,
    pub post_power_on_delay: Option<Q<Duration>>,
    pub scp_policy: Option<RawScpChoice>,
    pub boot_users: Option<bool>,
    pub boot_tries: Option<i64>,
    pub live_output: Option<RawLiveOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfers: Option<RawTransfers>,
}

/// `[host] transfers`.
#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawTransfers {
    Packets,
    Flow,
}

/// When a streaming user starts its application.
#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawLiveStart {
    Running,
    Booted,
}

/// `[host.live_output]`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLiveOutput {
    pub fraction: Option<f64>,
    pub rate: Option<i64>,
    pub keys_per_packet: Option<i64>,
    pub start: Option<RawLiveStart>,
    pub tag: Option<i64>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurst {
    pub p_enter: f64,
    pub p_leave: f64,
    pub loss: f64,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub latency: Option<Dist<Duration>>,
    pub loss: Option<f64>,
    pub burst: Option<RawBurst>,
    pub duplicate: Option<f64>,
    pub reorder: Option<f64>,
    pub bandwidth_mbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<RawPath>,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawPathTo {
    All,
    Bmps,
    Boards,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    pub machine: Option<String>,
    pub to: Option<RawPathTo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Tuple<(i64, i64)>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<Tuple<(i64, i64, i64)>>,
    pub latency: Option<Dist<Duration>>,
    pub loss: Option<f64>,
    pub burst: Option<RawBurst>,
    pub duplicate: Option<f64>,
    pub reorder: Option<f64>,
    pub bandwidth_mbps: Option<f64>,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawFaultKind {
    BoardDies,
    LinkFails,
    BmpSilent,
    LossBurst,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub at: Q<Duration>,
    pub kind: RawFaultKind,
    pub machine: Option<String>,
    pub board: Option<Tuple<(i64, i64, i64)>>,
    pub link: Option<String>,
    pub frame: Option<Tuple<(i64, i64)>>,
    pub duration: Option<Q<Duration>>,
    pub loss: Option<f64>,
}
