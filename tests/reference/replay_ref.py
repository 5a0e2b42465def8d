#!/usr/bin/env python3
"""Reference oracle: replay an allocation trace against the REAL scheduling core
of PyPI ``spalloc-server`` 1!7.0.0 (``spalloc_server.job_queue.JobQueue``),
following shared/reference/replay-parity.md. Run it with the venv made by
``setup-venv.sh`` (CPython >= 3.10)::

    python replay_ref.py --machine M.json --trace T.csv[.gz]
                         [--seconds-before-free S] [--out jobs.jsonl]

``--seconds-before-free`` defaults to 30 (the reference default); ``--out``
defaults to stdout. A trace is read as gzip when its first two bytes are the
gzip magic (whatever its name). Exit status: 0 on success, 2 on malformed
input (the message names the file, the line and the field) or bad usage.

Inputs
------
Machine JSON: ``{"name": str, "width": int > 0, "height": int > 0,
"dead_boards": [[x, y, z], ...], "dead_links": [[x, y, z, LINK], ...]}`` with
LINK one of east, north_east, north, west, south_west, south. Both lists are
optional (default empty); duplicates collapse (they become Python sets).

Trace CSV, header exactly ``id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,
duration_s``. Surrounding spaces in a field are ignored; fully empty rows are
skipped. ``id``: integer, unique. ``submit_s`` and ``duration_s``: ``D+`` or
``D+.D{1,3}`` (non-negative seconds, at most 3 decimals), converted to integer
milliseconds by text splitting (no floats). Kinds and the reference call:

    board     create_job(job_id=id)
    boards    create_job(a, job_id=id[, min_ratio=m][, max_dead_boards=d])
    rect      create_job(a, b, job_id=id[, max_dead_boards=d])
    specific  create_job(a, b, c, job_id=id)

``a``/``b``/``c`` are integers where the kind uses them; columns a kind does
not use are ignored (not validated). ``min_ratio`` (a decimal float, e.g.
0.333) is passed only for ``boards``; ``max_dead_boards`` (integer) only for
``boards`` and ``rect``; blank or ``None`` means "not passed". Rows are stably
sorted by submit time (ties keep file order).

Event loop
----------
Events are (time_ms, priority, sequence) ordered, priority END 0 <
CHECK_FREE 1 < SUBMIT 2. Sequence numbers are handed out in scheduling order:
first the submissions 0..N-1 in sorted trace order, then every END (scheduled
by the on_allocate callback, at start + duration) and CHECK_FREE (scheduled by
an END, at now + S) as it is scheduled. The simulated clock is set to the
event's time before it is processed.

* SUBMIT: ``create_job(...)``. It may allocate (on_allocate) or cancel
  (on_cancel, "No suitable machines available.") synchronously. If
  create_job raises ValueError (the reference's alloc_possible raises for a
  negative min_ratio) the reference leaves the job pending in no queue; it is
  then reported as never started, like the real server would until keepalive
  expiry.
* END: ``destroy_job(id)`` (on_free only; resources not released), then
  ``free(id)`` (allocation enters the allocator's delayed-free list stamped
  with the simulated now), then schedule CHECK_FREE at now + S.
* CHECK_FREE: ``check_free()``: every delayed-free entry whose age >= S is
  released (FIFO) and, if any was, the queues are processed.
  Note the reference also runs ``Allocator.check_free()`` at the start of every
  ``alloc()`` attempt, so entries can be released by any queue processing
  (e.g. a later SUBMIT) once old enough; with S = 0 a free() releases at once
  whenever some queue head retries.
  Ages: the allocator compares ``timedelta.total_seconds() < S``; with both
  sides multiples of 1 ms this is exactly ``age_ms < S_ms``.

The allocator reads the clock as ``datetime.now()`` where ``datetime`` is the
class ``datetime.datetime`` imported into ``spalloc_server.allocator``; it only
calls ``now()`` (in ``free`` and ``check_free``) and subtracts two results,
calling ``.total_seconds()`` on the timedelta. That attribute is replaced by
``_SimClock``, whose ``now()`` (and ``utcnow()``/``today()``) returns a real
``datetime.datetime(2000, 1, 1) + timedelta(milliseconds=sim_ms)``; any other
attribute is delegated to the real class.

Output (JSON lines) and ordering
--------------------------------
A job's line is emitted at the moment its outcome becomes final:
* allocated: at allocation time (end time already known), in the order the
  on_allocate callbacks fire;
* cancelled: at cancellation time (on_cancel), with the reason;
* never started: after the events run out, in submission (= queue) order,
  with reason "never started".
Lines, byte for byte (separators ", " and ": "; boards compact, sorted
lexicographically by (x, y, z); strings via json.dumps, ASCII-escaped)::

    {"id": 7, "submit_s": 12.5, "start_s": 30.0, "end_s": 150.25, "boards": [[0,0,0],[0,0,1]]}
    {"id": 8, "cancelled": "No suitable machines available."}
    {"id": 9, "cancelled": "never started"}

Number format for every seconds value: from integer milliseconds ms >= 0,
``s = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0")``, then append "0" if ``s``
ends with "." -- e.g. 12500 -> 12.5, 30000 -> 30.0, 150250 -> 150.25,
7 -> 0.007. (Identical to Python's repr(ms / 1000) in this range.)

Summary (last line)::

    {"summary": {"jobs": N, "started": N, "cancelled": N, "never_started": N,
     "makespan_s": S, "board_seconds": S, "mean_wait_s": S, "max_wait_s": S,
     "seconds_before_free": S, "machine": {"name": "...", "width": W,
     "height": H, "dead_boards": N, "dead_links": N}, "wall_s": S}}

(on one line, same separators). Definitions:
* jobs: trace rows; started: jobs allocated; cancelled: jobs cancelled via
  on_cancel (excludes never started); never_started: jobs still pending at the
  end. started + cancelled + never_started == jobs.
* makespan_s: max end_ms over started jobs minus min submit_ms over all jobs;
  0.0 if no job started.
* board_seconds: sum over started jobs of len(boards) * duration_ms (exact
  integer ms), printed in seconds.
* wait = start_ms - submit_ms of a started job. max_wait_s: the maximum (0.0
  if none started). mean_wait_s: total wait ms / started, rounded to integer
  ms half up, i.e. (2 * total + started) // (2 * started); 0.0 if none.
* seconds_before_free: S as given (ms, same format).
* machine.dead_boards / dead_links: number of distinct entries.
* wall_s: time.perf_counter() around the event loop alone (parsing, setup and
  output formatting excluded), rounded to integer ms (round()). Comparisons
  ignore wall_s.
"""

import argparse
import csv
import datetime as _dt
import gzip
import heapq
import io
import json
import os
import re
import sys
import tempfile
import time


class InputError(Exception):
    pass


_TIME_RE = re.compile(r"^(\d+)(?:\.(\d{1,3}))?$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
HEADER = ["id", "submit_s", "kind", "a", "b", "c", "min_ratio",
          "max_dead_boards", "duration_s"]
KINDS = ("board", "boards", "rect", "specific")
LINK_NAMES = ("east", "north_east", "north", "west", "south_west", "south")

END, CHECK_FREE, SUBMIT = 0, 1, 2


def parse_ms(text):
    """Seconds text with <= 3 decimals -> integer ms, or None if malformed."""
    m = _TIME_RE.match(text)
    if m is None:
        return None
    frac = m.group(2) or ""
    return int(m.group(1)) * 1000 + int(frac.ljust(3, "0"))


def fmt_s(ms):
    s = "%d.%03d" % (ms // 1000, ms % 1000)
    s = s.rstrip("0")
    return s + "0" if s.endswith(".") else s


# ---------------------------------------------------------------- inputs

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def load_machine(path, Links):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (path, e))
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError("%s: not UTF-8: %s" % (path, e))
    except json.JSONDecodeError as e:
        raise InputError("%s: line %d column %d: invalid JSON: %s"
                         % (path, e.lineno, e.colno, e.msg))
    if not isinstance(doc, dict):
        raise InputError("%s: line 1: top level must be an object" % path)

    def bad(field, why):
        return InputError("%s: field %s: %s" % (path, field, why))

    name = doc.get("name")
    if not isinstance(name, str):
        raise bad("name", "must be a string")
    dims = []
    for k in ("width", "height"):
        v = doc.get(k)
        if not _is_int(v) or v <= 0:
            raise bad(k, "must be a positive integer")
        dims.append(v)
    dead_boards = set()
    db = doc.get("dead_boards", [])
    if not isinstance(db, list):
        raise bad("dead_boards", "must be a list")
    for i, e in enumerate(db):
        if (not isinstance(e, list) or len(e) != 3
                or not all(_is_int(v) for v in e)):
            raise bad("dead_boards[%d]" % i, "must be [x, y, z] integers")
        dead_boards.add(tuple(e))
    dead_links = set()
    dl = doc.get("dead_links", [])
    if not isinstance(dl, list):
        raise bad("dead_links", "must be a list")
    for i, e in enumerate(dl):
        if (not isinstance(e, list) or len(e) != 4
                or not all(_is_int(v) for v in e[:3])):
            raise bad("dead_links[%d]" % i,
                      "must be [x, y, z, link] (integers, link name)")
        if e[3] not in LINK_NAMES:
            raise bad("dead_links[%d][3]" % i,
                      "unknown link %r (want one of %s)"
                      % (e[3], ", ".join(LINK_NAMES)))
        dead_links.add((e[0], e[1], e[2], Links[e[3]]))
    for k in doc:
        if k not in ("name", "width", "height", "dead_boards", "dead_links"):
            raise bad(k, "unknown field")
    return name, dims[0], dims[1], dead_boards, dead_links


class Job(object):
    __slots__ = ("id", "submit_ms", "duration_ms", "args", "kwargs")

    def __init__(self, id_, submit_ms, duration_ms, args, kwargs):
        self.id = id_
        self.submit_ms = submit_ms
        self.duration_ms = duration_ms
        self.args = args
        self.kwargs = kwargs


def load_trace(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (path, e))
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputError("%s: bad gzip data: %s" % (path, e))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("%s: not UTF-8: %s" % (path, e))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise InputError("%s: line 1: %s" % (path, e))
    if header is None or [h.strip() for h in header] != HEADER:
        raise InputError("%s: line 1: header must be %s"
                         % (path, ",".join(HEADER)))
    jobs = []
    seen = set()
    while True:
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise InputError("%s: line %d: %s" % (path, reader.line_num, e))
        if row is None:
            break
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(HEADER):
            raise InputError("%s: line %d: expected %d fields, got %d"
                             % (path, line, len(HEADER), len(row)))
        f = dict(zip(HEADER, (v.strip() for v in row)))

        def bad(field, why):
            return InputError("%s: line %d: field %s: %s (got %r)"
                              % (path, line, field, why, f[field]))

        def req_int(field):
            if not _INT_RE.match(f[field]):
                raise bad(field, "must be an integer")
            return int(f[field])

        def opt(field, regex, conv, what):
            v = f[field]
            if v == "" or v == "None":
                return None
            if not regex.match(v):
                raise bad(field, "must be %s, blank or None" % what)
            return conv(v)

        id_ = req_int("id")
        if id_ in seen:
            raise bad("id", "duplicate id")
        seen.add(id_)
        submit_ms = parse_ms(f["submit_s"])
        if submit_ms is None:
            raise bad("submit_s", "must be non-negative seconds with at most "
                      "3 decimals")
        duration_ms = parse_ms(f["duration_s"])
        if duration_ms is None:
            raise bad("duration_s", "must be non-negative seconds with at "
                      "most 3 decimals")
        kind = f["kind"]
        kwargs = {}
        if kind == "board":
            args = ()
        elif kind == "boards":
            args = (req_int("a"),)
            mr = opt("min_ratio", _FLOAT_RE, float, "a decimal number")
            if mr is not None:
                kwargs["min_ratio"] = mr
            md = opt("max_dead_boards", _INT_RE, int, "an integer")
            if md is not None:
                kwargs["max_dead_boards"] = md
        elif kind == "rect":
            args = (req_int("a"), req_int("b"))
            md = opt("max_dead_boards", _INT_RE, int, "an integer")
            if md is not None:
                kwargs["max_dead_boards"] = md
        elif kind == "specific":
            args = (req_int("a"), req_int("b"), req_int("c"))
        else:
            raise bad("kind", "must be one of " + ", ".join(KINDS))
        jobs.append(Job(id_, submit_ms, duration_ms, args, kwargs))
    jobs.sort(key=lambda j: j.submit_ms)  # stable: ties keep file order
    return jobs


# ---------------------------------------------------------------- clock

_EPOCH = _dt.datetime(2000, 1, 1)


class _SimClock(object):
    """Stands in for the class ``datetime.datetime`` inside
    spalloc_server.allocator: now() is the simulated time."""

    def __init__(self):
        self.ms = 0

    def now(self, tz=None):
        return _EPOCH + _dt.timedelta(milliseconds=self.ms)

    utcnow = now
    today = now

    def __getattr__(self, name):
        return getattr(_dt.datetime, name)


# ---------------------------------------------------------------- replay

def import_reference():
    """Import only the scheduling core, from a scratch directory, so that no
    log file can appear in the caller's working directory."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            from spalloc_server import allocator, job_queue, links
        finally:
            os.chdir(cwd)
    assert "spalloc_server.controller" not in sys.modules
    return allocator, job_queue, links


def replay(jobs, machine, seconds_before_free_ms, allocator_mod, job_queue_mod):
    name, width, height, dead_boards, dead_links = machine
    if allocator_mod.datetime is not _dt.datetime and \
            not isinstance(allocator_mod.datetime, _SimClock):
        raise RuntimeError("spalloc_server.allocator.datetime is not "
                           "datetime.datetime; check the installed version")
    clock = _SimClock()
    allocator_mod.datetime = clock

    S_ms = seconds_before_free_ms
    S = S_ms // 1000 if S_ms % 1000 == 0 else S_ms / 1000.0

    by_id = {j.id: j for j in jobs}
    heap = [(j.submit_ms, SUBMIT, seq, j.id) for seq, j in enumerate(jobs)]
    heapq.heapify(heap)
    seq = [len(jobs)]
    records = []          # (kind, id, data) in emission order
    outcome = {}          # id -> "a" (allocated) / "c" (cancelled)
    start = {}            # id -> start_ms

    def on_allocate(job_id, machine_name, boards, periphery, torus):
        now = clock.ms
        job = by_id[job_id]
        start[job_id] = now
        outcome[job_id] = "a"
        records.append(("a", job_id, boards))
        heapq.heappush(heap, (now + job.duration_ms, END, seq[0], job_id))
        seq[0] += 1

    def on_free(job_id, reason):
        pass

    def on_cancel(job_id, reason):
        outcome[job_id] = "c"
        records.append(("c", job_id, reason))

    q = job_queue_mod.JobQueue(on_allocate, on_free, on_cancel,
                               seconds_before_free=S)
    q.add_machine(name, width, height, tags={"default"},
                  dead_boards=dead_boards, dead_links=dead_links)

    t0 = time.perf_counter()
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        t, prio, _, job_id = pop(heap)
        clock.ms = t
        if prio == SUBMIT:
            job = by_id[job_id]
            try:
                q.create_job(*job.args, job_id=job_id, **job.kwargs)
            except ValueError:
                # Reference quirk: job stays pending in _jobs, in no queue.
                pass
        elif prio == END:
            q.destroy_job(job_id)
            q.free(job_id)
            push(heap, (t + S_ms, CHECK_FREE, seq[0], 0))
            seq[0] += 1
        else:
            q.check_free()
    never = [j.id for j in jobs if j.id not in outcome]
    wall = time.perf_counter() - t0

    pending = [jid for jid, jb in q._jobs.items() if jb.pending]
    assert pending == never, "internal: pending set mismatch"
    for jid in never:
        records.append(("c", jid, "never started"))
    return records, start, wall


def format_output(jobs, records, start, wall, S_ms, machine):
    name, width, height, dead_boards, dead_links = machine
    by_id = {j.id: j for j in jobs}
    out = []
    n_started = n_cancelled = n_never = 0
    max_end = None
    board_ms = total_wait = max_wait = 0
    for kind, jid, data in records:
        job = by_id[jid]
        if kind == "a":
            n_started += 1
            st = start[jid]
            end = st + job.duration_ms
            wait = st - job.submit_ms
            total_wait += wait
            max_wait = max(max_wait, wait)
            max_end = end if max_end is None else max(max_end, end)
            board_ms += len(data) * job.duration_ms
            boards = ",".join("[%d,%d,%d]" % b for b in sorted(data))
            out.append('{"id": %d, "submit_s": %s, "start_s": %s, '
                       '"end_s": %s, "boards": [%s]}'
                       % (jid, fmt_s(job.submit_ms), fmt_s(st), fmt_s(end),
                          boards))
        else:
            if data == "never started":
                n_never += 1
            else:
                n_cancelled += 1
            out.append('{"id": %d, "cancelled": %s}' % (jid, json.dumps(data)))
    makespan = 0
    if max_end is not None:
        makespan = max_end - min(j.submit_ms for j in jobs)
    mean_wait = ((2 * total_wait + n_started) // (2 * n_started)
                 if n_started else 0)
    out.append(
        '{"summary": {"jobs": %d, "started": %d, "cancelled": %d, '
        '"never_started": %d, "makespan_s": %s, "board_seconds": %s, '
        '"mean_wait_s": %s, "max_wait_s": %s, "seconds_before_free": %s, '
        '"machine": {"name": %s, "width": %d, "height": %d, '
        '"dead_boards": %d, "dead_links": %d}, "wall_s": %s}}'
        % (len(jobs), n_started, n_cancelled, n_never, fmt_s(makespan),
           fmt_s(board_ms), fmt_s(mean_wait), fmt_s(max_wait), fmt_s(S_ms),
           json.dumps(name), width, height, len(dead_boards),
           len(dead_links), fmt_s(int(round(wall * 1000)))))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Replay an allocation trace against spalloc-server "
                    "1!7.0.0's JobQueue (see module docstring).")
    ap.add_argument("--machine", required=True, help="machine JSON")
    ap.add_argument("--trace", required=True, help="trace CSV (or gzip)")
    ap.add_argument("--seconds-before-free", default="30",
                    help="delayed-free seconds, <= 3 decimals (default 30)")
    ap.add_argument("--out", default=None, help="output JSONL (default stdout)")
    a = ap.parse_args(argv)

    S_ms = parse_ms(a.seconds_before_free.strip())
    if S_ms is None:
        ap.error("--seconds-before-free: must be non-negative seconds with at "
                 "most 3 decimals (got %r)" % a.seconds_before_free)

    allocator_mod, job_queue_mod, links_mod = import_reference()
    try:
        machine = load_machine(a.machine, links_mod.Links)
        jobs = load_trace(a.trace)
    except InputError as e:
        print("replay_ref.py: error: %s" % e, file=sys.stderr)
        return 2

    records, start, wall = replay(jobs, machine, S_ms, allocator_mod,
                                  job_queue_mod)
    lines = format_output(jobs, records, start, wall, S_ms, machine)
    data = "\n".join(lines) + "\n"
    if a.out is None:
        sys.stdout.write(data)
        sys.stdout.flush()
    else:
        with open(a.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
