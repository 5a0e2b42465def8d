"""Step runner (and package_version) shared by the real-client scripts (spinnman_client.py,
rig_client.py, calib_spinnman.py, calib_rig.py).

Each step prints one "ok: <name>: <detail> [<wall time>]" line; the first failure prints
"FAIL: <name>: <why>" (with a traceback on stderr unless it is a StepFailed) and exits 1.
"""

import sys
import time
import traceback

#: spI/O FPGA top-level FLAG register (bits 1..0 = the FPGA's id), read via CMD_LINK_READ.
FPGA_FLAG = 0x0004_0004
#: How long a probe waits for a reply that must not come.
SILENT_WAIT = 0.4


class StepFailed(Exception):
    pass


def check(cond, message):
    if not cond:
        raise StepFailed(message)


class Steps:
    def __init__(self):
        self.t0 = time.monotonic()

    def run(self, name, fn):
        start = time.monotonic()
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            if not isinstance(e, StepFailed):
                traceback.print_exc(file=sys.stderr)
            print(f"FAIL: {name}: {type(e).__name__}: {e}", flush=True)
            print(f"FAIL: {name}: {e!r}", file=sys.stderr, flush=True)
            sys.exit(1)
        took = time.monotonic() - start
        print(f"ok: {name}{': ' + detail if detail else ''} [{took:.2f} s]", flush=True)


def package_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"
