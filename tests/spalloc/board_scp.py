#!/usr/bin/env python3
"""Boot a board that `sim serve` handed out and talk SCP to it, with the real PyPI rig (2.4.1).

Run with the real-client venv (.venv-clients) by tests/spalloc/v1_clients.py:

    .venv-clients/bin/python tests/spalloc/board_scp.py --board-ip 127.12.0.1

The board must be powered (its job ready) and unbooted. Prints one "ok: ..." line, or
"FAIL: ..." and exits 1.
"""

import argparse
import collections
import collections.abc
import inspect
import sys

# rig 2.4.1 on Python >= 3.11: shims for the two removed APIs it uses (see
# tests/clients/rig_client.py).
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable
if not hasattr(inspect, "getargspec"):
    def _getargspec(f):
        spec = inspect.getfullargspec(f)
        return spec.args, spec.varargs, spec.varkw, spec.defaults
    inspect.getargspec = _getargspec

from rig.machine_control import MachineController  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board-ip", required=True)
    args = ap.parse_args()
    mc = MachineController(args.board_ip)
    try:
        mc.boot()
        v = mc.get_software_version(255, 255, 0)
        if not v.version_string.startswith("SC&MP"):
            raise RuntimeError(f"software {v.version_string!r}, want SC&MP")
        info = mc.get_system_info()
        if len(info) != 48:
            raise RuntimeError(f"{len(info)} chips, want 48")
        eth = list(info.ethernet_connected_chips())
        if eth != [((0, 0), args.board_ip)]:
            raise RuntimeError(f"Ethernet chips {eth}")
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: board {args.board_ip}: {e}", flush=True)
        sys.exit(1)
    print(f"ok: board {args.board_ip} booted by rig: {v.version_string}, {len(info)} chips", flush=True)


if __name__ == "__main__":
    main()
