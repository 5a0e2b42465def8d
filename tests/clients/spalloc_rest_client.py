#!/usr/bin/env python3
"""Drive `sim serve`'s REST API and websocket proxy with the real PyPI spinnman 1!7.4.1
`SpallocClient`, unmodified.

Run by tests/tests/spalloc_rest.rs against `sim serve tests/spalloc/rest.toml` (a 2 x 2 triad
machine emulated at 127.41.0.0); also usable by hand against any `sim serve` on an emulated
machine with two users set up (`sim serve SCENARIO --add-user NAME`, `--add-token OTHER`):

    .venv-clients/bin/python tests/clients/spalloc_rest_client.py \
        --url http://127.0.0.1:22245/spalloc/ --cert out/NAME/state/tls/cert.pem \
        --user alice --password PASSWORD --token TOKEN

Steps (one "ok: <step>: <detail> [<wall time>]" line each; the first failure prints
"FAIL: <step>: <why>" and exits 1):

 1. password login (form login with the login page's CSRF token) and the service root;
 2. bearer-token login (a second user);
 3. list machines;
 4. create a job by board count (spinnman's `n_boards_required`), a 1 x 1 triad rectangle
    (`spalloc_width`/`spalloc_height`) and, as the bearer user, a specific board
    (`spalloc_triad`): 7.4.1's `create_job()` takes no arguments and reads spinnman's
    configuration, set here as spinnman's own unit tests set it;
 5. wait until each is ready;
 6. connections and chip look-ups of each;
 7. `create_transceiver()` through the proxy: it finds no SC&MP, boots the boards with spinnman's
    bundled image in MSG frames on the (0, 0) boot channel, checks the version, and reads the
    machine (48 chips a board, through proxied SCP and REST memory reads);
 8. 100 KiB written through REST (`job.write_data`) and read back through proxied SCP (spinnman's
    `ReadMemoryProcess` on the proxied SCAMP connections: the transceiver's own `read_memory`
    goes to REST in a `SpallocTransceiver`);
 9. 100 KiB written through proxied SCP (`WriteMemoryProcess`) on another board of the job and
    read back through REST (`job.read_data`);
10. EIEIO through an unbound channel: `open_eieio_listener_connection()`, `update_tag()` (an
    IPTAG SET with "use sender" in MSG_TO, answered on the unbound channel), an application
    started on a core (CMD_AR on the proxied SCAMP channel); the board then streams EIEIO to its
    tag, which is the proxy's unbound socket, and the datagrams arrive as MSG frames;
11. the bearer user's proxy: a channel opened and closed on its job's board; OPEN to a chip
    that is not the job's comes back as the server's ERROR text;
12. list jobs: the user sees their jobs (and, with --v1-job, the one made over v1 with them as
    owner), not the other user's; `get_job(id)` (a doubled slash in its URL);
13. with --handshake: prints "wait: spalloc-ps JOB OWNER" and reads one line from standard
    input ("ok DETAIL" or "fail WHY") while the job is live, so that the test can look at it
    through the v1 protocol;
14. destroy every job; each then reads DESTROYED; a watcher long-polling the state of one
    (`wait_for_state_change`) wakes with DESTROYED; `list_jobs(deleted=True)` lists them;
15. a 2 x 1 triad rectangle rooted at a board (`spalloc_physical` with `spalloc_width` and
    `spalloc_height`) on the now empty machine: ready, six boards, the root board at chip
    (0, 0); destroyed.
"""

import argparse
import logging
import os
import random
import re
import sys
import threading
import time

# spinnman's INFO chatter goes to stderr; keep it quiet.
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

from steps import StepFailed, Steps, check  # noqa: E402


def job_id(job):
    m = re.search(r"/jobs/+(\d+)/?", repr(job))
    if m is None:
        raise StepFailed(f"no job id in {job!r}")
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="the service URL, http://HOST:PORT/spalloc/")
    ap.add_argument("--cert", required=True, help="the server's certificate (PEM)")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--token", required=True, help="a bearer token of another user")
    ap.add_argument("--machine", default="restm", help="the machine's name")
    ap.add_argument("--width", type=int, default=2, help="the machine's width in triads")
    ap.add_argument("--height", type=int, default=2, help="the machine's height in triads")
    ap.add_argument("--triad", default="1,1,2", help="the specific board to ask for, x,y,z")
    ap.add_argument("--v1-job", type=int, default=None,
                    help="a job made over v1 with --user as owner: list_jobs must show it")
    ap.add_argument("--handshake", action="store_true",
                    help="pause for the v1 check while a job is live (see step 12)")
    ap.add_argument("--bytes", type=int, default=100 * 1024)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()

    # The client verifies the server's certificate: trust exactly it, and no proxies.
    os.environ["REQUESTS_CA_BUNDLE"] = args.cert
    os.environ["WEBSOCKET_CLIENT_CA_BUNDLE"] = args.cert
    os.environ["NO_PROXY"] = "*"
    os.environ.pop("CURL_CA_BUNDLE", None)

    from spinn_utilities.config_holder import set_config
    from spinnman.config_setup import unittest_setup
    from spinnman.data.spinnman_data_writer import SpiNNManDataWriter

    # Only spinnman's own default configuration (ignore ~/.spinnman.cfg), SpiNN-5 boards.
    unittest_setup()
    set_config("Machine", "version", "5")
    writer = SpiNNManDataWriter.mock()

    from spinnman.constants import SCP_SCAMP_PORT  # noqa: F401
    from spinnman.messages.eieio.data_messages import EIEIODataMessage
    from spinnman.messages.scp.impl import ApplicationRun
    from spinnman.processes import ReadMemoryProcess, WriteMemoryProcess
    from spinnman.spalloc import SpallocClient, SpallocState

    steps = Steps()
    st = {"jobs": []}
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)

    def password_login():
        c = SpallocClient(args.url, username=args.user, password=args.password)
        st["client"] = c
        return f"{args.user} logged in with a password; service version {c.version}"

    def token_login():
        c = SpallocClient(args.url, bearer_token=args.token)
        st["other"] = c
        return f"logged in with a bearer token; service version {c.version}"

    def list_machines():
        ms = st["client"].list_machines()
        check(args.machine in ms, f"machines {sorted(ms)}, want {args.machine!r} among them")
        m = ms[args.machine]
        check((m.width, m.height) == (args.width, args.height),
              f"{m.name} is {m.width} x {m.height} triads, want {args.width} x {args.height}")
        check("default" in m.tags, f"{m.name} tags {sorted(m.tags)}, want 'default'")
        check(m.dead_boards == [] and m.dead_links == [],
              f"dead boards {m.dead_boards}, dead links {m.dead_links}: want none")
        seen = st["other"].list_machines()
        check(sorted(seen) == sorted(ms), f"the bearer user sees machines {sorted(seen)}")
        return f"{sorted(ms)}: {m.name} {m.width} x {m.height} triads, tags {sorted(m.tags)}"

    def create(name, client, config):
        def step():
            for k in ("spalloc_triad", "spalloc_width", "spalloc_height"):
                set_config("Machine", k, "None")
            for k, v in config.items():
                set_config("Machine", k, v)
            job = client.create_job()
            st["jobs"].append((name, client, job))
            st[name] = job
            return f"job {job_id(job)} ({repr(job)}) for {config or 'n_boards_required = 3'}"
        return step

    def wait_ready():
        t = time.monotonic()
        out = []
        for name, _, job in st["jobs"]:
            job.wait_until_ready()
            s = job.get_state()
            check(s == SpallocState.READY, f"{name}: state {s} after wait_until_ready")
            out.append(f"{name} job {job_id(job)} READY")
        return ", ".join(out) + f" in {time.monotonic() - t:.1f} s"

    want_boards = {"board count": 3, "rectangle": 3, "specific board": 1}

    def connections():
        out = []
        for name, _, job in st["jobs"]:
            conns = job.get_connections()
            check(len(conns) == want_boards[name],
                  f"{name}: {len(conns)} connections {conns}, want {want_boards[name]}")
            check((0, 0) in conns, f"{name}: no board at chip (0, 0) in {conns}")
            check(all(ip.startswith("127.41.") for ip in conns.values()),
                  f"{name}: board addresses {sorted(conns.values())} not the machine's")
            check(job.get_root_host() == conns[(0, 0)],
                  f"{name}: root host {job.get_root_host()} is not {conns[(0, 0)]}")
            st[name + " conns"] = conns
            out.append(f"{name}: " + ", ".join(
                f"({x}, {y}) {ip}" for (x, y), ip in sorted(conns.items())))
        everyone = [ip for name, _, _ in st["jobs"] for ip in st[name + " conns"].values()]
        check(len(everyone) == len(set(everyone)), f"a board in two jobs: {everyone}")
        return "; ".join(out)

    def where_is():
        out = []
        for name, _, job in st["jobs"]:
            places = set()
            for (x, y) in st[name + " conns"]:
                p = job.where_is_machine(x, y)
                check(p is not None and len(p) == 3, f"{name}: chip ({x}, {y}) is at {p}")
                places.add(tuple(p))
            check(len(places) == want_boards[name],
                  f"{name}: boards' Ethernet chips at {sorted(places)}: not one per board")
            # A triad's height further up: on another job's board or a free one (the
            # look-up wraps around the machine, as the reference's does, but answers only
            # for the job's own boards).
            outside = job.where_is_machine(0, 12)
            check(outside is None, f"{name}: chip (0, 12) is at {outside}, want none")
            out.append(f"{name}: " + ", ".join(f"c{c}f{f}b{b}" for c, f, b in sorted(places)))
        return "; ".join(out) + "; chip (0, 12) outside each job"

    def transceiver():
        job = st["board count"]
        t = time.monotonic()
        txrx = job.create_transceiver()
        st["txrx"] = txrx
        booted = time.monotonic() - t
        v = txrx._get_scamp_version()
        check(v.name == "SC&MP", f"version name {v.name!r}, want 'SC&MP'")
        t = time.monotonic()
        m = txrx.get_machine_details()
        n = want_boards["board count"]
        check(m.n_chips == 48 * n, f"{m.n_chips} chips, want {48 * n}")
        eth = sorted((c.x, c.y) for c in m.ethernet_connected_chips)
        check(eth == sorted(st["board count conns"]),
              f"Ethernet chips {eth}, want {sorted(st['board count conns'])}")
        return (f"{type(txrx).__name__} booted {n} boards in {booted:.1f} s: "
                f"{v.name} {v.version_string}; machine {m.n_chips} chips, Ethernet chips {eth} "
                f"(read in {time.monotonic() - t:.1f} s)")

    def rest_to_scp():
        job, txrx = st["board count"], st["txrx"]
        data = rng.randbytes(args.bytes)
        addr = txrx.malloc_sdram(0, 0, args.bytes, 17)
        check(0x6000_0000 <= addr < 0x8000_0000, f"CMD_ALLOC gave {addr:#x}, not SDRAM")
        t = time.monotonic()
        job.write_data(0, 0, addr, data)
        tw = time.monotonic() - t
        t = time.monotonic()
        back = ReadMemoryProcess(txrx._scamp_connection_selector).read_memory(
            (0, 0, 0), addr, args.bytes)
        tr = time.monotonic() - t
        same(back, data)
        return (f"{args.bytes} bytes (seed {seed}) at {addr:#x} of chip (0, 0): REST write "
                f"{tw:.2f} s, proxied SCP read {tr:.2f} s, byte-exact")

    def scp_to_rest():
        job, txrx = st["board count"], st["txrx"]
        x, y = max(st["board count conns"])
        x, y = x + 1, y + 1
        data = rng.randbytes(args.bytes)
        addr = 0x6100_0000
        t = time.monotonic()
        WriteMemoryProcess(txrx._scamp_connection_selector).write_memory_from_bytearray(
            (x, y, 0), addr, data, 0, len(data))
        tw = time.monotonic() - t
        t = time.monotonic()
        back = job.read_data(x, y, addr, args.bytes)
        tr = time.monotonic() - t
        same(back, data)
        return (f"{args.bytes} bytes at {addr:#x} of chip ({x}, {y}): proxied SCP write "
                f"{tw:.2f} s, REST read {tr:.2f} s, byte-exact")

    def same(back, data):
        if bytes(back) != data:
            first = next((i for i, (a, b) in enumerate(zip(back, data)) if a != b), None)
            raise StepFailed(f"read back {len(back)} bytes, differ from the {len(data)} "
                             f"written (first difference at offset {first}; seed {seed})")

    def eieio():
        job, txrx = st["board count"], st["txrx"]
        listener = job.open_eieio_listener_connection()
        tag, app_id, core = 1, 30, 1
        try:
            listener.update_tag(0, 0, tag)  # raises unless the board answered OK
            txrx._call(ApplicationRun(app_id, 0, 0, [core]))
            t = time.monotonic()
            msgs = []
            while len(msgs) < 2 and time.monotonic() - t < 10:
                try:
                    msgs.append(listener.receive_eieio_message(timeout=1.0))
                except Exception as e:  # noqa: BLE001 - a timeout: try again until the deadline
                    if "imeout" not in type(e).__name__:
                        raise
            check(msgs, "no EIEIO message arrived on the unbound channel within 10 s")
            m = msgs[0]
            check(isinstance(m, EIEIODataMessage), f"got {type(m).__name__}, want data")
            keys = []
            while m.is_next_element:
                keys.append(m.next_element.key)
            check(keys, "an EIEIO data message without keys")
            check(all(k >> 16 == 0 for k in keys),
                  f"keys {keys[:4]}...: not from the Ethernet chip (0, 0)")
            took = time.monotonic() - t
        finally:
            try:
                txrx.stop_application(app_id)
            finally:
                listener.close()
        return (f"tag {tag} of chip (0, 0) set to the unbound channel (use sender); app "
                f"{app_id} started on core {core}; {len(msgs)} EIEIO data messages in "
                f"{took:.2f} s, the first with {len(keys)} keys {keys[0]:#x}..{keys[-1]:#x}")

    def bearer_proxy():
        job = st["specific board"]
        conn = job.connect_to_board(0, 0)
        check(conn.is_connected(), "the proxied connection is not connected")
        conn.close()
        try:
            job.connect_to_board(4, 8)
        except IOError as e:
            refusal = str(e)
        else:
            raise StepFailed("OPEN to chip (4, 8), not a board of the job, was not refused")
        check("unrecognised ethernet chip" in refusal, f"the refusal said {refusal!r}")
        return (f"the bearer user's job {job_id(job)}: OPEN (0, 0) and CLOSE through the "
                f"websocket; OPEN (4, 8) refused: {refusal!r}")

    def list_jobs():
        mine = {job_id(j) for j in st["client"].list_jobs()}
        theirs = {job_id(j) for j in st["other"].list_jobs()}
        want_mine = {job_id(j) for _, c, j in st["jobs"] if c is st["client"]}
        want_theirs = {job_id(j) for _, c, j in st["jobs"] if c is st["other"]}
        if args.v1_job is not None:
            want_mine.add(args.v1_job)
        check(mine == want_mine, f"{args.user} lists jobs {sorted(mine)}, want {sorted(want_mine)}")
        check(theirs == want_theirs,
              f"the bearer user lists jobs {sorted(theirs)}, want {sorted(want_theirs)}")
        # get_job(id) asks for .../jobs//ID/ (a doubled slash).
        again = st["client"].get_job(str(job_id(st["rectangle"])))
        check(again.get_state() == SpallocState.READY, f"get_job: {again.get_state()}")
        v1 = f" (with v1 job {args.v1_job})" if args.v1_job is not None else ""
        return (f"{args.user}: {sorted(mine)}{v1}; the bearer user: {sorted(theirs)} "
                f"(nobody sees the other's); get_job({job_id(again)}) READY")

    def handshake():
        job = st["rectangle"]
        print(f"wait: spalloc-ps {job_id(job)} {args.user}", flush=True)
        line = sys.stdin.readline().strip()
        check(line.startswith("ok"), f"the v1 check said {line!r}")
        return line[2:].strip()

    def destroy():
        if "txrx" in st:
            st["txrx"].close()
        # A watcher long-polls (wait=true) for the rectangle's next state: the destroy wakes it.
        watched, seen = st["rectangle"], {}

        def watch():
            seen["state"] = watched.wait_for_state_change(SpallocState.READY)
            seen["at"] = time.monotonic()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.5)
        out = []
        t = time.monotonic()
        for name, _, job in st["jobs"]:
            job.destroy(f"spalloc_rest_client: {name} done")
        for name, _, job in st["jobs"]:
            s = job.get_state()
            check(s == SpallocState.DESTROYED, f"{name}: state {s} after destroy")
            out.append(f"job {job_id(job)} DESTROYED")
        watcher.join(10)
        check(seen.get("state") == SpallocState.DESTROYED,
              f"the watcher saw {seen.get('state')} (waiting on job {job_id(watched)})")
        gone = {job_id(j) for j in st["client"].list_jobs(deleted=True)}
        mine = {job_id(j) for _, c, j in st["jobs"] if c is st["client"]}
        check(mine <= gone, f"list_jobs(deleted=True) gives {sorted(gone)}, without {mine}")
        return (", ".join(out) + f"; the watcher woke {seen['at'] - t:.2f} s after the "
                f"DELETE; deleted=true lists {sorted(gone)}")

    def rooted():
        # spalloc_physical with spalloc_width/height: a rectangle of triads rooted at a board,
        # on the machine now empty; the root board is the job's chip (0, 0).
        for k in ("spalloc_triad", "spalloc_width", "spalloc_height"):
            set_config("Machine", k, "None")
        for k, v in (("spalloc_physical", "0,0,0"), ("spalloc_width", "2"), ("spalloc_height", "1")):
            set_config("Machine", k, v)
        try:
            job = st["client"].create_job()
        finally:
            for k in ("spalloc_physical", "spalloc_width", "spalloc_height"):
                set_config("Machine", k, "None")
        try:
            job.wait_until_ready()
            s = job.get_state()
            check(s == SpallocState.READY, f"state {s} after wait_until_ready")
            conns = job.get_connections()
            check(len(conns) == 6, f"{len(conns)} connections {conns}, want the 6 boards of 2 x 1 triads")
            root = job.where_is_machine(0, 0)
            check(root is not None and tuple(root) == (0, 0, 0),
                  f"chip (0, 0) is on board {root}, want the root c0f0b0")
            across = {tuple(job.where_is_machine(x, y)) for (x, y) in conns}
            check(len(across) == 6, f"boards {sorted(across)}")
        finally:
            job.destroy("spalloc_rest_client: rooted rectangle done")
        s = job.get_state()
        check(s == SpallocState.DESTROYED, f"state {s} after destroy")
        return (f"job {job_id(job)}: 2 x 1 triads from c0f0b0, boards "
                + ", ".join(f"c{c}f{f}b{b}" for c, f, b in sorted(across)))

    steps.run("password login", password_login)
    steps.run("bearer-token login", token_login)
    steps.run("list machines", list_machines)
    writer.set_n_required(3, None)
    steps.run("create job by board count", create("board count", st["client"], {}))
    steps.run("create job by rectangle", create(
        "rectangle", st["client"], {"spalloc_width": "1", "spalloc_height": "1"}))
    steps.run("create job for a specific board", create(
        "specific board", st["other"], {"spalloc_triad": args.triad}))
    steps.run("wait until ready", wait_ready)
    steps.run("connections", connections)
    steps.run("where is", where_is)
    steps.run("create transceiver", transceiver)
    steps.run("REST write, proxied SCP read", rest_to_scp)
    steps.run("proxied SCP write, REST read", scp_to_rest)
    steps.run("EIEIO through an unbound channel", eieio)
    steps.run("proxy with a bearer-token session", bearer_proxy)
    steps.run("list jobs", list_jobs)
    if args.handshake:
        steps.run("spalloc-ps sees the REST job", handshake)
    steps.run("destroy", destroy)
    steps.run("create a rectangle rooted at a board", rooted)
    st["client"].close()
    st["other"].close()
    print(f"ok: spinnman {spinnman_version()} SpallocClient: all steps passed in "
          f"{time.monotonic() - steps.t0:.2f} s", flush=True)


def spinnman_version():
    try:
        from importlib.metadata import version
        return version("SpiNNMan")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    main()
