"""`yilianti serve` with YILIANTI_WEB_PROCESSES=2: two web processes share the port and stop together."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _get(port: int, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)  # a new connection each time
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_two_web_processes_serve_one_port_and_stop_together(tmp_path: Path) -> None:
    port = _free_port()
    env = dict(os.environ, YILIANTI_DATABASE_URL=f"sqlite:///{tmp_path}/y.db", YILIANTI_VAR_DIR=str(tmp_path),
               YILIANTI_PORT=str(port), YILIANTI_WEB_PROCESSES="2", YILIANTI_RUN_JOBS_IN_PROCESS="false")
    env.pop("YILIANTI_TEST_DATABASE_URL", None)
    cli = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen([*cli, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # each process imports and builds the app (≈ 5 s quiet; 50 s seen with the load average at 10)
        deadline, ready = time.monotonic() + 240, False
        while not ready and time.monotonic() < deadline:
            kids = _children(proc.pid)
            with contextlib.suppress(OSError):
                ready = len(kids) >= 2 and _get(port)[0] == 200
            time.sleep(0.3)
        assert ready, "no web process answered within 240 s"
        # the multiprocessing resource tracker is a child too; the web processes are the other two
        web = [k for k in _children(proc.pid)
               if "yilianti" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")
               or "multiprocessing.spawn" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")]
        assert len(web) >= 2, _children(proc.pid)
        time.sleep(2)  # both processes past their startup
        # a busy machine (the suite runs on as many workers as cores) may still be starting the second
        # process: its queued connections wait for it rather than fail
        answers = [_get(port, timeout=60) for _ in range(40)]
        assert all(status == 200 for status, _ in answers)
        assert all(b"ok" in body for _, body in answers)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, out
    assert "2 web processes" in out
    with pytest.raises(OSError):
        _get(port)  # nobody listens any more
