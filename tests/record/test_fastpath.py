"""The PostgreSQL shared-record path (record/fastpath.py) answers exactly as the reference route.

A real uvicorn server on a database of its own holding the whole demo data set (bookings, referrals
both ways, transfers, diagnostic orders, lab results, signed reports, recognition decisions, chronic care plans, HR marks,
consent and its absence, grants). Every clinical demo account calls `GET /api/v1/patients/{id}/record`
with its API token for every patient with data — fast path on, then off (the reference
`record.service.shared_record`) — and the bodies must be equal byte for byte, including 404s.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.live import api_token, fast_and_reference, live_server
from yilianti.auth import service as auth_service
from yilianti.authz.subject import CLINICAL_ROLES
from yilianti.config import get_settings
from yilianti.models import AuditEvent
from yilianti.models.auth import RoleAssignment, User
from yilianti.models.chronic import ChronicRegistration
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport
from yilianti.models.patient import Consent
from yilianti.models.recognition import RecognitionDecision
from yilianti.models.referral import Referral
from yilianti.models.scheduling import Booking
from yilianti.models.transfer import CriticalTransfer
from yilianti.record import fastpath

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the async record path runs on PostgreSQL only")


@pytest.fixture(scope="module")
def server(test_db):  # type: ignore[no-untyped-def]
    with live_server(test_db, record_fast_path=True) as served:
        yield served


@pytest.fixture(scope="module")
def demo(server):  # type: ignore[no-untyped-def]
    from yilianti.demo import dataset

    base, factory = server
    with factory() as db:
        dataset.load_demo(db)
        db.commit()
        tokens: dict[str, str] = {}
        for user, inst in db.execute(select(User, RoleAssignment.institution_id)
                                     .join(RoleAssignment, RoleAssignment.user_id == User.id)
                                     .where(RoleAssignment.role.in_(CLINICAL_ROLES),
                                            RoleAssignment.institution_id.is_not(None))
                                     .order_by(User.username, RoleAssignment.institution_id)):
            key = f"{user.username}@{inst}"
            if key not in tokens:
                tokens[key] = api_token(db, auth_service.build_subject(db, user, inst))
        db.commit()
        # patients with data of each kind (the few with the most of it first), a dozen in all
        patients: list[int] = []
        for model in (CriticalTransfer, Referral, RecognitionDecision, DiagnosticReport, Booking, DiagnosticOrder,
                      ChronicRegistration):
            column = DiagnosticOrder.patient_id if model is DiagnosticReport else model.patient_id
            stmt = select(column).group_by(column).order_by(func.count().desc(), column).limit(2)
            if model is DiagnosticReport:
                stmt = stmt.select_from(DiagnosticReport).join(DiagnosticOrder)
            patients += [p for p in db.scalars(stmt) if p not in patients]
    print(f"{len(tokens)} clinician tokens x {len(patients)} patients")
    assert len(tokens) >= 8 and len(patients) >= 6
    return base, factory, tokens, patients


def _both(base: str, token: str, patient_id: int, params: dict[str, object] | None = None,
          lang: str = "zh") -> tuple[httpx.Response, httpx.Response, int]:
    return fast_and_reference(f"{base}/api/v1/patients/{patient_id}/record", token, "record_fast_path",
                              fastpath.stats, params, lang)


def test_every_demo_clinician_sees_every_patient_exactly_as_the_reference(demo):  # type: ignore[no-untyped-def]
    base, _, tokens, patients = demo
    seen = {200: 0, 404: 0}
    fast_served = 0
    kinds_seen: set[str] = set()
    marks = 0
    for key, token in tokens.items():
        for pid in patients:
            fast, ref, served = _both(base, token, pid)
            assert fast.status_code == ref.status_code, (key, pid)
            assert fast.content == ref.content, (key, pid)  # byte for byte, errors included
            seen[fast.status_code] = seen.get(fast.status_code, 0) + 1
            fast_served += served
            if fast.status_code == 200:
                assert served == 1, (key, pid)
                body = fast.json()
                kinds_seen |= {e["kind"] for e in body["entries"]}
                marks += sum(1 for e in body["entries"] if e["hr_mark"])
    # the demo exercises what the comparison is worth: visible and invisible patients, every kind, HR marks
    assert seen[200] >= 10 and seen[404] >= 10
    assert kinds_seen >= {"booking", "referral", "transfer", "diagnostic_order", "lab_result", "report",
                          "recognition"}, kinds_seen
    assert marks > 0
    assert fast_served == seen[200]


def test_kinds_limit_and_language_as_the_reference(demo):  # type: ignore[no-untyped-def]
    base, _, tokens, patients = demo
    token = next(t for k, t in tokens.items() if k.startswith("bjcy-doctor@"))
    cases: list[dict[str, object]] = [
        {"kind": "lab_result"}, {"kind": ["report", "diagnostic_order"]}, {"kind": "referral,recognition"},
        {"kind": ["booking", "booking"]}, {"kind": "nonsense"}, {"limit": 3}, {"limit": 0}, {"limit": 9999},
        {"kind": "lab_result", "limit": 1}]
    compared = 0
    for pid in patients:
        for params in cases:
            for lang in ("zh", "en"):
                fast, ref, _ = _both(base, token, pid, params, lang)
                assert fast.status_code == ref.status_code, (pid, params)
                assert fast.content == ref.content, (pid, params, lang)
                compared += fast.status_code == 200
    assert compared > 0
    for params in ({"limit": "abc"}, {"limit": "-1"}):  # the route's validation decides these
        fast, ref, served = _both(base, token, patients[0], params)
        assert (fast.status_code, fast.content) == (ref.status_code, ref.content) and served == 0
    fast, ref, served = _both(base, "not-a-token", patients[0])
    assert fast.status_code == ref.status_code == 401 and served == 0


def test_consent_withdrawn_hides_other_members_and_the_read_is_audited(demo):  # type: ignore[no-untyped-def]
    base, factory, tokens, patients = demo

    def withdraw(pid: int) -> list[tuple[int, object]]:
        with factory() as db:
            kept = [tuple(r) for r in db.execute(select(Consent.id, Consent.withdrawn_at)
                                                 .where(Consent.patient_id == pid)).all()]
            db.execute(update(Consent).where(Consent.patient_id == pid).values(withdrawn_at=func.now()))
            db.commit()
        return kept

    def restore(kept: list[tuple[int, object]]) -> None:
        with factory() as db:
            for cid, withdrawn in kept:
                db.execute(update(Consent).where(Consent.id == cid).values(withdrawn_at=withdrawn))
            db.commit()

    def without_consent(token: str, pid: int) -> tuple[httpx.Response, httpx.Response, int]:
        """Both reads with the patient's consents withdrawn for the moment."""
        kept = withdraw(pid)
        try:
            return _both(base, token, pid)
        finally:
            restore(kept)

    def audited(pid: int, user_name: str) -> list[tuple[str | None, str | None]]:
        with factory() as db:
            return [tuple(r) for r in db.execute(select(AuditEvent.access_basis, AuditEvent.channel).where(
                AuditEvent.resource_type == "shared_record", AuditEvent.patient_id == pid,
                AuditEvent.username == user_name).order_by(AuditEvent.id)).all()]

    # a clinician who sees other members' entries of a patient through the consent
    found = None
    for key, token in tokens.items():
        for pid in patients:
            r = httpx.get(f"{base}/api/v1/patients/{pid}/record", headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
            if r.status_code != 200 or not r.json()["shared_record_visible"] or r.json()["access_basis"] != "own":
                continue
            fast, ref, served = without_consent(token, pid)
            assert served == 1 and fast.content == ref.content
            if fast.json()["hidden_other_members"] > 0:
                found = key, token, pid, r.json()
                break
        if found:
            break
    assert found, "the demo has no patient whose record spans members through consent"
    key, token, pid, with_consent = found
    time.sleep(1.5)  # the batch has written the reads so far
    before = len(audited(pid, key.split("@")[0]))
    fast, ref, served = without_consent(token, pid)
    assert served == 1 and fast.content == ref.content
    body = fast.json()
    assert body["shared_record_visible"] is False
    assert len(body["entries"]) + body["hidden_other_members"] == len(with_consent["entries"])
    deadline = time.monotonic() + 5  # the fast path's read audit is written by the batch within a second
    rows = audited(pid, key.split("@")[0])
    while len(rows) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = audited(pid, key.split("@")[0])
    # the fast read and the reference read without consent: one row each, on the API channel, basis own
    assert rows[before:] == [("own", "api"), ("own", "api")]
    fast, ref, served = _both(base, token, pid)  # consent back: other members' entries again, basis "shared"
    assert fast.content == ref.content and fast.json()["entries"] == with_consent["entries"]


def test_switched_off_serves_the_reference(demo):  # type: ignore[no-untyped-def]
    base, _, tokens, patients = demo
    settings = get_settings()
    before = fastpath.stats["statement"]
    settings.record_fast_path = False
    try:
        r = httpx.get(f"{base}/api/v1/patients/{patients[0]}/record",
                      headers={"Authorization": f"Bearer {next(iter(tokens.values()))}"}, timeout=30)
    finally:
        settings.record_fast_path = True
    assert r.status_code in (200, 404) and fastpath.stats["statement"] == before
