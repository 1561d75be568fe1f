"""The address a client used, for absolute links in answers (web/urls.py): behind the proxy its forwarded
headers, directly the Host header and the connection's port — never the port the app is configured on."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from yilianti.web.urls import public_base


def _request(headers: dict[str, str], server: tuple[str, int] = ("10.0.0.11", 8000), scheme: str = "http",
             root_path: str = "") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/dicomweb/studies", "scheme": scheme,
                    "server": server, "root_path": root_path, "query_string": b"",
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


@pytest.mark.parametrize(("headers", "expected"), [
    # behind nginx: the public name, scheme and port, whatever port the node listens on
    ({"Host": "pacs.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example:8443",
      "X-Forwarded-Port": "8443"}, "https://pacs.example:8443"),
    ({"Host": "pacs.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}, "https://pacs.example:8443"),
    ({"Host": "pacs.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}, "https://pacs.example"),
    ({"Host": "pacs.example", "X-Forwarded-Proto": "https"}, "https://pacs.example"),  # the proxy's default port
    ({"Host": "pacs.example", "X-Forwarded-Host": "a.example:9000, b.internal"}, "http://a.example:9000"),
    ({"Host": "node", "Forwarded": 'for=1.2.3.4;proto=https;host="pacs.example:8443", for=10.0.0.1',
      "X-Forwarded-Host": "ignored.example"}, "https://pacs.example:8443"),
    # directly: the Host header; without a port there, the port the connection came in on
    ({"Host": "127.0.0.1:9123"}, "http://127.0.0.1:9123"),
    ({"Host": "127.0.0.1"}, "http://127.0.0.1:8000"),
    ({"Host": "[::1]:9123"}, "http://[::1]:9123"),
    ({}, "http://10.0.0.11:8000"),
    ({"Host": "evil.example/path?x"}, "http://10.0.0.11:8000"),  # not a host: the connection's address
    ({"Host": "a", "X-Forwarded-Proto": "gopher"}, "http://a"),  # an unknown scheme is not taken
])
def test_public_base(headers: dict[str, str], expected: str) -> None:
    assert public_base(_request(headers)) == expected


def test_default_port_and_root_path() -> None:
    assert public_base(_request({"Host": "pacs.example"}, server=("0.0.0.0", 80))) == "http://pacs.example"
    assert public_base(_request({"Host": "h:1"}, root_path="/ylt")) == "http://h:1/ylt"
