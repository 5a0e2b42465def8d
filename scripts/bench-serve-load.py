#!/usr/bin/env python3
"""Load generator for scripts/bench-serve.sh: spalloc v1 (JSON lines over TCP) clients,
pipelined, for `sim serve` and the reference server alike. Python stdlib only.

The per-request work stays in C (whole request batches built once and sent with `send`,
replies counted with `bytes.count`), so one Python thread drives well over 500,000
get_job_state requests/s and is not what limits the figures.

Subcommands (all print one JSON object on stdout, except `hold`):

  state PORT --conns C --job ID --seconds S
      get_job_state(ID) pipelined: a 2,000-request probe on one connection sets N (the
      probe's rate times S); then N requests are split over C connections, every
      connection's share is sent without waiting for a reply, and the run ends when all N
      replies are in. With --lockstep: one request at a time on one connection for S seconds.
      {"requests", "seconds", "rate", "exceptions"}.
  pairs PORT --conns C --window W --seconds S
      create_job(1, owner="bench", keepalive=None) then destroy_job on its id, W at a time
      per connection: W creates sent together, then, once their W ids are in, W destroys;
      rounds repeat until S seconds are over (with --journal FILE --records N: until FILE,
      a sim serve journal, holds N records). {"pairs", "seconds", "rate", "exceptions"}.
  hold PORT --conns C --jobs J
      Opens C connections and creates J jobs (keepalive None) spread over them, pipelined;
      prints "HOLDING <jobs> <conns> <seconds connecting> <seconds creating>" and keeps
      every connection open until its standard input closes.
  config PORT --base IP
      The reference config JSON (tests/reference/README.md) for the machines the server at
      PORT serves: list_machines for shapes, tags and faults, get_board_position for every
      live board's (cabinet, frame, board), addresses by the standard IP scheme on BASE.
  restart -- COMMAND...
      Runs COMMAND (a `sim serve` on an existing state directory, not --quiet), times how long
      until it prints "listening on" and until a connection to its address is accepted and
      answers `version`, then stops it (SIGTERM). {"listening_s", "answering_s",
      "recovered": the server's own "recovered ..." line}.
  journal-records FILE
      Counts the records of a sim serve journal (16-byte magic, then length/CRC/payload).
"""

import argparse
import ipaddress
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time

HOST = "127.0.0.1"


def line(command, *args, **kwargs):
    return (json.dumps({"command": command, "args": list(args), "kwargs": kwargs}) + "\n").encode()


def connect(port, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def call(sock, rfile, command, *args, **kwargs):
    """One request, lock-step; returns the decoded reply (skipping notifications)."""
    sock.sendall(line(command, *args, **kwargs))
    while True:
        raw = rfile.readline()
        if not raw:
            raise SystemExit("the server closed the connection")
        reply = json.loads(raw)
        if "return" in reply:
            return reply["return"]
        if "exception" in reply:
            raise SystemExit("%s raised: %s" % (command, reply["exception"]))


class Conn:
    """A non-blocking connection: bytes to send, a count of reply lines, a partial line."""

    def __init__(self, port):
        self.sock = connect(port)
        self.sock.setblocking(False)
        self.out = memoryview(b"")
        self.pending = []  # further buffers to send after `out`
        self.lines = 0
        self.exceptions = 0
        self.partial = b""
        self.want = 0  # replies awaited
        self.registered = 0

    def queue(self, data):
        if len(self.out):
            self.pending.append(data)
        else:
            self.out = memoryview(data)


def pump(sel, conns, until, on_data=None, deadline=None):
    """Sends and receives on `conns` until `until()`; `on_data(conn, chunk)` sees every chunk
    (else reply lines are only counted)."""
    for c in conns:
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if len(c.out) else 0)
        if c.registered:
            sel.modify(c.sock, mask, c)
        else:
            sel.register(c.sock, mask, c)
        c.registered = mask
    while not until():
        if deadline is not None and time.perf_counter() > deadline:
            raise SystemExit("gave up: the server took too long to answer")
        for key, ev in sel.select(timeout=1.0):
            c = key.data
            if ev & selectors.EVENT_WRITE and len(c.out):
                try:
                    n = c.sock.send(c.out)
                except BlockingIOError:
                    n = 0
                c.out = c.out[n:]
                if not len(c.out) and c.pending:
                    c.out = memoryview(c.pending.pop(0))
            if ev & selectors.EVENT_READ:
                try:
                    chunk = c.sock.recv(1 << 20)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    raise SystemExit("the server closed a connection")
                if chunk:
                    if on_data is None:
                        c.lines += chunk.count(b"\n")
                        c.exceptions += chunk.count(b'"exception"')
                    else:
                        on_data(c, chunk)
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if len(c.out) else 0)
            if mask != c.registered:
                sel.modify(c.sock, mask, c)
                c.registered = mask


def open_conns(port, n):
    conns = []
    for _ in range(n):
        conns.append(Conn(port))
    return conns


def close_conns(sel, conns):
    for c in conns:
        if c.registered:
            sel.unregister(c.sock)
        c.sock.close()


def pipelined_state(port, conns_n, job, n):
    sel = selectors.DefaultSelector()
    conns = open_conns(port, conns_n)
    req = line("get_job_state", job)
    base, extra = divmod(n, conns_n)
    for i, c in enumerate(conns):
        c.want = base + (1 if i < extra else 0)
    t0 = time.perf_counter()
    for c in conns:
        c.queue(req * c.want)
    pump(sel, conns, lambda: all(c.lines >= c.want for c in conns), deadline=t0 + 600)
    dt = time.perf_counter() - t0
    exc = sum(c.exceptions for c in conns)
    close_conns(sel, conns)
    return n, dt, exc


def lockstep_state(port, job, seconds):
    s = connect(port)
    r = s.makefile("rb")
    req = line("get_job_state", job)
    n, exc = 0, 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        s.sendall(req)
        exc += b'"exception"' in r.readline()
        n += 1
    dt = time.perf_counter() - t0
    s.close()
    return n, dt, exc


def cmd_state(a):
    if a.lockstep:
        n, dt, exc = lockstep_state(a.port, a.job, a.seconds)
        print(json.dumps({"requests": n, "seconds": dt, "rate": n / dt, "exceptions": exc}))
        return
    # Probe on one connection, then size the run to last about --seconds.
    probe = 2000
    _, dt, _ = pipelined_state(a.port, 1, a.job, probe)
    n = int(min(max(probe / dt * a.seconds, 1000), a.max_requests))
    n, dt, exc = pipelined_state(a.port, a.conns, a.job, n)
    print(json.dumps({"requests": n, "seconds": dt, "rate": n / dt, "exceptions": exc}))


RETURN_INT = re.compile(rb'"return": (\d+)')


def cmd_pairs(a):
    sel = selectors.DefaultSelector()
    conns = open_conns(a.port, a.conns)
    create = line("create_job", 1, owner="bench", keepalive=None)
    stats = {"pairs": 0, "exceptions": 0}
    t0 = time.perf_counter()
    end = t0 + a.seconds
    active = set()
    journal = {"offset": 16, "records": 0, "checked": t0}

    def more():
        now = time.perf_counter()
        if a.journal is None:
            return now < end
        if now - journal["checked"] > 0.2:
            journal["checked"] = now
            journal["offset"], journal["records"] = count_records(
                a.journal, journal["offset"], journal["records"])
        return journal["records"] < a.records

    def start_round(c):
        c.phase = "create"
        c.ids = []
        c.got = 0
        c.queue(create * a.window)

    def on_data(c, chunk):
        data = c.partial + chunk
        cut = data.rfind(b"\n") + 1
        c.partial = data[cut:]
        lines = data[:cut]
        k = lines.count(b"\n")
        if not k:
            return
        stats["exceptions"] += lines.count(b'"exception"')
        c.got += k
        if c.phase == "create":
            c.ids.extend(int(m) for m in RETURN_INT.findall(lines))
            if c.got >= a.window:
                c.phase = "destroy"
                c.got = 0
                if c.ids:
                    c.queue(b"".join(line("destroy_job", i) for i in c.ids))
        if c.phase == "destroy" and c.got >= len(c.ids):
            stats["pairs"] += len(c.ids)
            if more():
                start_round(c)
            else:
                active.discard(c)

    for c in conns:
        start_round(c)
        active.add(c)
    pump(sel, conns, lambda: not active, on_data=on_data, deadline=end + 3600)
    dt = time.perf_counter() - t0
    close_conns(sel, conns)
    print(json.dumps({"pairs": stats["pairs"], "seconds": dt, "rate": stats["pairs"] / dt,
                      "exceptions": stats["exceptions"]}))


def cmd_hold(a):
    sel = selectors.DefaultSelector()
    t0 = time.perf_counter()
    conns = open_conns(a.port, a.conns)
    t1 = time.perf_counter()
    create = line("create_job", 1, owner="bench", keepalive=None)
    base, extra = divmod(a.jobs, a.conns)
    for i, c in enumerate(conns):
        c.want = base + (1 if i < extra else 0)
        c.queue(create * c.want)
    pump(sel, conns, lambda: all(c.lines >= c.want for c in conns), deadline=t0 + 600)
    exc = sum(c.exceptions for c in conns)
    if exc:
        raise SystemExit("%d create_job calls raised" % exc)
    t2 = time.perf_counter()
    print("HOLDING %d %d %.3f %.3f" % (a.jobs, a.conns, t1 - t0, t2 - t1), flush=True)
    sys.stdin.read()
    close_conns(sel, conns)


def cmd_config(a):
    s = connect(a.port)
    r = s.makefile("rb")
    base = int(ipaddress.IPv4Address(a.base))

    def ip(v):
        return str(ipaddress.IPv4Address(v))

    machines = []
    for m in call(s, r, "list_machines"):
        dead = {tuple(b) for b in m["dead_boards"]}
        locations, frames, boards = [], set(), []
        for x in range(m["width"]):
            for y in range(m["height"]):
                for z in range(3):
                    if (x, y, z) in dead:
                        continue
                    c, f, b = call(s, r, "get_board_position", m["name"], x, y, z)
                    locations.append([x, y, z, c, f, b])
                    frames.add((c, f))
                    # The standard scheme: cabinet 0.0.5.0, frame 0.0.1.0, board 0.0.0.8, +1.
                    boards.append([x, y, z, ip(base + c * 1280 + f * 256 + b * 8 + 1)])
        machines.append({
            "name": m["name"], "tags": m["tags"], "width": m["width"], "height": m["height"],
            "dead_boards": m["dead_boards"], "dead_links": m["dead_links"],
            "board_locations": locations,
            "bmp_ips": [[c, f, ip(base + c * 1280 + f * 256)] for c, f in sorted(frames)],
            "spinnaker_ips": boards,
        })
    s.close()
    print(json.dumps({"machines": machines}))


def cmd_restart(a):
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    recovered, listening, addr = None, None, None
    try:
        for raw in p.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            if "recovered" in text and recovered is None:
                recovered = text
            m = re.search(r"listening on ([0-9.]+):(\d+)", text)
            if m:
                listening = time.perf_counter() - t0
                addr = (m.group(1), int(m.group(2)))
                break
        if addr is None:
            raise SystemExit("sim serve exited without listening (%s)" % p.wait())
        while True:
            try:
                s = socket.create_connection(addr, timeout=5)
                break
            except OSError:
                time.sleep(0.001)
        s.sendall(line("version"))
        s.makefile("rb").readline()
        answering = time.perf_counter() - t0
        s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    print(json.dumps({"listening_s": listening, "answering_s": answering, "recovered": recovered}))


def count_records(path, offset=16, records=0):
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    pos = 0
    unpack = struct.Struct("<I").unpack_from
    while pos + 8 <= len(data):
        n = unpack(data, pos)[0]
        if pos + 8 + n > len(data):
            break
        pos += 8 + n
        records += 1
    return offset + pos, records


def cmd_journal_records(a):
    _, records = count_records(a.file)
    print(json.dumps({"records": records}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("state")
    s.add_argument("port", type=int)
    s.add_argument("--conns", type=int, default=1)
    s.add_argument("--job", type=int, default=1)
    s.add_argument("--seconds", type=float, default=3.0)
    s.add_argument("--max-requests", type=int, default=3_000_000)
    s.add_argument("--lockstep", action="store_true")
    s = sub.add_parser("pairs")
    s.add_argument("port", type=int)
    s.add_argument("--conns", type=int, default=1)
    s.add_argument("--window", type=int, default=100)
    s.add_argument("--seconds", type=float, default=3.0)
    s.add_argument("--journal")
    s.add_argument("--records", type=int, default=1_000_000)
    s = sub.add_parser("hold")
    s.add_argument("port", type=int)
    s.add_argument("--conns", type=int, default=1000)
    s.add_argument("--jobs", type=int, default=10000)
    s = sub.add_parser("config")
    s.add_argument("port", type=int)
    s.add_argument("--base", required=True)
    s = sub.add_parser("restart")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("journal-records")
    s.add_argument("file")
    a = p.parse_args()
    {"state": cmd_state, "pairs": cmd_pairs, "hold": cmd_hold, "config": cmd_config,
     "restart": cmd_restart, "journal-records": cmd_journal_records}[a.cmd](a)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        os._exit(1)
