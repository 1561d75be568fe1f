"""Cross-domain work of a consultation (ARCHITECTURE.md: `flows.py` for work that crosses domains).

Converting a consultation to an up-referral (转为上转转诊): the referral is drafted from the whole case
(question, summary, latest opinion, linked orders, attachments) and submitted through the referral
service, the case's attachments are copied to the referral by the attachments service (same stored
file, a row of its own), and the case ends as converted — all in the caller's one unit of work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.attachments import repository as attachments_repo
from yilianti.attachments import service as attachments
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.consultation import repository, service
from yilianti.consultation.schemas import ConvertIn
from yilianti.consultation.service import SOURCE
from yilianti.consultation.states import OUTCOME_LABELS, Side, Status
from yilianti.exceptions import Forbidden
from yilianti.kit import clock
from yilianti.models.consultation import Consultation
from yilianti.referral import service as referral_service
from yilianti.referral.schemas import ReferralIn


def referral_draft(db: Session, c: Consultation) -> dict[str, Any]:
    """The up-referral a conversion creates: the whole content of the case, prefilled."""
    latest = next(iter(reversed(repository.opinions(db, c.id))), None)
    parts = [f"远程会诊 {c.case_no} 转诊", f"会诊问题：{c.question}"]
    if latest is not None:
        parts.append(f"会诊意见（{OUTCOME_LABELS.get(latest.outcome, latest.outcome)}）：{latest.text}")
    linked = repository.orders(db, c.id)
    files = sorted(attachments_repo.attachments_of(db, SOURCE, c.id), key=lambda f: f.id)
    results = [f"{o.item_name}（{o.accession_number}）" for _, o in linked]
    key_results = "\n".join(filter(None, [
        c.clinical_summary or "", ("会诊附带检查：" + "；".join(results)) if results else "",
        ("会诊附件：" + "；".join(f.filename for f in files)) if files else ""]))
    expert = next(iter(repository.participants(db, c.id)), None)
    return {
        "direction": "up", "patient_id": c.patient_id, "to_institution_id": c.consulted_institution_id,
        "to_department_id": c.department_id, "to_practitioner_id": expert.practitioner_id if expert else None,
        "reason": "\n".join(parts)[:2000], "priority": c.urgency, "target_service": "门诊",
        "summary": {"key_results": key_results[:4000] or None},
    }


def convert_to_referral(db: Session, subject: Subject, consultation_id: int, data: ConvertIn | None = None, *,
                        expected_status: str | None = None) -> tuple[Consultation, Any]:
    """One click: an up-referral carrying the question, summary, opinion and attachment references,
    submitted in the same unit of work; the case ends as converted."""
    c, side = service.get(db, subject, consultation_id)
    if side != Side.requester:
        raise Forbidden("该操作应由会诊的另一方执行")
    draft = referral_draft(db, c)
    if data is not None:
        if data.reason and data.reason.strip():
            draft["reason"] = data.reason.strip()
        draft["target_service"] = data.target_service or draft["target_service"]
    c = service.transition(db, subject, consultation_id, Status.converted, expected_status=expected_status,
                           reason="转为上转转诊")
    ref = referral_service.draft_and_submit(db, subject, ReferralIn.model_validate(draft))
    attachments.copy_all(db, (SOURCE, c.id), ("referral", ref.id))
    c.referral_id = ref.id
    c.closed_at, c.closed_by_user_id = clock.now(), subject.user_id
    policy.end_grants(db, subject, SOURCE, c.id)
    audit.record(db, subject, "convert", "consultation", c.id, patient_id=c.patient_id,
                 detail={"referral_id": ref.id})
    db.flush()
    return c, ref
