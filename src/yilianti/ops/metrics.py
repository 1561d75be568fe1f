"""Prometheus metrics (prometheus-client): request latency by route, outbox depth and lag, HL7/DICOM ingest
counts, job failures.

Counters and histograms live in the process that counts them. With several web processes
(`YILIANTI_WEB_PROCESSES`) or HL7 child processes, `yilianti serve` sets PROMETHEUS_MULTIPROC_DIR so that
every process writes its samples there and whichever process answers /metrics adds them all up
(prometheus-client's multiprocess mode). The outbox's depth and lag are read from the database at scrape
time, so every node and worker reports the same figures.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

REQUEST_SECONDS = Histogram(
    "yilianti_http_request_duration_seconds", "Time to answer an HTTP request, by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
HL7_MESSAGES = Counter("yilianti_hl7_messages_total", "HL7 v2 messages answered, by acknowledgement code", ["ack"])
DICOM_INSTANCES = Counter("yilianti_dicom_instances_total", "DICOM C-STORE requests answered, by outcome",
                          ["outcome"])
JOB_FAILURES = Counter("yilianti_job_failures_total", "Failed attempts of background jobs, by job",
                       ["job"])
OUTBOX_DELIVERED = Counter("yilianti_outbox_delivered_total", "Outbox messages delivered")

_NUMBER = re.compile(r"/\d+(?=/|$)")


def route_label(scope: dict[str, Any], status: int) -> str:
    """The route's template (`/api/v1/referrals/{referral_id}`), so one route is one series. A request answered
    before routing (a hot path's middleware) gets its path with numbers as {id}; an unknown path is one series."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if status == 404:
        return "unmatched"
    return _NUMBER.sub("/{id}", str(scope.get("path", "")))[:120]


class Timing:
    """Outermost ASGI middleware: times every HTTP request, whoever answers it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            REQUEST_SECONDS.labels(scope.get("method", ""), route_label(scope, status), str(status)).observe(
                time.perf_counter() - started)


class QueueCollector(Collector):
    """The outbox's depth and lag, read from the database when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from yilianti.db import session_factory
        from yilianti.kit import clock
        from yilianti.worker import repository

        try:
            with session_factory()() as db:
                stats = repository.stats(db, clock.now())
        except Exception:  # the database is down: /readyz says so; the metrics still answer
            return
        depth = GaugeMetricFamily("yilianti_outbox_messages", "Outbox messages by state", labels=["state"])
        depth.add_metric(["pending"], stats["pending"])
        depth.add_metric(["due"], stats["due"])
        depth.add_metric(["failed"], stats["failed"])
        yield depth
        yield GaugeMetricFamily("yilianti_outbox_lag_seconds", "How long the oldest due message has waited",
                                value=stats["lag_seconds"])


def scrape() -> bytes:
    """The text exposition of this process (or of all processes sharing PROMETHEUS_MULTIPROC_DIR) plus the
    queue's figures."""
    queue = CollectorRegistry()
    queue.register(QueueCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        return generate_latest(processes) + generate_latest(queue)
    return generate_latest(REGISTRY) + generate_latest(queue)


def prepare_multiprocess(directory: str) -> None:
    """Before spawning processes that count: an empty directory for their samples (a restart starts at 0)."""
    from pathlib import Path

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve_metrics(host: str, port: int) -> None:
    """The worker's /metrics on a port of its own (it has no web server)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from prometheus_client import CONTENT_TYPE_LATEST

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = scrape()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    Thread(target=server.serve_forever, name="yilianti-metrics", daemon=True).start()
