#!/usr/bin/env python3
"""Load for scripts/bench-rest.sh: `sim serve`'s REST API and websocket proxy, driven with the
real PyPI spinnman 1!7.4.1 `SpallocClient` (run with .venv-clients' python).

    bench-rest-load.py --url http://127.0.0.1:PORT/spalloc/ --cert DIR/tls/cert.pem \
        --user NAME --password PW [--seconds 5] [--window 8]

Logs in (form login), creates a one-board job, waits until it is ready, boots it through the
proxy with `create_transceiver()`, then measures, each for --seconds:
  scp_proxied  CMD_VER round trips on spinnman's proxied SCAMP connection to board (0, 0)
               (`job.connect_to_board(0, 0)`: MSG frames on the job's one websocket);
  scp_direct   the same datagrams on spinnman's own `SCAMPConnection` straight to the board's
               address from `job.get_connections()` over UDP;
both windowed like spinnman's SCP pipeline (--window requests outstanding, each reply's
sequence number checked, a new request sent for each reply);
  rest_https   GET of the job's URL (its state document), a new TLS connection each, as the
               client's `Session.get` does (`requests.get` with the session cookie);
  rest_http    the same over plain HTTP on the same port.
Prints one JSON line per figure: {"figure": ..., "n": ..., "seconds": ..., "rate": ...}, then
destroys the job.
"""

import argparse
import json
import logging
import os
import re
import struct
import sys
import time

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

# SDP header (after 2 pad bytes): flags 0x87 (reply expected), tag 0xFF, destination port 0
# cpu 0, source port 7 cpu 31 (0xFF), destination y, x, source y, x; then the SCP header:
# command (CMD_VER = 0), sequence, three zero arguments: the bytes spinnman's GetVersion sends.
SCP = struct.Struct("<2xBBBBBBBBHH")
REQ = struct.Struct("<2xBBBBBBBBHHIII")
CMD_VER = 0


def ver_request(seq, x=0, y=0):
    return REQ.pack(0x87, 0xFF, 0, 0xFF, y, x, 0, 0, CMD_VER, seq, 0, 0, 0)


def windowed(conn, seconds, window):
    """CMD_VER round trips on conn (send(bytes), receive(timeout)), window outstanding."""
    outstanding = set()
    seq = 0
    done = 0
    timeouts = 0

    def send():
        nonlocal seq
        seq = (seq + 1) & 0xFFFF
        outstanding.add(seq)
        conn.send(ver_request(seq))

    for _ in range(window):
        send()
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        try:
            reply = conn.receive(1.0)
        except Exception as e:  # noqa: BLE001 - spinnman's SpinnmanTimeoutException
            if "imeout" not in type(e).__name__:
                raise
            timeouts += 1
            if timeouts > 5:
                raise RuntimeError(f"{timeouts} receive timeouts") from e
            outstanding.clear()
            for _ in range(window):
                send()
            continue
        _, _, _, _, _, _, _, _, rc, rseq = SCP.unpack_from(reply)
        if rc != 0x80:
            raise RuntimeError(f"CMD_VER answered with rc {rc:#x}")
        if rseq not in outstanding:
            continue  # a late reply to a request given up on
        outstanding.discard(rseq)
        done += 1
        now = time.monotonic()
        if now < end:
            send()
        elif not outstanding:
            return done, now - t0, timeouts
        elif now > end + 5:
            raise RuntimeError(f"{len(outstanding)} replies missing at the end")


def rest_loop(url, cookies, cert, seconds):
    import requests
    n = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        r = requests.get(url, cookies=cookies, verify=cert, timeout=10,
                         allow_redirects=False)
        if r.status_code != 200 or "state" not in r.json():
            raise RuntimeError(f"GET {url}: {r.status_code} {r.text[:200]!r}")
        n += 1
        now = time.monotonic()
        if now >= end:
            return n, now - t0


def emit(figure, n, secs, **extra):
    print(json.dumps({"figure": figure, "n": n, "seconds": round(secs, 3),
                      "rate": n / secs, **extra}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=8)
    args = ap.parse_args()

    os.environ["REQUESTS_CA_BUNDLE"] = args.cert
    os.environ["WEBSOCKET_CLIENT_CA_BUNDLE"] = args.cert
    os.environ["NO_PROXY"] = "*"
    os.environ.pop("CURL_CA_BUNDLE", None)

    from spinn_utilities.config_holder import set_config
    from spinnman.config_setup import unittest_setup
    from spinnman.data.spinnman_data_writer import SpiNNManDataWriter
    unittest_setup()
    set_config("Machine", "version", "5")
    writer = SpiNNManDataWriter.mock()
    writer.set_n_required(1, None)
    from spinnman.connections.udp_packet_connections import SCAMPConnection
    from spinnman.spalloc import SpallocClient
    from spinnman.spalloc.session import _SESSION_COOKIE

    client = SpallocClient(args.url, username=args.user, password=args.password)
    job = client.create_job()
    try:
        t = time.monotonic()
        job.wait_until_ready()
        ready = time.monotonic() - t
        conns = job.get_connections()
        host = conns[(0, 0)]
        t = time.monotonic()
        txrx = job.create_transceiver()
        booted = time.monotonic() - t
        version = txrx._get_scamp_version()
        print(json.dumps({"figure": "setup", "job": repr(job), "board": host,
                          "ready_s": round(ready, 2), "boot_s": round(booted, 2),
                          "version": f"{version.name} {version.version_string}"}),
              flush=True)

        proxied = job.connect_to_board(0, 0)
        windowed(proxied, 0.3, args.window)  # warm-up
        n, secs, lost = windowed(proxied, args.seconds, args.window)
        emit("scp_proxied", n, secs, timeouts=lost, window=args.window)
        proxied.close()

        direct = SCAMPConnection(remote_host=host)
        windowed(direct, 0.3, args.window)
        n, secs, lost = windowed(direct, args.seconds, args.window)
        emit("scp_direct", n, secs, timeouts=lost, window=args.window)
        direct.close()

        # The client's GETs: requests.get with the session cookie, a new connection each.
        session = client._SpallocClient__session
        cookies = {_SESSION_COOKIE: session._session_id}
        https_url = job._url
        if not https_url.startswith("https://"):
            raise RuntimeError(f"the job's URL {https_url} is not https")
        http_url = "http://" + https_url[len("https://"):]
        rest_loop(https_url, cookies, args.cert, 0.3)
        n, secs = rest_loop(https_url, cookies, args.cert, args.seconds)
        emit("rest_https", n, secs, url=https_url)
        rest_loop(http_url, cookies, args.cert, 0.3)
        n, secs = rest_loop(http_url, cookies, args.cert, args.seconds)
        emit("rest_http", n, secs, url=http_url)
        txrx.close()
    finally:
        job.destroy("bench-rest done")
        client.close()


if __name__ == "__main__":
    main()
