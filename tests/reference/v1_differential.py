#!/usr/bin/env python3
"""Differential tester for spalloc v1 (JSON-line TCP) servers: drive two
servers, A and B, in lockstep with one script and report where their
observable behaviour differs. Standard library only; Python 3.11+.

    v1_differential.py --script SCRIPT.json --a HOST:PORT --b HOST:PORT
                       [--settle SECONDS] [--transcript OUT.json]
                       [--loose-numbers]

Exit status: 0 equivalent, 1 differences (a readable diff on stderr),
2 harness error (bad script, cannot connect, internal error).

Script
------
A JSON list of steps, each an object with exactly one action:

* ``{"conn": NAME, "send": REQUEST}``: send ``json.dumps(REQUEST)`` plus
  ``\\n`` on connection NAME (opened on first use, and again on the first use
  after it was closed), then wait up to 10 s for the reply, i.e. the next
  line holding a "return" or "exception" key. Other lines (notifications)
  received meanwhile are kept for the step's notification comparison.
  Outcome: the reply, "disconnect" (the server closed the connection) or
  "timeout" (the connection is then closed by the harness).
* ``{"conn": NAME, "raw": TEXT}``: send TEXT (UTF-8) as is, then wait up to
  2 s for a reply or a disconnection. Outcome: the reply, "disconnect" or
  "no-reply" (the connection stays open).
* ``{"conn": NAME, "close": true}``: close the connection.
* ``{"sleep": SECONDS}``: wait (once, for both servers).

Optional keys in any step: ``"exception_text": false`` (when both replies
are exceptions, do not compare their texts), ``"ignore": [KEY, ...]`` (drop
these keys from every object inside the replies before comparing),
``"settle": SECONDS`` (override --settle after this step), ``"timeout":
SECONDS`` (override the reply timeout), ``"note": TEXT`` (shown in diffs).

Each step runs on A, then the same step on B; then the harness waits
--settle seconds (default 0.3) and drains every open connection of both
servers (notifications, unexpected replies, disconnections).

Comparison
----------
* Outcomes must be of the same kind (reply / disconnect / timeout / ...).
* Replies: "exception" vs "return" must match; replies to the "version"
  command are otherwise not compared. Before comparing, every "start_time"
  number becomes a placeholder (null stays null, a number stays a number);
  the lists under the keys "boards", "connections", "dead_boards",
  "dead_links" and "tags" are sorted. Values are compared as canonical JSON,
  so 60 vs 60.0 and 1 vs true differ (--loose-numbers makes integral floats
  equal to ints).
* Notifications, per connection name: the union of the ids in
  "jobs_changed" and of the names in "machines_changed" received since the
  previous step (how they were split into lines does not matter); any other
  unsolicited line (unknown notification, a stray reply, non-JSON) is
  compared as a multiset; a disconnection noticed while draining must match.

--transcript OUT.json writes every step with what was sent and received on
both sides (times in seconds since the harness started) and the differences.
"""

import argparse
import json
import select
import socket
import sys
import time

REPLY_TIMEOUT = 10.0
RAW_TIMEOUT = 2.0
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 5.0

SORTED_KEYS = frozenset(
    ["boards", "connections", "dead_boards", "dead_links", "tags"])
START_TIME_PLACEHOLDER = "<start_time>"
NOTIFICATION_KEYS = ("jobs_changed", "machines_changed")

STEP_KEYS = frozenset(["conn", "send", "raw", "close", "sleep",
                       "exception_text", "ignore", "note", "settle",
                       "timeout"])
ACTIONS = ("send", "raw", "close", "sleep")

T0 = time.monotonic()


def now():
    return round(time.monotonic() - T0, 4)


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------------------
# Script loading
# ---------------------------------------------------------------------------

def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_script(path):
    try:
        with open(path, encoding="utf-8") as f:
            steps = json.load(f)
    except (OSError, ValueError) as e:
        raise HarnessError("cannot read script %s: %s" % (path, e)) from e
    if not isinstance(steps, list):
        raise HarnessError("script %s: must be a JSON list of steps" % path)
    for i, step in enumerate(steps):
        where = "script %s: step %d" % (path, i)
        if not isinstance(step, dict):
            raise HarnessError("%s: not an object" % where)
        unknown = set(step) - STEP_KEYS
        if unknown:
            raise HarnessError("%s: unknown keys %s" % (where, sorted(unknown)))
        actions = [a for a in ACTIONS if a in step]
        if len(actions) != 1:
            raise HarnessError("%s: needs exactly one of %s"
                               % (where, ", ".join(ACTIONS)))
        action = actions[0]
        if action == "sleep":
            if "conn" in step:
                raise HarnessError("%s: a sleep step takes no conn" % where)
            if not _is_num(step["sleep"]) or step["sleep"] < 0:
                raise HarnessError("%s: sleep must be a number >= 0" % where)
        elif not isinstance(step.get("conn"), str):
            raise HarnessError("%s: conn (a string) is required" % where)
        if action == "raw" and not isinstance(step["raw"], str):
            raise HarnessError("%s: raw must be a string" % where)
        if action == "close" and step["close"] is not True:
            raise HarnessError("%s: close must be true" % where)
        if "exception_text" in step and not isinstance(
                step["exception_text"], bool):
            raise HarnessError("%s: exception_text must be a boolean" % where)
        ignore = step.get("ignore", [])
        if not (isinstance(ignore, list)
                and all(isinstance(k, str) for k in ignore)):
            raise HarnessError("%s: ignore must be a list of strings" % where)
        for key in ("settle", "timeout"):
            if key in step and (not _is_num(step[key]) or step[key] < 0):
                raise HarnessError("%s: %s must be a number >= 0"
                                   % (where, key))
        if "note" in step and not isinstance(step["note"], str):
            raise HarnessError("%s: note must be a string" % where)
    return steps


def parse_addr(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------------------
# Connections to one server
# ---------------------------------------------------------------------------

def classify(line):
    """A received line -> ("reply", obj) | ("notify", obj) | ("garbage", s)."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "garbage", line.decode("utf-8", "replace")
    if not isinstance(obj, dict):
        return "garbage", line.decode("utf-8", "replace")
    if "return" in obj or "exception" in obj:
        return "reply", obj
    return "notify", obj


def new_events():
    """What one connection received outside of awaited replies in one step."""
    return {"jobs_changed": set(), "machines_changed": set(),
            "other": [], "disconnected": False}


class Conn:
    """One client connection (blocking socket, reads gated by select)."""

    def __init__(self, side, name):
        self.side = side
        self.name = name
        self.buf = b""
        try:
            self.sock = socket.create_connection(side.addr,
                                                 timeout=CONNECT_TIMEOUT)
        except OSError as e:
            raise HarnessError("cannot connect to server %s at %s:%d: %s"
                               % (side.label, side.addr[0], side.addr[1], e)
                               ) from e
        self.sock.settimeout(SEND_TIMEOUT)
        self.open = True
        side.log(name, "open", None)

    def close(self, why="close"):
        if self.open:
            self.open = False
            try:
                self.sock.close()
            except OSError:
                pass
            self.side.log(self.name, why, None)

    def send(self, data):
        """Send bytes; False if the server has gone away."""
        self.side.log(self.name, "send", data.decode("utf-8", "replace"))
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            # EPIPE / ECONNRESET: the server closed the connection.
            return False

    def _take_line(self):
        """Pop one complete line from the buffer (None if there is none)."""
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            line = line.rstrip(b"\r")
            if line.strip():
                self.side.log(self.name, "recv",
                              line.decode("utf-8", "replace"))
                return line
        return None

    def _fill(self, timeout):
        """Read what is available within timeout. Returns "data", "eof" or
        "timeout"."""
        try:
            ready, _, _ = select.select([self.sock], [], [], max(0, timeout))
        except (OSError, ValueError):
            return "eof"
        if not ready:
            return "timeout"
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            if self.buf.strip():
                self.side.log(self.name, "partial",
                              self.buf.decode("utf-8", "replace"))
            return "eof"
        self.buf += data
        return "data"

    def _note(self, kind, obj):
        """Record an unsolicited line in this step's events."""
        ev = self.side.events_for(self.name)
        if kind == "notify":
            matched = False
            for key in NOTIFICATION_KEYS:
                if key in obj and isinstance(obj[key], list) and len(obj) == 1:
                    ev[key].update(canon(x) for x in obj[key])
                    matched = True
            if not matched:
                ev["other"].append("notification " + canon(obj))
        elif kind == "reply":
            ev["other"].append("unexpected reply " + canon(obj))
        else:
            ev["other"].append("non-JSON line " + json.dumps(obj))

    def await_reply(self, timeout):
        """Wait for the next reply line; notifications are recorded on the
        way. Returns an outcome dict."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._take_line()
            while line is not None:
                kind, obj = classify(line)
                if kind == "reply":
                    return {"kind": "reply", "reply": obj}
                self._note(kind, obj)
                line = self._take_line()
            got = self._fill(deadline - time.monotonic())
            if got == "eof":
                self.close("eof")
                return {"kind": "disconnect"}
            if got == "timeout":
                return {"kind": "timeout"}

    def drain(self):
        """Consume everything already received, without waiting."""
        while self.open:
            line = self._take_line()
            if line is not None:
                self._note(*classify(line))
                continue
            got = self._fill(0)
            if got == "eof":
                self.close("eof")
                self.side.events_for(self.name)["disconnected"] = True
            elif got == "timeout":
                return


class Side:
    """One server under test with its named connections."""

    def __init__(self, label, addr):
        self.label = label
        self.addr = addr
        self.conns = {}
        self.events = {}
        self.transcript = []

    def log(self, conn, what, text):
        entry = {"t": now(), "conn": conn, "what": what}
        if text is not None:
            entry["line"] = text
        self.transcript.append(entry)

    def events_for(self, name):
        return self.events.setdefault(name, new_events())

    def conn(self, name):
        c = self.conns.get(name)
        if c is None or not c.open:
            c = self.conns[name] = Conn(self, name)
        return c

    def start_step(self):
        self.events = {}
        self.transcript = []

    def run(self, step):
        """Perform one (non-sleep) step; returns its outcome."""
        name = step["conn"]
        if "close" in step:
            c = self.conns.get(name)
            if c is not None:
                c.drain()      # keep what arrived before the close
                c.close()
            return {"kind": "closed"}
        c = self.conn(name)
        if "send" in step:
            data = (json.dumps(step["send"]) + "\n").encode("utf-8")
            timeout, on_timeout = step.get("timeout", REPLY_TIMEOUT), "timeout"
        else:
            data = step["raw"].encode("utf-8")
            timeout, on_timeout = step.get("timeout", RAW_TIMEOUT), "no-reply"
        if not c.send(data):
            c.close("eof")
            return {"kind": "disconnect"}
        outcome = c.await_reply(timeout)
        if outcome["kind"] == "timeout":
            outcome["kind"] = on_timeout
            if on_timeout == "timeout":
                # A late reply would be taken for the next one: resync by
                # dropping the connection.
                c.close("close-after-timeout")
        return outcome

    def drain_all(self):
        for c in list(self.conns.values()):
            c.drain()

    def close_all(self):
        for c in self.conns.values():
            c.close()


# ---------------------------------------------------------------------------
# Normalisation and comparison
# ---------------------------------------------------------------------------

LOOSE_NUMBERS = False


def _loosen(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: _loosen(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_loosen(x) for x in v]
    return v


def canon(v):
    """Canonical JSON text; distinguishes 1, 1.0 and true."""
    if LOOSE_NUMBERS:
        v = _loosen(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def normalise(v, ignore=frozenset()):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in ignore:
                continue
            if k == "start_time" and _is_num(x):
                x = START_TIME_PLACEHOLDER
            else:
                x = normalise(x, ignore)
                if k in SORTED_KEYS and isinstance(x, list):
                    x = sorted(x, key=canon)
            out[k] = x
        return out
    if isinstance(v, list):
        return [normalise(x, ignore) for x in v]
    return v


def _short(v, limit=400):
    s = canon(v)
    return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


def diff_values(a, b, path):
    """Readable differences between two normalised JSON values."""
    if canon(a) == canon(b):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            p = "%s.%s" % (path, k)
            if k not in b:
                out.append("%s: only in A: %s" % (p, _short(a[k])))
            elif k not in a:
                out.append("%s: only in B: %s" % (p, _short(b[k])))
            else:
                out += diff_values(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_values(x, y, "%s[%d]" % (path, i))
        return out
    return ["%s:\n      A: %s\n      B: %s" % (path, _short(a), _short(b))]


def describe(outcome):
    if outcome["kind"] == "reply":
        return "reply " + _short(outcome["reply"], 200)
    return outcome["kind"]


def compare_outcomes(step, oa, ob):
    if oa["kind"] != ob["kind"]:
        return ["outcome:\n      A: %s\n      B: %s"
                % (describe(oa), describe(ob))]
    if oa["kind"] != "reply":
        return []
    ra, rb = oa["reply"], ob["reply"]
    ka = "exception" if "exception" in ra else "return"
    kb = "exception" if "exception" in rb else "return"
    if ka != kb:
        return ["reply kind:\n      A: %s\n      B: %s"
                % (_short(ra), _short(rb))]
    request = step.get("send")
    if isinstance(request, dict) and request.get("command") == "version":
        return []
    if ka == "exception" and step.get("exception_text", True) is False:
        ra = dict(ra, exception=None)
        rb = dict(rb, exception=None)
    ignore = frozenset(step.get("ignore", []))
    return diff_values(normalise(ra, ignore), normalise(rb, ignore), "reply")


def comparable_events(ev):
    return {"jobs_changed": sorted(ev["jobs_changed"]),
            "machines_changed": sorted(ev["machines_changed"]),
            "other": sorted(ev["other"]),
            "disconnected": ev["disconnected"]}


def compare_events(ea, eb):
    out = []
    empty = comparable_events(new_events())
    for name in sorted(set(ea) | set(eb)):
        a = comparable_events(ea[name]) if name in ea else empty
        b = comparable_events(eb[name]) if name in eb else empty
        for key in ("jobs_changed", "machines_changed", "other",
                    "disconnected"):
            if a[key] != b[key]:
                out.append("conn %r %s since the previous step:\n"
                           "      A: %s\n      B: %s"
                           % (name, key, _fmt_event(a[key]),
                              _fmt_event(b[key])))
    return out


def _fmt_event(v):
    if isinstance(v, list):
        return "[" + ", ".join(v) + "]"
    return json.dumps(v)


def step_summary(index, step):
    if "sleep" in step:
        s = "sleep %s" % step["sleep"]
    elif "close" in step:
        s = "[%s] close" % step["conn"]
    elif "raw" in step:
        s = "[%s] raw %s" % (step["conn"], json.dumps(step["raw"]))
    else:
        s = "[%s] send %s" % (step["conn"], _short(step["send"], 200))
    if "note" in step:
        s += "  -- " + step["note"]
    return "step %d: %s" % (index, s)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def run_script(steps, sides, settle):
    """Run every step on both sides. Returns the per-step records."""
    records = []
    for index, step in enumerate(steps):
        for side in sides:
            side.start_step()
        if "sleep" in step:
            time.sleep(step["sleep"])
            outcomes = [{"kind": "sleep"}, {"kind": "sleep"}]
        else:
            outcomes = [side.run(step) for side in sides]
        time.sleep(step.get("settle", settle))
        for side in sides:
            side.drain_all()
        a, b = sides
        diffs = compare_outcomes(step, *outcomes) if "sleep" not in step \
            else []
        diffs += compare_events(a.events, b.events)
        for side, outcome in zip(sides, outcomes):
            if outcome["kind"] == "timeout":
                print("warning: %s: server %s gave no reply within the "
                      "timeout" % (step_summary(index, step), side.label),
                      file=sys.stderr)
        records.append({
            "index": index,
            "step": step,
            "differences": diffs,
            "a": side_record(a, outcomes[0]),
            "b": side_record(b, outcomes[1]),
        })
    return records


def side_record(side, outcome):
    return {"outcome": outcome,
            "events": {n: comparable_events(e)
                       for n, e in sorted(side.events.items())},
            "wire": side.transcript}


def write_transcript(path, args, records, error=None):
    doc = {"a": "%s:%d" % args.a, "b": "%s:%d" % args.b,
           "script": args.script, "settle": args.settle,
           "equivalent": error is None and not any(
               r["differences"] for r in records),
           "steps": records}
    if error is not None:
        doc["harness_error"] = error
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    except OSError as e:
        print("v1_differential: cannot write transcript %s: %s" % (path, e),
              file=sys.stderr)


def main(argv=None):
    global LOOSE_NUMBERS  # pylint: disable=global-statement
    p = argparse.ArgumentParser(
        description="Compare two spalloc v1 servers on one scripted "
                    "request sequence.")
    p.add_argument("--script", required=True)
    p.add_argument("--a", required=True, type=parse_addr, metavar="HOST:PORT")
    p.add_argument("--b", required=True, type=parse_addr, metavar="HOST:PORT")
    p.add_argument("--settle", type=float, default=0.3,
                   help="seconds to wait after each step (default 0.3)")
    p.add_argument("--transcript", help="write a JSON transcript here")
    p.add_argument("--loose-numbers", action="store_true",
                   help="treat integral floats as equal to ints")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    LOOSE_NUMBERS = args.loose_numbers
    if args.settle < 0:
        print("v1_differential: --settle must be >= 0", file=sys.stderr)
        return 2

    sides = [Side("A", args.a), Side("B", args.b)]
    records = []
    try:
        steps = load_script(args.script)
        records = run_script(steps, sides, args.settle)
    except HarnessError as e:
        print("v1_differential: harness error: %s" % e, file=sys.stderr)
        if args.transcript:
            write_transcript(args.transcript, args, records, str(e))
        return 2
    except KeyboardInterrupt:
        print("v1_differential: interrupted", file=sys.stderr)
        return 2
    except Exception as e:  # pylint: disable=broad-except
        import traceback
        traceback.print_exc()
        if args.transcript:
            write_transcript(args.transcript, args, records, repr(e))
        return 2
    finally:
        for side in sides:
            side.close_all()

    if args.transcript:
        write_transcript(args.transcript, args, records)
    differing = [r for r in records if r["differences"]]
    if not differing:
        print("v1_differential: equivalent (%d steps)" % len(records))
        return 0
    for r in differing:
        print(step_summary(r["index"], r["step"]), file=sys.stderr)
        for d in r["differences"]:
            print("    " + d, file=sys.stderr)
    print("v1_differential: %d of %d steps differ"
          % (len(differing), len(records)), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
