"""The PostgreSQL lookup path (recognition/fastpath.py) answers exactly as the reference route.

A real uvicorn server on a database of its own; a member HIS calls
`GET /api/v1/recognition/lookup` with its API token. Each case is asked twice — fast path on,
then off (the reference `service.lookup`) — and the two JSON bodies must be equal.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from tests import builders as b
from tests.live import api_token, fast_and_reference, live_server
from tests.recognition.helpers import days_ago, thyroid, world
from yilianti.config import get_settings
from yilianti.kit import clock
from yilianti.models import AuditEvent
from yilianti.models.recognition import QualifiedInstitution
from yilianti.recognition import fastpath

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the async lookup path runs on PostgreSQL only")


def _token(db, subject) -> str:  # type: ignore[no-untyped-def]
    return api_token(db, subject)


@pytest.fixture(scope="module")
def server(test_db):  # type: ignore[no-untyped-def]
    with live_server(test_db, recognition_fast_path=True) as served:
        yield served


@pytest.fixture(scope="module")
def data(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w = world(db)
        thyroid(db, w, days_ago(3), "LIS-NEW")
        thyroid(db, w, days_ago(12), "LIS-OLD")
        thyroid(db, w, days_ago(45), "LIS-EXPIRED")  # outside the 30-day window
        no_consent = b.patient(db, w.xh, "王建国", consent=None).id
        from yilianti.authz import policy
        from yilianti.recognition.results import ExternalResultIn, ObservationIn, import_external_result

        policy.grant_access(db, None, patient_id=no_consent, institution_id=w.beijing.id, kind="referral",
                            reason="转诊", source=("referral", 2))
        import_external_result(db, w.xh, ExternalResultIn(
            patient_id=no_consent, item_code="TFT", external_id="LIS-NC", reported_at=days_ago(2),
            observations=[ObservationIn(code="3016-3", name="TSH", value="3.0", units="mIU/L")]))
        stranger = b.patient(db, w.xh, "陈静", consent="all").id  # no grant for Beijing
        tokens = {"xh": _token(db, w.xh), "bj": _token(db, w.bj)}
        db.commit()
        ids = {"patient": w.patient_id, "no_consent": no_consent, "stranger": stranger, "xh_inst": w.xianghe.id}
    return base, factory, tokens, ids


def _both(base: str, token: str, params: dict[str, object], lang: str = "zh") -> tuple[httpx.Response, httpx.Response]:
    fast, ref, served = fast_and_reference(f"{base}/api/v1/recognition/lookup", token, "recognition_fast_path",
                                           fastpath.stats, params, lang)
    fast.extensions["served_fast"] = served
    return fast, ref


def test_own_results_same_as_reference_and_audited(data):  # type: ignore[no-untyped-def]
    base, factory, tokens, ids = data
    fast, ref = _both(base, tokens["xh"], {"patient_id": ids["patient"], "item_code": "TFT"})
    assert fast.status_code == ref.status_code == 200
    assert fast.extensions["served_fast"] == 1
    assert fast.json() == ref.json()
    assert fast.content == ref.content  # byte for byte: same field order and encoding as the response model
    body = fast.json()
    assert [r["own_institution"] for r in body["results"]] == [True, True]  # the 45-day-old one has expired
    assert body["results"][0]["result_date"] > body["results"][1]["result_date"]  # newest first
    assert [o["name"] for o in body["results"][0]["observations"]] == ["FT3", "FT4", "TSH"]
    deadline = time.monotonic() + 5  # the fast path's read audit is written by the batch within a second
    while True:
        with factory() as db:
            n = db.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.resource_type == "recognition_lookup", AuditEvent.patient_id == ids["patient"],
                AuditEvent.access_basis == "own"))
        if n == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert n == 2  # one row for each lookup (fast and reference)


def test_other_member_with_consent_and_alias_code(data):  # type: ignore[no-untyped-def]
    base, _, tokens, ids = data
    for code in ("TFT", "TH3", " LAB-TFT "):
        fast, ref = _both(base, tokens["bj"], {"patient_id": ids["patient"], "item_code": code})
        assert fast.status_code == ref.status_code == 200
        assert fast.extensions["served_fast"] == 1
        assert fast.json() == ref.json()
        assert fast.content == ref.content
        body = fast.json()
        assert body["consent_missing"] is False and body["scopes"] == ["京津冀"]
        assert len(body["results"]) == 2 and not body["results"][0]["own_institution"]
        assert body["results"][0]["hr_mark"] == "HR 京津冀"


def test_consent_missing_says_so_in_both_languages(data):  # type: ignore[no-untyped-def]
    base, _, tokens, ids = data
    for lang in ("zh", "en"):
        fast, ref = _both(base, tokens["bj"], {"patient_id": ids["no_consent"], "item_code": "TFT"}, lang)
        assert fast.status_code == ref.status_code == 200
        assert fast.json() == ref.json()
        assert fast.content == ref.content
        assert fast.json()["consent_missing"] is True and fast.json()["results"] == []
        assert fast.json()["message"]


def test_item_with_no_results_and_not_in_scope(data):  # type: ignore[no-untyped-def]
    base, _, tokens, ids = data
    for code in ("CBC", "CT-CHEST"):  # CT-CHEST has no qualified institution; CBC no results
        fast, ref = _both(base, tokens["bj"], {"patient_id": ids["patient"], "item_code": code})
        assert fast.status_code == ref.status_code == 200
        assert fast.json() == ref.json()


def test_unknown_item_invisible_patient_and_bad_query_same_errors(data):  # type: ignore[no-untyped-def]
    base, _, tokens, ids = data
    cases = [({"patient_id": ids["patient"], "item_code": "NOPE"}, 422),
             ({"patient_id": ids["stranger"], "item_code": "TFT"}, 404),
             ({"patient_id": "abc", "item_code": "TFT"}, 422),
             ({"patient_id": ids["patient"]}, 422)]
    for params, status in cases:
        fast, ref = _both(base, tokens["bj"], params)
        assert fast.status_code == ref.status_code == status
        assert fast.json() == ref.json()
    fast, ref = _both(base, "not-a-token", {"patient_id": ids["patient"], "item_code": "TFT"})
    assert fast.status_code == ref.status_code == 401


def test_expired_qc_is_not_recognised(data):  # type: ignore[no-untyped-def]
    base, factory, tokens, ids = data
    with factory() as db:
        saved = db.execute(select(QualifiedInstitution.id, QualifiedInstitution.qc_to).where(
            QualifiedInstitution.institution_id == ids["xh_inst"])).all()
        # the 香河 QC qualification ended a week ago: the 3-day-old result carries no mark any more
        db.execute(update(QualifiedInstitution).where(QualifiedInstitution.institution_id == ids["xh_inst"])
                   .values(qc_to=clock.today_local() - timedelta(days=7)))
        db.commit()
    fastpath.invalidate()  # the server runs in this process: its snapshot is reloaded at once
    try:
        fast, ref = _both(base, tokens["bj"], {"patient_id": ids["patient"], "item_code": "TFT"})
        assert fast.status_code == ref.status_code == 200
        assert fast.json() == ref.json()
        assert len(fast.json()["results"]) == 1  # only the 12-day-old result was made while qualified
        assert fast.json()["results"][0]["days_left"] < 30 - 7
    finally:
        with factory() as db:
            for qid, qc_to in saved:
                db.execute(update(QualifiedInstitution).where(QualifiedInstitution.id == qid).values(qc_to=qc_to))
            db.commit()
        fastpath.invalidate()


def test_switched_off_serves_the_reference(data):  # type: ignore[no-untyped-def]
    base, _, tokens, ids = data
    settings = get_settings()
    before = fastpath.stats["statement"]
    settings.recognition_fast_path = False
    try:
        r = httpx.get(f"{base}/api/v1/recognition/lookup", params={"patient_id": ids["patient"], "item_code": "TFT"},
                      headers={"Authorization": f"Bearer {tokens['bj']}"}, timeout=30)
    finally:
        settings.recognition_fast_path = True
    assert r.status_code == 200 and fastpath.stats["statement"] == before


def test_concurrent_lookups_answer_as_one_by_one(data):  # type: ignore[no-untyped-def]
    """Lookups arriving together get the answers they get alone."""
    import asyncio

    base, _, tokens, ids = data
    headers = {"Authorization": f"Bearer {tokens['bj']}"}
    cases = [(ids["patient"], "TFT"), (ids["no_consent"], "TFT"), (ids["patient"], "CBC"), (ids["patient"], "TH3"),
             (ids["stranger"], "TFT"), (ids["patient"], "CT-CHEST")] * 8

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            return list(await asyncio.gather(*[
                client.get("/api/v1/recognition/lookup", params={"patient_id": p, "item_code": c}) for p, c in cases]))

    before = fastpath.stats["statement"]
    answers = asyncio.run(together())
    served = fastpath.stats["statement"] - before
    alone = [httpx.get(f"{base}/api/v1/recognition/lookup", params={"patient_id": p, "item_code": c}, headers=headers,
                       timeout=30) for p, c in cases]
    assert [(a.status_code, a.content) for a in answers] == [(a.status_code, a.content) for a in alone]
    assert answers[4].status_code == 404  # the stranger: not visible (the reference route answers)
    assert answers[0].json()["results"] and answers[1].json()["consent_missing"] is True
    assert served == len(cases) - 8  # all but the strangers' went the fast path
