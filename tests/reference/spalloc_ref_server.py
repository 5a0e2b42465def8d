#!/usr/bin/env python3
"""Run the REFERENCE spalloc v1 server (PyPI ``spalloc-server`` 1!7.0.0) in
this process, with its BMP (board power / FPGA link) hardware access replaced
by an in-process fake, so that it can serve as an oracle for ``sim serve``.

Run it with the venv made by ``setup-venv.sh``::

    .venv-ref/bin/python tests/reference/spalloc_ref_server.py \
        --config CONFIG.json --port PORT [--workdir DIR] [--bmp-delay SECONDS]
        [--fail-bmp IP ...] [--bmp-log FILE] [--verbose]

* ``--port 0`` binds a free port. The server only listens on 127.0.0.1.
* Once listening, exactly one line ``READY <port>`` is printed on stdout
  (nothing else is ever printed there). Logging goes to stderr.
* SIGTERM / SIGINT stop the server cleanly (``stop_and_join``: the queued BMP
  batches are completed, the controller is pickled into the work directory).
  The server also stops when its parent process goes away.
* Always a cold start (any old state file is ignored and then overwritten).
* SIGHUP re-reads CONFIG.json and makes the reference reload it (machines
  added, changed or removed as the reference does on a config change).
* Exit status: 0 clean stop, 1 bad configuration, 2 other errors.

Work directory
--------------
``--workdir DIR`` (created if missing) receives the generated Python config
file ``spalloc_ref_config.py``, its state file
``.spalloc_ref_config.py.state.1!7.0.0`` and the reference's job log
``spalloc_jobs.log`` (opened in the current directory when
``spalloc_server.controller`` is imported, hence the chdir before importing).
Without ``--workdir`` a temporary directory is used and deleted on exit.

CONFIG.json
-----------
::

    {"machines": [{"name": "m", "tags": ["default"], "width": 1, "height": 1,
                   "dead_boards": [[x, y, z]],
                   "dead_links": [[x, y, z, LINK]],
                   "board_locations": [[x, y, z, c, f, b]],
                   "bmp_ips": [[c, f, "ip"]],
                   "spinnaker_ips": [[x, y, z, "ip"]]}],
     "seconds_before_free": 30.0, "timeout_check_interval": 5.0,
     "max_retired_jobs": 1200}

LINK is the reference's ``Links`` integer: 0 east, 1 north_east, 2 north,
3 west, 4 south_west, 5 south. Missing top-level numbers take the reference
defaults; a machine's tags default to ["default"], dead lists to [], and
width/height (both or neither) are inferred by the reference from the boards.
The JSON is turned into a Python config file that the reference loads with its
own loader (so its validation, and SIGHUP reloading, behave as usual).

Fake BMP
--------
Every ``AsyncBMPController`` the reference's Controller creates (one per
(cabinet, frame) BMP) is a ``FakeAsyncBMPController``: same queue, lock,
``with controller:`` atomicity, stop/join and ``on_thread_start`` hand-over
as the original, and the Controller still builds its own ``AtomicRequests``
(one per BMP per power/link action) with its own ``on_done`` callbacks. Only
the hardware access is replaced: the background thread takes the batches in
FIFO order, sleeps ``--bmp-delay`` seconds (default 0.05) per batch and then
calls ``on_done(True, None)``, or ``on_done(False, "Requests failed on BMP
<ip>")`` if the BMP's IP was given to ``--fail-bmp``. (The real controller
tries twice, 15 s apart, before failing; that wait is not modelled.)
``--bmp-log FILE`` appends one JSON line per completed batch:
``{"t": seconds since start, "bmp": ip, "power_on": [board#...],
"power_off": [...], "links": [[board#, link, enable]...], "ok": bool}``.
"""

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque

CONFIG_NAME = "spalloc_ref_config.py"


class ConfigError(Exception):
    pass


# ---------------------------------------------------------------------------
# CONFIG.json -> Python config file understood by the reference's loader
# ---------------------------------------------------------------------------

def _int(v, what):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError("%s must be an integer, got %r" % (what, v))
    return v


def _num(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError("%s must be a number, got %r" % (what, v))
    return v


def _str(v, what):
    if not isinstance(v, str):
        raise ConfigError("%s must be a string, got %r" % (what, v))
    return v


def _rows(m, key, shape, what):
    """The list ``m[key]`` of fixed-length rows; ``shape`` is a string of
    'i' (int) / 's' (str) per column. Missing key -> []."""
    rows = m.get(key, [])
    if not isinstance(rows, list):
        raise ConfigError("%s.%s must be a list" % (what, key))
    out = []
    for i, row in enumerate(rows):
        where = "%s.%s[%d]" % (what, key, i)
        if not isinstance(row, list) or len(row) != len(shape):
            raise ConfigError("%s must be a list of %d items, got %r"
                              % (where, len(shape), row))
        out.append(tuple(_int(v, where) if t == "i" else _str(v, where)
                         for v, t in zip(row, shape)))
    return out


def _tuple_src(t):
    return "(" + "".join(repr(v) + ", " for v in t) + ")"


def machine_source(m, index):
    """Python source of a ``Machine(...)`` call for one machine spec."""
    what = "machines[%d]" % index
    if not isinstance(m, dict):
        raise ConfigError("%s must be an object" % what)
    known = {"name", "tags", "width", "height", "dead_boards", "dead_links",
             "board_locations", "bmp_ips", "spinnaker_ips"}
    unknown = set(m) - known
    if unknown:
        raise ConfigError("%s: unknown keys %s" % (what, sorted(unknown)))
    name = _str(m.get("name"), what + ".name")
    tags = m.get("tags", ["default"])
    if not isinstance(tags, list):
        raise ConfigError("%s.tags must be a list" % what)
    tags = [_str(t, what + ".tags") for t in tags]
    dead_boards = _rows(m, "dead_boards", "iii", what)
    dead_links = _rows(m, "dead_links", "iiii", what)
    for x, y, z, link in dead_links:
        if not 0 <= link <= 5:
            raise ConfigError("%s: link %d is not 0..5" % (what, link))
    locations = _rows(m, "board_locations", "iiiiii", what)
    bmp_ips = _rows(m, "bmp_ips", "iis", what)
    spinnaker_ips = _rows(m, "spinnaker_ips", "iiis", what)

    parts = ["name=%r" % name,
             "tags=frozenset([%s])" % ", ".join(repr(t) for t in tags)]
    if "width" in m or "height" in m:
        # Both or neither: the reference raises TypeError for only one.
        if "width" in m:
            parts.append("width=%d" % _int(m["width"], what + ".width"))
        if "height" in m:
            parts.append("height=%d" % _int(m["height"], what + ".height"))
    parts.append("dead_boards=frozenset([%s])" % ", ".join(
        _tuple_src(b) for b in dead_boards))
    parts.append("dead_links=frozenset([%s])" % ", ".join(
        "(%d, %d, %d, Links(%d))" % dl for dl in dead_links))
    parts.append("board_locations={%s}" % ", ".join(
        "%s: %s" % (_tuple_src(r[:3]), _tuple_src(r[3:])) for r in locations))
    parts.append("bmp_ips={%s}" % ", ".join(
        "%s: %r" % (_tuple_src(r[:2]), r[2]) for r in bmp_ips))
    parts.append("spinnaker_ips={%s}" % ", ".join(
        "%s: %r" % (_tuple_src(r[:3]), r[3]) for r in spinnaker_ips))
    return "    Machine(\n        " + ",\n        ".join(parts) + "),\n"


def config_source(spec):
    """Python source of the reference config file for a CONFIG.json dict."""
    if not isinstance(spec, dict):
        raise ConfigError("the config must be a JSON object")
    known = {"machines", "seconds_before_free", "timeout_check_interval",
             "max_retired_jobs"}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError("unknown top-level keys %s" % sorted(unknown))
    machines = spec.get("machines", [])
    if not isinstance(machines, list):
        raise ConfigError("machines must be a list")
    src = ["# Generated by spalloc_ref_server.py; do not edit.\n",
           "from spalloc_server.configuration import Configuration, Machine\n",
           "from spalloc_server.links import Links\n\n",
           "configuration = Configuration(\n",
           "  machines=[\n"]
    src += [machine_source(m, i) for i, m in enumerate(machines)]
    src.append("  ],\n  ip='127.0.0.1',\n")
    for key in ("seconds_before_free", "timeout_check_interval"):
        if key in spec:
            src.append("  %s=%r,\n" % (key, _num(spec[key], key)))
    if "max_retired_jobs" in spec:
        src.append("  max_retired_jobs=%d,\n"
                   % _int(spec["max_retired_jobs"], "max_retired_jobs"))
    src.append(")\n")
    return "".join(src)


# ---------------------------------------------------------------------------
# Fake BMP controller
# ---------------------------------------------------------------------------

def make_fake_bmp_controller_class(base, delay, failing, bmp_log, t0):
    """Subclass of the reference ``AsyncBMPController`` ``base`` whose thread
    completes each AtomicRequests batch after ``delay`` seconds without any
    hardware access (failing it if the hostname is in ``failing``)."""
    log_lock = threading.Lock()

    class FakeAsyncBMPController(base):
        # Mirrors base.__init__ except that no spinnman transceiver is made.
        # Inherited unchanged: __enter__/__exit__ (the atomicity lock),
        # add_requests, stop, join and hostname.
        def __init__(self, hostname, on_thread_start=None):
            # pylint: disable=super-init-not-called
            self._on_thread_start = on_thread_start
            self._transceiver = None
            self._hostname = hostname
            self._stop = False
            self._lock = threading.RLock()
            self._requests_pending = threading.Event()
            self._requests = deque()
            self._thread = threading.Thread(
                target=self._run, daemon=True,
                name="<fake BMP control thread for {}>".format(hostname))
            self._thread.start()

        def _run(self):
            # Same loop structure as base._run (wait, pop one batch, process,
            # clear the event under the lock, stop once drained) with the
            # hardware part replaced by a sleep.
            if self._on_thread_start is not None:
                self._on_thread_start()
            while True:
                self._requests_pending.wait()
                if self._requests:
                    request = self._requests.popleft()
                    if delay > 0:
                        time.sleep(delay)
                    ok = self._hostname not in failing
                    if bmp_log is not None:
                        entry = {
                            "t": round(time.monotonic() - t0, 4),
                            "bmp": self._hostname,
                            "power_on": list(request.power_on_boards),
                            "power_off": list(request.power_off_boards),
                            "links": [[lr.board, int(lr.link), bool(lr.enable)]
                                      for lr in request.link_requests],
                            "ok": ok}
                        with log_lock:
                            bmp_log.write(json.dumps(entry) + "\n")
                            bmp_log.flush()
                    if ok:
                        request.on_done(True, None)
                    else:
                        request.on_done(
                            False,
                            "Requests failed on BMP {}".format(self._hostname))
                with self._lock:
                    if not self._requests:
                        self._requests_pending.clear()
                        if self._stop:
                            return

    return FakeAsyncBMPController


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run the reference spalloc-server 1!7.0.0 with a fake "
                    "BMP on 127.0.0.1.")
    p.add_argument("--config", required=True,
                   help="CONFIG.json describing the machines")
    p.add_argument("--port", type=int, required=True,
                   help="TCP port (0 = pick a free one)")
    p.add_argument("--workdir",
                   help="directory for the generated config, state file and "
                        "job log (default: a temporary directory, deleted "
                        "on exit)")
    p.add_argument("--bmp-delay", type=float, default=0.05,
                   help="seconds each BMP request batch takes (default 0.05)")
    p.add_argument("--fail-bmp", nargs="+", default=[], metavar="IP",
                   help="BMP IPs whose request batches fail")
    p.add_argument("--bmp-log", help="append one JSON line per BMP batch")
    p.add_argument("--verbose", action="store_true",
                   help="log the reference's INFO messages to stderr")
    args = p.parse_args(argv)
    if args.bmp_delay < 0:
        p.error("--bmp-delay must be >= 0")
    if not 0 <= args.port <= 65535:
        p.error("--port must be 0..65535")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Resolve every path before changing directory.
    config_json = os.path.abspath(args.config)
    bmp_log_path = os.path.abspath(args.bmp_log) if args.bmp_log else None
    own_workdir = args.workdir is None
    workdir = (tempfile.mkdtemp(prefix="spalloc-ref-") if own_workdir
               else os.path.abspath(args.workdir))
    try:
        os.makedirs(workdir, exist_ok=True)
        return run(args, config_json, workdir, bmp_log_path)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def load_config_source(config_json):
    """CONFIG.json -> Python config source; ConfigError if unusable."""
    try:
        with open(config_json, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from e
    source = config_source(spec)
    # Evaluate it here first so that a bad config gives a clear message (the
    # reference itself only logs and says "Config file could not be
    # loaded.").
    try:
        exec(compile(source, CONFIG_NAME, "exec"), {})  # noqa: S102
    except Exception as e:  # pylint: disable=broad-except
        raise ConfigError("rejected by the reference: %s: %s"
                          % (type(e).__name__, e)) from e
    return source


def run(args, config_json, workdir, bmp_log_path):
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.WARNING,
        format="spalloc_ref_server: %(levelname)s: %(message)s")

    # The job log (spalloc_jobs.log) is opened in the CWD when
    # spalloc_server.controller is imported.
    os.chdir(workdir)
    from spalloc_server import async_bmp_controller, controller, server

    try:
        source = load_config_source(config_json)
    except ConfigError as e:
        print("spalloc_ref_server: bad config %s: %s" % (config_json, e),
              file=sys.stderr)
        return 1
    config_py = os.path.join(workdir, CONFIG_NAME)
    with open(config_py, "w", encoding="utf-8") as f:
        f.write(source)

    t0 = time.monotonic()
    bmp_log = (open(bmp_log_path, "a", encoding="utf-8")
               if bmp_log_path else None)
    fake = make_fake_bmp_controller_class(
        async_bmp_controller.AsyncBMPController, args.bmp_delay,
        frozenset(args.fail_bmp), bmp_log, t0)
    # controller.py did "from .async_bmp_controller import AsyncBMPController"
    controller.AsyncBMPController = fake
    async_bmp_controller.AsyncBMPController = fake

    stop = []

    def on_signal(_signum, _frame):
        stop.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.getppid()

    try:
        srv = server.SpallocServer(config_filename=config_py,
                                   cold_start=True, port=args.port)
    except server._CriticalStop as e:  # pylint: disable=protected-access
        print("spalloc_ref_server: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:  # e.g. port in use
        print("spalloc_ref_server: cannot listen: %s" % e, file=sys.stderr)
        return 2

    # SIGHUP: regenerate the Python config from CONFIG.json, then let the
    # reference's own handler (installed by its constructor) schedule the
    # reload. A bad CONFIG.json is reported and the old config kept.
    reference_sighup = signal.getsignal(signal.SIGHUP)

    def on_sighup(signum, frame):
        try:
            new_source = load_config_source(config_json)
        except ConfigError as e:
            logging.error("SIGHUP: bad config %s, not reloaded: %s",
                          config_json, e)
            return
        with open(config_py, "w", encoding="utf-8") as f:
            f.write(new_source)
        if callable(reference_sighup):
            reference_sighup(signum, frame)

    signal.signal(signal.SIGHUP, on_sighup)

    status = 0
    try:
        port = srv._server_socket.getsockname()[1]  # pylint: disable=W0212
        sys.stdout.write("READY %d\n" % port)
        sys.stdout.flush()
        while not stop:
            if not srv._server_thread.is_alive():  # pylint: disable=W0212
                print("spalloc_ref_server: server thread died",
                      file=sys.stderr)
                status = 2
                break
            if os.getppid() != parent:
                print("spalloc_ref_server: parent exited; stopping",
                      file=sys.stderr)
                break
            time.sleep(0.05)
    finally:
        # Ignore further signals while shutting down.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            srv.stop_and_join()
        except Exception as e:  # pylint: disable=broad-except
            print("spalloc_ref_server: error while stopping: %r" % e,
                  file=sys.stderr)
            status = 2
        if bmp_log is not None:
            bmp_log.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
