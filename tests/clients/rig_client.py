#!/usr/bin/env python3
"""Drive an emulated SpiNNaker board with the real PyPI rig (2.4.1).

Run by tests/tests/real_clients.rs against `sim emulate tests/clients/rig.toml`; also usable by
hand against any `sim emulate` (the board must start powered off):

    .venv-clients/bin/python tests/clients/rig_client.py \
        --bmp 127.11.0.0 --board-ip 127.11.0.1 --board 0

rig is a different client from spinnman: stop-and-wait SCP with its own timeouts and retries,
its own boot code and bundled SC&MP image, its own struct-file reads of the system variables
and chip info. Steps (one "ok: ..." line each, with its wall time; any failure prints
"FAIL: <step>: <why>" and exits 1):

 1. rig's BMPController reads the BMP's version (BC&MP);
 2. the board, powered off, is silent on SCP;
 3. CMD_POWER on through the BMP (rig's `set_power`, sent to board 0 with the board mask as rig
    does), then the FPGA FLAG registers read through the BMP carry each FPGA's id;
 4. the powered board runs its boot ROM: still silent on SCP;
 5. rig's `MachineController.boot()` finds no SC&MP, boots the board with rig's bundled image
    over UDP 54321 and polls until CMD_VER reports a P2P address; the version is SC&MP;
 6. rig's `get_system_info` (reads of the system variables, the P2P table and every chip's
    info) sees the 48 chips of a SpiNN-5 board and the Ethernet chip's IP address;
 7. 100 KiB of random bytes written to SDRAM of chip (0, 0) (allocated with rig's
    `sdram_alloc`, CMD_ALLOC) and read back byte for byte;
 8. CMD_POWER off: the board stops answering; CMD_POWER on again: unbooted (silent).

rig 2.4.1 predates Python 3.10/3.11, which removed `collections.Iterable` and
`inspect.getargspec`. Both are restored below (from `collections.abc` and
`inspect.getfullargspec`) before rig is imported: a compatibility shim for the client, nothing
in the emulator.
"""

import argparse
import collections
import collections.abc
import inspect
import os
import random
import time

# rig 2.4.1 on Python >= 3.11: shims for the two removed APIs it uses.
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable
if not hasattr(inspect, "getargspec"):
    def _getargspec(f):
        spec = inspect.getfullargspec(f)
        return spec.args, spec.varargs, spec.varkw, spec.defaults
    inspect.getargspec = _getargspec

from steps import FPGA_FLAG, SILENT_WAIT, StepFailed, Steps, check  # noqa: E402
from rig.machine_control import BMPController, MachineController  # noqa: E402
from rig.machine_control.scp_connection import SCPError  # noqa: E402

APP_ID = 33


def scp_silent(board_ip, what):
    """CMD_VER from a fresh rig controller, two tries of SILENT_WAIT; any reply fails."""
    mc = MachineController(board_ip, n_tries=2, timeout=SILENT_WAIT)
    try:
        info = mc.get_software_version(255, 255, 0)
    except SCPError:
        return
    raise StepFailed(f"{what}: expected no SCP reply from {board_ip}:17893 but got {info}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bmp", required=True, help="the frame's BMP IP address")
    ap.add_argument("--board-ip", required=True, help="the board's IP address")
    ap.add_argument("--board", type=int, default=0, help="board number in the frame")
    ap.add_argument("--bytes", type=int, default=100 * 1024, help="SDRAM bytes to move")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random payload")
    args = ap.parse_args()

    steps = Steps()
    bmp = BMPController({(0, 0): args.bmp})
    mc = MachineController(args.board_ip)
    where = dict(cabinet=0, frame=0, board=args.board)

    def bmp_version():
        v = bmp.get_software_version(**where)
        # rig's version_string is the name part of the reply, e.g. "BC&MP/Spin5-BMP".
        name = v.version_string.split("/")[0]
        check(name == "BC&MP", f"BMP software {v.version_string!r}, want 'BC&MP/...'")
        check(v.version[0] in (1, 2), f"BMP version {v.version}, want major 1 or 2")
        return (f"{v.version_string} {'.'.join(map(str, v.version))} "
                f"({v.version_labels or 'no labels'}) at {args.bmp}")

    def off_silent():
        scp_silent(args.board_ip, "board before power-on")
        return f"board {args.board} ({args.board_ip}) is powered off: SCP silent"

    def power(state):
        def step():
            bmp.set_power(state, board=args.board, cabinet=0, frame=0, post_power_on_delay=0.0)
            if state:
                flags = [bmp.read_fpga_reg(f, FPGA_FLAG, **where) & 3 for f in range(3)]
                check(flags == [0, 1, 2], f"FPGA FLAG ids {flags} after power-on, want [0, 1, 2]")
                return f"CMD_POWER on board {args.board} via BMP; FPGA FLAG ids {flags}"
            return f"CMD_POWER off board {args.board} via BMP"
        return step

    def rom_silent():
        scp_silent(args.board_ip, "powered-on, unbooted board")
        return "board runs its boot ROM: SCP silent"

    def boot():
        sent = mc.boot()
        check(sent, "rig thought the board was already booted")
        v = mc.get_software_version(255, 255, 0)
        # What rig's own boot check looks for: "SpiNNaker" in the name ("SC&MP/SpiNNaker").
        check(v.version_string.startswith("SC&MP") and "SpiNNaker" in v.version_string,
              f"software {v.version_string!r}, want 'SC&MP/SpiNNaker'")
        check(v.position == (0, 0), f"booted chip at {v.position}, want (0, 0)")
        return (f"rig booted it with its bundled image: {v.version_string} "
                f"{'.'.join(map(str, v.software_version))} at {v.position}")

    def system_info():
        info = mc.get_system_info()
        chips = sorted(info)
        check(len(chips) == 48, f"{len(chips)} chips, want 48: {chips}")
        check(info.width == 8 and info.height == 8, f"{info.width} x {info.height}, want 8 x 8")
        eth = list(info.ethernet_connected_chips())
        check(eth == [((0, 0), args.board_ip)],
              f"Ethernet chips {eth}, want [((0, 0), {args.board_ip!r})]")
        cores = sum(c.num_cores for c in info.values())
        return f"{len(chips)} chips, {cores} cores, Ethernet {eth[0][1]} at (0, 0)"

    def memory():
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        data = random.Random(seed).randbytes(args.bytes)
        addr = mc.sdram_alloc(args.bytes, tag=0, x=0, y=0, app_id=APP_ID)
        check(0x6000_0000 <= addr < 0x8000_0000, f"CMD_ALLOC gave {addr:#x}, not SDRAM")
        t = time.monotonic()
        mc.write(addr, data, 0, 0)
        tw = time.monotonic() - t
        t = time.monotonic()
        back = mc.read(addr, args.bytes, 0, 0)
        tr = time.monotonic() - t
        if bytes(back) != data:
            first = next((i for i, (a, b) in enumerate(zip(back, data)) if a != b), None)
            raise StepFailed(
                f"read back {len(back)} bytes, differ from what was written "
                f"(first difference at offset {first}; seed {seed})")
        return (f"{args.bytes} random bytes (seed {seed}) at {addr:#x} on chip (0, 0) "
                f"written in {tw:.3f} s, read back byte-exact in {tr:.3f} s")

    def off_gone():
        scp_silent(args.board_ip, "board after power-off")
        return "board stopped answering"

    steps.run("BMP version", bmp_version)
    steps.run("board starts powered off", off_silent)
    steps.run("power on through the BMP", power(True))
    steps.run("board unbooted after power-on", rom_silent)
    steps.run("boot and SC&MP version", boot)
    steps.run("system info", system_info)
    steps.run("SDRAM write and read back", memory)
    steps.run("power off through the BMP", power(False))
    steps.run("board silent when off", off_gone)
    steps.run("power on again through the BMP", power(True))
    steps.run("board unbooted after power cycle", rom_silent)
    print(f"ok: rig {rig_version()}: all steps passed in "
          f"{time.monotonic() - steps.t0:.2f} s", flush=True)


def rig_version():
    try:
        from importlib.metadata import version
        return version("rig")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    main()
