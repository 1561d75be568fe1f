"""DICOMweb driven by a real third-party client (dicomweb-client 0.61) against a live server, with pydicom-made CTs.

A township orders a head CT read by the county centre; the modality's instances arrive by STOW-RS, are linked by
AccessionNumber as C-STORE links them, and are then found (QIDO-RS) and read (WADO-RS) by both sides — and by no
one else: a doctor of an unrelated hospital finds nothing and reads nothing (404).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from requests.exceptions import HTTPError
from sqlalchemy import select

from tests.diagnostics.helpers import dx_world, ordered
from tests.diagnostics.media_helpers import sample
from tests.live import api_token, live_server
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, ImagingInstance, ImagingStudy, InboundMessage


@dataclass
class World:
    base: str
    factory: object
    order_id: int
    accession: str
    reader: str  # the county reading centre's token
    site: str  # the ordering township's token
    outsider: str  # a doctor of an unrelated hospital
    reader_user: int


def ct_series(accession: str, n: int = 3, study_uid: str | None = None, patient_id: str = "QK0001",
              study_date: str = "20261201") -> list[Dataset]:
    """n slices of pydicom's CT_small.dcm as one new series of one new study, each slice's pixels distinct."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    out: list[Dataset] = []
    for k in range(n):
        ds = pydicom.dcmread(sample("CT_small.dcm"))
        ds.AccessionNumber, ds.PatientID, ds.StudyDate = accession, patient_id, study_date
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese descriptions
        ds.InstanceNumber, ds.SeriesNumber, ds.SeriesDescription = k + 1, 2, "头颅平扫"
        ds.StudyDescription = "头颅CT平扫"
        pixels = ds.pixel_array.copy()
        pixels[0, 0] = 1000 + k  # which slice came back is visible in its pixels
        ds.PixelData = pixels.tobytes()
        out.append(ds)
    return out


def client(w: World, token: str) -> DICOMwebClient:
    return DICOMwebClient(f"{w.base}/dicomweb", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def world(test_db, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_server(test_db, var_dir=tmp_path_factory.mktemp("var")) as (base, factory), factory() as db:
        w = dx_world(db, "DW")
        order = ordered(db, w)
        tokens = [api_token(db, s) for s in (w.reader, w.site_doc, w.outsider_doc)]
        db.commit()
        reader, site, outsider = tokens
        yield World(base, factory, order.id, order.accession_number, reader, site, outsider, w.reader.user_id)


@pytest.fixture(scope="module")
def stored(world: World) -> list[Dataset]:
    """A 3-slice CT stored by the county's modality over STOW-RS."""
    series = ct_series(world.accession)
    answer = client(world, world.reader).store_instances(series)
    refs = answer.ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == [d.SOPInstanceUID for d in series]
    assert "FailedSOPSequence" not in answer
    return series


# ------------------------------------------------------------------------------ STOW-RS


def test_stow_links_the_instances_to_their_order_like_c_store(world: World, stored: list[Dataset]) -> None:
    with world.factory() as db:  # type: ignore[operator]
        study = db.scalar(select(ImagingStudy).where(ImagingStudy.study_instance_uid == stored[0].StudyInstanceUID))
        assert study is not None and study.order_id == world.order_id and study.instance_count == 3
        assert study.accession_number == world.accession and study.modality == "CT"
        order = db.get(DiagnosticOrder, world.order_id)
        assert order.status == "received"  # the C-STORE receiver's move: the centre's worklist shows it
        # the fixture's three instances (other tests of the module store more for this order, or send these
        # again elsewhere, in any order)
        inbound = db.scalars(select(InboundMessage).where(
            InboundMessage.order_id == world.order_id,
            InboundMessage.control_id.in_([d.SOPInstanceUID for d in stored]))).all()
        assert {m.status for m in inbound} == {"stored"} and len(inbound) == 3


def test_stow_of_an_unknown_accession_is_success_and_quarantined(world: World) -> None:
    series = ct_series("UNKNOWN-DW-1", n=1)
    answer = client(world, world.reader).store_instances(series)
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == series[0].SOPInstanceUID
    assert "RetrieveURL" not in answer.ReferencedSOPSequence[0]  # not linked, so not retrievable
    with world.factory() as db:  # type: ignore[operator]
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == series[0].SOPInstanceUID))
        assert inbound.status == "quarantined" and inbound.accession_number == "UNKNOWN-DW-1"
        assert inbound.sender and inbound.sender.startswith("stow:")
        assert Path(inbound.path).exists()


def test_stow_to_another_members_order_is_quarantined_apart(world: World, stored: list[Dataset]) -> None:
    """An outsider who knows the accession cannot attach images to the order, nor overwrite its instance."""
    series = ct_series(world.accession, n=1)
    clash = stored[0].copy()
    clash.AccessionNumber = "UNKNOWN-DW-2"
    outsider = client(world, world.outsider)
    for ds in (series[0], clash):
        answer = outsider.store_instances([ds])  # success: the answer says nothing of the order
        assert "FailedSOPSequence" not in answer
    with world.factory() as db:  # type: ignore[operator]
        for ds in (series[0], clash):
            inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == ds.SOPInstanceUID,
                                                             InboundMessage.status == "quarantined"))
            assert inbound is not None and inbound.order_id is None and "/quarantine/" in inbound.path
        assert db.scalar(select(ImagingInstance).where(
            ImagingInstance.sop_instance_uid == series[0].SOPInstanceUID)) is None
        kept = db.scalar(select(ImagingInstance).where(ImagingInstance.sop_instance_uid == clash.SOPInstanceUID))
        assert pydicom.dcmread(kept.path).AccessionNumber == world.accession  # not overwritten


def test_stow_into_a_study_fails_the_instances_of_another(world: World) -> None:
    good = ct_series(world.accession, n=1)
    other = ct_series(world.accession, n=1)
    answer = client(world, world.reader).store_instances(good + other, study_instance_uid=good[0].StudyInstanceUID)
    assert [r.ReferencedSOPInstanceUID for r in answer.ReferencedSOPSequence] == [good[0].SOPInstanceUID]
    failed = answer.FailedSOPSequence
    assert failed[0].ReferencedSOPInstanceUID == other[0].SOPInstanceUID and failed[0].FailureReason == 0xA900
    with pytest.raises(HTTPError) as exc:  # none stored: 409
        client(world, world.reader).store_instances(other, study_instance_uid=good[0].StudyInstanceUID)
    assert exc.value.response is not None and exc.value.response.status_code == 409


def test_stow_of_what_is_not_dicom_fails_and_is_kept(world: World) -> None:
    body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nnot a dicom file\r\n--b1--\r\n"
    r = httpx.post(f"{world.base}/dicomweb/studies", content=body,
                   headers={"Authorization": f"Bearer {world.reader}",
                            "Content-Type": 'multipart/related; type="application/dicom"; boundary=b1'})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/dicom+json")
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    with world.factory() as db:  # type: ignore[operator]
        kept = db.scalars(select(InboundMessage).where(InboundMessage.status == "rejected",
                                                       InboundMessage.sender.like("web:%"))).all()
        assert any(Path(m.path).read_bytes() == b"not a dicom file" for m in kept if m.path)
    r = httpx.post(f"{world.base}/dicomweb/studies", content=b"{}",
                   headers={"Authorization": f"Bearer {world.reader}", "Content-Type": "application/json"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"


def _json_request(instances: list[tuple[Dataset, str | None]], boundary: str = "ylt-json",
                  drop_bulk: bool = False) -> tuple[bytes, str]:
    """A STOW-RS metadata-and-bulk-data request (PS3.18 10.5.1.2.2): the instances' DICOM JSON in one
    application/dicom+json part, each large value a BulkDataURI naming a part by its Content-Location; the pixels'
    part says their transfer syntax (given: the stored compressed syntax; None: uncompressed)."""
    docs, bulk = [], []
    for ds, syntax in instances:
        def handler(el: object, ds: Dataset = ds, syntax: str | None = syntax) -> str:
            uri = f"http://modality.example/bulk/{id(ds)}/{int(el.tag):08X}"  # type: ignore[attr-defined]
            value = el.value  # type: ignore[attr-defined]
            if int(el.tag) == 0x7FE00010 and syntax:  # type: ignore[attr-defined]
                from pydicom.encaps import generate_frames

                value = next(generate_frames(value, number_of_frames=1))
            bulk.append((uri, f"application/octet-stream; transfer-syntax={syntax}" if syntax and
                         int(el.tag) == 0x7FE00010 else "application/octet-stream", bytes(value)))  # type: ignore[attr-defined]
            return uri

        doc = ds.to_json_dict(bulk_data_threshold=256, bulk_data_element_handler=handler)
        if syntax:
            doc["00020010"] = {"vr": "UI", "Value": [syntax]}
        docs.append(doc)
    body = f"--{boundary}\r\nContent-Type: application/dicom+json\r\n\r\n".encode() + json.dumps(docs).encode()
    for uri, ctype, value in bulk[:-1] if drop_bulk else bulk:
        body += f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Location: {uri}\r\n\r\n".encode() + value
    body += f"\r\n--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom+json"; boundary={boundary}'


def _stow_json(world: World, body: bytes, content_type: str, study: str = "") -> httpx.Response:
    return httpx.post(f"{world.base}/dicomweb/studies{'/' + study if study else ''}", content=body,
                      headers={"Authorization": f"Bearer {world.reader}", "Content-Type": content_type})


def test_stow_of_metadata_and_bulk_data_stores_dicom_files(world: World) -> None:
    """Issue 21: instances sent as DICOM JSON with their bulk data (uncompressed CT slices, a JPEG-LS MR) are
    stored as the same files a modality would send, linked to the order, and read back whole over WADO-RS."""
    series = ct_series(world.accession, n=2)
    mr = pydicom.dcmread(sample("MR_small_jpeg_ls_lossless.dcm"))
    mr.AccessionNumber, mr.StudyInstanceUID, mr.SeriesInstanceUID = world.accession, generate_uid(), generate_uid()
    mr.SOPInstanceUID = mr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    body, ctype = _json_request([(series[0], None), (series[1], None), (mr, str(mr.file_meta.TransferSyntaxUID))])
    r = _stow_json(world, body, ctype)
    assert r.status_code == 200, r.text
    stored = Dataset.from_json(r.json())
    assert [s.ReferencedSOPInstanceUID for s in stored.ReferencedSOPSequence] == \
        [series[0].SOPInstanceUID, series[1].SOPInstanceUID, mr.SOPInstanceUID]
    assert all(s.RetrieveURL.startswith(f"{world.base}/dicomweb/studies/") for s in stored.ReferencedSOPSequence)
    c = client(world, world.reader)
    got = c.retrieve_instance(series[1].StudyInstanceUID, series[1].SeriesInstanceUID, series[1].SOPInstanceUID)
    assert got.AccessionNumber == world.accession and got.StudyDescription == "头颅CT平扫"
    assert (got.pixel_array == series[1].pixel_array).all() and int(got.pixel_array[0, 0]) == 1001
    got_mr = c.retrieve_instance(mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID)
    assert got_mr.file_meta.TransferSyntaxUID == mr.file_meta.TransferSyntaxUID
    assert (got_mr.pixel_array == mr.pixel_array).all()
    with world.factory() as db:  # type: ignore[operator]
        study = db.scalar(select(ImagingStudy).where(ImagingStudy.study_instance_uid == series[0].StudyInstanceUID))
        assert study is not None and study.order_id == world.order_id and study.instance_count == 2


def test_stow_of_bad_metadata_instances_fails_them_by_name(world: World) -> None:
    """Each instance that cannot be made fails in FailedSOPSequence with its UIDs and a FailureReason; the
    others are stored (202); none stored is 409; what failed is kept for a person."""
    good, no_bulk = ct_series(world.accession, n=1), ct_series(world.accession, n=1)
    body, ctype = _json_request([(good[0], None), (no_bulk[0], None)], drop_bulk=True)  # no_bulk's pixels missing
    r = _stow_json(world, body, ctype)
    assert r.status_code == 202, r.text
    answer = Dataset.from_json(r.json())
    assert [s.ReferencedSOPInstanceUID for s in answer.ReferencedSOPSequence] == [good[0].SOPInstanceUID]
    failed = answer.FailedSOPSequence[0]
    assert failed.ReferencedSOPInstanceUID == no_bulk[0].SOPInstanceUID and failed.FailureReason == 0xC000
    assert failed.ReferencedSOPClassUID == no_bulk[0].SOPClassUID
    # no SOP Instance UID: fails naming its class; JSON that is no data set; another study's instance in a study
    nameless = ct_series(world.accession, n=1)[0]
    del nameless.SOPInstanceUID
    other = ct_series(world.accession, n=1)
    body, ctype = _json_request([(nameless, None), (other[0], None)])
    r = _stow_json(world, body, ctype, study=good[0].StudyInstanceUID)
    assert r.status_code == 409, r.text
    failed = Dataset.from_json(r.json()).FailedSOPSequence
    assert failed[0].FailureReason == 0xC000 and failed[0].ReferencedSOPClassUID == nameless.SOPClassUID
    assert failed[1].ReferencedSOPInstanceUID == other[0].SOPInstanceUID and failed[1].FailureReason == 0xA900
    junk = b"--j\r\nContent-Type: application/dicom+json\r\n\r\n[{\"00080018\": 12\r\n--j--\r\n"
    r = _stow_json(world, junk, 'multipart/related; type="application/dicom+json"; boundary=j')
    assert r.status_code == 409 and r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    with world.factory() as db:  # type: ignore[operator]
        kept = db.scalars(select(InboundMessage).where(InboundMessage.status == "rejected")).all()
        assert any(m.path and no_bulk[0].SOPInstanceUID in Path(m.path).read_text(errors="replace")
                   for m in kept if m.path and Path(m.path).exists())
    only_bulk = b"--j\r\nContent-Type: application/octet-stream\r\nContent-Location: x\r\n\r\nabc\r\n--j--\r\n"
    r = _stow_json(world, only_bulk, 'multipart/related; type="application/dicom+json"; boundary=j')
    assert r.status_code == 422 and "body" in r.json()["fields"]
    r = _stow_json(world, only_bulk, 'multipart/related; type="application/dicom+xml"; boundary=j')
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"


# ------------------------------------------------------------------------------ QIDO-RS


def test_qido_finds_the_study_by_the_keys_people_use(world: World, stored: list[Dataset]) -> None:
    uid = stored[0].StudyInstanceUID
    for token in (world.reader, world.site):
        c = client(world, token)
        for filters in ({"PatientID": "QK0001"}, {"AccessionNumber": world.accession}, {"StudyInstanceUID": uid},
                        {"StudyDate": "20261130-20261202"}, {"StudyDate": "20261201"}, {"ModalitiesInStudy": "CT"},
                        {"00100020": "QK0001"}, {"0020000D": uid}, {"PatientName": "*桂兰*"},
                        {"StudyDescription": "头颅"}):
            found = [Dataset.from_json(s) for s in c.search_for_studies(search_filters=filters)]
            assert uid in [s.StudyInstanceUID for s in found], filters
        for filters in ({"PatientID": "OTHER"}, {"StudyDate": "20250101-20250131"}, {"ModalitiesInStudy": "MR"},
                        {"00100020": "OTHER"}, {"StudyDescription": "胸部"}):
            assert uid not in [s["0020000D"]["Value"][0] for s in c.search_for_studies(search_filters=filters)]
    study = Dataset.from_json(client(world, world.site).search_for_studies(search_filters={"StudyInstanceUID": uid})[0])
    assert study.AccessionNumber == world.accession and study.PatientName == "赵桂兰" and study.ModalitiesInStudy == "CT"
    assert study.NumberOfStudyRelatedInstances == 3 and study.NumberOfStudyRelatedSeries == 1
    assert study.StudyDate == "20261201"


def test_qido_pages_with_limit_and_offset(world: World, stored: list[Dataset]) -> None:
    more = ct_series(world.accession, n=1, study_date="20261202")
    client(world, world.reader).store_instances(more)
    c = client(world, world.reader)
    everything = [s["0020000D"]["Value"][0] for s in c.search_for_studies(search_filters={"AccessionNumber":
                                                                                          world.accession})]
    assert len(everything) >= 2 and everything[0] == more[0].StudyInstanceUID  # newest first
    first = c.search_for_studies(search_filters={"AccessionNumber": world.accession}, limit=1)
    second = c.search_for_studies(search_filters={"AccessionNumber": world.accession}, limit=1, offset=1)
    assert [first[0]["0020000D"]["Value"][0], second[0]["0020000D"]["Value"][0]] == everything[:2]


def test_qido_series_and_instances(world: World, stored: list[Dataset]) -> None:
    c = client(world, world.reader)
    uid = stored[0].StudyInstanceUID
    series = [Dataset.from_json(s) for s in c.search_for_series(uid)]
    assert [(s.SeriesInstanceUID, s.Modality, s.SeriesNumber, s.SeriesDescription, s.NumberOfSeriesRelatedInstances)
            for s in series] == [(stored[0].SeriesInstanceUID, "CT", 2, "头颅平扫", 3)]
    found = [Dataset.from_json(i) for i in c.search_for_instances(uid, stored[0].SeriesInstanceUID)]
    assert [i.SOPInstanceUID for i in found] == [d.SOPInstanceUID for d in stored]
    assert [i.InstanceNumber for i in found] == [1, 2, 3]
    assert len(c.search_for_instances(uid)) == 3
    # across studies: series and instances of the studies the subject may see, by study- and series-level keys
    everywhere = c.search_for_series(search_filters={"AccessionNumber": world.accession, "Modality": "CT"})
    assert stored[0].SeriesInstanceUID in [s["0020000E"]["Value"][0] for s in everywhere]
    mr = c.search_for_series(search_filters={"AccessionNumber": world.accession, "Modality": "MR"})
    assert all(s["00080060"]["Value"] == ["MR"] for s in mr)
    assert stored[0].SeriesInstanceUID not in [s["0020000E"]["Value"][0] for s in mr]
    one = c.search_for_instances(search_filters={"SOPInstanceUID": stored[1].SOPInstanceUID})
    assert [i["00080018"]["Value"][0] for i in one] == [stored[1].SOPInstanceUID]
    assert client(world, world.outsider).search_for_series(search_filters={"AccessionNumber": world.accession}) == []


def test_another_members_study_is_invisible(world: World, stored: list[Dataset]) -> None:
    c = client(world, world.outsider)
    uid, series_uid = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID
    assert c.search_for_studies(search_filters={"AccessionNumber": world.accession}) == []
    assert c.search_for_studies() == [] or all(s["0020000D"]["Value"][0] != uid for s in c.search_for_studies())
    for call in (lambda: c.search_for_series(uid), lambda: c.retrieve_study(uid),
                 lambda: c.retrieve_series_metadata(uid, series_uid),
                 lambda: c.retrieve_instance_frames(uid, series_uid, stored[0].SOPInstanceUID, [1])):
        with pytest.raises(HTTPError) as exc:
            call()
        assert exc.value.response is not None and exc.value.response.status_code == 404
        assert exc.value.response.json()["error"] == "not_found"


def _member_with_care(world: World, name: str) -> tuple[str, int, int]:
    """A doctor of another member of the alliance whose institution cares for the patient (registered there):
    (their token, their user id, the patient's id). Neither side of the order."""
    from tests import builders as b
    from yilianti.kit import clock
    from yilianti.models.alliance import Membership
    from yilianti.models.patient import CareRelationship

    with world.factory() as db:  # type: ignore[operator]
        order = db.get(DiagnosticOrder, world.order_id)
        alliance_id = db.scalar(select(Membership.alliance_id).where(
            Membership.institution_id == order.ordering_institution_id))
        inst = b.institution(db, f"{name}{world.order_id}", kind="township", level=1)
        db.add(Membership(alliance_id=alliance_id, institution_id=inst.id, role="member"))
        db.add(CareRelationship(patient_id=order.patient_id, institution_id=inst.id, kind="registered",
                                started_at=clock.now()))
        doc = b.subject_for(db, b.user(db, inst, "doctor"), inst.id)
        token = api_token(db, doc)
        db.commit()
        return token, doc.user_id, order.patient_id


def test_a_member_with_the_shared_record_sees_the_study_and_is_audited(world: World, stored: list[Dataset]) -> None:
    """Issue 21: another member that cares for the patient sees the study through the record's rule — once the
    patient's sharing consent is in force, and no longer once it is withdrawn; each read audited as `shared`."""
    from yilianti.kit import clock
    from yilianti.models.patient import Consent

    token, user_id, patient_id = _member_with_care(world, "东坝社区卫生服务中心")
    c = client(world, token)
    uid, series_uid, sop = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID, stored[0].SOPInstanceUID

    def refused() -> None:
        assert c.search_for_studies(search_filters={"StudyInstanceUID": uid}) == []
        assert c.search_for_series(search_filters={"AccessionNumber": world.accession}) == []
        for call in (lambda: c.search_for_series(uid), lambda: c.retrieve_series_metadata(uid, series_uid),
                     lambda: c.retrieve_instance(uid, series_uid, sop),
                     lambda: c.retrieve_instance_frames(uid, series_uid, sop, [1])):
            with pytest.raises(HTTPError) as exc:
                call()
            assert exc.value.response is not None and exc.value.response.status_code == 404

    with world.factory() as db:  # type: ignore[operator]
        for given in db.scalars(select(Consent).where(Consent.patient_id == patient_id)):
            given.withdrawn_at = clock.now()  # the patient registered with consent: withdrawn first
        db.commit()
    refused()  # a care relationship alone shows its own data only
    with world.factory() as db:  # type: ignore[operator]
        consent = Consent(patient_id=patient_id, scope="all", granted_at=clock.now())
        db.add(consent)
        db.commit()
        consent_id = consent.id
    found = c.search_for_studies(search_filters={"PatientID": "QK0001"})
    assert uid in [s["0020000D"]["Value"][0] for s in found]
    assert [s["0020000E"]["Value"][0] for s in c.search_for_series(uid)] == [series_uid]
    assert len(c.retrieve_series_metadata(uid, series_uid)) == 3
    assert c.retrieve_instance(uid, series_uid, sop).SOPInstanceUID == sop
    assert c.retrieve_instance_frames(uid, series_uid, sop, [1]) == [stored[0].PixelData]
    outsider = client(world, world.outsider)  # consent opens the record to members that may see the patient only
    assert outsider.search_for_studies(search_filters={"PatientID": "QK0001"}) == []
    with pytest.raises(HTTPError) as exc:
        outsider.retrieve_study_metadata(uid)
    assert exc.value.response is not None and exc.value.response.status_code == 404
    with world.factory() as db:  # type: ignore[operator]
        study_id = db.scalar(select(ImagingStudy.id).where(ImagingStudy.study_instance_uid == uid))
        events = db.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id)).all()
        search = [e for e in events if e.action == "search" and study_id in (e.detail or {}).get("results", [])]
        assert search and search[-1].access_basis == "shared" and search[-1].detail["other_institutions"]
        for action in ("diagnostics.study_view", "diagnostics.dicom_retrieve", "diagnostics.image_view"):
            read = [e for e in events if e.action == action]
            assert read and read[-1].access_basis == "shared" and read[-1].resource_id == str(study_id), action
            assert read[-1].patient_id == patient_id
        db.get(Consent, consent_id).withdrawn_at = clock.now()
        db.commit()
    refused()  # consent withdrawn: nothing again


def test_qido_refuses_malformed_keys_in_the_contract_body(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.reader}"}
    for params, field in (({"StudyDate": "2026-13-45"}, "StudyDate"), ({"StudyInstanceUID": "1.2.abc"},
                                                                        "StudyInstanceUID")):
        r = httpx.get(f"{world.base}/dicomweb/studies", params=params, headers=headers)
        assert r.status_code == 422 and field in r.json()["fields"], r.text
    r = httpx.get(f"{world.base}/dicomweb/studies")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"


# ------------------------------------------------------------------------------ WADO-RS


def test_wado_retrieves_the_instances_as_sent(world: World, stored: list[Dataset]) -> None:
    c = client(world, world.site)
    uid, series_uid = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID
    got = sorted(c.retrieve_study(uid), key=lambda d: d.InstanceNumber)
    assert [d.SOPInstanceUID for d in got] == [d.SOPInstanceUID for d in stored]
    assert [int(d.pixel_array[0, 0]) for d in got] == [1000, 1001, 1002]
    assert len(c.retrieve_series(uid, series_uid)) == 3
    one = c.retrieve_instance(uid, series_uid, stored[1].SOPInstanceUID)
    assert one.SOPInstanceUID == stored[1].SOPInstanceUID and one.AccessionNumber == world.accession


def test_wado_metadata_has_bulk_data_uris(world: World, stored: list[Dataset]) -> None:
    c = client(world, world.reader)
    uid, series_uid = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID
    meta = c.retrieve_series_metadata(uid, series_uid)
    assert len(meta) == 3 and len(c.retrieve_study_metadata(uid)) == 3
    first = next(m for m in meta if m["00080018"]["Value"][0] == stored[0].SOPInstanceUID)
    ds = Dataset.from_json(first, bulk_data_uri_handler=lambda tag, vr, uri: None)
    assert ds.Rows == 128 and ds.Columns == 128 and ds.Modality == "CT" and ds.AccessionNumber == world.accession
    uri = first["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{stored[0].SOPInstanceUID}/bulkdata/7FE00010")
    # dicomweb-client sends its Host header without the port: the connection's port completes it
    assert uri.startswith(f"{world.base}/dicomweb/studies/{uid}/")
    assert c.retrieve_bulkdata(uri)[0] == stored[0].PixelData
    assert c.retrieve_instance_metadata(uid, series_uid, stored[2].SOPInstanceUID)["00200013"]["Value"] == [3]


def test_urls_follow_the_address_the_client_used_behind_the_proxy(world: World, stored: list[Dataset]) -> None:
    """Behind nginx (another port, https) RetrieveURL and BulkDataURI carry the public address from the
    forwarded headers, not the address and port the app listens on."""
    uid, series_uid = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID
    proxy = {"Authorization": f"Bearer {world.reader}", "Host": "pacs.example", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "pacs.example:8443", "X-Forwarded-Port": "8443"}
    public = "https://pacs.example:8443/dicomweb"
    meta = httpx.get(f"{world.base}/dicomweb/studies/{uid}/series/{series_uid}/metadata", headers=proxy).json()
    assert all(m["7FE00010"]["BulkDataURI"].startswith(f"{public}/studies/{uid}/series/") for m in meta)
    found = httpx.get(f"{world.base}/dicomweb/studies", params={"StudyInstanceUID": uid}, headers=proxy).json()
    assert found[0]["00081190"]["Value"] == [f"{public}/studies/{uid}"]
    more = ct_series(world.accession, n=1)
    boundary = "ylt-test"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + _part10(more[0])
            + f"\r\n--{boundary}--\r\n".encode())
    r = httpx.post(f"{world.base}/dicomweb/studies", content=body, headers={
        **proxy, "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 200, r.text
    url = r.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    assert url.startswith(f"{public}/studies/{more[0].StudyInstanceUID}/series/")
    forwarded = {"Authorization": f"Bearer {world.reader}", "Forwarded": 'for=10.1.1.1;proto=https;host=pacs.example'}
    again = httpx.get(f"{world.base}/dicomweb/studies", params={"StudyInstanceUID": uid}, headers=forwarded).json()
    assert again[0]["00081190"]["Value"] == [f"https://pacs.example/dicomweb/studies/{uid}"]


def _part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_metadata_is_made_at_ingest_and_backfilled_by_the_command(world: World, stored: list[Dataset]) -> None:
    """Issue 21: the documents are made when STOW-RS stores the instances (no file is parsed to answer); an
    instance stored before documents existed gets its own from `yilianti dicom-metadata` (until then: its file)."""
    from yilianti.cli import main
    from yilianti.diagnostics.dicomweb import document
    from yilianti.models.diagnostics import ImagingInstanceMetadata

    c = client(world, world.reader)
    uid, series_uid = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID
    with world.factory() as db:  # type: ignore[operator]
        ids = list(db.scalars(select(ImagingInstance.id).where(ImagingInstance.series_instance_uid == series_uid)))
        docs = {i: db.get(ImagingInstanceMetadata, i) for i in ids}
        assert len(ids) == 3 and all(d is not None and document.URL in d.document for d in docs.values())
    before = c.retrieve_series_metadata(uid, series_uid)
    with world.factory() as db:  # type: ignore[operator]
        for row in db.scalars(select(ImagingInstanceMetadata).where(ImagingInstanceMetadata.instance_id.in_(ids))):
            db.delete(row)  # as stored before this change
        db.commit()
    assert main(["dicom-metadata"]) == 0
    with world.factory() as db:  # type: ignore[operator]
        assert all(db.get(ImagingInstanceMetadata, i) is not None for i in ids)
    assert c.retrieve_series_metadata(uid, series_uid) == before  # the same answer from the backfilled rows
    with world.factory() as db:  # type: ignore[operator]
        db.delete(db.get(ImagingInstanceMetadata, ids[0]))
        db.commit()
    assert c.retrieve_series_metadata(uid, series_uid) == before  # a missing one is read from its file


def test_wado_frames_are_the_uncompressed_pixels(world: World, stored: list[Dataset]) -> None:
    c = client(world, world.reader)
    uid, series_uid, sop = stored[1].StudyInstanceUID, stored[1].SeriesInstanceUID, stored[1].SOPInstanceUID
    frames = c.retrieve_instance_frames(uid, series_uid, sop, [1], media_types=("application/octet-stream",))
    assert frames == [stored[1].PixelData]
    r = httpx.get(f"{world.base}/dicomweb/studies/{uid}/series/{series_uid}/instances/{sop}/frames/2",
                  headers={"Authorization": f"Bearer {world.reader}"})
    assert r.status_code == 404 and r.json()["error"] == "pixel_data_not_decodable"
    png = c.retrieve_instance_rendered(uid, series_uid, sop, media_types=("image/png",))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fresh_reader(world: World) -> tuple[str, int]:
    """A reader of the reading centre who has read nothing yet: (token, user id). Image reads are audited once per
    user and study in imaging.FRAME_AUDIT_WINDOW, so a test of that row reads as a user no other test has used —
    under xdist or random order, another test's read of the module's study would otherwise decide what it sees."""
    from tests import builders as b
    from yilianti.models.alliance import Institution

    with world.factory() as db:  # type: ignore[operator]
        centre = db.get(Institution, db.get(DiagnosticOrder, world.order_id).reading_centre_institution_id)
        reader = b.subject_for(db, b.user(db, centre, "reader"), centre.id)
        token = api_token(db, reader)
        db.commit()
        return token, reader.user_id


def test_reads_are_audited(world: World, stored: list[Dataset], fresh_reader: tuple[str, int]) -> None:
    token, user_id = fresh_reader
    c = client(world, token)
    uid, series_uid, sop = stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID, stored[0].SOPInstanceUID
    c.search_for_studies(search_filters={"StudyInstanceUID": uid})
    c.retrieve_study(uid)
    for frame in ([1], [1], [1]):  # a viewer scrolling: one request per frame
        c.retrieve_instance_frames(uid, series_uid, sop, frame)
    with world.factory() as db:  # type: ignore[operator]
        study_id = db.scalar(select(ImagingStudy.id).where(ImagingStudy.study_instance_uid == uid))
        events = db.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id)).all()
        searches = [e for e in events if e.action == "search" and e.resource_type == "imaging_study"]
        assert any(study_id in (e.detail or {}).get("results", []) for e in searches)
        retrieved = [e for e in events if e.action == "diagnostics.dicom_retrieve"]
        assert retrieved and retrieved[-1].resource_id == str(study_id) and retrieved[-1].channel == "api"
        assert retrieved[-1].patient_id is not None
        views = [e for e in events if e.action == "diagnostics.image_view"]
        assert [e.resource_id for e in views] == [str(study_id)]  # the frames, once per window


# ------------------------------------------------------------------------------ OHIF's files


def test_ohif_is_served_from_its_directory_only_when_installed(world: World, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from yilianti.config import get_settings

    monkeypatch.setattr(get_settings(), "ohif_dir", tmp_path / "ohif")
    missing = httpx.get(f"{world.base}/ohif/viewer", headers={"Accept": "application/json"})
    assert missing.status_code == 404
    (tmp_path / "ohif").mkdir()
    (tmp_path / "ohif" / "index.html").write_text("<html>ohif</html>")
    (tmp_path / "ohif" / "app.js").write_text("window.x = 1;")
    (tmp_path / "secret.txt").write_text("not served")
    page = httpx.get(f"{world.base}/ohif/viewer", params={"StudyInstanceUIDs": "1.2.3"})
    assert page.status_code == 200 and page.text == "<html>ohif</html>"  # OHIF's own routes are its page
    csp = page.headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in csp and "worker-src 'self' blob:" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    script = httpx.get(f"{world.base}/ohif/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{world.base}/ohif/missing.js").status_code == 404
    assert httpx.get(f"{world.base}/ohif/..%2Fsecret.txt").text != "not served"
    # the rest of the app keeps its strict policy
    assert "unsafe-eval" not in httpx.get(f"{world.base}/login").headers["content-security-policy"]


def test_compressed_frames_are_decoded_or_sent_as_stored(world: World) -> None:
    """A JPEG-LS MR: decoded pixels by default; its codestream as stored when the client takes any syntax (OHIF)."""
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(sample("MR_small_jpeg_ls_lossless.dcm"))
    ds.AccessionNumber, ds.StudyInstanceUID, ds.SeriesInstanceUID = world.accession, generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    c = client(world, world.reader)
    c.store_instances([ds])
    ids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    decoded = c.retrieve_instance_frames(*ids, [1], media_types=("application/octet-stream",))
    assert decoded == [ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()]
    stored = c.retrieve_instance_frames(*ids, [1], media_types=(("application/octet-stream", "*"),))
    assert stored == [next(generate_frames(ds.PixelData, number_of_frames=1))]


def test_series_attributes_come_from_the_document_made_at_ingest() -> None:
    """QIDO's series rows read the stored metadata document of the series' first instance, not its file: the row
    is right even when the file cannot be read; without a document (stored before 0033) the file is read."""
    from yilianti.diagnostics.dicomweb import document, service
    from yilianti.models.diagnostics import ImagingInstance

    ds = ct_series("DOC-1", n=1)[0]
    row = service.SeriesRow(ds.SeriesInstanceUID, [ImagingInstance(id=1, path="/nonexistent/1.dcm",
                                                                   series_instance_uid=ds.SeriesInstanceUID)])
    head = service.series_head(row, document.document(ds))
    assert (head["00080060"], head["0008103E"], int(head["00200011"])) == ("CT", "头颅平扫", 2)
    assert service.series_head(row, None) == {"00080060": None, "0008103E": None, "00200011": None}
