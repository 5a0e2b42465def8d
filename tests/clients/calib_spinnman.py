#!/usr/bin/env python3
"""Time bulk SDRAM writes and reads with the real PyPI spinnman (1!7.4.1), for calibration.

Run by tests/tests/calibration.rs against `sim emulate --impair tests/calibration/calibration.toml`
once the machine is booted; also usable by hand against any booted `sim emulate` board:

    .venv-clients/bin/python tests/clients/calib_spinnman.py \
        --board-ip 127.65.0.17 --chip 4,8 --bytes 102400 --repeats 1

A fresh spinnman Transceiver whose only connection is a SCAMPConnection to the board's address
(its Ethernet chip at --chip) writes --bytes random bytes at --address with
`Transceiver.write_memory` and reads them back with `Transceiver.read_memory`, --repeats times;
both go through spinnman's SCPRequestPipeLine (8 channels, waiting down to 7, 1 s receive
timeout, 10 retries). Each operation's wall time is measured around the call. The read must
return exactly what was written. Prints one JSON object on stdout:

    {"client": "spinnman", "version": ..., "board_ip": ..., "chip": [x, y], "bytes": N,
     "ops": [{"op": "write", "repeat": 0, "seconds": ..., "resends": ..., "timeouts": ...,
              "retry_code_resends": ..., "sends": ..., "chunks": ...}, ...]}

How the counts are taken (nothing installed is modified): spinnman counts its own resends and
timeouts in every SCPRequestPipeLine it makes (`n_resent`: every retransmission, whatever the
reason; `n_timeouts`: receive timeouts, each of which resends everything outstanding;
`n_retry_code_resent`: retransmissions after a retry return code). The processes behind
write_memory and read_memory make their pipelines internally and drop them, so the script wraps
`SCPRequestPipeLine.__init__` at run time to keep a reference to each pipeline made during an
operation and sums those counters afterwards: the figures are spinnman's own, counted by the
code that resends. As an independent check it also counts the datagrams the connection sends
(`sends`: the connection is a subclass of SCAMPConnection whose `send` counts, then calls
spinnman's): sends = chunks + resends.
"""

import argparse
import json
import logging
import os
import random
import sys
import time

# spinnman's INFO chatter (and "Transceiver / board not ready") goes to stderr; keep it quiet.
logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

from spinn_utilities.config_holder import set_config  # noqa: E402
from spinnman.config_setup import unittest_setup  # noqa: E402

# Only spinnman's own default configuration (ignore any ~/.spinnman.cfg), SpiNN-5 boards.
unittest_setup()
set_config("Machine", "version", "5")

from spinnman.connections import SCPRequestPipeLine  # noqa: E402
from spinnman.connections.udp_packet_connections import SCAMPConnection  # noqa: E402
from spinnman.transceiver import create_transceiver_from_connections  # noqa: E402
from steps import package_version  # noqa: E402

#: Pipelines made since the last reset (see the module docstring).
PIPELINES = []
_original_init = SCPRequestPipeLine.__init__


def _recording_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    PIPELINES.append(self)


SCPRequestPipeLine.__init__ = _recording_init


class CountingSCAMPConnection(SCAMPConnection):
    """spinnman's SCAMPConnection, counting the datagrams it sends (for the cross-check)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sends = 0

    def send(self, data):
        self.sends += 1
        return super().send(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board-ip", required=True, help="the board's IP address")
    ap.add_argument("--chip", required=True,
                    help="x,y of the board's Ethernet chip (P2P coordinates once booted)")
    ap.add_argument("--bytes", type=int, default=100 * 1024, help="bytes per operation")
    ap.add_argument("--repeats", type=int, default=1, help="write-then-read rounds")
    ap.add_argument("--address", type=lambda s: int(s, 0), default=0x6000_0000,
                    help="SDRAM address (default 0x60000000)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random payload")
    args = ap.parse_args()
    if args.board_ip == "127.0.0.1":
        ap.error("127.0.0.1 is special-cased by spinnman; use another loopback address")
    x, y = (int(v) for v in args.chip.split(","))

    conn = CountingSCAMPConnection(chip_x=x, chip_y=y, remote_host=args.board_ip)
    txrx = create_transceiver_from_connections([conn], ensure_board_is_ready=False)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    chunks = (args.bytes + 255) // 256
    ops = []

    def measure(op, repeat, fn):
        PIPELINES.clear()
        sends = conn.sends
        t = time.monotonic()
        result = fn()
        seconds = time.monotonic() - t
        ops.append({
            "op": op,
            "repeat": repeat,
            "seconds": seconds,
            "resends": sum(p.n_resent for p in PIPELINES),
            "timeouts": sum(p.n_timeouts for p in PIPELINES),
            "retry_code_resends": sum(p.n_retry_code_resent for p in PIPELINES),
            "sends": conn.sends - sends,
            "chunks": chunks,
        })
        return result

    try:
        for repeat in range(args.repeats):
            data = rng.randbytes(args.bytes)
            measure("write", repeat, lambda: txrx.write_memory(x, y, args.address, data))
            back = measure("read", repeat,
                           lambda: txrx.read_memory(x, y, args.address, args.bytes))
            if bytes(back) != data:
                first = next((i for i, (a, b) in enumerate(zip(back, data)) if a != b), None)
                print(f"FAIL: read back {len(back)} bytes that differ from those written "
                      f"(first difference at offset {first}; seed {seed})", file=sys.stderr)
                sys.exit(1)
    finally:
        txrx.close()
    print(json.dumps({
        "client": "spinnman",
        "version": package_version("SpiNNMan"),
        "board_ip": args.board_ip,
        "chip": [x, y],
        "bytes": args.bytes,
        "seed": seed,
        "ops": ops,
    }), flush=True)


if __name__ == "__main__":
    main()
