"""The address a client used to reach the platform, for absolute URLs in answers (DICOMweb's RetrieveURL and
BulkDataURI; anything a standard client follows as given).

Behind the reverse proxy (deploy/nginx/yilianti.conf) the app listens on its own port (YILIANTI_PORT, 8000)
while clients use the public name, scheme and port; the proxy says which in `Forwarded` (RFC 7239) or
`X-Forwarded-Proto` / `X-Forwarded-Host` / `X-Forwarded-Port`, read here in that order. Without them the
request reached the app directly: its Host header, and when Host has no port (dicomweb-client sends it so) the
port the connection came in on. The configured port is never used: it is only right when nothing is in between.
A client that sends these headers itself only changes the links in its own answer.
"""

from __future__ import annotations

import re

from starlette.requests import Request

DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"^[A-Za-z0-9.\-\[\]:_]+$")  # a host[:port] as it may appear in a header (no path, no user)


def _first(value: str | None) -> str | None:
    """The first (client-side) value of a header that proxies append to, e.g. `X-Forwarded-Host: a, b`."""
    first = (value or "").split(",")[0].strip().strip('"')
    return first or None


def _forwarded(value: str | None) -> dict[str, str]:
    """The first element of `Forwarded: for=…;proto=https;host=example.org:8443, for=…`."""
    out: dict[str, str] = {}
    for pair in (value or "").split(",")[0].split(";"):
        name, eq, val = pair.partition("=")
        if eq:
            out[name.strip().lower()] = val.strip().strip('"')
    return out


def _with_port(host: str, port: int | str | None, scheme: str) -> str:
    """host, with the port added when it has none and the port is not the scheme's default."""
    has_port = host.rsplit("]", 1)[-1].count(":") == 1 if host.startswith("[") else ":" in host
    if has_port or port in (None, ""):
        return host
    try:
        number = int(port)  # type: ignore[arg-type]
    except ValueError:
        return host
    return host if DEFAULT_PORTS.get(scheme) == number else f"{host}:{number}"


def public_base(request: Request) -> str:
    """`scheme://host[:port]` plus the app's root path, as the client reached it (module docstring)."""
    headers = request.headers
    fwd = _forwarded(headers.get("forwarded"))
    proto = (fwd.get("proto") or _first(headers.get("x-forwarded-proto")) or "").lower()
    scheme = proto if proto in DEFAULT_PORTS else request.url.scheme
    host = fwd.get("host") or _first(headers.get("x-forwarded-host"))
    proxied = bool(fwd or proto or host or headers.get("x-forwarded-port"))
    host = host if host and _TOKEN.match(host) else headers.get("host") or ""
    if not _TOKEN.match(host):
        server = request.scope.get("server") or ("localhost", None)
        host = str(server[0])
    if proxied:
        host = _with_port(host, _first(headers.get("x-forwarded-port")), scheme)
    else:
        server = request.scope.get("server")
        host = _with_port(host, server[1] if server else None, scheme)
    return f"{scheme}://{host}{request.scope.get('root_path', '')}".rstrip("/")
