"""The shared record a clinician can use (issue 16 item 7): from another member's entry, the full signed
report, its images (viewer, read-only) and the ECG, through the record's access decision and audited; one lab
test's values over time as a table and a chart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.record.test_record import _order, _setup
from yilianti.exceptions import NotFound
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.patients import service as patients
from yilianti.patients.schemas import ConsentIn
from yilianti.record import service as record
from yilianti.web.charts import line_chart, reference_band


def _more_wbc(db, w, p):  # type: ignore[no-untyped-def]
    """Two more white-cell counts: one at the township, one at the children's hospital."""
    town = _order(db, p.id, w.township, "T-2", "血常规", datetime(2026, 10, 20, 2, 0, tzinfo=UTC))
    db.add(LabObservation(order_id=town.id, code="WBC", name="白细胞", value="9.1", units="10^9/L",
                          reference_range="4.0-10.0", observed_at=datetime(2026, 10, 20, 3, 0, tzinfo=UTC)))
    child = _order(db, p.id, w.children, "C-2", "血常规", datetime(2026, 11, 5, 2, 0, tzinfo=UTC))
    db.add(LabObservation(order_id=child.id, code="WBC", name="白细胞", value="6.3", units="10^9/L",
                          reference_range="4.0-10.0", observed_at=datetime(2026, 11, 5, 3, 0, tzinfo=UTC)))
    db.flush()


def _report_order(db) -> DiagnosticOrder:  # type: ignore[no-untyped-def]
    return db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.accession_number == "C-1")).one()


def test_another_members_report_opens_only_with_the_shared_record_and_is_audited(db) -> None:  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    order = _report_order(db)
    # without consent the township does not see the children's hospital's CT — not even by its id
    with pytest.raises(NotFound):
        record.open_order(db, w.d_town, p.id, order.id)
    patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="alliance", alliance_id=w.alliance.id))
    got = record.open_order(db, w.d_town, p.id, order.id)
    assert got.report is not None and got.report.conclusion == "两肺纹理增粗" and got.basis == "shared"
    ev = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "diagnostic_order")
                    .order_by(AuditEvent.id.desc())).first()
    assert ev.access_basis == "shared" and ev.detail["view"] == "shared_record.report" and ev.patient_id == p.id
    # an order of another patient is not reachable through this patient's record
    stranger = b.patient(db, w.d_child, "李路人", resident_id=b.resident_id(region="110105", seq=61))
    with pytest.raises(NotFound):
        record.open_order(db, w.d_child, stranger.id, order.id)


def test_lab_values_over_time_follow_the_record(db) -> None:  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    _more_wbc(db, w, p)
    mine = record.lab_trend(db, w.d_child, p.id, "WBC")
    assert [pt.text for pt in mine.points] == ["6.3"] and mine.hidden == 2  # no consent: only its own
    patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="alliance", alliance_id=w.alliance.id))
    shared = record.lab_trend(db, w.d_child, p.id, "WBC")
    assert [pt.value for pt in shared.points] == [12.5, 9.1, 6.3] and shared.hidden == 0  # oldest first
    assert shared.name == "白细胞" and shared.units == "10^9/L"
    ev = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "lab_trend")
                    .order_by(AuditEvent.id.desc())).first()
    assert ev.access_basis == "shared" and ev.detail["other_institutions"] == [w.township.id]


def test_the_chart_geometry() -> None:
    assert reference_band("4.0-10.0") == (4.0, 10.0) and reference_band("<5") is None
    t = [datetime(2026, 10, d, tzinfo=UTC) for d in (1, 11, 21)]
    chart = line_chart([(t[0], 12.5, True), (t[1], 9.1, False), (t[2], 6.3, False)], (4.0, 10.0), 400, 200)
    assert chart is not None and len(chart.dots) == 3
    xs, ys = [d.x for d in chart.dots], [d.y for d in chart.dots]
    assert xs == sorted(xs) and xs[1] - xs[0] == pytest.approx(xs[2] - xs[1])  # time to scale
    assert ys[0] < ys[1] < ys[2]  # a higher value is drawn higher (smaller y)
    assert chart.band is not None and chart.band[0] < ys[1] < chart.band[0] + chart.band[1]  # 9.1 inside 4–10
    assert line_chart([], None) is None


def test_the_pages(db, client) -> None:  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    _more_wbc(db, w, p)
    patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="alliance", alliance_id=w.alliance.id))
    order = _report_order(db)
    b.user(db, w.township, "doctor", username="town-doc")
    b.login(client, "town-doc")
    page = client.get(f"/patients/{p.id}/record").text
    assert f'href="/patients/{p.id}/record/orders/{order.id}"' in page  # another member's report opens
    assert f'href="/patients/{p.id}/record/labs/WBC"' in page
    report = client.get(f"/patients/{p.id}/record/orders/{order.id}")
    assert report.status_code == 200 and "两肺纹理增粗" in report.text and "只读" in report.text
    trend = client.get(f"/patients/{p.id}/record/labs/WBC")
    assert trend.status_code == 200 and 'id="trend-chart"' in trend.text and trend.text.count('class="pt') == 3
    assert "北京儿童医院" in trend.text.split('id="trend-table"')[1]
    assert client.get(f"/patients/{p.id}/record/orders/{order.id}/ecg.svg").status_code == 404  # no ECG
    images = client.get(f"/patients/{p.id}/record/orders/{order.id}/images")
    assert images.status_code == 200 and 'id="readonly-flag"' in images.text
    assert 'id="dicom-upload-form"' not in images.text  # read-only: nothing to upload from the record
