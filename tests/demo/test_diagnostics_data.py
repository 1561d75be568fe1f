"""The diagnostics demo: 香河县人民医院 reads for 渠口镇卫生院 — catalogue, two months of reports, open work."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yilianti.auth import service as auth_service
from yilianti.demo import diagnostics as demo
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.reading import service as reading
from yilianti.models.alliance import Institution
from yilianti.models.auth import User
from yilianti.models.diagnostics import (
    DiagnosticItem,
    DiagnosticOrder,
    DiagnosticReport,
    InboundMessage,
    ItemPrice,
)


def _subject(db: Session, username: str, inst_name: str):  # type: ignore[no-untyped-def]
    user = db.scalar(select(User).where(User.username == username))
    inst = db.scalar(select(Institution).where(Institution.name == inst_name))
    assert user is not None and inst is not None
    return auth_service.build_subject(db, user, inst.id)


def test_catalogue_with_township_fees(db: Session) -> None:
    assert demo.is_loaded(db)
    town = db.scalar(select(Institution).where(Institution.name == demo.TOWNSHIP))
    assert town is not None
    assert (db.scalar(select(func.count()).select_from(DiagnosticItem)) or 0) >= 30
    ct = db.scalar(select(ItemPrice).join(DiagnosticItem, DiagnosticItem.id == ItemPrice.item_id)
                   .where(DiagnosticItem.code == "CT-HEAD", ItemPrice.institution_id == town.id))
    assert ct is not None and ct.price_fen == 15000 and ct.fee_standard == demo.TOWNSHIP_STANDARD


def test_two_months_of_reports_give_tat_and_open_work(db: Session) -> None:
    reader = _subject(db, "xianghe-reader", demo.COUNTY)
    site = _subject(db, "qukou-doctor", demo.TOWNSHIP)
    finals = db.scalar(select(func.count()).select_from(DiagnosticOrder).where(DiagnosticOrder.status == "final",
                                                                               DiagnosticOrder.tat_minutes.is_not(None)))
    assert (finals or 0) > 60
    months = {r.month for r in reading.tat_stats(db, reader, by="item", months=3)}
    assert len(months) >= 2
    wl = reading.worklist(db, reader)
    assert len(wl) >= 5 and wl[0].order.priority == "stat"
    assert any(r.order.status == "claimed" for r in wl)
    assert any(r.order.status == "reported" for r in wl)  # the trainee's report awaits a second signature
    countersigned = db.scalar(select(func.count()).select_from(DiagnosticReport).where(
        DiagnosticReport.status == "final", DiagnosticReport.second_signer_user_id.is_not(None)))
    assert (countersigned or 0) > 3
    open_cv = critical.list_for(db, site)
    assert len(open_cv) == 1 and "6.8" in open_cv[0].cv.value_text and open_cv[0].can_acknowledge
    q = db.scalars(select(InboundMessage).where(InboundMessage.status == "quarantined",
                                                InboundMessage.suggested_patient_id.is_not(None))).all()
    assert q, "a quarantined message with a suggested patient"
    refused = db.scalar(select(InboundMessage).where(InboundMessage.control_id == "DEMO-GBK-1"))
    assert refused is not None and (refused.status, refused.reason_code) == ("rejected", "charset_invalid")
    assert "渠口镇卫生院".encode("gbk") in (refused.raw_bytes or b"")
