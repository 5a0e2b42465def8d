#!/usr/bin/env python3
"""Drive `sim serve` with the real PyPI spalloc client: every CLI tool and the Job API.

Run by tests/tests/spalloc_v1.rs with the spalloc 1!7.4.1 venv's python, against `sim serve
tests/spalloc/v1.toml` (machines "spin12": 2 x 2 triads, board (1, 1, 2) dead, at 127.21.0.0;
"small": one triad tagged "small", at 127.22.0.0):

    .venv-spalloc-7.4.1/bin/python tests/spalloc/v1_clients.py --port 22244 \
        --bin73 .venv-spalloc-7.3.0/bin --rig-python .venv-clients/bin/python

Each step prints "ok: <step>: <detail>"; the first failure prints "FAIL: <step>: <why>" (with
the tool's output) and exits 1. Steps check the tools' printed output and exit codes — the
error paths too — and that a board the server hands out boots and answers SCP (with rig, from
the real-client venv).
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

ARGS = None
BIN = None


class StepFailed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise StepFailed(why)


def tool(name, *args, bin_dir=None, timeout=60, stdin=subprocess.DEVNULL):
    """Runs a client tool; returns (exit code, stdout + stderr)."""
    exe = os.path.join(bin_dir or BIN, name)
    cmd = [exe, "-H", ARGS.host, "-P", str(ARGS.port), *map(str, args)]
    p = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def squash(text):
    """Lines with runs of spaces collapsed, for matching table rows."""
    return [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]


def field(text, name):
    """The value of a "Name: value" line of a tool's output."""
    m = re.search(rf"^\s*{re.escape(name)}:\s?(.*)$", text, re.M)
    check(m is not None, f"no {name!r} line in:\n{text}")
    return m.group(1).strip()


def expect(code, out, want_code, *want):
    check(code == want_code, f"exit code {code}, want {want_code}; output:\n{out}")
    for w in want:
        check(w in out, f"{w!r} not in output:\n{out}")


class Raw:
    """A raw JSON-line connection (for what the tools do not send)."""

    def __init__(self):
        self.s = socket.create_connection((ARGS.host, ARGS.port), timeout=10)
        self.f = self.s.makefile("rw")

    def call(self, command, *args, **kwargs):
        self.f.write(json.dumps({"command": command, "args": list(args), "kwargs": kwargs}) + "\n")
        self.f.flush()
        while True:
            line = json.loads(self.f.readline())
            if "return" in line or "exception" in line:
                return line


def job_id_of(out):
    m = re.search(r"Job (\d+):", out)
    check(m is not None, f"no job id in:\n{out}")
    return int(m.group(1))


def main():
    global ARGS, BIN
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bin73", required=True, help="bin directory of the spalloc 1!7.3.0 venv")
    ap.add_argument("--rig-python", required=True, help="python of the real-client venv (rig)")
    ARGS = ap.parse_args()
    BIN = os.path.dirname(sys.executable)
    here = os.path.dirname(os.path.abspath(__file__))
    from spalloc_client import Job, JobDestroyedError, JobState  # noqa: E402
    from importlib.metadata import version
    t0 = time.monotonic()
    state = {}

    def run(name, fn):
        t = time.monotonic()
        try:
            detail = fn()
        except StepFailed as e:
            print(f"FAIL: {name}: {e}", flush=True)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL: {name}: {type(e).__name__}: {e}", flush=True)
            sys.exit(1)
        print(f"ok: {name}: {detail} ({time.monotonic() - t:.2f} s)", flush=True)

    def version_check():
        r = Raw().call("version")
        v = r["return"]
        ints = tuple(map(int, v.split(".")))
        check((0, 4, 0) <= ints < (2, 0, 0), f"version {v} outside what every client accepts")
        return v

    def machines():
        code, out = tool("spalloc-machine")
        expect(code, out, 0)
        rows = squash(out)
        check("spin12 11 0 0 default" in rows, f"no spin12 row in:\n{out}")
        check("small 3 0 0 small" in rows, f"no small row in:\n{out}")
        code, out = tool("spalloc-machine", "spin12", "--detailed")
        expect(code, out, 0, "Name: spin12", "In-use: 0 of 11", "Jobs: 0")
        return "spin12 (11 live boards) and small (3) listed; --detailed shows the map"

    def no_machine():
        code, out = tool("spalloc-machine", "nosuch")
        expect(code, out, 6, "No machine 'nosuch' was found")
        return "exit 6, 'No machine 'nosuch' was found'"

    def ps_empty():
        code, out = tool("spalloc-ps")
        expect(code, out, 0)
        check(len(out.strip().splitlines()) == 1, f"jobs listed on an idle server:\n{out}")
        return "header only"

    def alloc():
        code, out = tool("spalloc", "--owner", "alice", 2, 1, "-D")
        expect(code, out, 0, "Hostname: 127.21.0.1", "Width: 24", "Height: 16", "Num boards: 6",
               "Running on: spin12", "Ready!")
        state["job"] = job_id_of(out)
        return f"job {state['job']}: 2 x 1 triads, 6 boards on spin12, kept with -D"

    def ps():
        code, out = tool("spalloc-ps")
        expect(code, out, 0)
        j = state["job"]
        row = [r for r in squash(out) if r.startswith(f"{j} ")]
        check(len(row) == 1, f"no row for job {j}:\n{out}")
        check(re.match(rf"{j} ready on 6 spin12 \S+ \S+ 60\.0 alice \(127\.0\.0\.1\)$", row[0]),
              f"row {row[0]!r}")
        return row[0]

    def job_info():
        j = state["job"]
        code, out = tool("spalloc-job", j)
        expect(code, out, 0)
        check(field(out, "State") == "ready", out)
        check(field(out, "Board power") == "on", out)
        check(field(out, "Num boards") == "6", out)
        check(field(out, "Owner") == "alice", out)
        code, out = tool("spalloc-job", j, "--ethernet-ips")
        expect(code, out, 0, "x,y,hostname", "0,0,127.21.0.1")
        rows = out.strip().splitlines()
        check(len(rows) == 7, f"{len(rows) - 1} Ethernet rows, want 6:\n{out}")
        code, out = tool("spalloc-job", "--owner", "alice")
        expect(code, out, 0, f"Job ID: {j}")
        return "state, power, boards, owner; 6 Ethernet IPs; found by --owner"

    def power():
        j = state["job"]
        code, out = tool("spalloc-job", j, "--power-off")
        expect(code, out, 0)
        code, out = tool("spalloc-job", j)
        check(field(out, "Board power") == "off" and field(out, "State") == "ready", out)
        code, out = tool("spalloc-job", j, "--power-on")
        expect(code, out, 0)
        code, out = tool("spalloc-job", j, "--reset")
        expect(code, out, 0)
        code, out = tool("spalloc-job", j)
        check(field(out, "Board power") == "on" and field(out, "State") == "ready", out)
        return "--power-off, --power-on and --reset each waited for ready"

    def where_is():
        j = state["job"]
        code, out = tool("spalloc-where-is", "--job-chip", j, 8, 4)
        expect(code, out, 0)
        check(field(out, "Machine") == "spin12", out)
        check(field(out, "Board coordinate") == "(0, 0, 1)", out)
        check(field(out, "Physical location") == "Cabinet 0, Frame 0, Board 1", out)
        check(field(out, "Job using board") == str(j), out)
        check(field(out, "Coordinates within job") == "(8, 4)", out)
        code, out = tool("spalloc-where-is", "--job-chip", 9999, 0, 0)
        expect(code, out, 4, "No boards at the specified location")
        return "--job-chip found board (0, 0, 1) of the job; an unknown job exits 4"

    def where_is_73():
        b73 = ARGS.bin73
        forms = [("--board", "spin12", 1, 1, 0), ("--physical", "spin12", 0, 0, 9),
                 ("--chip", "spin12", 12, 12)]
        got = []
        for form in forms:
            code, out = tool("spalloc-where-is", *form, bin_dir=b73)
            expect(code, out, 0)
            got.append((field(out, "Board coordinate"), field(out, "Physical location"),
                        field(out, "Machine chip coordinates")))
        check(len(set(got)) == 1, f"the three forms disagree: {got}")
        check(got[0] == ("(1, 1, 0)", "Cabinet 0, Frame 0, Board 9", "(12, 12)"), f"{got[0]}")
        code, out = tool("spalloc-where-is", "--physical", "spin12", 0, 0, 30, bin_dir=b73)
        expect(code, out, 4, "No boards at the specified location")
        return "--board, --physical and --chip (spalloc 1!7.3.0) agree; no board 30 exits 4"

    def destroy():
        j = state["job"]
        code, out = tool("spalloc-job", j, "--destroy", "all done")
        expect(code, out, 0)
        code, out = tool("spalloc-job", j)
        expect(code, out, 0)
        check(field(out, "State") == "destroyed" and field(out, "Reason") == "all done", out)
        code, out = tool("spalloc-job", 9999)
        expect(code, out, 0)
        check(field(out, "State") == "unknown", out)
        return "destroyed with its reason; an unknown id reads 'unknown'"

    def impossible():
        code, out = tool("spalloc", "--owner", "bob", 100)
        expect(code, out, 1, "Destroyed: Cancelled: No suitable machines available.")
        return "exit 1, cancelled: no suitable machines"

    def refused():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        exe = os.path.join(BIN, "spalloc-ps")
        p = subprocess.run([exe, "-H", "127.0.0.1", "-P", str(closed)], capture_output=True,
                           text=True, timeout=30)
        check(p.returncode == 1 and "Connection refused" in p.stdout + p.stderr,
              f"exit {p.returncode}: {p.stdout}{p.stderr}")
        r = Raw().call("create_job", owner=None)
        check(r.get("exception") == "owner must be specified for all jobs", f"{r}")
        return "no server: exit 1; a request without owner: the reference's exception"

    def job_api():
        with Job(hostname=ARGS.host, port=ARGS.port, owner="carol", tags=["small"],
                 keepalive=2.0) as j:
            check(j.state == JobState.ready, f"state {j.state}")
            check(j.hostname == "127.22.0.1", f"hostname {j.hostname}")
            check((j.width, j.height) == (8, 8), f"{j.width} x {j.height}")
            check(j.connections == {(0, 0): "127.22.0.1"}, f"connections {j.connections}")
            check(j.machine_name == "small", f"machine {j.machine_name}")
            # The board the server handed out boots and answers SCP.
            p = subprocess.run([ARGS.rig_python, os.path.join(here, "board_scp.py"),
                                "--board-ip", j.hostname], capture_output=True, text=True,
                               timeout=120)
            check(p.returncode == 0, f"rig on the job's board: {p.stdout}{p.stderr}")
            scp = p.stdout.strip().removeprefix("ok: ")
            # The keepalive subprocess keeps the job alive past its 2 s keepalive.
            time.sleep(3)
            check(j.state == JobState.ready, f"state {j.state} after 3 s of keepalives")
            j.set_power(False)
            j.wait_for_state_change(JobState.power, timeout=20)
            check(j.power is False, "power still on")
            j.reset()
            j.wait_until_ready(timeout=20)
            check(j.where_is_machine(chip_x=0, chip_y=0) == (0, 0, 0), "where_is_machine")
            jid = j.id
        r = Raw().call("get_job_state", jid)["return"]
        check(r["state"] == 4, f"after the with-block: {r}")
        with Job(1, 0, 1, hostname=ARGS.host, port=ARGS.port, owner="carol", machine="spin12") as j:
            check(j.boards == [[1, 0, 1]], f"boards {j.boards}")
            check(j.hostname == "127.21.0.33", f"hostname {j.hostname}")
        try:
            with Job(9, 9, hostname=ARGS.host, port=ARGS.port, owner="carol"):
                pass
            raise StepFailed("an impossible job was not destroyed")
        except JobDestroyedError as e:
            check("No suitable machines available" in str(e), f"{e}")
        return f"tags, ready, keepalives, SCP ({scp}), power off, reset, where_is; a specific board; JobDestroyedError"

    def timeout():
        raw = Raw()
        j = raw.call("create_job", owner="dave", keepalive=1.0)["return"]
        time.sleep(3.5)
        r = raw.call("get_job_state", j)["return"]
        check(r["state"] == 4 and r["reason"] == "Job timed out.", f"{r}")
        return f"job {j} with a 1 s keepalive and no keepalives: 'Job timed out.'"

    def watch():
        # spalloc-ps --watch re-lists on every jobs_changed notification.
        exe = os.path.join(BIN, "spalloc-ps")
        p = subprocess.Popen([exe, "-H", ARGS.host, "-P", str(ARGS.port), "--watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)
        raw = Raw()
        j = raw.call("create_job", owner="erin", keepalive=None)["return"]
        time.sleep(2)
        raw.call("destroy_job", j, reason="watched")
        time.sleep(1.5)
        p.terminate()
        out, _ = p.communicate(timeout=10)
        check(re.search(rf"\b{j}\b.*erin", out) is not None, f"job {j} never shown:\n{out}")
        exe = os.path.join(BIN, "spalloc-machine")
        p = subprocess.Popen([exe, "-H", ARGS.host, "-P", str(ARGS.port), "small", "--watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)
        j = raw.call("create_job", owner="erin", keepalive=None, tags=["small"])["return"]
        time.sleep(2)
        raw.call("destroy_job", j)
        time.sleep(1)
        p.terminate()
        out, _ = p.communicate(timeout=10)
        check("In-use: 1 of 3" in out, f"the allocation never showed:\n{out}")
        return "spalloc-ps --watch and spalloc-machine --watch followed the notifications"

    run("version", version_check)
    run("spalloc-machine", machines)
    run("spalloc-machine unknown machine", no_machine)
    run("spalloc-ps idle", ps_empty)
    run("spalloc allocates and keeps a job", alloc)
    run("spalloc-ps", ps)
    run("spalloc-job", job_info)
    run("spalloc-job power", power)
    run("spalloc-where-is", where_is)
    run("spalloc-where-is (1!7.3.0)", where_is_73)
    run("spalloc-job --destroy", destroy)
    run("spalloc impossible request", impossible)
    run("error paths", refused)
    run("Job API", job_api)
    run("keepalive expiry", timeout)
    run("watching", watch)
    print(f"ok: spalloc {version('spalloc')}: all steps passed in {time.monotonic() - t0:.2f} s",
          flush=True)


if __name__ == "__main__":
    main()
