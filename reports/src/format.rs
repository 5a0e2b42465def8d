//! Stable, human-friendly number formatting shared by the charts and the HTML page.
//!
//! Everything here is deterministic (no locale, no clock), because the HTML tables are
//! snapshot-tested: three significant digits, never `-0`, durations in the largest unit that
//! keeps the number ≥ 1.

/// `x` with three significant digits (more digits only left of the decimal point):
/// `812.4` → `812`, `12` → `12.0`, `0.7123` → `0.712`, `140000.7` → `140001`.
pub fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return "–".to_string();
    }
    if x.abs() < 1e-12 {
        return "0".to_string();
    }
    let s = if x.abs() >= 99.95 {
        format!("{x:.0}")
    } else {
        // Round to three significant digits first, then pick the decimals from the rounded value,
        // so that 9.996 prints as "10.0" rather than "10.00".
        let mag = x.abs().log10().floor() as i32;
        let scale = 10f64.powi(2 - mag);
        let r = (x * scale).round() / scale;
        if r == 0.0 {
            return "0".to_string();
        }
        let mag = r.abs().log10().floor() as i32;
        let decimals = (2 - mag).clamp(0, 12) as usize;
        format!("{r:.decimals$}")
    };
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        "0".to_string()
    } else {
        s
    }
}

/// A fraction as a percentage with three significant digits: `0.71` → `71.0 %`.
pub fn pct(frac: f64) -> String {
    format!("{} %", sig3(frac * 100.0))
}

/// A count with no separators.
pub fn int(n: u64) -> String {
    n.to_string()
}

/// A count with thin spaces between groups of three digits (for chart text): `4000000` →
/// `4 000 000`.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// Seconds in the largest sensible unit: `45` → `45.0 s`, `812.4` → `13.5 min`, `4000` → `1.11 h`,
/// `200000` → `2.31 d`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "–".to_string();
    }
    let a = s.abs();
    if a < 60.0 {
        format!("{} s", sig3(s))
    } else if a < 3600.0 {
        format!("{} min", sig3(s / 60.0))
    } else if a < 86_400.0 {
        format!("{} h", sig3(s / 3600.0))
    } else {
        format!("{} d", sig3(s / 86_400.0))
    }
}

/// A time since the start of the run on a clock: `1800` → `0:30:00`, `95400` → `1 d 02:30:00`
/// (whole seconds, rounded down).
pub fn clock(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".to_string();
    }
    let t = s.floor() as u64;
    let (d, h, m, sec) = (t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
    if d > 0 {
        format!("{d} d {h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h}:{m:02}:{sec:02}")
    }
}

/// A tick label: `12.0` → `12`, `2.50` → `2.5`.
pub fn tick(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let r = (v * 1000.0).round() / 1000.0;
    let s = format!("{r:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

/// A tick label for a log axis: `tick` for values ≥ 0.001, else three significant digits.
pub fn tick_sig(v: f64) -> String {
    if v.abs() >= 0.001 { tick(v) } else { sig3(v) }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks() {
        assert_eq!(clock(0.0), "0:00:00");
        assert_eq!(clock(1800.4), "0:30:00");
        assert_eq!(clock(95_400.0), "1 d 02:30:00");
        assert_eq!(clock(-1.0), "–");
    }

    #[test]
    fn three_significant_digits() {
        assert_eq!(sig3(812.4), "812");
        assert_eq!(sig3(12.0), "12.0");
        assert_eq!(sig3(0.7123), "0.712");
        assert_eq!(sig3(140000.7), "140001");
        assert_eq!(sig3(0.0), "0");
        assert_eq!(sig3(-0.0), "0");
        assert_eq!(sig3(-0.00001), "-0.0000100");
        assert_eq!(sig3(9.996), "10.0");
        assert_eq!(sig3(99.96), "100");
        assert_eq!(sig3(-4.56789), "-4.57");
        assert_eq!(sig3(f64::NAN), "–");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(45.0), "45.0 s");
        assert_eq!(duration(812.4), "13.5 min");
        assert_eq!(duration(4000.0), "1.11 h");
        assert_eq!(duration(200_000.0), "2.31 d");
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(pct(0.71), "71.0 %");
        assert_eq!(grouped(4_000_000), "4\u{2009}000\u{2009}000");
        assert_eq!(grouped(999), "999");
    }

    #[test]
    fn ticks_and_escape() {
        assert_eq!(tick(12.0), "12");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(-0.0001), "0");
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
