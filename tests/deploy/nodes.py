"""Several nodes on one machine (issue 22): `yilianti serve` processes on their own ports behind Debian's nginx with
the shipped config (deploy/nginx/yilianti.conf), `yilianti worker`s with their HL7/DICOM receivers on ports of
their own, one PostgreSQL. Used by the two-node test (tests/deploy/test_two_nodes.py) and the county-day
benchmark (bench/county_day.py); no pytest here, so a benchmark imports it without the suite's settings.

Each process runs in a session of its own, so `kill9` takes down a node with every process it started, as a
machine failure would, and `restart` brings it back on the same ports."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> tuple[str | None, str]:
    """nginx's path, installed by deploy/nginx/ensure-nginx.sh when missing (Debian, as root); else None and why."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found:
        return found, ""
    done = subprocess.run(["bash", str(ROOT / "deploy" / "nginx" / "ensure-nginx.sh")], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        return None, f"nginx missing and not installable here: {done.stdout[-300:]}{done.stderr[-300:]}"
    return "/usr/sbin/nginx", ""


def nginx_conf(tmp: Path, listen: int, nodes: list[int], connections: int = 256) -> Path:
    """The shipped server block with loopback addresses, inside a main config of the caller's own."""
    shipped = (ROOT / "deploy" / "nginx" / "yilianti.conf").read_text(encoding="utf-8")
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in nodes)
    site = re.sub(r"(upstream yilianti \{\n)(?:    server [^\n]*\n)+", lambda m: m.group(1) + servers, shipped)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    (tmp / "site.conf").write_text(site, encoding="utf-8")
    main = f"""daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
worker_processes 1;
events {{ worker_connections {connections}; }}
http {{
    log_format timed '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time '
                     '"$upstream_addr" "$http_user_agent"';
    access_log {tmp}/nginx-access.log timed;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""
    (tmp / "nginx.conf").write_text(main, encoding="utf-8")
    return tmp / "nginx.conf"


def wait_ok(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


class Cluster:
    """`web` nodes behind nginx and `workers` workers; `env` is every process's environment (database, keys).
    `per_node[name]` adds settings of one process (e.g. its own var directory, or another worker's ports),
    `args[name]` arguments of its command (e.g. `worker --no-receivers`). Names: web0, web1, …, worker0, …"""

    def __init__(self, env: dict[str, str], work: Path, nginx: str, *, web: int = 2, workers: int = 2,
                 connections: int = 256, per_node: dict[str, dict[str, str]] | None = None,
                 args: dict[str, list[str]] | None = None) -> None:
        self.env, self.work, self.nginx, self.connections = env, work, nginx, connections
        self.web_ports = [free_port() for _ in range(web)]
        self.hl7_ports = [free_port() for _ in range(workers)]
        self.dicom_ports = [free_port() for _ in range(workers)]
        self.front = free_port()
        self.per_node, self.args = per_node or {}, args or {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.log_from: dict[str, int] = {}  # where each process's newest start begins in its log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.front}"

    def _command(self, name: str) -> tuple[list[str], dict[str, str]]:
        kind, i = name.rstrip("0123456789"), int(name[-1]) if name[-1].isdigit() else 0
        if kind == "web":
            return [*CLI, "serve", *self.args.get(name, [])], {"YILIANTI_PORT": str(self.web_ports[i])}
        if kind == "worker":
            return [*CLI, "worker", *self.args.get(name, [])], {"YILIANTI_HL7_PORT": str(self.hl7_ports[i]),
                                      "YILIANTI_DICOM_PORT": str(self.dicom_ports[i])}
        conf = nginx_conf(self.work, self.front, self.web_ports, self.connections)
        return [self.nginx, "-c", str(conf), "-p", str(self.work)], {}

    def start_one(self, name: str) -> None:
        cmd, extra = self._command(name)
        path = self.work / f"{name}.log"
        self.log_from[name] = path.stat().st_size if path.exists() else 0
        log = path.open("ab")
        self.procs[name] = subprocess.Popen(cmd, env={**self.env, **extra, **self.per_node.get(name, {})},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self, name: str, seconds: float = 120) -> None:
        if name.startswith("web"):
            wait_ok(f"http://127.0.0.1:{self.web_ports[int(name[-1])]}/readyz", seconds)
        elif name.startswith("worker"):
            log, deadline = self.work / f"{name}.log", time.monotonic() + seconds
            # printed when its receivers (if any) listen and the job queue starts
            while b"yilianti worker: procrastinate" not in log.read_bytes()[self.log_from[name]:]:
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited:\n" + log.read_text(errors="replace")[-2000:])
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start in {seconds} s")
                time.sleep(0.3)
        else:
            wait_ok(f"{self.base}/healthz", seconds)

    def start(self) -> None:
        names = [f"web{i}" for i in range(len(self.web_ports))] + [f"worker{i}" for i in range(len(self.hl7_ports))]
        for name in [*names, "nginx"]:
            self.start_one(name)
        for name in [*names, "nginx"]:
            self.ready(name)

    def kill9(self, name: str) -> None:
        """SIGKILL to the node's whole process group: nothing of it gets to clean up."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def restart(self, name: str) -> None:
        self.start_one(name)
        self.ready(name)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
