//! The allocation trace of `sim replay` (replay-parity.md): CSV with the header
//! `id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s`.
//!
//! Kinds: `board` (any board), `boards` (at least `a` boards, optional `min_ratio` and
//! `max_dead_boards`), `rect` (`a` × `b` triads, optional `max_dead_boards`) and `specific`
//! (board (`a`, `b`, `c`)). Blank or `None` optional fields mean "not given". Times are
//! seconds with at most three decimals, read exactly into milliseconds.

use super::InputError;
use spinnbed_core::alloc::Request;

/// The columns, in the canonical order.
pub const COLUMNS: [&str; 9] = [
    "id",
    "submit_s",
    "kind",
    "a",
    "b",
    "c",
    "min_ratio",
    "max_dead_boards",
    "duration_s",
];

/// What a trace row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any single board.
    Board,
    /// At least `a` boards.
    Boards,
    /// `a` × `b` triads.
    Rect,
    /// Board (`a`, `b`, `c`).
    Specific,
}

/// One job of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceJob {
    /// Job id (unique).
    pub id: u64,
    /// Submission time in ms.
    pub submit_ms: u64,
    /// Request kind.
    pub kind: Kind,
    /// Positional arguments as given (only those the kind uses are meaningful).
    pub args: [i64; 3],
    /// `min_ratio`, if given.
    pub min_ratio: Option<f64>,
    /// `max_dead_boards`, if given.
    pub max_dead_boards: Option<u32>,
    /// Runtime in ms.
    pub duration_ms: u64,
    /// 1-based line in the file.
    pub line: usize,
}

impl TraceJob {
    /// The allocation request, exactly as the reference's `create_job` would receive it.
    pub fn request(&self) -> Request {
        let [a, b, c] = self.args;
        let r = match self.kind {
            Kind::Board => Request::from_args(&[], 0.0, None, None, false),
            Kind::Boards => Request::from_args(&[a], self.min_ratio.unwrap_or(0.0), self.max_dead_boards, None, false),
            Kind::Rect => Request::from_args(&[a, b], 0.0, self.max_dead_boards, None, false),
            Kind::Specific => Request::from_args(&[a, b, c], 0.0, None, None, false),
        };
        r.expect("trace rows are validated when read")
    }
}

/// The largest time a trace or `--seconds-before-free` may give: 10^9 s (about 31.7 years),
/// so that sums of times and board-times stay exact.
pub const MAX_MS: u64 = 1_000_000_000_000;

/// Parses seconds with at most three decimals (`12`, `12.5`, `0.007`) into milliseconds; at
/// most [`MAX_MS`].
pub fn parse_ms(text: &str) -> Option<u64> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 3
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let w: u64 = whole.parse().ok()?;
    let mut f: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    for _ in frac.len()..3 {
        f *= 10;
    }
    w.checked_mul(1000)?.checked_add(f).filter(|ms| *ms <= MAX_MS)
}

/// Formats milliseconds as seconds the way the reference driver does: `12.5`, `30.0`,
/// `0.007` (Python's `repr(ms / 1000)` in this range).
pub fn fmt_s(ms: u64) -> String {
    let frac = ms % 1000;
    if frac == 0 {
        return format!("{}.0", ms / 1000);
    }
    let mut s = format!("{}.{:03}", ms / 1000, frac);
    while s.ends_with('0') {
        s.pop();
    }
    s
}

fn is_blank(s: &str) -> bool {
    s.is_empty() || s == "None"
}

/// Reads a trace; rows come back stably sorted by submission time.
pub fn parse(file: &str, text: &str) -> Result<Vec<TraceJob>, InputError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| InputError::at(file, Some(1), None, format!("cannot read the header: {e}")))?
        .clone();
    let mut col = [usize::MAX; 9];
    for (i, h) in headers.iter().enumerate() {
        match COLUMNS.iter().position(|c| *c == h) {
            Some(k) if col[k] == usize::MAX => col[k] = i,
            Some(_) => {
                return Err(InputError::at(file, Some(1), Some(h), "column appears twice"));
            }
            None => {
                return Err(InputError::at(
                    file,
                    Some(1),
                    Some(h),
                    format!("unknown column (expected {})", COLUMNS.join(",")),
                ));
            }
        }
    }
    if let Some(k) = col.iter().position(|c| *c == usize::MAX) {
        return Err(InputError::at(
            file,
            Some(1),
            Some(COLUMNS[k]),
            "missing column in the header",
        ));
    }
    let mut jobs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize);
            InputError::at(file, line, None, format!("bad CSV: {e}"))
        })?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let get = |k: usize| rec.get(col[k]).unwrap_or("");
        let err = |k: usize, msg: String| InputError::at(file, Some(line), Some(&format!("field {}", COLUMNS[k])), msg);
        if rec.len() != headers.len() {
            return Err(InputError::at(
                file,
                Some(line),
                None,
                format!("expected {} fields, got {}", headers.len(), rec.len()),
            ));
        }
        let int = |k: usize| -> Result<i64, InputError> {
            get(k)
                .parse::<i64>()
                .map_err(|_| err(k, format!("not an integer (got {:?})", get(k))))
        };
        let id_text = get(0);
        let id: u64 = id_text
            .parse()
            .map_err(|_| err(0, format!("not a non-negative integer (got {id_text:?})")))?;
        if !seen.insert(id) {
            return Err(err(0, format!("duplicate id (got {id_text:?})")));
        }
        let submit_ms = parse_ms(get(1)).ok_or_else(|| {
            err(
                1,
                format!("not seconds from 0 to 1e9 with at most 3 decimals (got {:?})", get(1)),
            )
        })?;
        let duration_ms = parse_ms(get(8)).ok_or_else(|| {
            err(
                8,
                format!("not seconds from 0 to 1e9 with at most 3 decimals (got {:?})", get(8)),
            )
        })?;
        let kind = match get(2) {
            "board" => Kind::Board,
            "boards" => Kind::Boards,
            "rect" => Kind::Rect,
            "specific" => Kind::Specific,
            other => {
                return Err(err(
                    2,
                    format!("unknown kind {other:?} (expected board, boards, rect or specific)"),
                ));
            }
        };
        let used = match kind {
            Kind::Board => 0,
            Kind::Boards => 1,
            Kind::Rect => 2,
            Kind::Specific => 3,
        };
        let mut args = [0i64; 3];
        for (i, slot) in args.iter_mut().enumerate().take(used) {
            *slot = int(3 + i)?;
        }
        let min_ratio = if kind == Kind::Boards && !is_blank(get(6)) {
            let v: f64 = get(6)
                .parse()
                .map_err(|_| err(6, format!("not a number (got {:?})", get(6))))?;
            if v.is_nan() || v < 0.0 || v.is_infinite() {
                return Err(err(6, format!("must be a non-negative number (got {:?})", get(6))));
            }
            Some(v)
        } else {
            None
        };
        let max_dead_boards = if matches!(kind, Kind::Boards | Kind::Rect) && !is_blank(get(7)) {
            Some(
                get(7)
                    .parse::<u32>()
                    .map_err(|_| err(7, format!("not a non-negative integer (got {:?})", get(7))))?,
            )
        } else {
            None
        };
        jobs.push(TraceJob {
            id,
            submit_ms,
            kind,
            args,
            min_ratio,
            max_dead_boards,
            duration_ms,
            line,
        });
    }
    jobs.sort_by_key(|j| j.submit_ms);
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::alloc::Shape;

    const HEADER: &str = "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s\n";

    #[test]
    fn times_are_exact_milliseconds() {
        assert_eq!(parse_ms("12"), Some(12_000));
        assert_eq!(parse_ms("12.5"), Some(12_500));
        assert_eq!(parse_ms("0.007"), Some(7));
        assert_eq!(parse_ms("1.2345"), None);
        assert_eq!(parse_ms("-1"), None);
        assert_eq!(parse_ms("1."), None);
        assert_eq!(parse_ms(".5"), None);
        assert_eq!(parse_ms("1e3"), None);
        assert_eq!(parse_ms("1000000000"), Some(MAX_MS));
        assert_eq!(parse_ms("1000000000.001"), None);
        assert_eq!(parse_ms("18446744073709551"), None);
        assert_eq!(fmt_s(12_500), "12.5");
        assert_eq!(fmt_s(30_000), "30.0");
        assert_eq!(fmt_s(150_250), "150.25");
        assert_eq!(fmt_s(7), "0.007");
        assert_eq!(fmt_s(0), "0.0");
    }

    #[test]
    fn reads_every_kind_and_sorts_stably() {
        let text = format!(
            "{HEADER}1,5,board,,,,,,10\n2,1.5,boards,7,,,0.5,1,20\n3,1.5,rect,2,3,,None,,1\n4,0,specific,1,2,0,,,3\n"
        );
        let jobs = parse("t.csv", &text).unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![4, 2, 3, 1]);
        assert_eq!(jobs[1].request().shape, Shape::Boards { n: 7, min_ratio: 0.5 });
        assert_eq!(jobs[1].request().max_dead_boards, Some(1));
        assert_eq!(jobs[2].request().shape, Shape::Triads { w: 2, h: 3 });
        assert_eq!(jobs[2].line, 4);
        assert_eq!(jobs[3].request().shape, Shape::AnyBoard);
    }

    #[test]
    fn malformed_rows_name_file_line_and_field() {
        let cases = [
            (
                format!("{HEADER}1,0,blob,,,,,,1\n"),
                "t.csv: line 2: field kind: unknown kind \"blob\"",
            ),
            (
                format!("{HEADER}1,0,board,,,,,,1\n1,0,board,,,,,,1\n"),
                "t.csv: line 3: field id: duplicate id",
            ),
            (
                format!("{HEADER}1,x,board,,,,,,1\n"),
                "t.csv: line 2: field submit_s: not seconds from 0 to 1e9",
            ),
            (
                format!("{HEADER}1,0,boards,two,,,,,1\n"),
                "t.csv: line 2: field a: not an integer",
            ),
            (
                format!("{HEADER}1,0,boards,2,,,-0.5,,1\n"),
                "t.csv: line 2: field min_ratio: must be a non-negative number",
            ),
            (
                format!("{HEADER}1,0,rect,2,2,,,-1,1\n"),
                "t.csv: line 2: field max_dead_boards: not a non-negative integer",
            ),
            (
                "id,submit_s,kind,a,b,c,min_ratio,duration_s\n".to_string(),
                "t.csv: line 1: max_dead_boards: missing column",
            ),
            (
                "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s,x\n".to_string(),
                "t.csv: line 1: x: unknown column",
            ),
            (
                format!("{HEADER}1,0,board\n"),
                "t.csv: line 2: expected 9 fields, got 3",
            ),
            (
                format!("{HEADER}1,0,board,,,,,,5,7\n"),
                "t.csv: line 2: expected 9 fields, got 10",
            ),
            (
                format!("{HEADER}1,1000000000.001,board,,,,,,5\n"),
                "t.csv: line 2: field submit_s: not seconds from 0 to 1e9",
            ),
            (
                format!("{HEADER}1,0,board,,,,,,18446744073709551\n"),
                "t.csv: line 2: field duration_s: not seconds from 0 to 1e9",
            ),
        ];
        for (text, want) in cases {
            let e = parse("t.csv", &text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} does not start with {want}");
        }
    }
}
