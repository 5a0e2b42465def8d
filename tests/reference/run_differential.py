#!/usr/bin/env python3
"""Convenience runner: start the reference server (spalloc_ref_server.py) as
side A, and as side B either a second reference instance or an already
running server, run v1_differential.py between them and stop what it
started. Standard library only (the reference itself runs in the venv made
by setup-venv.sh).

    run_differential.py --script SCRIPT.json --config CONFIG.json
        [--config-b CONFIG.json] [--a-args "ARGS"] [--b-args "ARGS"]
        [--b-addr HOST:PORT] [--settle S] [--transcript OUT.json]
        [--python PY] [--keep-workdirs] [--loose-numbers]

--a-args / --b-args are extra spalloc_ref_server.py options for A / B (one
shell-quoted string, e.g. "--bmp-delay 1.0" or "--fail-bmp 10.1.0.0").
--config-b defaults to --config. With --b-addr no second reference is
started (B is whatever listens there, e.g. ``sim serve``).
--python defaults to <repo>/.venv-ref/bin/python.

Exit status: that of v1_differential.py (0 equivalent, 1 different,
2 harness error); 2 also if a reference server fails to start.
"""

import argparse
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class StartError(Exception):
    pass


class RefServer:
    """A spalloc_ref_server.py child process."""

    def __init__(self, label, python, config, extra, workdir):
        self.label = label
        self.workdir = workdir
        self.stderr_path = os.path.join(workdir, "server.stderr")
        os.makedirs(workdir, exist_ok=True)
        cmd = [python, os.path.join(HERE, "spalloc_ref_server.py"),
               "--config", config, "--port", "0", "--workdir", workdir,
               *extra]
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.port = None

    def wait_ready(self):
        """Read the READY line; sets and returns self.port."""
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartError("%s: no READY line within %.0f s"
                                 % (self.label, READY_TIMEOUT))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    raise StartError("%s: exited before READY (status %s)"
                                     % (self.label, self.proc.wait()))
                line += chunk
        words = line.decode("utf-8", "replace").split()
        if len(words) != 2 or words[0] != "READY" or not words[1].isdigit():
            raise StartError("%s: unexpected first line %r"
                             % (self.label, line))
        self.port = int(words[1])
        return self.port

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Returns the status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print("run_differential: %s did not stop; killing"
                      % self.label, file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    def stderr_tail(self, n=20):
        try:
            with open(self.stderr_path, encoding="utf-8",
                      errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Run v1_differential.py between the reference server and "
                    "a second reference instance or another server.")
    p.add_argument("--script", required=True)
    p.add_argument("--config", required=True, help="CONFIG.json for A")
    p.add_argument("--config-b", help="CONFIG.json for B (default --config)")
    p.add_argument("--a-args", default="",
                   help="extra spalloc_ref_server.py options for A")
    p.add_argument("--b-args", default="",
                   help="extra spalloc_ref_server.py options for B")
    p.add_argument("--b-addr", help="use the server at HOST:PORT as B")
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--transcript")
    p.add_argument("--loose-numbers", action="store_true")
    p.add_argument("--python",
                   default=os.path.join(REPO, ".venv-ref", "bin", "python"))
    p.add_argument("--keep-workdirs", action="store_true",
                   help="keep the servers' work directories (state file, "
                        "job log, stderr)")
    args = p.parse_args(argv)

    # Turn SIGTERM into a normal exit so that the children get stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))

    base = tempfile.mkdtemp(prefix="spalloc-diff-")
    servers = []
    status = 2
    try:
        # Register each child before waiting for it, so that it is
        # stopped whatever happens next.
        a = RefServer("reference A", args.python, args.config,
                      shlex.split(args.a_args), os.path.join(base, "a"))
        servers.append(a)
        if not args.b_addr:
            b = RefServer("reference B", args.python,
                          args.config_b or args.config,
                          shlex.split(args.b_args), os.path.join(base, "b"))
            servers.append(b)
        for s in servers:
            s.wait_ready()
        b_addr = args.b_addr or "127.0.0.1:%d" % servers[1].port
        cmd = [sys.executable, os.path.join(HERE, "v1_differential.py"),
               "--script", args.script, "--a", "127.0.0.1:%d" % a.port,
               "--b", b_addr, "--settle", str(args.settle)]
        if args.transcript:
            cmd += ["--transcript", args.transcript]
        if args.loose_numbers:
            cmd.append("--loose-numbers")
        status = subprocess.call(cmd)
    except StartError as e:
        print("run_differential: %s" % e, file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 2
    finally:
        for s in servers:
            rc = s.stop()
            if rc != 0:
                print("run_differential: %s exited with status %s; stderr "
                      "tail:\n%s" % (s.label, rc, s.stderr_tail()),
                      file=sys.stderr)
                status = status or 2
        if args.keep_workdirs:
            print("run_differential: work directories kept in %s" % base,
                  file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
