"""Recognition decisions in the shared record (record/sources.py registry): "the decision and the
reason are recorded in the record" — each reuse or re-test shows with the deciding institution,
the reused result's source (both involved) and the reason."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.recognition import repository as repo
from yilianti.recognition.service import RETEST_REASONS
from yilianti.record.sources import Entry, source


@source("recognition", "结果互认")
def recognition_decisions(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows = repo.decisions_with_item_name(db, patient_id, limit)
    out = []
    for d, item_name in rows:
        involved = frozenset(i for i in (d.institution_id, d.reused_institution_id) if i is not None)
        if d.decision == "reuse":
            title = f"{item_name}：互认（采用已有结果）"
            detail = f"结果日期 {d.reused_result_date.isoformat() if d.reused_result_date else ''}"
        else:
            title = f"{item_name}：重新检查"
            detail = RETEST_REASONS.get(d.reason_code or "", "") + (f"（{d.reason_text}）" if d.reason_text else "")
        out.append(Entry("recognition", d.decided_at, d.institution_id, involved, title, detail, status=d.decision,
                         ref=f"recognition_decision:{d.id}", link=f"/recognition/decisions/{d.id}",
                         extra={"patient_informed": d.patient_informed, "price_saved_fen": d.price_saved_fen}))
    return out
