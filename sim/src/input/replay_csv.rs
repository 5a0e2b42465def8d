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
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// A placeholder, for rows yet to be read.
    const BLANK: TraceJob = TraceJob {
        id: 0,
        submit_ms: 0,
        kind: Kind::Board,
        args: [0; 3],
        min_ratio: None,
        max_dead_boards: None,
        duration_ms: 0,
        line: 0,
    };

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
    /// The value of ASCII digits (no sign).
    fn digits(d: &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for &b in d {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        Some(v)
    }
    let bytes = text.as_bytes();
    let (whole, frac) = match bytes.iter().position(|&b| b == b'.') {
        Some(dot) => (&bytes[..dot], Some(&bytes[dot + 1..])),
        None => (bytes, None),
    };
    // At most 3 decimals, and at least one after a point.
    if whole.is_empty() || frac.is_some_and(|f| f.is_empty() || f.len() > 3) {
        return None;
    }
    let mut ms = digits(whole)?.checked_mul(1000)?;
    if let Some(f) = frac {
        ms = ms.checked_add(digits(f)? * [100, 10, 1][f.len() - 1])?;
    }
    (ms <= MAX_MS).then_some(ms)
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

/// Traces shorter than this (in bytes after the header) are read by one thread.
const PARALLEL_MIN: usize = 1 << 20;

/// Reads a trace; rows come back stably sorted by submission time.
///
/// A large trace is read in two halves at once, each from a line boundary; if either half
/// finds anything wrong (or an id repeats), the whole trace is read again in order, so that
/// the error reported is the first in the file, worded as always.
pub fn parse(file: &str, text: &str) -> Result<Vec<TraceJob>, InputError> {
    parse_with(file, text, PARALLEL_MIN, None)
}

/// [`parse`] with the size from which a trace is read in halves, and (for tests) where in the
/// text to look for the boundary between them.
fn parse_with(
    file: &str,
    text: &str,
    parallel_min: usize,
    split_hint: Option<usize>,
) -> Result<Vec<TraceJob>, InputError> {
    let mut rdr = reader(text.as_bytes(), true);
    let headers = rdr
        .headers()
        .map_err(|e| InputError::at(file, Some(1), None, format!("cannot read the header: {e}")))?;
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
    let columns = Columns {
        col,
        fields: headers.len(),
    };
    // The next record starts here (the header's line end consumed).
    let body = rdr.position().byte() as usize;
    let body_line = rdr.position().line() as usize;
    let mut jobs = None;
    if text.len() - body >= parallel_min {
        let target = split_hint.unwrap_or(body + (text.len() - body) / 2);
        if let Some(mid) = split_point(text, body, target) {
            jobs = halves(file, text, (body, body_line), mid, &columns);
        }
    }
    let mut jobs = match jobs {
        Some(jobs) => jobs,
        None => {
            // A row per line at most: reserving that up front saves growing a large trace's rows.
            let mut jobs = Vec::with_capacity(count_lines(&text.as_bytes()[body..]));
            rows(file, &mut rdr, 0, &columns, Some(&mut IdSet::default()), |j| {
                jobs.push(j)
            })?;
            jobs
        }
    };
    if !jobs.is_sorted_by_key(|j| j.submit_ms) {
        jobs.sort_by_key(|j| j.submit_ms);
    }
    Ok(jobs)
}

/// The CSV reader of traces: fields are trimmed by [`trim`], without a copy of every record.
fn reader(text: &[u8], has_headers: bool) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .trim(csv::Trim::Headers)
        .flexible(true)
        .from_reader(text)
}

/// Lines in `text`: one more than its line ends.
fn count_lines(text: &[u8]) -> usize {
    text.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Where to cut the trace after its header (which ends at `body`) into halves that read
/// exactly as the whole: just after the first line end at or past `target` that ends a
/// non-empty line. `None` if the text has a quote (a field could span lines) or a carriage
/// return (CSV may end a record there), or there is no such line end.
fn split_point(text: &str, body: usize, target: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    // (In blocks, which the compiler turns into vector code.)
    let special = |block: &[u8]| block.iter().fold(false, |any, &b| any | (b == b'"') | (b == b'\r'));
    if body == 0 || bytes[body - 1] != b'\n' || bytes.chunks(256).any(special) {
        return None;
    }
    let from = target.max(body + 1);
    let at = from + bytes.get(from..)?.iter().position(|&b| b == b'\n')?;
    // Past a blank line, the reader would count it into the next record's position.
    let mut end = at;
    while bytes[end - 1] == b'\n' {
        end += 1 + bytes.get(end + 1..)?.iter().position(|&b| b == b'\n')?;
    }
    (end + 1 < bytes.len()).then_some(end + 1)
}

/// Reads the rows of `text[body..mid]` and `text[mid..]` at once; `None` if either has
/// anything wrong or an id repeats (the caller then reads the trace in order to say what).
fn halves(
    file: &str,
    text: &str,
    (body, body_line): (usize, usize),
    mid: usize,
    columns: &Columns,
) -> Option<Vec<TraceJob>> {
    let (a, b) = (&text.as_bytes()[body..mid], &text.as_bytes()[mid..]);
    let (lines_a, lines_b) = (count_lines(a), count_lines(b));
    let mut jobs = vec![TraceJob::BLANK; lines_a + lines_b];
    let (slots_a, slots_b) = jobs.split_at_mut(lines_a);
    // Each half's rows go into its own slots; `None` if it found something wrong.
    let fill = |half: &[u8], first_line: usize, slots: &mut [TraceJob]| {
        let mut n = 0;
        rows(file, &mut reader(half, false), first_line - 1, columns, None, |j| {
            slots[n] = j;
            n += 1;
        })
        .ok()
        .map(|()| n)
    };
    let (na, nb) = std::thread::scope(|s| {
        let second = s.spawn(|| fill(b, body_line + lines_a - 1, slots_b));
        let first = fill(a, body_line, slots_a);
        (first, second.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let (na, nb) = (na?, nb?);
    jobs.copy_within(lines_a..lines_a + nb, na);
    jobs.truncate(na + nb);
    let mut seen = IdSet::default();
    jobs.iter().all(|j| seen.insert(j.id)).then_some(jobs)
}

/// Reads records to the end, handing each row's job to `push`; `line_offset` is added to the
/// reader's line numbers. With `seen`, a repeated id is an error.
fn rows(
    file: &str,
    rdr: &mut csv::Reader<&[u8]>,
    line_offset: usize,
    columns: &Columns,
    mut seen: Option<&mut IdSet>,
    mut push: impl FnMut(TraceJob),
) -> Result<(), InputError> {
    let mut raw = csv::ByteRecord::new();
    loop {
        let more = rdr.read_byte_record(&mut raw).map_err(|e| {
            let line = e.position().map(|p| p.line() as usize + line_offset);
            InputError::at(file, line, None, format!("bad CSV: {e}"))
        })?;
        if !more {
            return Ok(());
        }
        let line = raw.position().map_or(0, |p| p.line() as usize + line_offset);
        // The text is UTF-8 and fields end at ASCII bytes, so this cannot fail; it checks the
        // whole record once, without copying it.
        let rec = csv::StringRecord::from_byte_record(raw)
            .map_err(|e| InputError::at(file, Some(line), None, format!("bad CSV: {}", e.utf8_error())))?;
        if let Some(job) = row(file, line, &rec, columns, seen.as_deref_mut())? {
            push(job);
        }
        raw = rec.into_byte_record();
    }
}

/// Where each column is in the file, and how many fields the header has.
struct Columns {
    col: [usize; 9],
    fields: usize,
}

/// A field as `csv::Trim::All` gives it: without leading and trailing white space (Unicode's,
/// as `str::trim`).
fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if is_plain(*f) && is_plain(*l) => s,
        _ => s.trim(),
    }
}

/// An ASCII byte that is not white space: a field that starts and ends with one is trimmed.
fn is_plain(b: u8) -> bool {
    b.is_ascii() && !(b.is_ascii_whitespace() || b == 0x0b)
}

/// Trace ids seen so far: a bitmap for the small ids every generated and most real traces
/// use, a set for the rest.
#[derive(Default)]
struct IdSet {
    bits: Vec<u64>,
    large: std::collections::BTreeSet<u64>,
}

impl IdSet {
    /// Ids below this are in the bitmap (of at most 8 MiB).
    const DENSE: u64 = 1 << 26;

    /// Adds an id; false if it was already there.
    fn insert(&mut self, id: u64) -> bool {
        if id >= Self::DENSE {
            return self.large.insert(id);
        }
        let word = (id / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        let mask = 1u64 << (id % 64);
        let fresh = self.bits[word] & mask == 0;
        self.bits[word] |= mask;
        fresh
    }
}

/// One record: `None` for a blank row, else its job, or the first thing wrong with it.
fn row(
    file: &str,
    line: usize,
    rec: &csv::StringRecord,
    columns: &Columns,
    seen: Option<&mut IdSet>,
) -> Result<Option<TraceJob>, InputError> {
    if rec.iter().all(|f| trim(f).is_empty()) {
        return Ok(None);
    }
    let col = &columns.col;
    let get = |k: usize| trim(rec.get(col[k]).unwrap_or(""));
    let err = |k: usize, msg: String| InputError::at(file, Some(line), Some(&format!("field {}", COLUMNS[k])), msg);
    if rec.len() != columns.fields {
        return Err(InputError::at(
            file,
            Some(line),
            None,
            format!("expected {} fields, got {}", columns.fields, rec.len()),
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
    if seen.is_some_and(|seen| !seen.insert(id)) {
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
    Ok(Some(TraceJob {
        id,
        submit_ms,
        kind,
        args,
        min_ratio,
        max_dead_boards,
        duration_ms,
        line,
    }))
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
        assert_eq!(parse_ms("99999999999999999999999"), None);
        assert_eq!(parse_ms("000012.010"), Some(12_010));
        for bad in ["", ".", "1.2.3", "+1", "1 ", "1.-1", "1.+1", "٣"] {
            assert_eq!(parse_ms(bad), None, "{bad:?}");
        }
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

    /// Traces with blank and white-space lines, padded and unpadded fields, no final line end,
    /// unsorted rows, and mistakes early, late and across the halves.
    fn awkward_traces() -> Vec<String> {
        let rows = [
            "1,5,board,,,,,,10",
            "",
            "2, 1.5 ,boards,7,,,0.5,1,20",
            "   ",
            "\t3,1.5,rect, 2,3,,None,,1 ",
            "",
            "",
            "4,0,specific,1,2,0,,,3",
            "5,\u{a0}7\u{a0},board,,,,,,1",
            "6,2,board,,,,,,\u{b}4",
            "7,9,boards,30,,,,,2",
        ];
        let good = format!("{HEADER}{}\n", rows.join("\n"));
        vec![
            good.clone(),
            good.trim_end().to_string(),
            format!("{good}\n\n"),
            format!("\n{good}"),
            good.replace("4,0,specific", "4,x,specific"),
            good.replace("7,9,boards", "1,9,boards"),
            good.replace("7,9,boards", "2,x,boards"),
            good.replace("2, 1.5 ,boards", "6,1.5,boards"),
            good.replace("6,2,board,,,,,,\u{b}4", "6,2,board,,,,,4"),
            good.replace("4,0,specific,1,2,0,,,3", "4,0,specific,1,2,0,,,3,9"),
        ]
    }

    #[test]
    fn a_trace_read_in_halves_reads_as_in_one_go() {
        let traces = awkward_traces();
        assert_eq!(parse("t.csv", &traces[0]).unwrap().len(), 7);
        for text in traces {
            let whole = parse_with("t.csv", &text, usize::MAX, None).map_err(|e| e.to_string());
            let body = HEADER.len() + usize::from(text.starts_with('\n'));
            let mut split = 0;
            for target in 0..text.len() + 2 {
                let halved = parse_with("t.csv", &text, 0, Some(target)).map_err(|e| e.to_string());
                assert_eq!(halved, whole, "split near {target} of {text:?}");
                if let Some(mid) = split_point(&text, HEADER.len(), target) {
                    split += 1;
                    let cols = Columns {
                        col: std::array::from_fn(|k| k),
                        fields: 9,
                    };
                    let direct = halves("t.csv", &text, (HEADER.len(), 2), mid, &cols);
                    // The halves only give up where the whole finds something wrong.
                    assert_eq!(direct.is_some(), whole.is_ok(), "split at {mid} of {text:?}");
                    if let (Some(mut d), Ok(w)) = (direct, &whole) {
                        d.sort_by_key(|j| j.submit_ms);
                        assert_eq!(&d, w, "split at {mid} of {text:?}");
                    }
                }
            }
            assert!(split >= 5 || body > HEADER.len(), "{split} splits of {text:?}");
        }
        let quoted = format!("{HEADER}1,0,\"board\",,,,,,1\n2,0,board,,,,,,1\n");
        assert_eq!(split_point(&quoted, HEADER.len(), 0), None);
        let crlf = format!("{HEADER}1,0,board,,,,,,1\r\n2,0,board,,,,,,1\r\n");
        assert_eq!(split_point(&crlf, HEADER.len(), 0), None);
    }

    #[test]
    fn fields_are_trimmed_of_unicode_white_space() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\u{b}a\u{c}",
            "\u{a0}a\u{2003}",
            "\u{1c}a",
            "a\u{85}",
            "é",
            " é ",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
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
