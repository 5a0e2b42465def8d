#!/usr/bin/env python3
"""Writes the script of the v1 differential test, v1_differential_script.json (see
v1_differential.py for the step format), to stdout:

    python3 tests/reference/v1_differential_script.py > tests/reference/v1_differential_script.json

Edit this file, not the JSON: tests/tests/spalloc_differential.rs checks that the committed JSON
is what this writes. The notes in the JSON name job ids, which are counted here.

The machines are those of v1_differential.toml: "small" (1 x 1 triad, the first choice of
"default" jobs) and "big" (2 x 2 triads, dead board (1, 1, 2), two frames). Connections: c makes
most requests, w watches every job, m every machine, k particular jobs and machines, q is a
second user, p sends what gets it disconnected.

Timing: the harness waits `--settle` (the test gives 0.1 s) after each step before it collects
notifications; a step that starts BMP work settles for BMP seconds (both servers finish a batch
in well under 0.1 s). Anything that happens on a timer — boards coming back seconds_before_free
(0.5 s) after their power-off, keepalives running out — is made to happen during a `sleep` step
with a wide margin on both sides, so that no notification can land in a different step on one
server than on the other.

Steps compared loosely, each with its reason in its note: `version` (by the harness), the
exception texts of create_job requests the reference turns into zombies (spalloc_server.md
section 11) and of where_is with a bad keyword set (a Python set's order). Nothing else is
ignored.
"""

import json
import sys

BMP = 0.4
steps = []


class Ids:
    """Job ids in creation order: every create_job that reaches the reference's controller
    takes one, whether it is refused, cancelled or queued."""

    def __init__(self):
        self.next = 1

    def take(self):
        n = self.next
        self.next += 1
        return n


ids = Ids()


def step(st, note=None, settle=None, exc=None, timeout=None):
    if note:
        st["note"] = note
    if settle is not None:
        st["settle"] = settle
    if exc is not None:
        st["exception_text"] = exc
    if timeout is not None:
        st["timeout"] = timeout
    steps.append(st)


def S(conn, command, *args, note=None, settle=None, exc=None, **kwargs):
    """A request {command, args, kwargs} on a connection."""
    step({"conn": conn, "send": {"command": command, "args": list(args), "kwargs": kwargs}},
         note, settle, exc)


def SEND(conn, obj, note=None):
    """Any JSON object as the request."""
    step({"conn": conn, "send": obj}, note)


def RAW(conn, text, note=None, settle=None, timeout=None):
    """Bytes as they are."""
    step({"conn": conn, "raw": text}, note, settle, timeout=timeout)


def SLEEP(s, note):
    steps.append({"sleep": s, "note": note})


def CLOSE(conn, note=None):
    step({"conn": conn, "close": True}, note)


def kw(owner="alice", keepalive=60.0, machine=None, tags=None, min_ratio=0.333,
       max_dead_boards=0, max_dead_links=None, require_torus=False):
    """The eight keywords as the real clients send them (all of them, nulls included)."""
    return dict(owner=owner, keepalive=keepalive, machine=machine, tags=tags,
                min_ratio=min_ratio, max_dead_boards=max_dead_boards,
                max_dead_links=max_dead_links, require_torus=require_torus)


def CJ(conn, *args, note, settle=BMP, exc=None, **kwargs):
    """A create_job that takes a job id; returns the id."""
    j = ids.take()
    S(conn, "create_job", *args, note="job %d: %s" % (j, note), settle=settle, exc=exc,
      **kwargs)
    return j


def W(note=None, exc=None, **kwargs):
    S("c", "where_is", note=note, exc=exc, **kwargs)


ZOMBIE = ("the reference answers with an exception yet leaves the job queued in its "
          "controller (spalloc_server.md section 11: a create_job whose allocator check "
          "raises); sim serve refuses it outright, using up the id all the same: a documented, "
          "deliberate difference")
ZTEXT = ("; the texts are not compared: the reference's comes from inside its allocator, "
         "sim serve's says which argument is wrong")


def zombie_cleanup(j):
    S("c", "destroy_job", j,
      note="clean up zombie job %d: the reference cancels it, sim serve has no such job; both "
      "reply null, nobody watches jobs yet and the job is never asked about again "
      "(reference: destroyed, sim serve: unknown), so no reply or notification differs" % j)


# ================================================================ A: before anybody watches
S("c", "version", note="version strings are not compared: sim serve says 1.0.0 because the real "
  "clients refuse the reference's own '1!7.0.0' (spalloc_v1_client.md)")
S("c", "version", 1, note="TypeError: too many arguments")
S("c", "version", note="TypeError: an unknown keyword", verbose=True)
S("c", "list_machines")
S("c", "list_jobs", note="no jobs yet")
S("c", "create_job", note="no owner: refused before a job id is taken")
S("c", "create_job", note="owner null: refused before a job id is taken", **kw(owner=None))
S("c", "create_job", note="keepalive not a number", **kw(keepalive="soon"))
S("c", "create_job", note="keepalive a list", **kw(keepalive=[60]))
S("c", "create_job", note="tags not iterable", **kw(tags=5))
S("c", "create_job", note="tags not hashable", **kw(tags=[["big"]]))
j = CJ("c", note="require_torus for a board: " + ZOMBIE, settle=None, **kw(require_torus=True))
zombie_cleanup(j)
j = CJ("c", 1, 2, 3, 4, note="four positional arguments: " + ZOMBIE + ZTEXT, settle=None,
       exc=False, **kw())
zombie_cleanup(j)
j = CJ("c", 4, note="a negative min_ratio: " + ZOMBIE, settle=None, **kw(min_ratio=-1.0))
zombie_cleanup(j)
j = CJ("c", "2", note="a string as the number of boards: " + ZOMBIE + ZTEXT, settle=None,
       exc=False, **kw())
zombie_cleanup(j)
j = CJ("c", 1, note="an unknown keyword: " + ZOMBIE + ZTEXT, settle=None, exc=False,
       owner="alice", colour="red")
zombie_cleanup(j)
S("c", "list_jobs", note="no jobs: the reference's zombies are gone")

# ================================================================ B: watchers, jobs of every form
S("w", "notify_job", note="w: every job")
S("m", "notify_machine", note="m: every machine")
a = CJ("c", note="() any board, as the client sends it: small, the first machine", **kw())
b = CJ("c", 1, note="(1): one board, another owner", **kw(owner="bob"))
c3 = CJ("c", 3, note="(3) boards: a triad (small has none free: big)", **kw())
d = ids.next
S("k", "notify_job", d, note="k: job %d only" % d)
S("k", "notify_machine", "big", note="k: machine big only")
S("k", "notify_machine", "big", note="again: no change")
d = CJ("c", 1, 2, note="(w, h) = 1 x 2 triads with tags, dead boards and links allowed: spans "
       "big's two frames, so two BMPs; a long keepalive",
       **kw(tags=["big"], max_dead_boards=1, max_dead_links=4, min_ratio=0.0, keepalive=300.0))
e = CJ("c", 0, 1, 0, note="(x, y, z): a specific board on big, no keepalive",
       **kw(machine="big", keepalive=None))
f = CJ("c", 0, 0, 2, note="a specific board in the triad job %d holds: queued" % c3,
       **kw(machine="big", keepalive=None))
g = CJ("c", 1, note="only the owner keyword (keepalive 60 by default): small's last board",
       owner="dave")
cancelled = [
    CJ("c", 5, 5, note="too big for any machine: cancelled at once", owner="erin",
       keepalive=None, settle=None),
    CJ("c", note="an unknown machine: cancelled", owner="erin", keepalive=None,
       machine="nosuch", settle=None),
    CJ("c", note="an unknown tag: cancelled", owner="erin", keepalive=None, tags=["nosuch"],
       settle=None),
    CJ("c", 0, note="no boards: cancelled", owner="erin", keepalive=None, settle=None),
    CJ("c", -2, note="a negative number of boards: cancelled", owner="erin", keepalive=None,
       settle=None),
    CJ("c", 0, 1, note="a 0 x 1 rectangle: cancelled", owner="erin", keepalive=None,
       settle=None),
    CJ("c", 1, 1, 2, note="the dead board: cancelled", owner="erin", keepalive=None,
       machine="big", settle=None),
    CJ("c", 0, 0, 3, note="z out of range: cancelled", owner="erin", keepalive=None,
       machine="small", settle=None),
    CJ("c", 2, 2, note="a torus larger than small: cancelled", owner="erin", keepalive=None,
       require_torus=True, machine="small", settle=None),
    CJ("c", 4, note="two triads, square, on one triad's machine: cancelled", owner="erin",
       keepalive=None, machine="small", min_ratio=1.0, settle=None),
    CJ("c", 3, note="max_dead_boards -1 can never be met: cancelled", owner="erin",
       keepalive=None, max_dead_boards=-1, settle=None),
    CJ("c", 1, 1, note="max_dead_links -1 can never be met: cancelled", owner="erin",
       keepalive=None, max_dead_links=-1, settle=None),
    CJ("c", note="a number as the machine names no machine: cancelled", owner="erin",
       keepalive=None, machine=5, settle=None),
]
h = CJ("c", 1, 1, note="a triad of big with no dead board: possible, but none is free: queued",
       owner="erin", keepalive=None, max_dead_boards=0, tags=["big"], settle=None)

# ================================================================ C: queries
for j in (a, b, c3, d, e, f, g, cancelled[0], cancelled[6], *cancelled[-3:], h):
    S("c", "get_job_state", j)
S("c", "get_job_state", 999, note="unknown job")
S("c", "get_job_state", str(a), note="a string id matches no job")
S("c", "get_job_state", float(a), note="a float equal to an int is that job")
S("c", "get_job_state", job_id=d, note="the id as a keyword")
for j in (a, c3, d, e, f, cancelled[0], 999):
    S("c", "get_job_machine_info", j)
S("c", "job_keepalive", d)
S("c", "job_keepalive", 999, note="unknown job: null")
S("c", "list_jobs")
S("c", "list_machines")

# ================================================================ D: power
S("c", "power_off_job_boards", d, settle=BMP, note="w (every job) and k (this job) hear of it")
S("c", "get_job_state", d, note="ready, power off")
S("c", "power_on_job_boards", d, settle=BMP)
S("c", "get_job_state", d, note="ready, power on")
RAW("c", json.dumps({"command": "power_off_job_boards", "args": [e], "kwargs": {}}) + "\n"
    + json.dumps({"command": "power_on_job_boards", "args": [e], "kwargs": {}}) + "\n",
    settle=BMP, note="power off and at once on again, in one write: the two batches queue on "
    "one BMP; the second reply is compared as an unsolicited line")
S("c", "get_job_state", e, note="ready, power on")
S("c", "power_on_job_boards", f, note="a queued job: nothing to power")
S("c", "power_off_job_boards", f, note="a queued job: nothing to power")
S("c", "power_on_job_boards", 999)
S("c", "power_off_job_boards", 999)
S("c", "power_off_job_boards", note="TypeError: no job id")

# ================================================================ E: positions and where_is
S("c", "get_board_position", "big", 1, 0, 1)
S("c", "get_board_position", "big", 0, 1, 2, note="frame 1")
S("c", "get_board_position", "big", 1, 1, 2, note="the dead board has no location")
S("c", "get_board_position", "big", 5, 5, 0, note="outside the machine")
S("c", "get_board_position", "small", 0, 0, 1)
S("c", "get_board_position", "nosuch", 0, 0, 0, note="unknown machine")
S("c", "get_board_position", "big", x=1, y=0, z=2, note="coordinates as keywords")
S("c", "get_board_position", "big", 0, 0, note="TypeError: z missing")
S("c", "get_board_at_position", "big", 0, 1, 4)
S("c", "get_board_at_position", "big", 0, 0, 5)
S("c", "get_board_at_position", "big", 0, 0, 7, note="no board there")
S("c", "get_board_at_position", "big", 1, 0, 0, note="no cabinet 1")
S("c", "get_board_at_position", "small", 0, 0, 2)
S("c", "get_board_at_position", "nosuch", 0, 0, 0)
W(machine="big", x=1, y=0, z=1, note="a board of job %d" % d)
W(machine="big", x=0, y=1, z=0, note="job %d's board" % e)
W(machine="big", x=3, y=0, z=0, note="outside the machine: wraps around")
W(machine="big", x=1, y=1, z=2, note="the dead board: no location, null")
W(machine="big", x=0, y=0, z=3, note="z out of range: the reference takes it as z = 0")
W(machine="big", x=9000000000000000000, y=1, z=1, note="huge coordinates wrap")
W(machine="big", x=-1, y=-1, z=-1, note="negative coordinates wrap")
W(machine="big", cabinet=0, frame=1, board=3)
W(machine="big", cabinet=0, frame=0, board=9, note="no board there")
W(machine="small", cabinet=0, frame=0, board=1, note="job %d's board" % b)
W(machine="big", chip_x=13, chip_y=5)
W(machine="big", chip_x=-1, chip_y=-1, note="wraps around to the dead board: null")
W(machine="big", chip_x=-13, chip_y=-2, note="wraps around")
W(machine="big", chip_x=100, chip_y=7, note="wraps around")
W(machine="small", chip_x=4, chip_y=8)
W(machine="nosuch", chip_x=0, chip_y=0, note="unknown machine")
W(job_id=d, chip_x=0, chip_y=0)
W(job_id=d, chip_x=8, chip_y=16, note="the job's board in frame 1")
W(job_id=d, chip_x=9, chip_y=3, note="a chip of the dead board (1, 1, 2), which has no "
  "location: null")
W(job_id=d, chip_x=30, chip_y=0, note="not the job's board")
W(job_id=d, chip_x=9000000000000000000, chip_y=-9000000000000000000,
  note="huge coordinates wrap")
W(job_id=a, chip_x=3, chip_y=2, note="a single-board job")
W(job_id=f, chip_x=0, chip_y=0, note="a queued job has no boards")
W(job_id=999, chip_x=0, chip_y=0, note="unknown job")
W(machine="big", x=1, note="not one of the four forms; the text lists a Python set, whose "
  "order changes from run to run (string hashing is randomised)", exc=False)
W(note="no keywords: the same TypeError, with nothing listed")
S("c", "where_is", "big", note="TypeError: a positional argument")

# ================================================================ F: watching
S("k", "notify_job", float(d), note="the same as %d: no change" % d)
S("k", "notify_job", str(e), note="a string never matches job %d" % e)
S("k", "notify_job", [1], note="not hashable")
S("k", "notify_machine", {"a": 1}, note="not hashable")
S("w", "notify_job", [1], note="w watches every job: the id is not looked at")
S("k", "no_notify_job", [1], note="not hashable")
S("k", "no_notify_job", str(e))
S("w", "no_notify_job", a, note="w watches every job: no-op")
S("m", "no_notify_machine", "small", note="m watches every machine: no-op")
S("q", "no_notify_job", 5, note="q watches nothing: no-op")
S("q", "no_notify_machine", note="q watches nothing: no-op")
S("k", "no_notify_machine", "big", note="k: no machines any more")

# ================================================================ G: destroying, delayed free
S("c", "destroy_job", c3, "positional reason", note="frees the triad of big job %d waits for, "
  "once powered off and seconds_before_free later" % f)
SLEEP(1.2, "seconds_before_free is 0.5 s: job %d gets its board and powers on in this sleep" % f)
S("c", "get_job_state", c3)
S("c", "get_job_state", f)
S("c", "destroy_job", b, reason="keyword reason", settle=BMP)
S("c", "destroy_job", a, settle=BMP, note="no reason")
S("c", "destroy_job", g, None, settle=BMP, note="reason null")
S("c", "destroy_job", 999, note="unknown job")
S("c", "destroy_job", c3, note="already destroyed")
S("c", "destroy_job", note="TypeError: no job id")
S("c", "destroy_job", c3, "x", "y", note="TypeError: too many arguments")
for j in (a, b, c3, g):
    S("c", "get_job_state", j)
S("c", "power_on_job_boards", a, note="a destroyed job: nothing to power")
W(job_id=a, chip_x=0, chip_y=0, note="a destroyed job: null")
S("c", "list_jobs")
SLEEP(1.0, "small's boards come back (nothing waits for them)")

# ================================================================ H: keepalives
S("k", "notify_job", note="k: every job now")
S("k", "notify_machine", note="k: every machine now")
t0 = CJ("q", note="keepalive 0: allocated, then timed out at the first check, while its boards "
        "power on", **kw(keepalive=0.0))
t1 = CJ("q", note="a one-second keepalive", **kw(keepalive=1.0))
SLEEP(0.3, "within job %d's keepalive" % t1)
S("q", "job_keepalive", t1)
SLEEP(0.4, "within the keepalive")
S("q", "get_job_state", t1, note="keeps it alive too")
SLEEP(0.4, "within the keepalive")
S("c", "job_keepalive", t1, note="from another connection")
tq = CJ("q", 2, 2, note="the whole of big, queued behind its jobs, one-second keepalive",
        **kw(machine="big", keepalive=1.0, max_dead_boards=None))
SLEEP(1.6, "both keepalives run out (the reference checks every 0.1 s)")
for j in (t0, t1, tq):
    S("c", "get_job_state", j)
S("c", "list_jobs")

# ================================================================ I: packing on freed machines
S("c", "destroy_job", d, "done", note="job %d waits for a triad of big with no dead board" % h)
SLEEP(1.2, "the boards come back after seconds_before_free: job %d is allocated in this sleep" % h)
S("c", "destroy_job", e, settle=BMP)
S("c", "destroy_job", f, settle=BMP)
SLEEP(1.0, "big's boards come back (nothing waits for them)")
S("c", "get_job_state", h)
S("c", "get_job_machine_info", h)
tor = CJ("c", 1, 1, note="a 1 x 1 torus on small", **kw(machine="small", require_torus=True,
                                                        keepalive=None))
S("c", "get_job_machine_info", tor)
two = CJ("c", 4, note="four boards, any shape: two triads of big",
         **kw(tags=["big"], min_ratio=0.0, max_dead_boards=None, keepalive=None))
nolinks = CJ("c", 2, note="two boards on small, no dead link allowed: queued behind job %d" % tor,
             **kw(machine="small", max_dead_links=0, keepalive=None))
empty = CJ("c", note="empty tags: any machine may run it (big's last triad)",
           **kw(tags=[], keepalive=None))
num = CJ("c", 1, note="a number as the owner, an int keepalive, max_dead_boards -1 (a single "
         "board does not look at it)", owner=42, keepalive=5, max_dead_boards=-1)
dup = CJ("c", 1, 1, note="duplicate tags: queued (big is full)",
         **kw(tags=["big", "big", "default"], keepalive=None))
CJ("c", note="tags as a string: Python takes its letters, no machine has them: cancelled",
   **kw(tags="big", keepalive=None), settle=None)
strka = CJ("c", 1, note="the keepalive as a string, a non-ASCII owner: queued",
           owner="zo\u00eb \u2713", keepalive="2.5", settle=None)
S("c", "list_jobs")
for j in (tor, two, nolinks, empty, num, dup, strka):
    S("c", "get_job_state", j)
S("c", "destroy_job", num, 42, settle=BMP, note="a number as the reason")
S("c", "get_job_state", num)
S("c", "destroy_job", strka, [1, "a"], note="a queued job, a list as the reason")
S("c", "destroy_job", tor, note="job %d follows on small, seconds_before_free after the power "
  "off" % nolinks)
SLEEP(1.2, "job %d is allocated in this sleep" % nolinks)
S("c", "get_job_state", nolinks)
S("c", "get_job_state", strka)
S("c", "list_jobs")
S("c", "destroy_job", nolinks, settle=BMP)
SLEEP(1.0, "small's boards come back (nothing waits for them)")

# ================================================================ J: the wire
CLOSE("c")
S("c", "list_machines", note="a reopened connection")
RAW("m", "\n\n{\"command\": \"list_machines\"}\n", note="empty lines are skipped")
RAW("p", "{\"command\": \"list_jobs\"", note="a partial line: no reply yet", timeout=0.3)
RAW("p", ", \"args\": []}\n", note="the rest of the line")
RAW("p", "{\"command\": \"list_machines\"}\n{\"command\": \"get_job_state\", \"args\": [%d]}\n"
    % t1, note="two requests in one write: the second reply is compared as an unsolicited line")
SEND("p", {"command": "list_jobs", "kwargs": {"client": 5}}, note="a client keyword is dropped")
SEND("p", {"command": "list_machines", "args": [], "kwargs": {}, "extra": 1},
     note="other keys are ignored")
SEND("p", {"command": "get_job_state"}, note="no args or kwargs: TypeError")
RAW("p", "{\"command\": \"list_machines\"}\r\n", note="CRLF")
RAW("p", "   \n", note="a line of spaces is not JSON: disconnect")
RAW("p", "\r\n", note="an empty CRLF line is not empty: disconnect")
SEND("p", {"command": "list_jobs", "args": {}, "kwargs": {}}, note="args not a list: disconnect")
SEND("p", {"command": "list_jobs", "args": [], "kwargs": []},
     note="kwargs not an object: disconnect")
SEND("p", {"command": "list_jobs", "args": [], "kwargs": None}, note="kwargs null: disconnect")
SEND("p", {"args": []}, note="no command: disconnect")
SEND("p", {"command": 5}, note="command not a string: disconnect")
RAW("p", "[1, 2]\n", note="not an object: disconnect")
RAW("p", "\"command\"\n", note="a string: disconnect")
RAW("p", "{\"command\": \"nosuch\"}\n", note="unknown command: disconnect")
RAW("p", "{not json\n", note="malformed: disconnect")
RAW("p", "{\"command\": \"list_jobs\"}\n{not json\n{\"command\": \"list_jobs\"}\n",
    note="a good line, a bad one, a good one: one reply, then disconnect")
S("w", "no_notify_job", note="w: no jobs any more")
S("k", "no_notify_machine",
  note="k: no machines any more (it still watches every job); BMP work still under way (earlier power-offs) ends first",
  settle=3 * BMP)
CJ("c", note="a new job on small: k hears of the job, m of the machine, w of nothing",
   **kw(keepalive=None))
CLOSE("k", note="k's watches go with it")
S("k", "list_jobs", note="k reconnected: watches nothing")
CJ("c", note="another job on small: only m hears of it (a machine change)",
   **kw(keepalive=None))

# ================================================================ K: last
CJ("c", note="machine and tags: an exception from both, but the reference keeps the job in its "
   "controller for ever (spalloc_server.md section 11; with a keepalive its expiry would crash "
   "the reference's server loop), so nothing lists or watches jobs after this step",
   **kw(machine="big", tags=["big"], keepalive=None), settle=None)


sys.stdout.write("[\n" + ",\n".join(json.dumps(s, ensure_ascii=False) for s in steps) + "\n]\n")
