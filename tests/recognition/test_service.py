"""Recognition rules: HR mark on the result's date, the order-time lookup, decisions, the report."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.recognition.helpers import days_ago, price, thyroid, world
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import Consent
from yilianti.models.recognition import QualifiedInstitution, RecognitionItem, RecognitionRule
from yilianti.recognition import catalogue, service
from yilianti.recognition.results import ExternalResultIn, ObservationIn, import_external_result
from yilianti.recognition.service import DecisionIn


def test_lookup_offers_other_members_result_with_days_left(db):
    w = world(db)
    oid = thyroid(db, w, days_ago(10))
    found = service.lookup(db, w.bj, w.patient_id, "TFT")
    assert [r.order_id for r in found.results] == [oid]
    r = found.results[0]
    assert r.institution_name == w.xianghe.name and r.scopes == ["京津冀"] and not r.own and r.imported
    assert r.days_left == 20
    assert [o["name"] for o in r.observations] == ["FT3", "FT4", "TSH"]
    assert not found.consent_missing
    audits = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "recognition_lookup",
                                                 AuditEvent.patient_id == w.patient_id)).all()
    assert audits and audits[-1].acting_institution_id == w.beijing.id
    assert audits[-1].access_basis == "grant"


def test_lookup_newest_first_and_expired_results_dropped(db):
    w = world(db)
    old = thyroid(db, w, days_ago(40), "LIS-old")
    mid = thyroid(db, w, days_ago(20), "LIS-mid")
    new = thyroid(db, w, days_ago(2), "LIS-new")
    ids = [r.order_id for r in service.lookup(db, w.bj, w.patient_id, "TH3").results]
    assert ids == [new, mid] and old not in ids


def test_outside_scope_institution_sees_nothing_recognised(db):
    w = world(db)
    thyroid(db, w, days_ago(3))
    zz = b.subject_for(db, b.user(db, w.outside, "doctor"))
    from yilianti.authz import policy
    policy.grant_access(db, None, patient_id=w.patient_id, institution_id=w.outside.id, kind="referral", reason="x")
    found = service.lookup(db, zz, w.patient_id, "TFT")
    assert found.results == [] and not found.in_scope


def test_without_sharing_consent_the_lookup_says_so(db):
    w = world(db, consent=None)
    thyroid(db, w, days_ago(3))
    found = service.lookup(db, w.bj, w.patient_id, "TFT")
    assert found.results == [] and found.consent_missing
    assert "授权" in found.message


def test_withdrawn_consent_hides_results_again(db):
    w = world(db)
    thyroid(db, w, days_ago(3))
    for c in db.scalars(select(Consent).where(Consent.patient_id == w.patient_id)):
        c.withdrawn_at = clock.now()
    db.flush()
    assert service.lookup(db, w.bj, w.patient_id, "TFT").results == []


def test_no_relationship_is_not_found(db):
    w = world(db)
    other = b.institution(db, province="北京")
    s = b.subject_for(db, b.user(db, other, "doctor"))
    with pytest.raises(NotFound):
        service.lookup(db, s, w.patient_id, "TFT")


def test_unknown_item_code_is_rejected(db):
    w = world(db)
    with pytest.raises(InvalidInput) as e:
        service.lookup(db, w.bj, w.patient_id, "NOPE")
    assert e.value.code == "unknown_item_code"


def test_hr_mark_follows_qc_status_on_the_result_date(db):
    w = world(db)
    inside = db.get(DiagnosticOrder, thyroid(db, w, datetime(2026, 6, 1, 2, tzinfo=clock.SHANGHAI), "A"))
    before = db.get(DiagnosticOrder, thyroid(db, w, datetime(2025, 12, 20, 2, tzinfo=clock.SHANGHAI), "B"))
    marks = service.hr_marks(db, [inside, before])
    assert marks[inside.id].marked and marks[inside.id].label == "HR 京津冀"
    assert not marks[before.id].marked and marks[before.id].label == ""
    # QC lapses later: the earlier result keeps its mark (decided on its own date)
    q = db.scalar(select(QualifiedInstitution).where(QualifiedInstitution.institution_id == w.xianghe.id))
    q.qc_to = date(2026, 7, 1)
    db.flush()
    assert service.hr_mark(db, inside).marked


def test_result_outside_qc_period_is_not_offered(db):
    w = world(db)
    q = db.scalars(select(QualifiedInstitution).where(QualifiedInstitution.institution_id == w.xianghe.id)).all()
    for row in q:
        row.qc_to = clock.today_local() - timedelta(days=30)
    db.flush()
    thyroid(db, w, days_ago(5))
    assert service.lookup(db, w.bj, w.patient_id, "TFT").results == []


def test_reuse_records_decision_and_price_at_the_deciding_member(db):
    w = world(db)
    oid = thyroid(db, w, days_ago(10))
    price(db, w.beijing, "LAB-TFT", 15500)
    d = service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse",
                                            reused_order_id=oid))
    assert d.price_saved_fen == 15500 and d.reused_institution_id == w.xianghe.id and d.offered_count == 1
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "recognition_reuse",
                                                 AuditEvent.resource_id == str(d.id))) is not None
    assert service.satisfied_by_recognition(db, []) == {}


def test_reuse_falls_back_to_item_price(db):
    w = world(db)
    oid = thyroid(db, w, days_ago(10))
    d = service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse",
                                            reused_order_id=oid))
    assert d.price_saved_fen == 12000


def test_reuse_of_an_expired_result_conflicts(db):
    w = world(db)
    oid = thyroid(db, w, days_ago(45))
    with pytest.raises(Conflict):
        service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse",
                                            reused_order_id=oid))


@pytest.mark.parametrize(("reason", "text", "informed", "field"), [
    (None, None, True, "reason_code"),
    ("bogus", None, True, "reason_code"),
    ("other", "  ", True, "reason_text"),
    ("condition_changed", None, False, "patient_informed"),
])
def test_retest_needs_a_coded_reason_and_informed_patient(db, reason, text, informed, field):
    w = world(db)
    thyroid(db, w, days_ago(3))
    with pytest.raises(InvalidInput) as e:
        service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="retest",
                                            reason_code=reason, reason_text=text, patient_informed=informed))
    assert field in e.value.fields


def test_retest_recorded_and_reported_by_doctor_and_department(db):
    w = world(db)
    oid = thyroid(db, w, days_ago(3))
    service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="retest",
                                        reason_code="pre_surgery", patient_informed=True))
    service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse",
                                        reused_order_id=oid))
    rep = service.monthly_report(db, w.bj, months=2)
    this = rep["months"][-1]
    assert (this["decisions"], this["reused"], this["retested"], this["saved_fen"]) == (2, 1, 1, 12000)
    assert this["rate"] == 0.5 and this["tests_avoided"] == 1
    dims = {(r["dimension"], r["reason_code"]) for r in rep["retest_reasons"]}
    assert ("doctor", "pre_surgery") in dims and ("institution", "pre_surgery") in dims


def test_report_only_for_own_institution(db):
    w = world(db)
    oid = thyroid(db, w, days_ago(3))
    service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse", reused_order_id=oid))
    assert service.monthly_report(db, w.xh)["totals"]["decisions"] == 0
    with pytest.raises(NotFound):
        service.monthly_report(db, w.xh, institution_id=w.beijing.id)


def test_numeric_result_without_units_is_rejected_and_nothing_stored(db):
    w = world(db)
    before = db.scalar(select(DiagnosticOrder.id).order_by(DiagnosticOrder.id.desc()).limit(1))
    with pytest.raises(InvalidInput) as e:
        import_external_result(db, w.xh, ExternalResultIn(
            patient_id=w.patient_id, item_code="TFT", external_id="X", reported_at=days_ago(1),
            observations=[ObservationIn(code="3016-3", name="TSH", value="2.1")]))
    assert "observations.0.units" in e.value.fields
    assert db.scalar(select(DiagnosticOrder.id).order_by(DiagnosticOrder.id.desc()).limit(1)) == before


def test_valid_days_must_be_positive(db):
    world(db)
    with pytest.raises(InvalidInput):
        service.set_rule(db, None, item_code="TFT", scope_code="JJJ", valid_days=0)
    rule = service.set_rule(db, None, item_code="TFT", scope_code="JJJ", valid_days=60)
    assert rule.valid_days == 60


def test_catalogue_import_is_all_or_nothing_with_row_errors(db):
    w = world(db)
    bad = ("item_code,item_name,kind,scope_code,valid_days,institution,qc_from,qc_to\n"
           "FT9,新项目,lab,JJJ,30,,,\n"
           "TSH2,促甲状腺激素,lab,JJJ,0,,,\n"
           "X1,某项目,化验,NOPE,30,,,\n"
           f"X2,某项目,lab,JJJ,30,{w.outside.name},2026-01-01,2026-12-31\n")
    with pytest.raises(InvalidInput) as e:
        catalogue.import_catalogue(db, None, catalogue.read_rows(bad.encode()))
    assert set(e.value.fields) == {"第3行", "第4行", "第5行"}
    assert "1–3650" in e.value.fields["第3行"] and "不在互认范围" in e.value.fields["第5行"]
    assert db.scalar(select(RecognitionItem.id).where(RecognitionItem.code == "FT9")) is None


def test_catalogue_import_from_xlsx(db):
    openpyxl = pytest.importorskip("openpyxl")
    world(db)
    import io
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["项目编码", "项目名称", "类别", "范围编码", "有效期(天)", "价格(元)"])
    ws.append(["DR-CHEST", "胸部DR", "检查", "JJJ", 180, 80])
    buf = io.BytesIO()
    wb.save(buf)
    summary = catalogue.import_catalogue(db, None, catalogue.read_rows(buf.getvalue(), "c.xlsx"))
    assert summary.items_created == 1
    item = db.scalar(select(RecognitionItem).where(RecognitionItem.code == "DR-CHEST"))
    assert item is not None and item.kind == "imaging" and item.price_fen == 8000
    assert db.scalar(select(RecognitionRule.valid_days).where(RecognitionRule.item_id == item.id)) == 180


def test_reuse_for_a_platform_order_marks_it_satisfied_and_cancels_it_through_diagnostics(db):
    from yilianti.diagnostics.orders import workflow
    from yilianti.models.diagnostics import DiagnosticOrderHistory

    w = world(db)
    oid = thyroid(db, w, days_ago(10))
    price(db, w.beijing, "LAB-TFT", 15500)
    item_id = db.scalar(select(DiagnosticOrder.item_id).where(DiagnosticOrder.id == oid))  # imported: no catalogue id
    assert item_id is None
    from yilianti.models.diagnostics import DiagnosticItem
    cat = db.scalar(select(DiagnosticItem).where(DiagnosticItem.code == "LAB-TFT",
                                                 DiagnosticItem.reading_centre_institution_id == w.beijing.id))
    order = workflow.place_order(db, w.bj, patient_id=w.patient_id, item_id=cat.id)
    d = service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse",
                                            reused_order_id=oid, order_id=order.id))
    assert db.get(DiagnosticOrder, order.id).status == "cancelled"
    last = db.scalars(select(DiagnosticOrderHistory).where(DiagnosticOrderHistory.order_id == order.id)
                      .order_by(DiagnosticOrderHistory.id.desc())).first()
    assert last.to_status == "cancelled" and "互认" in last.reason and f"#{d.id}" in last.reason
    assert service.satisfied_by_recognition(db, [order.id])[order.id].id == d.id
    with pytest.raises(Conflict):
        service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="reuse",
                                            reused_order_id=oid, order_id=order.id))


def test_decision_is_in_the_shared_record_for_both_members(db):
    from yilianti.record import service as record

    w = world(db)
    oid = thyroid(db, w, days_ago(3))
    d = service.decide(db, w.bj, DecisionIn(patient_id=w.patient_id, item_code="TFT", decision="retest",
                                            reason_code="fast_changing", patient_informed=True))
    view = record.shared_record(db, w.xh, w.patient_id, ["recognition"])
    [entry] = view.entries
    assert entry.ref == f"recognition_decision:{d.id}" and "指标变化快" in entry.detail
    assert oid  # the offered result stays where it was


def test_without_consent_own_institution_results_still_show(db):
    w = world(db, consent=None)
    thyroid(db, w, days_ago(3), "XH")
    # the Beijing hospital is qualified too; its own earlier panel is not someone else's data
    catalogue.import_catalogue(db, None, catalogue.read_rows(
        ("item_code,item_name,kind,scope_code,valid_days,institution,qc_from,qc_to\n"
         f"TFT,甲状腺功能（FT3/FT4/TSH）,lab,JJJ,30,{w.beijing.name},2026-01-01,2026-12-31\n").encode()))
    own = import_external_result(db, w.bj, ExternalResultIn(
        patient_id=w.patient_id, item_code="TFT", external_id="BJ-1", reported_at=days_ago(5),
        observations=[ObservationIn(code="3016-3", name="TSH", value="2.0", units="mIU/L")]))
    found = service.lookup(db, w.bj, w.patient_id, "TFT")
    assert [r.order_id for r in found.results] == [own.id] and found.results[0].own
    assert found.consent_missing


def test_lookup_audit_names_basis_shared_when_another_members_result_is_shown(db):
    """As the shared record's read: the patient's own institution shown another member's result reads `shared`."""
    w = world(db)

    def last_basis() -> str | None:
        row = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "recognition_lookup")
                         .order_by(AuditEvent.id.desc())).first()
        return row.access_basis if row else None

    thyroid(db, w, days_ago(3), "XH")
    assert all(r.own for r in service.lookup(db, w.xh, w.patient_id, "TFT").results)
    assert last_basis() == "own"
    catalogue.import_catalogue(db, None, catalogue.read_rows(
        ("item_code,item_name,kind,scope_code,valid_days,institution,qc_from,qc_to\n"
         f"TFT,甲状腺功能（FT3/FT4/TSH）,lab,JJJ,30,{w.beijing.name},2026-01-01,2026-12-31\n").encode()))
    import_external_result(db, w.bj, ExternalResultIn(
        patient_id=w.patient_id, item_code="TFT", external_id="BJ-1", reported_at=days_ago(1),
        observations=[ObservationIn(code="3016-3", name="TSH", value="2.0", units="mIU/L")]))
    found = service.lookup(db, w.xh, w.patient_id, "TFT")
    assert any(not r.own for r in found.results)
    assert last_basis() == "shared"


def test_unqualified_source_is_not_recognised(db):
    w = world(db)
    other = b.institution(db, "测试廊坊未质控医院", province="河北", city="廊坊")
    from yilianti.authz import policy
    policy.grant_access(db, None, patient_id=w.patient_id, institution_id=other.id, kind="referral", reason="x")
    s = b.subject_for(db, b.user(db, other, "doctor"))
    o = import_external_result(db, s, ExternalResultIn(
        patient_id=w.patient_id, item_code="TFT", external_id="U-1", reported_at=days_ago(2),
        observations=[ObservationIn(code="3016-3", name="TSH", value="2.0", units="mIU/L")]))
    assert not service.hr_mark(db, o).marked
    assert service.lookup(db, w.bj, w.patient_id, "TFT").results == []


def test_hr_mark_on_the_result_page(db, client):  # type: ignore[no-untyped-def]
    # a qualified source inside its QC period: the order page shows "HR 京津冀"; an expired QC shows nothing
    w = world(db)
    marked = thyroid(db, w, days_ago(5), "PAGE-A")
    b.login(client, w.xh_doctor.username)
    page = client.get(f"/diagnostics/orders/{marked}").text
    assert re.search(r'id="order-hr"[^>]*>HR 京津冀<', page)
    for row in db.scalars(select(QualifiedInstitution).where(QualifiedInstitution.institution_id == w.xianghe.id)):
        row.qc_to = clock.today_local() - timedelta(days=30)
    db.flush()
    unmarked = thyroid(db, w, days_ago(2), "PAGE-B")
    assert 'id="order-hr"' not in client.get(f"/diagnostics/orders/{unmarked}").text


def test_hr_mark_in_the_shared_record(db, client):  # type: ignore[no-untyped-def]
    # Beijing (referral grant, consent "all") reads the record: 香河's thyroid result carries HR 京津冀
    w = world(db)
    oid = thyroid(db, w, days_ago(5), "REC-A")
    b.login(client, w.bj_doctor.username)
    body = client.get(f"/api/v1/patients/{w.patient_id}/record", params={"kind": "diagnostic_order,lab_result"})
    assert body.status_code == 200
    entries = body.json()["entries"]
    order_entry = next(e for e in entries if e["ref"] == f"diagnostic_order:{oid}")
    assert order_entry["hr_mark"] == "HR 京津冀"
    labs = [e for e in entries if e["kind"] == "lab_result"]
    assert len(labs) == 3 and {e["hr_mark"] for e in labs} == {"HR 京津冀"}
    page = client.get(f"/patients/{w.patient_id}/record").text
    assert page.count('class="tag hr"') >= 4
