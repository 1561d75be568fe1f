"""Structured logs: one JSON object a line (`YILIANTI_LOG_FORMAT=json`), each with the request id of the
request it belongs to — and of the request that queued a job, in the job's lines.

The id comes from the proxy's `X-Request-ID` (nginx: `proxy_set_header X-Request-ID $request_id;`) or is made
here; every response carries it back. The outbox keeps it with each message (outbox.request_id) and the job
runner sets it again while it delivers the message.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("yilianti_request_id", default=None)
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")
HEADER = b"x-request-id"


def current() -> str | None:
    return REQUEST_ID.get()


@contextmanager
def request_id(value: str | None) -> Iterator[None]:
    """The id of the request a piece of work belongs to, for the log lines written meanwhile."""
    token = REQUEST_ID.set(value)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestId:
    """ASGI middleware: takes the proxy's X-Request-ID (when well-formed) or makes one, and answers with it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER), "")
        rid = given if _VALID.fullmatch(given) else uuid.uuid4().hex

        async def tag(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, rid.encode())]
            await send(message)

        with request_id(rid):
            await self.app(scope, receive, tag)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid and rid != "-":
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _stamp_request_ids() -> None:
    """Every log record gets the request id current where it is made, whichever handler formats it later."""
    make = logging.getLogRecordFactory()
    if getattr(make, "yilianti", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.request_id = REQUEST_ID.get() or "-"
        return record

    factory.yilianti = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_stamp_request_ids()


def configure(fmt: str, level: int = logging.INFO) -> None:
    """The root logger's one handler on stderr: JSON lines, or text with the request id."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's lines through the same handler
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
