//! Durations and byte sizes as people write them: `"250ms"`, `"1.5h"`, `"64KiB"`.
//!
//! Strings are read as exact decimals (no floating-point rounding surprises: `"0.1s"` is exactly
//! 100,000 µs); bare TOML numbers are seconds or bytes. The formatters print the shortest exact
//! form, so that a printed value always reads back to the same number.

use spinnbed_core::time::Duration;

const US: u128 = 1;
const MS: u128 = 1_000;
const S: u128 = 1_000_000;
const MIN: u128 = 60 * S;
const HOUR: u128 = 60 * MIN;
const DAY: u128 = 24 * HOUR;
const WEEK: u128 = 7 * DAY;

/// The duration units accepted in strings, with their length in microseconds.
const DURATION_UNITS: [(&str, u128); 10] = [
    ("us", US),
    ("µs", US),
    ("ms", MS),
    ("s", S),
    ("m", MIN),
    ("min", MIN),
    ("h", HOUR),
    ("d", DAY),
    ("w", WEEK),
    ("sec", S),
];

/// The byte units accepted in strings.
const BYTE_UNITS: [(&str, u128); 10] = [
    ("B", 1),
    ("KB", 1_000),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Why a written quantity (a duration, a byte size, a count) cannot be read. The messages are
/// the ones scenario errors show after the file, line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Below zero: "a duration must not be negative (got -5)".
    #[error("a {what} must not be negative (got {got})")]
    Negative {
        /// `duration`, `byte size`, `count`.
        what: &'static str,
        /// The value as written.
        got: String,
    },
    /// Not of the form expected: "expected a duration like \"250ms\", … (got \"5x\")".
    #[error("expected {expected} (got {got})")]
    Malformed {
        /// What a value looks like.
        expected: &'static str,
        /// The value as written.
        got: String,
    },
    /// A number where something else is needed, or the other way round: "expected a number,
    /// not the string \"x\"".
    #[error("expected {expected}, not {got}")]
    WrongType {
        /// What a value looks like.
        expected: &'static str,
        /// What was written instead.
        got: String,
    },
    /// Out of its range: "a duration must be a finite number of seconds (got NaN)".
    #[error("{}", range_text(what, range, got))]
    Range {
        /// `a duration`, `a byte size`, `a count`, or empty for a bare "must be …".
        what: &'static str,
        /// The range.
        range: String,
        /// The value as written.
        got: String,
    },
    /// Too large: "duration \"1e30s\" is too large (at most 18000000000000 s)".
    #[error("{what} {got} is too large{limit}")]
    TooLarge {
        /// `duration`, `byte size`.
        what: &'static str,
        /// The value as written.
        got: String,
        /// The limit, if there is one to name (" (at most … s)").
        limit: String,
    },
}

fn range_text(what: &str, range: &str, got: &str) -> String {
    if what.is_empty() {
        format!("must be {range} (got {got})")
    } else {
        format!("{what} must be {range} (got {got})")
    }
}

/// How [`split_number`] fails.
enum Split {
    Negative,
    Malformed,
    TooLarge,
}

/// Splits `"1.5h"` into the exact value `15 / 10` and the unit text `"h"`.
fn split_number(text: &str) -> Result<(u128, u128, &str), Split> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(Split::Negative);
    }
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Split::Malformed);
    }
    if num.ends_with('.') || frac.len() > 12 || whole.len() > 20 {
        return Err(Split::Malformed);
    }
    let scale = 10u128.pow(frac.len() as u32);
    let w: u128 = whole.parse().map_err(|_| Split::Malformed)?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| Split::Malformed)?
    };
    // At most 20 + 12 digits: below 10^32, far from u128::MAX; checked all the same.
    let num = w
        .checked_mul(scale)
        .and_then(|v| v.checked_add(f))
        .ok_or(Split::TooLarge)?;
    Ok((num, scale, unit.trim()))
}

/// `num / scale` units of `per` base units, rounded to nearest; `None` if that overflows.
fn scaled(num: u128, scale: u128, per: u128) -> Option<u128> {
    Some(num.checked_mul(per)?.checked_add(scale / 2)? / scale)
}

/// The longest duration accepted, however written: 1.8e13 s (about 570,000 years), so that a
/// horizon plus a drain limit still fits in 64-bit microseconds.
pub const MAX_DURATION_SECS: u64 = 18_000_000_000_000;

/// [`MAX_DURATION_SECS`] in microseconds.
const MAX_DURATION_US: u128 = MAX_DURATION_SECS as u128 * S;

/// Parses a duration string with a unit: `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"`, `"1w"`,
/// `"1.5h"`, `"0.15ms"` (also `us`/`µs`, `min`, `sec`). Exact to the microsecond (rounded to
/// nearest).
pub fn parse_duration(text: &str) -> Result<Duration, QuantityError> {
    let expected = || QuantityError::Malformed {
        expected: "a duration like \"250ms\", \"30s\", \"5m\", \"1.5h\" or \"7d\"",
        got: format!("{text:?}"),
    };
    let too_large = || duration_too_large(format!("{text:?}"));
    let (num, scale, unit) = split_number(text).map_err(|e| match e {
        Split::Negative => QuantityError::Negative {
            what: "duration",
            got: format!("{text:?}"),
        },
        Split::TooLarge => too_large(),
        Split::Malformed => expected(),
    })?;
    let (_, per) = DURATION_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(expected)?;
    match scaled(num, scale, *per) {
        Some(us) if us <= MAX_DURATION_US => Ok(Duration(us as u64)),
        _ => Err(too_large()),
    }
}

fn duration_too_large(got: String) -> QuantityError {
    QuantityError::TooLarge {
        what: "duration",
        got,
        limit: format!(" (at most {MAX_DURATION_SECS} s)"),
    }
}

/// A duration from a TOML integer number of seconds (the same cap as for any other form).
pub fn duration_from_int_secs(secs: i64) -> Result<Duration, QuantityError> {
    if secs < 0 {
        return Err(QuantityError::Negative {
            what: "duration",
            got: secs.to_string(),
        });
    }
    if secs as u64 > MAX_DURATION_SECS {
        return Err(duration_too_large(format!("{secs} s")));
    }
    Ok(Duration::from_secs(secs as u64))
}

/// A duration from a TOML number of seconds.
pub fn duration_from_secs(secs: f64) -> Result<Duration, QuantityError> {
    if !secs.is_finite() {
        return Err(QuantityError::Range {
            what: "a duration",
            range: "a finite number of seconds".into(),
            got: secs.to_string(),
        });
    }
    if secs < 0.0 {
        return Err(QuantityError::Negative {
            what: "duration",
            got: secs.to_string(),
        });
    }
    if secs > MAX_DURATION_SECS as f64 {
        return Err(duration_too_large(format!("{secs} s")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Writes `v / scale` with at most three decimals, or `None` if that is not exact.
fn exact_decimal(v: u128, unit: u128) -> Option<String> {
    if !(v * 1000).is_multiple_of(unit) {
        return None;
    }
    let thousandths = v * 1000 / unit;
    let mut s = format!("{}.{:03}", thousandths / 1000, thousandths % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    Some(s)
}

/// Formats a duration in its shortest exact form: `"5m"`, `"30s"`, `"1.5s"`, `"250ms"`,
/// `"0.15ms"`, `"7d"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let us = d.0 as u128;
    if us == 0 {
        return "0s".into();
    }
    let big = [(DAY, "d"), (HOUR, "h"), (MIN, "m"), (S, "s")];
    for (unit, name) in big {
        if us.is_multiple_of(unit) {
            return format!("{}{name}", us / unit);
        }
    }
    for (unit, name) in big {
        if us >= unit
            && let Some(s) = exact_decimal(us, unit)
        {
            return format!("{s}{name}");
        }
    }
    // Below a second, or not exact in any larger unit: milliseconds with up to 3 decimals
    // (always exact at microsecond resolution).
    format!("{}ms", exact_decimal(us, MS).expect("µs are exact thousandths of ms"))
}

/// Parses a byte size string: `"512B"`, `"64KiB"`, `"10MB"`, `"1.5GiB"` (rounded to the
/// nearest byte).
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let expected = || QuantityError::Malformed {
        expected: "a byte size like \"512B\", \"64KiB\", \"10MB\" or \"1.5GiB\"",
        got: format!("{text:?}"),
    };
    let too_large = || bytes_too_large(format!("{text:?}"));
    let (num, scale, unit) = split_number(text).map_err(|e| match e {
        Split::Negative => QuantityError::Negative {
            what: "byte size",
            got: format!("{text:?}"),
        },
        Split::TooLarge => too_large(),
        Split::Malformed => expected(),
    })?;
    let (_, per) = BYTE_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(expected)?;
    scaled(num, scale, *per)
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(too_large)
}

fn bytes_too_large(got: String) -> QuantityError {
    QuantityError::TooLarge {
        what: "byte size",
        got,
        limit: String::new(),
    }
}

/// A byte size from a TOML integer number of bytes.
pub fn bytes_from_int(v: i64) -> Result<u64, QuantityError> {
    u64::try_from(v).map_err(|_| QuantityError::Negative {
        what: "byte size",
        got: v.to_string(),
    })
}

/// A byte size from a TOML number of bytes.
pub fn bytes_from_number(v: f64) -> Result<u64, QuantityError> {
    if !v.is_finite() || v < 0.0 {
        return Err(QuantityError::Range {
            what: "a byte size",
            range: "a non-negative number".into(),
            got: v.to_string(),
        });
    }
    if v >= u64::MAX as f64 {
        return Err(bytes_too_large(v.to_string()));
    }
    Ok(v.round() as u64)
}

/// Formats a byte size exactly and briefly: `"4MiB"`, `"1.5GiB"`, `"10MB"`, `"1001B"` (the
/// shortest of the binary, decimal and plain forms; binary on a tie).
pub fn format_bytes(b: u64) -> String {
    let v = b as u128;
    if v == 0 {
        return "0B".into();
    }
    let binary = [
        (1u128 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    let decimal = [
        (1_000_000_000_000u128, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let best = |family: &[(u128, &str)]| {
        family
            .iter()
            .filter(|(unit, _)| v >= *unit)
            .find_map(|(unit, name)| exact_decimal(v, *unit).map(|s| format!("{s}{name}")))
    };
    [best(&binary), best(&decimal), Some(format!("{b}B"))]
        .into_iter()
        .flatten()
        .min_by_key(|s| s.len())
        .expect("the plain form is always there")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_exactly() {
        let cases = [
            ("250ms", 250_000),
            ("30s", 30_000_000),
            ("5m", 300_000_000),
            ("2h", 7_200_000_000),
            ("7d", 604_800_000_000),
            ("1w", 604_800_000_000),
            ("1.5h", 5_400_000_000),
            ("0.15ms", 150),
            ("0.1s", 100_000),
            (" 12 s ", 12_000_000),
            ("3us", 3),
            ("2min", 120_000_000),
        ];
        for (text, us) in cases {
            assert_eq!(parse_duration(text), Ok(Duration(us)), "{text}");
        }
        for bad in ["", "5", "5x", "-5s", "1..5s", ".5s", "5.s", "s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_duration("-5s").unwrap_err().to_string().contains("negative"));
        assert!(
            parse_duration("99999999999999999999w")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert_eq!(duration_from_secs(1.5), Ok(Duration(1_500_000)));
        assert!(duration_from_secs(-1.0).is_err());
        assert!(duration_from_secs(f64::NAN).is_err());
    }

    #[test]
    fn durations_format_shortest_and_round_trip() {
        let cases = [
            (0, "0s"),
            (300_000_000, "5m"),
            (30_000_000, "30s"),
            (1_500_000, "1.5s"),
            (250_000, "250ms"),
            (150, "0.15ms"),
            (604_800_000_000, "7d"),
            (2_592_000_000_000, "30d"),
            (5_400_000_000, "90m"),
            (86_400_000_000 + 1, "86400000.001ms"),
            (3_600_000_000 + 1_800_000_000 / 2, "75m"),
            (1, "0.001ms"),
        ];
        for (us, text) in cases {
            assert_eq!(format_duration(Duration(us)), text);
            assert_eq!(parse_duration(text), Ok(Duration(us)), "{text}");
        }
        let mut x: u64 = 1;
        for _ in 0..200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let d = Duration(x >> 22);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn byte_sizes_parse_and_format() {
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("-1B").unwrap_err().to_string().contains("negative"));
        for (b, text) in [
            (0, "0B"),
            (4 << 20, "4MiB"),
            (1_610_612_736, "1.5GiB"),
            (10_000_000, "10MB"),
            (1_001, "1001B"),
            (1_536, "1536B"),
            (3 << 29, "1.5GiB"),
            (1_024_000, "1000KiB"),
        ] {
            assert_eq!(format_bytes(b), text);
            assert_eq!(parse_bytes(text), Ok(b));
        }
        assert_eq!(bytes_from_number(1024.0), Ok(1024));
        assert!(bytes_from_number(-1.0).is_err());
    }

    /// Before checked arithmetic, these products overflowed u128: debug builds panicked and
    /// release builds wrapped (`"339832257969984841.181015646310w"` read as 4 hours).
    #[test]
    fn overflowing_values_are_too_large_not_wrapped() {
        for text in [
            "339832257969984841.181015646310w",
            "99999999999999999999.999999999999w",
            "99999999999999999999w",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.to_string().contains("too large"), "{text}: {e}");
        }
        for text in ["99999999999999999999.999999999999TiB", "99999999999999999999TB"] {
            let e = parse_bytes(text).unwrap_err();
            assert!(e.to_string().contains("too large"), "{text}: {e}");
        }
        // One cap for every way of writing a duration: 1.8e13 s.
        assert!(parse_duration("18000000000000s").is_ok());
        assert!(
            parse_duration("18000000000000.000001s")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert!(duration_from_secs(1.8e13).is_ok());
        assert!(
            duration_from_secs(1.9e13)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }
}
