"""Import of results a member produced in its own LIS/HIS, outside any platform order.

They become `DiagnosticOrder` rows (see the package docstring for why one table): accession
`EXT-<institution id>-<their id>`, status `final`, `reported_at` the member's report time, the
member as ordering, performing and reading institution, `LabObservation` rows for the values,
and one `DiagnosticOrderHistory` row (None → final, "imported from the member's LIS/HIS") so the
order's history still explains its status. Re-sending the same id updates nothing and answers
409. A numeric value without units, an unknown item code or a report time in the future is
refused with nothing stored.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.diagnostics.repository import order_id_by_accession
from yilianti.exceptions import Conflict, Forbidden, InvalidInput
from yilianti.kit import clock
from yilianti.kit.schemas import Id, Instant
from yilianti.models.diagnostics import (
    DiagnosticOrder,
    DiagnosticOrderHistory,
    DiagnosticReport,
    LabObservation,
)
from yilianti.recognition.service import require_item

CLOCK_SKEW = timedelta(minutes=5)
NUMERIC = re.compile(r"^\s*[<>≤≥]?\s*[-+]?\d+(\.\d+)?\s*$")


class ObservationIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    code_system: str | None = Field(default=None, max_length=32)
    value: str = Field(min_length=1, max_length=2000)
    units: str | None = Field(default=None, max_length=64)
    reference_range: str | None = Field(default=None, max_length=64)
    abnormal_flags: str | None = Field(default=None, max_length=16)


class ExternalResultIn(BaseModel):
    patient_id: Id
    item_code: str = Field(min_length=1, max_length=64)
    external_id: str = Field(min_length=1, max_length=40, description="the member's own report / specimen number")
    reported_at: Instant
    observations: list[ObservationIn] = Field(default_factory=list)
    conclusion: str | None = Field(default=None, max_length=4000, description="imaging: the findings text")


def is_numeric(value: str) -> bool:
    return bool(NUMERIC.match(value or ""))


def validate_observations(observations: list[ObservationIn]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for i, ob in enumerate(observations):
        if is_numeric(ob.value) and not (ob.units or "").strip():
            fields[f"observations.{i}.units"] = "数值结果必须填写单位"
    return fields


def import_external_result(db: Session, subject: Subject, data: ExternalResultIn) -> DiagnosticOrder:
    if not subject.is_clinical and not subject.has("institution_admin"):
        raise Forbidden()
    inst_id = subject.acting_institution_id
    if inst_id is None:
        raise Forbidden()
    item = require_item(db, data.item_code)
    fields = validate_observations(data.observations)
    if item.kind == "lab" and not data.observations:
        fields["observations"] = "检验结果至少需要一项数值"
    reported = clock.as_utc(data.reported_at) if data.reported_at.tzinfo else data.reported_at.replace(tzinfo=clock.SHANGHAI)
    if reported > clock.now() + CLOCK_SKEW:
        fields["reported_at"] = "报告时间不能晚于现在"
    if fields:
        raise InvalidInput(fields=fields)
    policy.require_patient(db, subject, data.patient_id, action="write", resource_type="external_result",
                           resource_id=data.external_id)
    accession = f"EXT-{inst_id}-{data.external_id.strip()}"[:32]
    if order_id_by_accession(db, accession) is not None:
        raise Conflict("该结果已导入", code="already_imported")
    order = DiagnosticOrder(
        accession_number=accession, patient_id=data.patient_id, ordering_institution_id=inst_id,
        reading_centre_institution_id=inst_id, performing_institution_id=inst_id, kind=item.kind,
        item_code=item.code, item_name=item.name, status="final", filler_order_number=data.external_id.strip(),
        ordering_user_id=subject.user_id, ordered_at=reported, received_at=reported, reported_at=reported,
    )
    db.add(order)
    db.flush()
    db.add(DiagnosticOrderHistory(order_id=order.id, at=clock.now(), user_id=subject.user_id,
                                  acting_institution_id=inst_id, from_status=None, to_status="final",
                                  reason="本机构LIS/HIS结果导入（未经平台申请）",
                                  detail={"external_id": data.external_id, "source": "member_lis_his"}))
    for n, ob in enumerate(data.observations, start=1):
        db.add(LabObservation(order_id=order.id, set_id=n, value_type="NM" if is_numeric(ob.value) else "ST",
                              code=ob.code, code_system=ob.code_system, name=ob.name, value=ob.value.strip(),
                              units=(ob.units or "").strip() or None, reference_range=ob.reference_range,
                              abnormal_flags=ob.abnormal_flags, result_status="F", observed_at=reported))
    if data.conclusion:
        db.add(DiagnosticReport(order_id=order.id, findings=data.conclusion.strip(), status="final",
                                author_user_id=subject.user_id, signed_at=reported))
    db.flush()
    audit.record(db, subject, "import", "external_result", order.id, patient_id=data.patient_id,
                 detail={"accession": accession, "item": item.code, "observations": len(data.observations)})
    return order

