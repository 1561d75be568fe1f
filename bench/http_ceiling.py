"""The ceiling of any Python HTTP endpoint on this machine, against the B3 reference in the same run.

    flock /tmp/bench.lock .venv/bin/python bench/http_ceiling.py --pairs 3 --secs 10

B3 asks the shared-record and recognised-result reads for ≥ 20 % of `pg_reference.sh select 8`
(PERFORMANCE.md). This serves the smallest possible answer — a fixed 15-byte JSON body from a bare
ASGI callable, no framework, no database, no audit — with the same server as `yilianti serve`
(uvicorn, httptools, uvloop, one SO_REUSEPORT process per core, access log off) and loads it with
the same wrk settings as bench/recognition.py (2 threads, 8 connections), interleaved with the
reference. Whatever the platform does per request comes on top of this: if the ceiling itself is
below 20 % of the reference, no endpoint served by this stack on these cores can reach B3's ratio.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import booking as bb  # noqa: E402

import recognition as rb  # noqa: E402

BODY = b'{"status":"ok"}'


async def app(scope, receive, send):  # type: ignore[no-untyped-def]  # a bare ASGI callable
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def serve(port: int) -> None:
    """One process: its own SO_REUSEPORT socket, as `yilianti serve` binds them (cli.py)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, access_log=False, log_level="warning", loop="uvloop", http="httptools")
    uvicorn.Server(config).run(sockets=[sock])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--port", type=int, default=8795)
    a = ap.parse_args()
    print(f"nproc={os.cpu_count()} processes={a.processes} clients={a.clients} load={os.getloadavg()[0]:.2f}",
          flush=True)
    procs = [subprocess.Popen([sys.executable, __file__, "--serve", str(a.port)], start_new_session=True)
             for _ in range(a.processes)]
    try:
        time.sleep(3)
        # the very wrk script of bench/recognition.py (random id, bearer header, per-status counts)
        script = rb.LUA % {"pmin": 1, "pmax": 1_000_000, "token": "ceiling", "delay": 0,
                           "path": '"/api/v1/patients/" .. p .. "/record"'}
        bb.wrk(f"http://127.0.0.1:{a.port}", script, a.clients, 3)  # warm-up
        ratios = []
        for i in range(a.pairs):
            ref = bb.reference("select", 8, a.secs)
            got = bb.wrk(f"http://127.0.0.1:{a.port}", script, a.clients, a.secs)
            ratios.append(float(got["rps"]) / ref["tps"])  # type: ignore[arg-type]
            print(f"pair {i}: fixed JSON {got['rps']:.0f} req/s p99 {got['p99_ms']:.1f} ms status {got['status']} | "
                  f"ref select {ref['tps']:.0f} tps | ratio {ratios[-1]:.3f}", flush=True)
        print(f"median ratio of the HTTP ceiling to the B3 reference: {statistics.median(ratios):.3f} "
              f"(B3 asks 0.20 of an endpoint doing real work); load={os.getloadavg()[0]:.2f}")
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(main())
