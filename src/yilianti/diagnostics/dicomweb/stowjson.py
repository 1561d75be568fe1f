"""STOW-RS with metadata and bulk data (PS3.18 10.5.1.2.2): `multipart/related; type="application/dicom+json"`.

The metadata parts (application/dicom+json) each hold a JSON array of instances (or one instance) in the DICOM
JSON model; their BulkDataURIs name the bulk data parts by those parts' Content-Location (or `cid:` and their
Content-ID). Each instance is made into a DICOM file here and then stored as a file sent as application/dicom
is (dicomweb/service.store_one: the same accession, quarantine and ownership rules). The pixels' transfer syntax
is the pixel part's `transfer-syntax` parameter, else the metadata's (0002,0010), else explicit VR little endian;
a compressed single-frame image is encapsulated as one fragment.

An instance that cannot be made fails with a FailureReason (0xC000: not understood — JSON that is not a data
set, a BulkDataURI with no part; 0xC122: compressed multi-frame pixels, whose frame boundaries a single part does
not give), naming the SOP Class and Instance UIDs its metadata has.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian

# STOW-RS failure reasons (PS3.18 table I.2-1 / PS3.4 C-STORE statuses)
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH = 0xA900
OUT_OF_RESOURCES = 0xA700
SYNTAX_NOT_SUPPORTED = 0xC122

METADATA_TYPES = ("application/dicom+json", "application/json")
PIXELS = "7FE00010"

Part = tuple[str, dict[str, str], dict[str, str], bytes]  # media type, its parameters, the part's headers, content


@dataclass
class Made:
    part10: bytes = b""
    failure: int | None = None
    reason: str = ""
    sop_class: Any = None
    sop_uid: Any = None
    source: bytes = b""  # what is kept for a person when it fails


def _value(doc: Any, tag: str) -> Any:
    try:
        return doc[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return None


def _locations(headers: dict[str, str]) -> list[str]:
    out = [headers["content-location"]] if headers.get("content-location") else []
    if headers.get("content-id"):
        out.append("cid:" + headers["content-id"].strip("<>"))
    return out


def instances(parts: list[Part]) -> list[Made]:
    """Every instance of the request's metadata parts, made (or failed) with the bulk data parts."""
    bulk: dict[str, tuple[dict[str, str], bytes]] = {}
    metadata: list[bytes] = []
    for kind, params, headers, data in parts:
        if kind in METADATA_TYPES:
            metadata.append(data)
        else:
            for location in _locations(headers):
                bulk[location] = (params, data)
    out: list[Made] = []
    for data in metadata:
        try:
            docs = json.loads(data)
        except ValueError as exc:
            out.append(Made(failure=CANNOT_UNDERSTAND, reason=f"JSON: {exc}", source=data))
            continue
        out += [made(doc, bulk) for doc in (docs if isinstance(docs, list) else [docs])]
    return out


def made(doc: Any, bulk: dict[str, tuple[dict[str, str], bytes]]) -> Made:
    """One instance's DICOM file from its metadata and the bulk data parts."""
    sop_class, sop_uid = _value(doc, "00080016"), _value(doc, "00080018")
    failed = Made(sop_class=sop_class, sop_uid=sop_uid, source=json.dumps(doc, ensure_ascii=False).encode())
    if not isinstance(doc, dict):
        failed.failure, failed.reason = CANNOT_UNDERSTAND, "not a data set"
        return failed
    missing: list[str] = []
    pixel_syntax: list[str] = []

    def fetch(tag: str, _vr: str, uri: str) -> bytes:
        found = bulk.get(uri)
        if found is None:
            missing.append(uri)
            return b""
        params, content = found
        if tag.upper() == PIXELS and params.get("transfer-syntax"):
            pixel_syntax.append(params["transfer-syntax"])
        return content

    try:
        ds = Dataset.from_json({k: v for k, v in doc.items() if not k.startswith("0002")},
                               bulk_data_uri_handler=fetch)
    except Exception as exc:  # noqa: BLE001 - whatever pydicom refuses in the metadata fails this instance only
        failed.failure, failed.reason = CANNOT_UNDERSTAND, f"metadata: {exc}"
        return failed
    if missing:
        failed.failure, failed.reason = CANNOT_UNDERSTAND, f"no bulk data part for {', '.join(missing)}"
        return failed
    syntax = UID(pixel_syntax[0] if pixel_syntax else _value(doc, "00020010") or ExplicitVRLittleEndian)
    if "PixelData" in ds and syntax.is_compressed:
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            failed.failure, failed.reason = SYNTAX_NOT_SUPPORTED, "compressed multi-frame pixels in one part"
            return failed
        ds.PixelData = encapsulate([bytes(ds.PixelData)])
        ds["PixelData"].VR = "OB"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    if sop_class:
        ds.file_meta.MediaStorageSOPClassUID = UID(str(sop_class))
    if sop_uid:
        ds.file_meta.MediaStorageSOPInstanceUID = UID(str(sop_uid))
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - e.g. a value its VR cannot hold
        failed.failure, failed.reason = CANNOT_UNDERSTAND, f"not writable as DICOM: {exc}"
        return failed
    return Made(part10=out.getvalue(), sop_class=sop_class, sop_uid=sop_uid)
