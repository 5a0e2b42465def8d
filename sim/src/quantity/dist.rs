//! Random distributions of durations, byte sizes and counts, as written in scenarios.
//!
//! `{ dist = "lognormal", median = "10m", sigma = 1.2, max = "2d" }`: one inline table per
//! distribution, the same laws for every quantity. A bare number or string is a fixed value.
//! Sampling uses its own small formulas over `next_u64` (Box–Muller, inversion), so a seed gives
//! the same numbers whatever version of `rand` is linked.

use super::units::{self, QuantityError};
use rand::Rng;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use spinnbed_core::time::Duration;
use std::fmt;
use std::marker::PhantomData;

/// A byte size (a distinct type so that scenarios read `"4MiB"` for it and not seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// A distribution whose parameters do not make sense: which sub-key (`""` for the table
/// itself) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem}")]
pub struct DistError {
    /// The sub-key (`min`, `mean`, `sigma`, `values`, `weights`, …).
    pub key: &'static str,
    /// What is wrong.
    pub problem: DistProblem,
}

/// What is wrong with a distribution's parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistProblem {
    /// A parameter that must be positive is not.
    #[error("must be greater than zero (got {0})")]
    NotPositive(String),
    /// The bounds are the wrong way round.
    #[error("min {min} is greater than max {max}")]
    MinAboveMax {
        /// The lower bound as written.
        min: String,
        /// The upper bound as written.
        max: String,
    },
    /// A log-normal's sigma is negative or not finite.
    #[error("must be a non-negative number (got {0})")]
    NegativeSigma(f64),
    /// A choice among nothing.
    #[error("must list at least one value")]
    NoValues,
    /// Not one weight per value.
    #[error("has {weights} weights for {values} values")]
    WeightCount {
        /// Weights given.
        weights: usize,
        /// Values given.
        values: usize,
    },
    /// A weight below zero or not finite.
    #[error("weights must be non-negative numbers (got {0})")]
    NegativeWeight(f64),
    /// Every weight is zero.
    #[error("weights are all zero")]
    ZeroWeights,
}

/// A value a distribution can produce: how it is read, printed and sampled.
pub trait Quantity: Copy + PartialEq + PartialOrd + fmt::Debug {
    /// What a value looks like, for error messages.
    const EXPECTED: &'static str;
    /// True for integer counts (sampled on whole numbers, at least 1).
    const DISCRETE: bool = false;
    /// From a TOML integer.
    fn from_int(v: i64) -> Result<Self, QuantityError>;
    /// From a TOML float.
    fn from_float(v: f64) -> Result<Self, QuantityError>;
    /// From a TOML string.
    fn from_text(s: &str) -> Result<Self, QuantityError>;
    /// The value in its base unit (µs, bytes, count).
    fn to_f64(self) -> f64;
    /// A sampled base-unit value, rounded and clamped into the type.
    fn from_sample(x: f64) -> Self;
    /// The TOML literal that reads back to exactly this value (for messages).
    fn to_toml(self) -> String;
    /// The TOML value that reads back to exactly this value (for serialisation).
    fn to_value(self) -> QValue;
}

/// A quantity as a TOML value: durations and byte sizes as strings with units, counts as
/// numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum QValue {
    /// `"5m"`, `"64KiB"`.
    Text(String),
    /// A count.
    Float(f64),
    /// A small integer.
    Int(u32),
}

impl serde::Serialize for QValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            QValue::Text(t) => s.serialize_str(t),
            QValue::Float(v) => s.serialize_f64(*v),
            QValue::Int(v) => s.serialize_u32(*v),
        }
    }
}

impl Quantity for Duration {
    const EXPECTED: &'static str = "a duration (seconds, or a string such as \"30s\", \"5m\", \"1.5h\")";
    fn from_int(v: i64) -> Result<Self, QuantityError> {
        units::duration_from_int_secs(v)
    }
    fn from_float(v: f64) -> Result<Self, QuantityError> {
        units::duration_from_secs(v)
    }
    fn from_text(s: &str) -> Result<Self, QuantityError> {
        units::parse_duration(s)
    }
    fn to_f64(self) -> f64 {
        self.0 as f64
    }
    fn from_sample(x: f64) -> Self {
        if x.is_nan() || x <= 0.0 {
            Duration(0)
        } else if x >= u64::MAX as f64 {
            Duration::MAX
        } else {
            Duration(x.round() as u64)
        }
    }
    fn to_toml(self) -> String {
        format!("\"{}\"", units::format_duration(self))
    }
    fn to_value(self) -> QValue {
        QValue::Text(units::format_duration(self))
    }
}

impl Quantity for ByteSize {
    const EXPECTED: &'static str = "a byte size (bytes, or a string such as \"64KiB\", \"10MB\")";
    fn from_int(v: i64) -> Result<Self, QuantityError> {
        units::bytes_from_int(v).map(ByteSize)
    }
    fn from_float(v: f64) -> Result<Self, QuantityError> {
        units::bytes_from_number(v).map(ByteSize)
    }
    fn from_text(s: &str) -> Result<Self, QuantityError> {
        units::parse_bytes(s).map(ByteSize)
    }
    fn to_f64(self) -> f64 {
        self.0 as f64
    }
    fn from_sample(x: f64) -> Self {
        if x.is_nan() || x <= 0.0 {
            ByteSize(0)
        } else if x >= u64::MAX as f64 {
            ByteSize(u64::MAX)
        } else {
            ByteSize(x.round() as u64)
        }
    }
    fn to_toml(self) -> String {
        format!("\"{}\"", units::format_bytes(self.0))
    }
    fn to_value(self) -> QValue {
        QValue::Text(units::format_bytes(self.0))
    }
}

/// Counts (boards, triads) are written as plain numbers; parameters may be fractional (a mean
/// of 3.5 boards), samples are whole numbers of at least 1.
impl Quantity for f64 {
    const EXPECTED: &'static str = "a number";
    const DISCRETE: bool = true;
    fn from_int(v: i64) -> Result<Self, QuantityError> {
        if v < 0 {
            return Err(QuantityError::Negative {
                what: "count",
                got: v.to_string(),
            });
        }
        Ok(v as f64)
    }
    fn from_float(v: f64) -> Result<Self, QuantityError> {
        if !v.is_finite() || v < 0.0 {
            return Err(QuantityError::Range {
                what: "a count",
                range: "a non-negative number".into(),
                got: v.to_string(),
            });
        }
        Ok(v)
    }
    fn from_text(s: &str) -> Result<Self, QuantityError> {
        Err(QuantityError::WrongType {
            expected: "a number",
            got: format!("the string {s:?}"),
        })
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_sample(x: f64) -> Self {
        if x.is_nan() {
            1.0
        } else {
            x.round().clamp(1.0, u32::MAX as f64)
        }
    }
    fn to_toml(self) -> String {
        fmt_f64(self)
    }
    fn to_value(self) -> QValue {
        QValue::Float(self)
    }
}

/// Small non-negative integers (limits such as `max_dead_boards`).
impl Quantity for u32 {
    const EXPECTED: &'static str = "a non-negative integer";
    const DISCRETE: bool = true;
    fn from_int(v: i64) -> Result<Self, QuantityError> {
        u32::try_from(v).map_err(|_| QuantityError::Range {
            what: "",
            range: format!("an integer from 0 to {}", u32::MAX),
            got: v.to_string(),
        })
    }
    fn from_float(v: f64) -> Result<Self, QuantityError> {
        Err(QuantityError::Malformed {
            expected: "an integer",
            got: v.to_string(),
        })
    }
    fn from_text(s: &str) -> Result<Self, QuantityError> {
        Err(QuantityError::WrongType {
            expected: "an integer",
            got: format!("the string {s:?}"),
        })
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_sample(x: f64) -> Self {
        x.round().clamp(0.0, u32::MAX as f64) as u32
    }
    fn to_toml(self) -> String {
        self.to_string()
    }
    fn to_value(self) -> QValue {
        QValue::Int(self)
    }
}

/// A float as a TOML literal that reads back to the same `f64` (`1.0`, not `1`).
pub fn fmt_f64(v: f64) -> String {
    format!("{v:?}")
}

/// A TOML integer (TOML has no integers above `i64::MAX`; a format that does gets "too large"
/// rather than a silently saturated value).
fn int_of<E: de::Error>(v: u64) -> Result<i64, E> {
    i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
}

/// A deserialised [`Quantity`] (number or string).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Q<T>(pub T);

struct QVisitor<T>(PhantomData<T>);

impl<'de, T: Quantity> Visitor<'de> for QVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_int(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_int(int_of(v)?).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::from_float(v).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_text(v).map_err(E::custom)
    }
}

impl<'de, T: Quantity> serde::Deserialize<'de> for Q<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QVisitor(PhantomData)).map(Q)
    }
}

impl<T: Quantity> serde::Serialize for Q<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.to_value().serialize(s)
    }
}

/// A [`Quantity`] or the string `"none"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoneOr<T>(pub Option<T>);

struct NoneOrVisitor<T>(PhantomData<T>);

impl<'de, T: Quantity> Visitor<'de> for NoneOrVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} or \"none\"", T::EXPECTED)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<T>, E> {
        T::from_int(v).map(Some).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<T>, E> {
        T::from_int(int_of(v)?).map(Some).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<T>, E> {
        T::from_float(v).map(Some).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<T>, E> {
        if v == "none" {
            Ok(None)
        } else {
            T::from_text(v)
                .map(Some)
                .map_err(|e| E::custom(format!("{e}, or \"none\"")))
        }
    }
}

impl<'de, T: Quantity> serde::Deserialize<'de> for NoneOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoneOrVisitor(PhantomData)).map(NoneOr)
    }
}

impl<T: Quantity> serde::Serialize for NoneOr<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) => v.to_value().serialize(s),
            None => s.serialize_str("none"),
        }
    }
}

/// The shape of a distribution (its parameters; `min`/`max` live on [`Dist`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Law<T> {
    /// Always `value`.
    Fixed(T),
    /// Uniform between the distribution's `min` and `max` (both required).
    Uniform,
    /// Log-uniform between `min` and `max` (both required, `min > 0`).
    LogUniform,
    /// Exponential with this mean.
    Exponential {
        /// Mean.
        mean: T,
    },
    /// Log-normal: `median · exp(sigma · N(0, 1))`.
    LogNormal {
        /// Median (the scale).
        median: T,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
    /// One of `values`, with probabilities proportional to `weights`.
    Choice {
        /// The values.
        values: Vec<T>,
        /// One weight per value (equal if not written).
        weights: Vec<f64>,
    },
}

/// A distribution: a law plus optional clamps (`min`/`max` are the range itself for `uniform`
/// and `loguniform`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dist<T> {
    /// The law.
    pub law: Law<T>,
    /// Lower clamp (lower bound for uniform laws).
    pub min: Option<T>,
    /// Upper clamp (upper bound for uniform laws).
    pub max: Option<T>,
}

impl<T: Quantity> Dist<T> {
    /// Always `v`.
    pub fn fixed(v: T) -> Dist<T> {
        Dist {
            law: Law::Fixed(v),
            min: None,
            max: None,
        }
    }

    /// Uniform on `[min, max]`.
    pub fn uniform(min: T, max: T) -> Dist<T> {
        Dist {
            law: Law::Uniform,
            min: Some(min),
            max: Some(max),
        }
    }

    /// Log-uniform on `[min, max]`.
    pub fn log_uniform(min: T, max: T) -> Dist<T> {
        Dist {
            law: Law::LogUniform,
            min: Some(min),
            max: Some(max),
        }
    }

    /// Exponential with this mean.
    pub fn exponential(mean: T) -> Dist<T> {
        Dist {
            law: Law::Exponential { mean },
            min: None,
            max: None,
        }
    }

    /// Log-normal with this median and sigma.
    pub fn log_normal(median: T, sigma: f64) -> Dist<T> {
        Dist {
            law: Law::LogNormal { median, sigma },
            min: None,
            max: None,
        }
    }

    /// The same law with clamps.
    pub fn clamped(mut self, min: Option<T>, max: Option<T>) -> Dist<T> {
        self.min = min;
        self.max = max;
        self
    }

    /// The law's name as written in scenarios.
    pub fn name(&self) -> &'static str {
        match self.law {
            Law::Fixed(_) => "fixed",
            Law::Uniform => "uniform",
            Law::LogUniform => "loguniform",
            Law::Exponential { .. } => "exponential",
            Law::LogNormal { .. } => "lognormal",
            Law::Choice { .. } => "choice",
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), DistError> {
        let err = |key: &'static str, problem: DistProblem| Err(DistError { key, problem });
        let pos = |v: T, key: &'static str| -> Result<(), DistError> {
            if v.to_f64() > 0.0 {
                Ok(())
            } else {
                err(key, DistProblem::NotPositive(v.to_toml()))
            }
        };
        let min_above_max = |lo: T, hi: T| {
            err(
                "min",
                DistProblem::MinAboveMax {
                    min: lo.to_toml(),
                    max: hi.to_toml(),
                },
            )
        };
        match &self.law {
            Law::Fixed(_) => {}
            Law::Uniform | Law::LogUniform => {
                let (Some(lo), Some(hi)) = (self.min, self.max) else {
                    unreachable!("uniform laws are read with both bounds")
                };
                if matches!(self.law, Law::LogUniform) {
                    pos(lo, "min")?;
                }
                if lo > hi {
                    return min_above_max(lo, hi);
                }
            }
            Law::Exponential { mean } => pos(*mean, "mean")?,
            Law::LogNormal { median, sigma } => {
                pos(*median, "median")?;
                if !sigma.is_finite() || *sigma < 0.0 {
                    return err("sigma", DistProblem::NegativeSigma(*sigma));
                }
            }
            Law::Choice { values, weights } => {
                if values.is_empty() {
                    return err("values", DistProblem::NoValues);
                }
                if weights.len() != values.len() {
                    return err(
                        "weights",
                        DistProblem::WeightCount {
                            weights: weights.len(),
                            values: values.len(),
                        },
                    );
                }
                if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
                    return err("weights", DistProblem::NegativeWeight(*w));
                }
                if weights.iter().all(|w| *w == 0.0) {
                    return err("weights", DistProblem::ZeroWeights);
                }
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && lo > hi
        {
            return min_above_max(lo, hi);
        }
        Ok(())
    }

    /// The smallest value the distribution can produce (for "could it ever fit" checks).
    pub fn lower_bound(&self) -> f64 {
        let law_min = match &self.law {
            Law::Fixed(v) => v.to_f64(),
            Law::Choice { values, weights } => values
                .iter()
                .zip(weights)
                .filter(|(_, w)| **w > 0.0)
                .map(|(v, _)| v.to_f64())
                .fold(f64::INFINITY, f64::min),
            _ => 0.0,
        };
        let lo = self.min.map_or(law_min, |m| law_min.max(m.to_f64()));
        match self.max {
            Some(hi) => lo.min(hi.to_f64()),
            None => lo,
        }
    }

    /// Draws one value.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> T {
        let lo = self.min.map(Quantity::to_f64);
        let hi = self.max.map(Quantity::to_f64);
        let x = match &self.law {
            Law::Fixed(v) => v.to_f64(),
            Law::Uniform => {
                let (a, b) = (lo.unwrap_or(0.0), hi.unwrap_or(0.0));
                if T::DISCRETE {
                    // Whole numbers a..=b, each equally likely.
                    (a.ceil() + (unit(rng) * (b.floor() - a.ceil() + 1.0)).floor()).min(b.floor())
                } else {
                    a + unit(rng) * (b - a)
                }
            }
            Law::LogUniform => {
                let (a, b) = (lo.unwrap_or(1.0), hi.unwrap_or(1.0));
                if T::DISCRETE {
                    // n with probability ∝ ln((n + 1) / n) on a..=b.
                    let (a, b) = (a.ceil().max(1.0), b.floor().max(1.0));
                    let v = (a.ln() + unit(rng) * ((b + 1.0).ln() - a.ln())).exp().floor();
                    v.clamp(a, b)
                } else {
                    (a.ln() + unit(rng) * (b.ln() - a.ln())).exp()
                }
            }
            Law::Exponential { mean } => -mean.to_f64() * (1.0 - unit(rng)).ln(),
            Law::LogNormal { median, sigma } => median.to_f64() * (sigma * normal(rng)).exp(),
            Law::Choice { values, weights } => {
                let total: f64 = weights.iter().sum();
                let mut u = unit(rng) * total;
                let mut pick = values.len() - 1;
                for (i, w) in weights.iter().enumerate() {
                    if u < *w {
                        pick = i;
                        break;
                    }
                    u -= w;
                }
                values[pick].to_f64()
            }
        };
        let x = match lo {
            Some(l) if x < l => l,
            _ => x,
        };
        let x = match hi {
            Some(h) if x > h => h,
            _ => x,
        };
        T::from_sample(x)
    }
}

/// A fixed value without clamps is written as the value itself (`"45m"`); any other
/// distribution as a table of its parameters in a fixed order (`dist`, the law's keys, `min`,
/// `max`).
impl<T: Quantity> serde::Serialize for Dist<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let (Law::Fixed(v), None, None) = (&self.law, self.min, self.max) {
            return v.to_value().serialize(s);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("dist", self.name())?;
        match &self.law {
            Law::Fixed(v) => m.serialize_entry("value", &v.to_value())?,
            Law::Uniform | Law::LogUniform => {}
            Law::Exponential { mean } => m.serialize_entry("mean", &mean.to_value())?,
            Law::LogNormal { median, sigma } => {
                m.serialize_entry("median", &median.to_value())?;
                m.serialize_entry("sigma", sigma)?;
            }
            Law::Choice { values, weights } => {
                let values: Vec<QValue> = values.iter().map(|v| v.to_value()).collect();
                m.serialize_entry("values", &values)?;
                m.serialize_entry("weights", weights)?;
            }
        }
        if let Some(v) = self.min {
            m.serialize_entry("min", &v.to_value())?;
        }
        if let Some(v) = self.max {
            m.serialize_entry("max", &v.to_value())?;
        }
        m.end()
    }
}

/// A uniform float in [0, 1) from the top 53 bits of one draw.
pub fn unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal variate (Box–Muller, two draws).
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = unit(rng).max(f64::MIN_POSITIVE);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

const DIST_KEYS: &str = "dist, value, min, max, mean, median, sigma, values, weights";

struct DistVisitor<T>(PhantomData<T>);

/// A list of quantities.
struct QList<T>(Vec<T>);

impl<'de, T: Quantity> serde::Deserialize<'de> for QList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Quantity> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of values ({})", T::EXPECTED)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(Q(v)) = seq.next_element::<Q<T>>()? {
                    out.push(v);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(PhantomData)).map(QList)
    }
}

impl<'de, T: Quantity> Visitor<'de> for DistVisitor<T> {
    type Value = Dist<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} or a distribution table such as {{ dist = \"lognormal\", median = …, sigma = … }}",
            T::EXPECTED
        )
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dist<T>, E> {
        T::from_int(v).map(Dist::fixed).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dist<T>, E> {
        T::from_int(int_of(v)?).map(Dist::fixed).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dist<T>, E> {
        T::from_float(v).map(Dist::fixed).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dist<T>, E> {
        T::from_text(v).map(Dist::fixed).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dist<T>, A::Error> {
        let mut dist: Option<String> = None;
        let (mut value, mut min, mut max, mut mean, mut median) = (None, None, None, None, None);
        let mut sigma: Option<f64> = None;
        let mut values: Option<Vec<T>> = None;
        let mut weights: Option<Vec<f64>> = None;
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            match key.as_str() {
                "dist" => dist = Some(map.next_value()?),
                "value" => value = Some(map.next_value::<Q<T>>()?.0),
                "min" => min = Some(map.next_value::<Q<T>>()?.0),
                "max" => max = Some(map.next_value::<Q<T>>()?.0),
                "mean" => mean = Some(map.next_value::<Q<T>>()?.0),
                "median" => median = Some(map.next_value::<Q<T>>()?.0),
                "sigma" => sigma = Some(map.next_value()?),
                "values" => values = Some(map.next_value::<QList<T>>()?.0),
                "weights" => weights = Some(map.next_value()?),
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{other}` in a distribution (expected {DIST_KEYS})"
                    )));
                }
            }
            seen.push(key);
        }
        let Some(dist) = dist else {
            return Err(de::Error::custom(
                "a distribution table needs `dist` (fixed, uniform, loguniform, exponential, lognormal or choice)",
            ));
        };
        let allowed: &[&str] = match dist.as_str() {
            "fixed" => &["value"],
            "uniform" | "loguniform" => &[],
            "exponential" => &["mean"],
            "lognormal" => &["median", "sigma"],
            "choice" => &["values", "weights"],
            other => {
                return Err(de::Error::custom(format!(
                    "unknown distribution `{other}` (expected fixed, uniform, loguniform, exponential, lognormal or choice)"
                )));
            }
        };
        for k in &seen {
            if !matches!(k.as_str(), "dist" | "min" | "max") && !allowed.contains(&k.as_str()) {
                return Err(de::Error::custom(format!("key `{k}` is not used by dist = \"{dist}\"")));
            }
        }
        let need = |what: &str| de::Error::custom(format!("dist = \"{dist}\" needs `{what}`"));
        let law = match dist.as_str() {
            "fixed" => Law::Fixed(value.ok_or_else(|| need("value"))?),
            "uniform" | "loguniform" => {
                if min.is_none() {
                    return Err(need("min"));
                }
                if max.is_none() {
                    return Err(need("max"));
                }
                if dist == "uniform" {
                    Law::Uniform
                } else {
                    Law::LogUniform
                }
            }
            "exponential" => Law::Exponential {
                mean: mean.ok_or_else(|| need("mean"))?,
            },
            "lognormal" => Law::LogNormal {
                median: median.ok_or_else(|| need("median"))?,
                sigma: sigma.ok_or_else(|| need("sigma"))?,
            },
            _ => {
                let values = values.ok_or_else(|| need("values"))?;
                let weights = weights.unwrap_or_else(|| vec![1.0; values.len()]);
                Law::Choice { values, weights }
            }
        };
        Ok(Dist { law, min, max })
    }
}

impl<'de, T: Quantity> serde::Deserialize<'de> for Dist<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DistVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn parse<T: Quantity>(text: &str) -> Result<Dist<T>, String> {
        #[derive(serde::Deserialize)]
        #[serde(bound = "T: Quantity")]
        struct W<T: Quantity> {
            d: Dist<T>,
        }
        toml::from_str::<W<T>>(&format!("d = {text}"))
            .map(|w| w.d)
            .map_err(|e| e.message().to_string())
    }

    /// Serialises `d = <dist>` and reads it back.
    fn write<T: Quantity>(d: &Dist<T>) -> String {
        #[derive(serde::Serialize)]
        #[serde(bound = "T: Quantity")]
        struct W<'a, T: Quantity> {
            d: &'a Dist<T>,
        }
        toml::to_string(&W { d }).unwrap()
    }

    #[test]
    fn reads_every_law_and_writes_it_back() {
        let cases = [
            ("{ dist = \"fixed\", value = \"5m\" }", "d = \"5m\"\n"),
            (
                "{ dist = \"fixed\", value = \"5m\", max = \"1h\" }",
                "[d]\ndist = \"fixed\"\nvalue = \"5m\"\nmax = \"1h\"\n",
            ),
            (
                "{ dist = \"uniform\", min = \"1s\", max = \"2h\" }",
                "[d]\ndist = \"uniform\"\nmin = \"1s\"\nmax = \"2h\"\n",
            ),
            (
                "{ dist = \"loguniform\", min = \"1s\", max = \"2h\" }",
                "[d]\ndist = \"loguniform\"\nmin = \"1s\"\nmax = \"2h\"\n",
            ),
            (
                "{ dist = \"exponential\", mean = \"30m\", max = \"1d\" }",
                "[d]\ndist = \"exponential\"\nmean = \"30m\"\nmax = \"1d\"\n",
            ),
            (
                "{ dist = \"lognormal\", median = \"10m\", sigma = 1.2, min = \"10s\" }",
                "[d]\ndist = \"lognormal\"\nmedian = \"10m\"\nsigma = 1.2\nmin = \"10s\"\n",
            ),
            (
                "{ dist = \"choice\", values = [\"1m\", \"1h\"], weights = [3.0, 1.0] }",
                "[d]\ndist = \"choice\"\nvalues = [\"1m\", \"1h\"]\nweights = [3.0, 1.0]\n",
            ),
        ];
        for (c, written) in cases {
            let d: Dist<Duration> = parse(c).unwrap();
            assert_eq!(d.validate(), Ok(()));
            assert_eq!(write(&d), written, "{c}");
            let again: Dist<Duration> = toml::from_str::<toml::Table>(written).unwrap()["d"]
                .clone()
                .try_into()
                .unwrap();
            assert_eq!(again, d, "{c}");
        }
        assert_eq!(parse::<Duration>("\"5m\""), Ok(Dist::fixed(Duration::from_secs(300))));
        assert_eq!(parse::<Duration>("1.5"), Ok(Dist::fixed(Duration(1_500_000))));
        assert_eq!(parse::<f64>("4"), Ok(Dist::fixed(4.0)));
        assert_eq!(parse::<ByteSize>("\"1MiB\""), Ok(Dist::fixed(ByteSize(1 << 20))));
        let c: Dist<f64> = parse("{ dist = \"choice\", values = [1, 2, 4] }").unwrap();
        assert_eq!(
            write(&c),
            "[d]\ndist = \"choice\"\nvalues = [1.0, 2.0, 4.0]\nweights = [1.0, 1.0, 1.0]\n"
        );
        assert_eq!(write(&Dist::fixed(3u32)), "d = 3\n");
        assert_eq!(write(&Dist::fixed(ByteSize(3 << 29))), "d = \"1.5GiB\"\n");
    }

    #[test]
    fn rejects_malformed_tables() {
        let cases = [
            ("{ value = 1 }", "needs `dist`"),
            ("{ dist = \"gauss\" }", "unknown distribution `gauss`"),
            ("{ dist = \"fixed\" }", "needs `value`"),
            ("{ dist = \"uniform\", min = 1 }", "needs `max`"),
            (
                "{ dist = \"lognormal\", median = 1, mean = 2, sigma = 1 }",
                "`mean` is not used",
            ),
            ("{ dist = \"fixed\", value = 1, colour = 2 }", "unknown key `colour`"),
            ("{ dist = \"fixed\", value = -1 }", "must not be negative"),
            ("[1, 2]", "a duration"),
        ];
        for (text, want) in cases {
            let e = parse::<Duration>(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let bad = [
            ("{ dist = \"uniform\", min = 5, max = 1 }", "min"),
            ("{ dist = \"loguniform\", min = 0, max = 1 }", "min"),
            ("{ dist = \"exponential\", mean = 0 }", "mean"),
            ("{ dist = \"lognormal\", median = 1, sigma = -1 }", "sigma"),
            ("{ dist = \"choice\", values = [1, 2], weights = [0, 0] }", "weights"),
            ("{ dist = \"choice\", values = [1, 2], weights = [1] }", "weights"),
            ("{ dist = \"exponential\", mean = 5, min = 9, max = 3 }", "min"),
        ];
        for (text, key) in bad {
            let d = parse::<Duration>(text).unwrap();
            assert_eq!(d.validate().unwrap_err().key, key, "{text}");
        }
    }

    /// Before: integer seconds skipped the float path's 1.8e13 s cap and saturated at
    /// `Duration::MAX` (`horizon = 20000000000000` was accepted).
    #[test]
    fn integers_share_the_caps_of_floats() {
        assert_eq!(
            parse::<Duration>("18000000000000"),
            Ok(Dist::fixed(Duration::from_secs(18_000_000_000_000)))
        );
        for text in [
            "20000000000000",
            "9223372036854775807",
            "{ dist = \"fixed\", value = 20000000000000 }",
        ] {
            let e = parse::<Duration>(text).unwrap_err();
            assert!(e.contains("too large"), "{text}: {e}");
        }
        assert_eq!(
            parse::<ByteSize>("9223372036854775807"),
            Ok(Dist::fixed(ByteSize(9_223_372_036_854_775_807)))
        );
        assert!(parse::<ByteSize>("-1").unwrap_err().to_string().contains("negative"));
    }

    #[test]
    fn samples_respect_laws_and_clamps() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = Dist::log_normal(Duration::from_secs(600), 1.5)
            .clamped(Some(Duration::from_secs(60)), Some(Duration::from_secs(3600)));
        let mut below = 0;
        for _ in 0..2000 {
            let v = d.sample(&mut rng);
            assert!(v >= Duration::from_secs(60) && v <= Duration::from_secs(3600));
            if v < Duration::from_secs(600) {
                below += 1;
            }
        }
        assert!((800..1200).contains(&below), "median: {below} of 2000 below");
        // Discrete uniform covers both ends evenly.
        let c: Dist<f64> = Dist::uniform(2.0, 4.0);
        let mut counts = [0; 5];
        for _ in 0..3000 {
            counts[c.sample(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[0] + counts[1], 0);
        assert!(counts[2..].iter().all(|n| (900..1100).contains(n)), "{counts:?}");
        // Discrete log-uniform: small values more likely, bounds respected.
        let c: Dist<f64> = Dist::log_uniform(2.0, 24.0);
        let xs: Vec<f64> = (0..3000).map(|_| c.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (2.0..=24.0).contains(x) && x.fract() == 0.0));
        assert!(xs.iter().filter(|x| **x == 2.0).count() > xs.iter().filter(|x| **x == 20.0).count() * 3);
        assert!(xs.contains(&24.0));
        // Exponential mean.
        let e: Dist<Duration> = Dist::exponential(Duration::from_secs(100));
        let mean = (0..4000).map(|_| e.sample(&mut rng).as_secs_f64()).sum::<f64>() / 4000.0;
        assert!((90.0..110.0).contains(&mean), "{mean}");
        // Choice follows the weights.
        let ch: Dist<f64> = Dist {
            law: Law::Choice {
                values: vec![1.0, 8.0],
                weights: vec![3.0, 1.0],
            },
            min: None,
            max: None,
        };
        let ones = (0..4000).filter(|_| ch.sample(&mut rng) == 1.0).count();
        assert!((2800..3200).contains(&ones), "{ones}");
        assert_eq!(ch.lower_bound(), 1.0);
    }
}
