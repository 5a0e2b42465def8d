//! The small text forms of the REST API: query booleans as spinnman writes them, paths as
//! spinnman builds them, integers in query strings, ISO-8601 durations and instants.
//!
//! Pure functions, for the HTTP layer as much as for this crate.

use super::RestReply;
use spinnbed_core::time::{Duration, Instant};
use std::borrow::Cow;

/// A query-string boolean: `true`/`false` in any case (spinnman sends Python's `True` and
/// `False` as well as `true`); anything else is `None`, for the caller to refuse or default.
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A request path with repeated slashes collapsed (spinnman's `get_job` asks for
/// `.../jobs//7/`), `.` segments dropped, `..` segments taking off the segment before (never
/// above the root) and no trailing slash: `/spalloc/srv/spalloc/jobs//7/` →
/// `/spalloc/srv/spalloc/jobs/7`, `/` and `` → `/`. Borrows when nothing changes.
pub fn normalise_path(path: &str) -> Cow<'_, str> {
    let clean = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..");
    if clean {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    Cow::Owned(format!("/{}", segments.join("/")))
}

/// An integer query parameter, or a 400 naming it: `x must be an integer, got 'abc'`.
pub fn parse_int(name: &str, raw: &str) -> Result<i64, RestReply> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| RestReply::BadRequest(format!("{name} must be an integer, got '{raw}'")))
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it, without signs: `PT120S`, `PT2M`,
/// `PT1M30S`, `PT0.5S`, `P1DT2H`, letters in either case, `.` or `,` before up to nine
/// decimals of seconds (kept to the microsecond). Years, months and weeks are not durations
/// in Java either. The error says what is wrong with the text.
pub fn parse_iso_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("'{s}' is not an ISO-8601 duration such as PT120S ({why})");
    let upper = s.to_ascii_uppercase();
    let Some(rest) = upper.strip_prefix('P') else {
        return Err(bad("it must start with P"));
    };
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut micros: u64 = 0;
    let mut add = |n: u64, unit: u64| -> Result<(), String> {
        micros = n
            .checked_mul(unit)
            .and_then(|v| micros.checked_add(v))
            .ok_or_else(|| bad("too long"))?;
        Ok(())
    };
    let number = |t: &str| -> Result<u64, String> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("a number must come before each unit"));
        }
        t.parse::<u64>().map_err(|_| bad("too long"))
    };
    if !date.is_empty() {
        let Some(days) = date.strip_suffix('D') else {
            return Err(bad(
                "only days may come before T; years, months and weeks are not durations",
            ));
        };
        add(number(days)?, 86_400_000_000)?;
    }
    match time {
        None if date.is_empty() => return Err(bad("it has no amount")),
        None => {}
        Some("") => return Err(bad("T must be followed by hours, minutes or seconds")),
        Some(mut t) => {
            let mut last = 0;
            while !t.is_empty() {
                let end = t
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
                    .ok_or_else(|| bad("a unit (H, M or S) must follow each number"))?;
                let value = &t[..end];
                let unit = t[end..].chars().next().unwrap_or('?');
                let rank = match unit {
                    'H' => 1,
                    'M' => 2,
                    'S' => 3,
                    _ => return Err(bad("the units after T are H, M and S")),
                };
                if rank <= last {
                    return Err(bad("hours, minutes and seconds come once each, in that order"));
                }
                last = rank;
                match (unit, value.split_once(['.', ','])) {
                    ('S', Some((whole, frac))) => {
                        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(bad("seconds take at most nine decimals"));
                        }
                        add(number(whole)?, 1_000_000)?;
                        let six: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
                        add(six.parse::<u64>().map_err(|_| bad("bad decimals"))?, 1)?;
                    }
                    (_, Some(_)) => return Err(bad("only seconds may have decimals")),
                    ('H', None) => add(number(value)?, 3_600_000_000)?,
                    ('M', None) => add(number(value)?, 60_000_000)?,
                    (_, None) => add(number(value)?, 1_000_000)?,
                }
                t = &t[end + unit.len_utf8()..];
            }
        }
    }
    Ok(Duration::from_micros(micros))
}

/// A duration as Java's `Duration.toString` writes it: `PT2M`, `PT1M30S`, `PT0.5S`, `PT0S`
/// (hours, minutes and seconds; trailing zero decimals dropped).
pub fn format_iso_duration(d: Duration) -> String {
    let us = d.as_micros();
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || frac > 0 || (h == 0 && m == 0) {
        out.push_str(&s.to_string());
        if frac > 0 {
            out.push('.');
            out.push_str(format!("{frac:06}").trim_end_matches('0'));
        }
        out.push('S');
    }
    out
}

/// An instant (microseconds since the Unix epoch) as ISO-8601 UTC with milliseconds:
/// `2026-11-22T02:02:55.120Z`.
pub fn format_iso_time(t: Instant) -> String {
    let us = t.as_micros();
    let secs = us / 1_000_000;
    let millis = us % 1_000_000 / 1000;
    let days = (secs / 86_400) as i64;
    let tod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_in_any_case() {
        for (s, b) in [
            ("True", Some(true)),
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("False", Some(false)),
            ("false", Some(false)),
            ("", None),
            ("1", None),
            ("yes", None),
            ("truee", None),
        ] {
            assert_eq!(parse_bool(s), b, "{s:?}");
        }
    }

    #[test]
    fn paths_lose_doubled_and_trailing_slashes() {
        for (p, n) in [
            ("/spalloc/srv/spalloc/jobs//1/", "/spalloc/srv/spalloc/jobs/1"),
            (
                "/spalloc/srv/spalloc/jobs//1/keepalive",
                "/spalloc/srv/spalloc/jobs/1/keepalive",
            ),
            ("/spalloc/srv/spalloc/", "/spalloc/srv/spalloc"),
            ("//spalloc///srv", "/spalloc/srv"),
            ("/a/./b/../c", "/a/c"),
            ("/../../etc", "/etc"),
            ("", "/"),
            ("/", "/"),
            ("jobs/1", "/jobs/1"),
        ] {
            assert_eq!(normalise_path(p), n, "{p:?}");
        }
        assert!(matches!(
            normalise_path("/spalloc/srv/spalloc/jobs/1"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn integers_name_the_parameter() {
        assert_eq!(parse_int("x", "12").unwrap(), 12);
        assert_eq!(parse_int("x", "-3").unwrap(), -3);
        let RestReply::BadRequest(m) = parse_int("start", "ten").unwrap_err() else {
            panic!()
        };
        assert_eq!(m, "start must be an integer, got 'ten'");
    }

    #[test]
    fn iso_durations_as_java_reads_them() {
        let s = |n: u64| Duration::from_secs(n);
        for (text, d) in [
            ("PT120S", s(120)),
            ("PT2M", s(120)),
            ("PT1M30S", s(90)),
            ("pt45s", s(45)),
            ("PT1H", s(3600)),
            ("P1D", s(86_400)),
            ("P1DT1S", s(86_401)),
            ("PT0.5S", Duration::from_millis(500)),
            ("PT1,25S", Duration::from_millis(1250)),
            ("PT0.123456789S", Duration::from_micros(123_456)),
            ("PT0S", s(0)),
        ] {
            assert_eq!(parse_iso_duration(text), Ok(d), "{text}");
        }
        for (text, why) in [
            ("", "must start with P"),
            ("120", "must start with P"),
            ("P", "no amount"),
            ("PT", "followed by hours"),
            ("PT10", "unit (H, M or S)"),
            ("PTS", "number must come before"),
            ("PT1S2M", "in that order"),
            ("PT1M1M", "in that order"),
            ("P1Y", "years, months and weeks"),
            ("P2W", "years, months and weeks"),
            ("PT1.5M", "only seconds"),
            ("PT1.S", "nine decimals"),
            ("PT0.1234567891S", "nine decimals"),
            ("PT-5S", "the units after T"),
            ("PT99999999999999999999S", "too long"),
            ("PT9999999999999H", "too long"),
            ("soon", "must start with P"),
            ("PT5é", "the units after T"),
            ("P1é", "only days"),
        ] {
            let e = parse_iso_duration(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains(&format!("'{text}'")), "{e}");
        }
    }

    #[test]
    fn iso_durations_as_java_writes_them() {
        for (d, text) in [
            (Duration::from_secs(120), "PT2M"),
            (Duration::from_secs(90), "PT1M30S"),
            (Duration::from_secs(45), "PT45S"),
            (Duration::from_secs(3600), "PT1H"),
            (Duration::from_secs(3661), "PT1H1M1S"),
            (Duration::from_millis(500), "PT0.5S"),
            (Duration::from_micros(1_000_001), "PT1.000001S"),
            (Duration::ZERO, "PT0S"),
        ] {
            assert_eq!(format_iso_duration(d), text);
            assert_eq!(parse_iso_duration(text), Ok(d));
        }
    }

    #[test]
    fn instants_in_utc_with_milliseconds() {
        for (us, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_000_000, "2023-11-14T22:13:20.000Z"),
            (1_795_313_151_871_999, "2026-11-22T02:05:51.871Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000Z"),
            (4_107_542_400_000_000, "2100-03-01T00:00:00.000Z"),
            (253_402_300_799_999_000, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(format_iso_time(Instant(us)), text, "{us}");
        }
        // The far end of the clock still formats.
        assert!(format_iso_time(Instant::MAX).ends_with('Z'));
    }
}
