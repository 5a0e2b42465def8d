#!/usr/bin/env python3
"""Boot an emulated machine, or time bulk SDRAM writes and reads, with the real PyPI rig (2.4.1).

Run by tests/tests/calibration.rs against `sim emulate --impair tests/calibration/calibration.toml`
(whose boards start powered); also usable by hand against any `sim emulate`:

    # boot the machine through one board (rig's own boot and bundled SC&MP image)
    .venv-clients/bin/python tests/clients/calib_rig.py --boot 127.65.0.1
    # time writes and reads through another board's address
    .venv-clients/bin/python tests/clients/calib_rig.py \
        --board-ip 127.65.0.33 --chip 20,4 --bytes 32768 --repeats 1

Measuring: a fresh MachineController on the board's address first asks SC&MP for its buffer
size (rig's `scp_data_length`, one CMD_VER: rig does this itself on its first write; asking
before the clock starts keeps it out of the write's time), then writes --bytes random bytes at
--address with `MachineController.write` and reads them back with `MachineController.read`,
--repeats times. Both go through rig's `SCPConnection.send_scp_burst` with rig's window of 1,
0.5 s timeout and 5 tries. Each operation's wall time is measured around the call; the read
must return exactly what was written. Prints one JSON object on stdout:

    {"client": "rig", "version": ..., "board_ip": ..., "chip": [x, y], "bytes": N,
     "ops": [{"op": "write", "repeat": 0, "seconds": ..., "resends": ..., "timeouts": ...,
              "sends": ..., "chunks": ...}, ...]}

How the counts are taken (nothing installed is modified): rig keeps no counters, so the script
replaces the connection's socket object (`SCPConnection.sock`) with a thin wrapper that counts
what rig sends through it and passes every call on (send, recv, setblocking, and fileno for
select). With one request in flight, every new request carries a new sequence number, and
rig's only retransmission — in `send_scp_burst`, when a request's timeout passes — sends the
same bytes again. So a datagram identical to the one sent just before it is a resend, and
every resend is one timeout: resends = timeouts, and sends = chunks + resends.

rig 2.4.1 predates Python 3.10/3.11, which removed `collections.Iterable` and
`inspect.getargspec`; both are restored before rig is imported (as in rig_client.py).
"""

import argparse
import collections
import collections.abc
import inspect
import json
import os
import random
import sys
import time

# rig 2.4.1 on Python >= 3.11: shims for the two removed APIs it uses.
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable
if not hasattr(inspect, "getargspec"):
    def _getargspec(f):
        spec = inspect.getfullargspec(f)
        return spec.args, spec.varargs, spec.varkw, spec.defaults
    inspect.getargspec = _getargspec

from rig.machine_control import MachineController  # noqa: E402
from steps import package_version  # noqa: E402


class CountingSocket:
    """Passes every call on to rig's socket; counts sends and back-to-back identical sends."""

    def __init__(self, sock):
        self._sock = sock
        self.sends = 0
        self.resends = 0
        self._last = None

    def send(self, data):
        data = bytes(data)
        self.sends += 1
        if data == self._last:
            self.resends += 1
        self._last = data
        return self._sock.send(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def boot(ip):
    mc = MachineController(ip)
    t = time.monotonic()
    sent = mc.boot()
    v = mc.get_software_version(255, 255, 0)
    if not (v.version_string.startswith("SC&MP") and "SpiNNaker" in v.version_string):
        print(f"FAIL: booted software {v.version_string!r}, want 'SC&MP/SpiNNaker'",
              file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "client": "rig",
        "booted": bool(sent),
        "software": v.version_string,
        "seconds": time.monotonic() - t,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boot", metavar="IP", help="boot the machine through this board and exit")
    ap.add_argument("--board-ip", help="the board's IP address")
    ap.add_argument("--chip", help="x,y of the board's Ethernet chip (P2P coordinates)")
    ap.add_argument("--bytes", type=int, default=32 * 1024, help="bytes per operation")
    ap.add_argument("--repeats", type=int, default=1, help="write-then-read rounds")
    ap.add_argument("--address", type=lambda s: int(s, 0), default=0x6000_0000,
                    help="SDRAM address (default 0x60000000)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random payload")
    args = ap.parse_args()
    if args.boot:
        boot(args.boot)
        return
    if not (args.board_ip and args.chip):
        ap.error("--board-ip and --chip are needed to measure")
    x, y = (int(v) for v in args.chip.split(","))

    mc = MachineController(args.board_ip)
    buffer_size = mc.scp_data_length  # rig's own CMD_VER, before any clock starts
    conn = mc.connections[None]
    counter = CountingSocket(conn.sock)
    conn.sock = counter
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    chunks = (args.bytes + buffer_size - 1) // buffer_size
    ops = []

    def measure(op, repeat, fn):
        sends, resends = counter.sends, counter.resends
        t = time.monotonic()
        result = fn()
        seconds = time.monotonic() - t
        n = counter.resends - resends
        ops.append({
            "op": op,
            "repeat": repeat,
            "seconds": seconds,
            "resends": n,
            "timeouts": n,
            "sends": counter.sends - sends,
            "chunks": chunks,
        })
        return result

    for repeat in range(args.repeats):
        data = rng.randbytes(args.bytes)
        measure("write", repeat, lambda: mc.write(args.address, data, x, y))
        back = measure("read", repeat, lambda: mc.read(args.address, args.bytes, x, y))
        if bytes(back) != data:
            first = next((i for i, (a, b) in enumerate(zip(back, data)) if a != b), None)
            print(f"FAIL: read back {len(back)} bytes that differ from those written "
                  f"(first difference at offset {first}; seed {seed})", file=sys.stderr)
            sys.exit(1)
    print(json.dumps({
        "client": "rig",
        "version": package_version("rig"),
        "board_ip": args.board_ip,
        "chip": [x, y],
        "bytes": args.bytes,
        "buffer_size": buffer_size,
        "seed": seed,
        "ops": ops,
    }), flush=True)


if __name__ == "__main__":
    main()
