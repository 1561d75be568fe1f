"""DICOMweb routes at /dicomweb (QIDO-RS, WADO-RS, STOW-RS; see diagnostics/dicomweb/service.py).

Credentials as for the JSON API: an API token (`Authorization: Bearer …`, a member system's DICOMweb client) or
the session cookie (the OHIF viewer opened from the order page; a STOW-RS POST then carries X-CSRF-Token).
Errors are the contract's JSON body; a STOW-RS answer is the DICOM JSON store response (409 when none stored).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from yilianti.auth.deps import DB, Clinical
from yilianti.diagnostics.dicomweb import service as dw
from yilianti.kit.schemas import INT_MAX
from yilianti.web.urls import public_base

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
StudyUID = Annotated[str, Path(max_length=64, pattern=UID_PATTERN, description="StudyInstanceUID")]
SeriesUID = Annotated[str, Path(max_length=64, pattern=UID_PATTERN, description="SeriesInstanceUID")]
SopUID = Annotated[str, Path(max_length=64, pattern=UID_PATTERN, description="SOPInstanceUID")]
QLimit = Annotated[int, Query(ge=1, le=INT_MAX, description="at most this many (the server answers at most 500)")]
QOffset = Annotated[int, Query(ge=0, le=INT_MAX)]
Text = Annotated[str | None, Query(max_length=200)]
Accept = Annotated[str | None, Header(max_length=1000)]

Responses = dict[int | str, dict[str, Any]]
DICOM_JSON: Responses = {200: {"content": {dw.DICOM_JSON: {}}, "description": "DICOM JSON model"}}
MULTIPART_DICOM: Responses = {200: {"content": {'multipart/related; type="application/dicom"': {}},
                         "description": "the instances as received (DICOM Part 10)"}}
MULTIPART_OCTETS: Responses = {200: {"content": {'multipart/related; type="application/octet-stream"': {}},
                          "description": "uncompressed frames or bulk data"}}
PNG: Responses = {200: {"content": {"image/png": {}}, "description": "rendered with the default window"}}


def _base(request: Request) -> str:
    """The address the client used (behind the proxy: its forwarded headers), for RetrieveURL and BulkDataURI."""
    return public_base(request)


def _json(content: Any, status: int = 200) -> Response:
    if isinstance(content, bytes):  # already the answer's text (WADO-RS metadata)
        return Response(content, status_code=status, media_type=dw.DICOM_JSON)
    return JSONResponse(content, status_code=status, media_type=dw.DICOM_JSON)


# ------------------------------------------------------------------------------ QIDO-RS


# The matching keys are declared for the OpenAPI; they are read from the query as keywords or as tags
# (00100020 = PatientID, as OHIF sends them) by service.matching_keys.
Key = Annotated[str | None, Query(max_length=200)]
Keys = Annotated[list[str] | None, Query(max_length=200)]


@router.get("/studies", response_class=Response, responses=DICOM_JSON)
def search_studies(request: Request, db: DB, subject: Clinical,
                   StudyInstanceUID: Keys = None, PatientID: Key = None, PatientName: Key = None,  # noqa: N803
                   AccessionNumber: Key = None, StudyDate: Key = None, ModalitiesInStudy: Keys = None,  # noqa: N803
                   StudyDescription: Key = None,  # noqa: N803
                   limit: QLimit = 100, offset: QOffset = 0, includefield: Text = None,
                   fuzzymatching: Text = None) -> Response:
    """QIDO-RS: the studies the acting institution may open (its orders, placed or read, of patients it may see).
    PatientName and StudyDescription match a part; StudyDate is a date or a range (YYYYMMDD-YYYYMMDD)."""
    q = dw.study_query(dw.matching_keys(request.query_params), limit, offset)
    return _json(dw.search_studies(db, subject, q, _base(request)))


@router.get("/series", response_class=Response, responses=DICOM_JSON)
def search_all_series(request: Request, db: DB, subject: Clinical,
                      StudyInstanceUID: Keys = None, PatientID: Key = None, AccessionNumber: Key = None,  # noqa: N803
                      StudyDate: Key = None, Modality: Key = None, SeriesInstanceUID: Key = None,  # noqa: N803
                      limit: QLimit = 100, offset: QOffset = 0, includefield: Text = None) -> Response:
    """QIDO-RS: series of the studies the acting institution may open (study-level keys match their study)."""
    return _json(dw.search_all(db, subject, dw.matching_keys(request.query_params), _base(request), "series", limit,
                               offset))


@router.get("/instances", response_class=Response, responses=DICOM_JSON)
def search_all_instances(request: Request, db: DB, subject: Clinical,
                         StudyInstanceUID: Keys = None, PatientID: Key = None, AccessionNumber: Key = None,  # noqa: N803
                         SeriesInstanceUID: Key = None, SOPInstanceUID: Key = None,  # noqa: N803
                         limit: QLimit = 100, offset: QOffset = 0, includefield: Text = None) -> Response:
    """QIDO-RS: instances of the studies the acting institution may open."""
    return _json(dw.search_all(db, subject, dw.matching_keys(request.query_params), _base(request), "instances",
                               limit, offset))


@router.get("/studies/{study}/series", response_class=Response, responses=DICOM_JSON)
def search_series(request: Request, study: StudyUID, db: DB, subject: Clinical,
                  Modality: Key = None, SeriesInstanceUID: Key = None,  # noqa: N803
                  limit: QLimit = 500, offset: QOffset = 0, includefield: Text = None) -> Response:
    """QIDO-RS: the study's series."""
    keys = dw.matching_keys(request.query_params)
    return _json(dw.search_series(db, subject, study, _base(request), modality=dw.first_key(keys, "Modality"),
                                  series_uid=dw.first_key(keys, "SeriesInstanceUID"), limit=limit, offset=offset))


@router.get("/studies/{study}/instances", response_class=Response, responses=DICOM_JSON)
def search_study_instances(request: Request, study: StudyUID, db: DB, subject: Clinical,
                           SOPInstanceUID: Key = None,  # noqa: N803
                           limit: QLimit = 500, offset: QOffset = 0, includefield: Text = None) -> Response:
    """QIDO-RS: the study's instances."""
    sop = dw.first_key(dw.matching_keys(request.query_params), "SOPInstanceUID")
    return _json(dw.search_instances(db, subject, study, _base(request), sop_uid=sop, limit=limit, offset=offset))


@router.get("/studies/{study}/series/{series}/instances", response_class=Response, responses=DICOM_JSON)
def search_instances(request: Request, study: StudyUID, series: SeriesUID, db: DB, subject: Clinical,
                     SOPInstanceUID: Key = None,  # noqa: N803
                     limit: QLimit = 500, offset: QOffset = 0, includefield: Text = None) -> Response:
    """QIDO-RS: the series' instances."""
    sop = dw.first_key(dw.matching_keys(request.query_params), "SOPInstanceUID")
    return _json(dw.search_instances(db, subject, study, _base(request), series, sop_uid=sop, limit=limit,
                                     offset=offset))


# ------------------------------------------------------------------------------ WADO-RS


def _files(db: Any, subject: Any, accept: str | None, study: str, series: str | None = None,
           sop: str | None = None) -> Response:
    if not dw.accepts(accept, "multipart/related", "application/dicom"):
        raise dw.NotAcceptable()
    found = dw.retrieve(db, subject, study, series, sop)
    boundary = dw.new_boundary()
    return StreamingResponse(dw.multipart_stream(dw.files(found), boundary),
                             media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _octets(parts: list[bytes], syntax: str = dw.EXPLICIT_LE) -> Response:
    boundary = dw.new_boundary()
    body = b"".join(dw.multipart_stream(iter([(f"application/octet-stream; transfer-syntax={syntax}", p)
                                              for p in parts]), boundary))
    return Response(body, media_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}',
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/studies/{study}", response_class=Response, responses=MULTIPART_DICOM)
def retrieve_study(study: StudyUID, db: DB, subject: Clinical, accept: Accept = None) -> Response:
    """WADO-RS: every instance of the study."""
    return _files(db, subject, accept, study)


@router.get("/studies/{study}/series/{series}", response_class=Response, responses=MULTIPART_DICOM)
def retrieve_series(study: StudyUID, series: SeriesUID, db: DB, subject: Clinical, accept: Accept = None) -> Response:
    """WADO-RS: every instance of the series."""
    return _files(db, subject, accept, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}", response_class=Response, responses=MULTIPART_DICOM)
def retrieve_instance(study: StudyUID, series: SeriesUID, sop: SopUID, db: DB, subject: Clinical,
                      accept: Accept = None) -> Response:
    """WADO-RS: one instance."""
    return _files(db, subject, accept, study, series, sop)


@router.get("/studies/{study}/metadata", response_class=Response, responses=DICOM_JSON)
def study_metadata(request: Request, study: StudyUID, db: DB, subject: Clinical) -> Response:
    """WADO-RS: the attributes of every instance of the study, with BulkDataURIs."""
    return _json(dw.metadata(db, subject, _base(request), study))


@router.get("/studies/{study}/series/{series}/metadata", response_class=Response, responses=DICOM_JSON)
def series_metadata(request: Request, study: StudyUID, series: SeriesUID, db: DB, subject: Clinical) -> Response:
    """WADO-RS: the attributes of every instance of the series."""
    return _json(dw.metadata(db, subject, _base(request), study, series))


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", response_class=Response,
            responses=DICOM_JSON)
def instance_metadata(request: Request, study: StudyUID, series: SeriesUID, sop: SopUID, db: DB,
                      subject: Clinical) -> Response:
    """WADO-RS: the instance's attributes."""
    return _json(dw.metadata(db, subject, _base(request), study, series, sop))


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}", response_class=Response,
            responses=MULTIPART_OCTETS)
def frames(study: StudyUID, series: SeriesUID, sop: SopUID, db: DB, subject: Clinical,
           frames: Annotated[str, Path(max_length=2000, description="1-based frame numbers, e.g. 1,2,3")],
           accept: Accept = None) -> Response:
    """WADO-RS: frames, uncompressed (explicit VR little endian pixels); with `transfer-syntax=*` (or the stored
    syntax) in Accept, a compressed image's frames as stored."""
    if not dw.accepts(accept, "multipart/related", "application/octet-stream"):
        raise dw.NotAcceptable()
    return _octets(*dw.frames(db, subject, study, series, sop, dw.frame_numbers(frames), accept))


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}", response_class=Response,
            responses=MULTIPART_OCTETS)
def bulkdata(study: StudyUID, series: SeriesUID, sop: SopUID, db: DB, subject: Clinical,
             tag: Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{8}$", description="the attribute's tag, e.g. 7FE00010")],
             ) -> Response:
    """WADO-RS: one attribute's value (the metadata's BulkDataURI)."""
    return _octets([dw.bulkdata(db, subject, study, series, sop, tag)])


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered", response_class=Response, responses=PNG)
def rendered(study: StudyUID, series: SeriesUID, sop: SopUID, db: DB, subject: Clinical,
             size: Annotated[int | None, Query(ge=16, le=2048)] = None) -> Response:
    """WADO-RS: the first frame as PNG."""
    return Response(dw.rendered(db, subject, study, series, sop, 1, size), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered", response_class=Response,
            responses=PNG)
def rendered_frame(study: StudyUID, series: SeriesUID, sop: SopUID, db: DB, subject: Clinical,
                   frame: Annotated[int, Path(ge=1, le=INT_MAX)],
                   size: Annotated[int | None, Query(ge=16, le=2048)] = None) -> Response:
    """WADO-RS: one frame as PNG."""
    return Response(dw.rendered(db, subject, study, series, sop, frame, size), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


# ------------------------------------------------------------------------------ STOW-RS


@router.post("/studies", response_class=Response, responses=DICOM_JSON)
async def store(request: Request, db: DB, subject: Clinical) -> Response:
    """STOW-RS: multipart/related; type="application/dicom" — linked to orders by AccessionNumber as C-STORE is."""
    body = await request.body()
    status, answer = dw.store(db, subject, body, request.headers.get("content-type", ""), _base(request))
    return _json(answer, status)


@router.post("/studies/{study}", response_class=Response, responses=DICOM_JSON)
async def store_in_study(request: Request, study: StudyUID, db: DB, subject: Clinical) -> Response:
    """STOW-RS into one study: an instance of another study fails (FailureReason 0xA900)."""
    body = await request.body()
    status, answer = dw.store(db, subject, body, request.headers.get("content-type", ""), _base(request), study)
    return _json(answer, status)
