"""Maintaining the catalogue by hand: items, scopes with validity windows, QC qualifications (pages + API)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.recognition.helpers import days_ago, thyroid, world
from yilianti.exceptions import InvalidInput
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionItem,
    RecognitionItemCode,
    RecognitionRule,
)
from yilianti.recognition import admin, service
from yilianti.recognition.admin import ItemIn, QualificationIn


def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    return int(db.scalar(select(func.count()).select_from(model)))


def _audits(db, resource_type: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    return list(db.scalars(select(AuditEvent).where(AuditEvent.resource_type == resource_type)
                           .order_by(AuditEvent.id)))


def test_create_and_edit_item_with_codes_audited(db):  # type: ignore[no-untyped-def]
    w = world(db)
    item = admin.save_item(db, w.bj, ItemIn(code="TM-CEA", name="癌胚抗原", kind="lab", loinc="2039-6",
                                            codes=["LAB-CEA"], price_yuan="45.5"))
    assert item.price_fen == 4550 and item.numeric
    assert service.find_item(db, "LAB-CEA").id == item.id and service.find_item(db, "2039-6").id == item.id
    admin.save_item(db, w.bj, ItemIn(code="TM-CEA", name="癌胚抗原（CEA）", kind="lab", loinc="2039-6",
                                     codes=["LAB-CEA2"], price_yuan=""), item_id=item.id)
    assert service.find_item(db, "LAB-CEA") is None and service.find_item(db, "LAB-CEA2").id == item.id
    assert item.name == "癌胚抗原（CEA）" and item.price_fen is None
    [created, updated] = _audits(db, "recognition_item")[-2:]
    assert created.action == "create" and updated.action == "update"
    assert updated.detail["before"]["name"] == "癌胚抗原" and updated.detail["after"]["codes"] == ["2039-6", "LAB-CEA2"]


def test_item_errors_name_every_field_and_write_nothing(db):  # type: ignore[no-untyped-def]
    w = world(db)
    before = (_count(db, RecognitionItem), _count(db, RecognitionItemCode))
    with pytest.raises(InvalidInput) as e:
        admin.save_item(db, w.bj, ItemIn(code="TFT", name="", kind="blood", codes=["CBC"], price_yuan="-3"))
    assert set(e.value.fields) == {"code", "name", "kind", "codes", "price_yuan"}
    assert e.value.fields["code"] == "项目编码已存在" and "CBC" in e.value.fields["codes"]
    assert (_count(db, RecognitionItem), _count(db, RecognitionItemCode)) == before


def test_rule_unknown_item_and_non_positive_window_rejected(db):  # type: ignore[no-untyped-def]
    w = world(db)
    with pytest.raises(InvalidInput) as e:
        admin.set_rule(db, w.bj, item_code="NOPE", scope_code="JJJ", valid_days="0")
    assert e.value.fields == {"item_code": "未知的互认项目编码", "valid_days": "有效期天数应在 1–3650 天之间"}
    with pytest.raises(InvalidInput) as e:
        admin.set_rule(db, w.bj, item_code="TFT", scope_code="JJJ", valid_days="-5")
    assert e.value.fields == {"valid_days": "有效期天数应在 1–3650 天之间"}
    rule = admin.set_rule(db, w.bj, item_code="CT-CHEST", scope_code="JJJ", valid_days="90")
    assert rule.valid_days == 90
    admin.remove_rule(db, w.bj, rule.id)
    assert db.get(RecognitionRule, rule.id) is None
    assert [a.action for a in _audits(db, "recognition_rule")][-2:] == ["update", "delete"]


def test_qualification_added_by_hand_gives_the_hr_mark_and_expiry_drops_it(db):  # type: ignore[no-untyped-def]
    w = world(db)
    order = db.get(DiagnosticOrder, thyroid(db, w, days_ago(5)))
    # start from 香河 not qualified for the panel (the import qualified it)
    for q in db.scalars(select(QualifiedInstitution).where(QualifiedInstitution.institution_id == w.xianghe.id,
                                                           QualifiedInstitution.item_id == order_item(db))):
        admin.remove_qualification(db, w.bj, q.id)
    assert not service.hr_mark(db, order).marked
    assert service.lookup(db, w.bj, w.patient_id, "TFT").results == []
    today = clock.today_local()
    q = admin.save_qualification(db, w.bj, QualificationIn(
        item_code="TH3", scope_code="JJJ", institution_id=w.xianghe.id,
        qc_from=(today - timedelta(days=30)).isoformat(), qc_to=(today + timedelta(days=300)).isoformat(),
        qc_body="河北省临床检验中心"))
    assert service.hr_mark(db, order).label == "HR 京津冀"
    assert [r.order_id for r in service.lookup(db, w.bj, w.patient_id, "TFT").results] == [order.id]
    # the QC period ended before the result's date: no mark, not offered
    admin.save_qualification(db, w.bj, QualificationIn(
        item_code="TFT", scope_code="JJJ", institution_id=w.xianghe.id, qc_from=(today - timedelta(days=30)).isoformat(),
        qc_to=(today - timedelta(days=10)).isoformat()), qual_id=q.id)
    assert not service.hr_mark(db, order).marked
    assert service.lookup(db, w.bj, w.patient_id, "TFT").results == []
    acts = _audits(db, "recognition_qualified")
    assert [a.action for a in acts][-3:] == ["delete", "create", "update"]
    assert acts[-1].detail["before"]["qc_to"] == (today + timedelta(days=300)).isoformat()


def order_item(db) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(RecognitionItem.id).where(RecognitionItem.code == "TFT"))


def test_qualification_errors(db):  # type: ignore[no-untyped-def]
    w = world(db)
    n = _count(db, QualifiedInstitution)
    with pytest.raises(InvalidInput) as e:
        admin.save_qualification(db, w.bj, QualificationIn(item_code="XYZ", scope_code="JJJ", institution_id=w.beijing.id,
                                                           qc_from="2026-06-01", qc_to="2026-05-01"))
    assert e.value.fields == {"item_code": "未知的互认项目编码", "qc_to": "质控截止日期早于开始日期"}
    with pytest.raises(InvalidInput) as e:  # 郑州 is outside 京津冀
        admin.save_qualification(db, w.bj, QualificationIn(item_code="TFT", scope_code="JJJ", institution_id=w.outside.id,
                                                           qc_from="2026-01-01", qc_to="bad"))
    assert e.value.fields["institution_id"] == "该机构不在所选互认范围内" and "qc_to" in e.value.fields
    assert _count(db, QualifiedInstitution) == n


def test_pages_create_item_rule_and_qualification_with_form_errors(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    boss = b.user(db, w.beijing, "alliance_admin")
    csrf = b.login(client, boss.username)
    page = client.get("/recognition/catalogue")
    assert 'href="/recognition/catalogue/items/new"' in page.text and 'id="catalogue-import"' in page.text
    r = client.post("/recognition/catalogue/items", data={"csrf_token": csrf, "code": "DR-CHEST", "name": "",
                                                           "kind": "imaging", "price_yuan": "abc", "active": "1"})
    assert r.status_code == 422 and "请填写项目名称" in r.text and "价格须为非负数（元）" in r.text
    assert db.scalar(select(RecognitionItem).where(RecognitionItem.code == "DR-CHEST")) is None
    r = client.post("/recognition/catalogue/items", data={"csrf_token": csrf, "code": "DR-CHEST", "name": "胸部DR",
                                                           "kind": "imaging", "price_yuan": "80", "active": "1"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/recognition/catalogue/items/DR-CHEST")
    r = client.post("/recognition/catalogue/items/DR-CHEST/rules",
                    data={"csrf_token": csrf, "scope_code": "JJJ", "valid_days": "0"})
    assert r.status_code == 422 and "有效期天数应在 1–3650 天之间" in r.text
    r = client.post("/recognition/catalogue/items/DR-CHEST/rules",
                    data={"csrf_token": csrf, "scope_code": "JJJ", "valid_days": "180"}, follow_redirects=True)
    assert r.status_code == 200 and 'class="valid-days">180<' in r.text
    # catalogue-page form: unknown item code and QC end before start, both shown on the form
    r = client.post("/recognition/catalogue/qualifications", data={
        "csrf_token": csrf, "item_code": "NOPE", "scope_code": "JJJ", "institution_id": str(w.xianghe.id),
        "qc_from": "2026-03-01", "qc_to": "2026-02-01"})
    assert r.status_code == 422 and "未知的互认项目编码" in r.text and "质控截止日期早于开始日期" in r.text
    r = client.post("/recognition/catalogue/qualifications", data={
        "csrf_token": csrf, "item_code": "DR-CHEST", "scope_code": "JJJ", "institution_id": str(w.xianghe.id),
        "qc_from": "2026-01-01", "qc_to": "2026-12-31", "back": "item"}, follow_redirects=True)
    assert r.status_code == 200 and w.xianghe.name in r.text
    assert db.scalar(select(QualifiedInstitution).join(RecognitionItem, RecognitionItem.id == QualifiedInstitution.item_id)
                     .where(RecognitionItem.code == "DR-CHEST")).qc_to == date(2026, 12, 31)
    # English
    client.cookies.set("lang", "en")
    r = client.post("/recognition/catalogue/qualifications", data={
        "csrf_token": csrf, "item_code": "NOPE", "scope_code": "JJJ", "institution_id": str(w.xianghe.id),
        "qc_from": "2026-03-01", "qc_to": "2026-02-01"})
    assert r.status_code == 422 and "Unknown recognition item code" in r.text


def test_doctor_cannot_edit_catalogue(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    csrf = b.login(client, w.bj_doctor.username)
    assert client.get("/recognition/catalogue/items/TFT").status_code == 403
    r = client.post("/api/v1/recognition/qualifications", headers={"X-CSRF-Token": csrf}, json={
        "item_code": "TFT", "scope_code": "JJJ", "institution_id": w.beijing.id, "qc_from": "2026-01-01",
        "qc_to": "2026-12-31"})
    assert r.status_code == 403


def test_api_qualifications_422_and_create(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    boss = b.user(db, None, "system_admin")
    csrf = b.login(client, boss.username)
    h = {"X-CSRF-Token": csrf}
    n = _count(db, QualifiedInstitution)
    r = client.post("/api/v1/recognition/qualifications", headers=h, json={
        "item_code": "NOPE", "scope_code": "JJJ", "institution_id": w.beijing.id, "qc_from": "2026-05-01",
        "qc_to": "2026-04-01"})
    assert r.status_code == 422
    fields = r.json()["fields"]
    assert set(fields) == {"item_code", "qc_to"}
    assert _count(db, QualifiedInstitution) == n
    r = client.post("/api/v1/recognition/qualifications", headers=h, json={
        "item_code": "TFT", "scope_code": "JJJ", "institution_id": w.beijing.id, "qc_from": "2026-01-01",
        "qc_to": "2026-12-31", "qc_body": "北京市临床检验中心"})
    assert r.status_code == 201, r.text
    qid = r.json()["id"]
    r = client.post("/api/v1/recognition/items", headers=h, json={"code": "CBC", "name": "x", "kind": "lab"})
    assert r.status_code == 422
    r = client.put("/api/v1/recognition/items/TFT", headers=h, json={
        "code": "TFT", "name": "甲状腺功能", "kind": "lab", "price_yuan": "130"})
    assert r.status_code == 200 and r.json()["price_fen"] == 13000 and r.json()["rules"] == {"JJJ": 30}
    assert client.delete(f"/api/v1/recognition/qualifications/{qid}", headers=h).status_code == 204
    assert db.get(QualifiedInstitution, qid) is None
