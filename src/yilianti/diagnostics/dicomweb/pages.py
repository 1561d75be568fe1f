"""The OHIF viewer's files at /ohif/ (installed by `make ohif`; diagnostics/dicomweb/ohif.py), when present.

Its data come from /dicomweb with the user's session, under the same access checks as every other read; the
files themselves hold no patient data. Any path that is not a file is the single-page app (OHIF's routes,
e.g. /ohif/viewer?StudyInstanceUIDs=…). The Content-Security-Policy of these paths is web/edge.py's OHIF_CSP.
"""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from yilianti.config import get_settings
from yilianti.exceptions import NotFound

router = APIRouter(include_in_schema=False)
TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}


@router.get("/ohif")
def ohif_root() -> Response:
    return RedirectResponse("/ohif/", status_code=307)


@router.get("/ohif/{path:path}")
def ohif_file(path: str) -> Response:
    root = get_settings().ohif_dir.resolve()
    index = root / "index.html"
    if not index.is_file():
        raise NotFound("未安装 OHIF 阅片器（make ohif）")
    target = (root / path).resolve()
    if path and target.is_file() and root in target.parents:
        media = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media, headers={"Cache-Control": "public, max-age=86400"})
    if "." in path.rsplit("/", 1)[-1]:
        raise NotFound()  # a missing asset, not a page of the app
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})
