"""An instance's WADO-RS metadata document, made once when the instance is stored (receivers/ingest.py, which
every way in goes through: C-STORE, the web upload, STOW-RS, a resolved quarantine) and kept in
`imaging_instance_metadata`; `yilianti dicom-metadata` makes the documents of instances stored before (until
then their metadata is read from their files on every call, as it was: a read never writes one, so two first
reads cannot race to insert it).

The document is the instance's DICOM JSON (PS3.18 F.2) as text: its transfer syntax, every attribute but
the pixels, values over 1 KiB and the pixels as BulkDataURIs. The URIs start with `URL`, a placeholder that
`with_url` replaces by the instance's address when answering (the address follows the request: web/urls.py),
so an answer joins the documents' text without parsing a file or a JSON document.
"""

from __future__ import annotations

import json
from typing import Any

import pydicom
from pydicom.dataset import Dataset

URL = "ylt:instance"  # the instance's URL in a stored document (never a real scheme, no JSON escaping)
BULK_THRESHOLD = 1024
PIXELS = 0x7FE00010


def document(ds: Dataset) -> str:
    """The DICOM JSON text of a data set (its file meta's transfer syntax, no pixels)."""

    def bulk(el: Any) -> str:
        return f"{URL}/bulkdata/{int(el.tag):08X}"

    out: dict[str, Any] = {}
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax:
        out["00020010"] = {"vr": "UI", "Value": [str(syntax)]}
    # the pixels and what follows them (trailing padding) are left out, as a file read up to its pixels has them
    tags = ds.keys()
    body = ds if not tags or max(tags) < PIXELS else Dataset({el.tag: el for el in ds if el.tag < PIXELS})
    out.update(body.to_json_dict(bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=bulk))
    if "Rows" in ds and "Columns" in ds:
        out["7FE00010"] = {"vr": "OW", "BulkDataURI": f"{URL}/bulkdata/7FE00010"}
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def from_file(path: str) -> str:
    """The document of a stored file (raises OSError or InvalidDicomError)."""
    return document(pydicom.dcmread(path, stop_before_pixels=True))


def with_url(text: str, url: str) -> str:
    """The stored document with the instance's URL in its BulkDataURIs (`url` is a URL: no quote, no backslash)."""
    return text.replace(f'"{URL}/', f'"{url}/')


def array(documents: list[str]) -> bytes:
    """The documents as one JSON array, as answered."""
    return ("[" + ",".join(documents) + "]").encode()


def first_values(text: str, *tags: str) -> dict[str, Any]:
    """The first value of each of these attributes (tags as 8 hex digits) in a document; None when it has none."""
    data = json.loads(text)
    return {tag: ((data.get(tag) or {}).get("Value") or [None])[0] for tag in tags}
