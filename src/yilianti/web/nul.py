"""NUL characters are refused at the edge (422), before any route, hot path or database sees them.

PostgreSQL cannot store U+0000 in text: a NUL in a query string (`?q=%00`), a path or a JSON string
(`"\\u0000"`) reached the database and came back as a 500. No field of the platform has a use for it, so the
request is refused whole, with the contract's 422 body naming the parameter (or `body`).

Pure ASGI and outermost, so that the hot paths' routes (fastdb.route) are covered too. The cost on a request
without NUL: a substring search of the query string, and of each body chunk of a JSON or URL-encoded body.
Multipart bodies are followed part by part as they stream (python-multipart's parser, the one Starlette uses):
a NUL in a text field (a part without a filename) or in a part's headers (its field name, its filename) is
refused the same way; file contents are binary and left alone.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yilianti.exceptions import InvalidInput, error_body
from yilianti.web.errors import render_error

MESSAGE = "不能包含空字符（NUL）"
# a JSON string's \u0000 escape (an even number of backslashes before it would make it literal text)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class NulRefused(StarletteHTTPException):
    """Raised from the body's receive: FastAPI re-raises HTTPExceptions met while reading a body, so the app's
    handler renders it (web/errors.py) inside a route; outside one (a hot path) RefuseNul renders it itself."""

    def __init__(self, field: str) -> None:
        super().__init__(422, MESSAGE)
        self.error = InvalidInput(fields={field: MESSAGE})


def _query_field(query_string: bytes) -> str | None:
    """The first query parameter whose name or value holds a NUL, or None."""
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None


class _MultipartFields:
    """Follows a multipart body chunk by chunk: the first text field (or part header) holding a NUL, or None.
    A body the parser cannot follow is left to the app, which answers it as malformed."""

    def __init__(self, boundary: bytes) -> None:
        self.found: str | None = None
        self._field, self._value = b"", b""
        self._name, self._file = "body", False
        self._parser: MultipartParser | None = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_part_data": self._data})

    def feed(self, chunk: bytes) -> str | None:
        if self._parser is not None and self.found is None:
            try:
                self._parser.write(chunk)
            except MultipartParseError:
                self._parser = None
        return self.found

    def _begin(self) -> None:
        self._name, self._file = "body", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        field, value = self._field.lower(), self._value
        self._field, self._value = b"", b""
        if field == b"content-disposition":
            _kind, params = parse_options_header(value)
            name = params.get(b"name", b"").replace(b"\x00", b"")
            self._name = name.decode("utf-8", "replace") or "body"
            self._file = b"filename" in params
        if b"\x00" in value:
            self.found = self.found or self._name

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._file and data.find(b"\x00", start, end) != -1:
            self.found = self.found or self._name


Check = re.Pattern[bytes] | bytes | _MultipartFields


def _body_check(scope: Scope) -> Check | None:
    """What marks a NUL in this request's body: the JSON escape, `%00` of a form, a multipart body's text fields,
    or nothing to look for."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind, params = parse_options_header(value)
            kind = kind.lower()
            if kind == b"application/x-www-form-urlencoded":
                return b"%00"
            if kind == b"application/json" or kind.endswith(b"+json"):
                return _JSON_NUL
            if kind == b"multipart/form-data" and params.get(b"boundary"):
                return _MultipartFields(params[b"boundary"])
            return None
    return _JSON_NUL  # no content type: FastAPI reads the body as JSON


class RefuseNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = _query_field(scope["query_string"])
        if field is None and "\x00" in scope["path"]:
            field = "path"
        if field is not None:
            await self._refuse(scope, receive, send, InvalidInput(fields={field: MESSAGE}))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or (check := _body_check(scope)) is None:
            await self.app(scope, receive, send)
            return
        tail = b""

        async def checked() -> Message:
            nonlocal tail
            message = await receive()
            chunk = message.get("body", b"")
            if not chunk:
                return message
            if isinstance(check, _MultipartFields):
                if (field := check.feed(chunk)) is not None:
                    raise NulRefused(field)
                return message
            window = tail + chunk
            found = check in window if isinstance(check, bytes) else (
                b"\\u0000" in window and check.search(window) is not None)
            if found:
                raise NulRefused("body")
            tail = window[-16:]
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, checked, watched)
        except NulRefused as refused:  # met outside a route (a hot path reading its body)
            if started:
                raise
            await self._refuse(scope, receive, send, refused.error)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: InvalidInput) -> None:
        request = Request(scope)
        response = render_error(request, error.status, error_body(request, error.code, error.message, error.fields))
        await response(scope, receive, send)
