"""Sources of the shared longitudinal record: a small registry, one function per kind of entry.

A source is `fn(db, patient_id, limit) -> list[Entry]`: the patient's newest rows of one
kind, each labelled with the institution whose data it is (`source_institution_id`) and
every institution involved (`institutions`, e.g. both sides of a referral). The record
service (record/service.py) merges the sources newest first and applies the access policy
per entry: without sharing consent a viewer sees only entries its own institution is
involved in. Nothing here checks access — never call a source outside that service.

To add a kind (recognition, teleconsultation, chronic follow-ups ...), write in your own
domain module:

    from yilianti.record.sources import Entry, source

    @source("consultation", "远程会诊")
    def consultations(db, patient_id, limit):
        rows = repository.consultations_of_patient(db, patient_id, limit)  # the query: in your repository.py
        return [Entry("consultation", c.created_at, c.requesting_institution_id,
                      frozenset({c.requesting_institution_id, c.expert_institution_id}), c.question[:80],
                      status=c.status, ref=f"consultation:{c.id}", link=f"/consultations/{c.id}") for c in rows]

and import that module in `record/__init__.py` (`SOURCE_MODULES`) so it registers at start-up.
Sources must read defensively (tables may be empty; optional models may not exist yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from yilianti.diagnostics import repository as diagnostics_repo
from yilianti.models import diagnostics as dx
from yilianti.referral import repository as referral_repo
from yilianti.scheduling import repository as scheduling_repo
from yilianti.transfer import repository as transfer_repo


@dataclass(frozen=True)
class Entry:
    kind: str
    at: datetime
    source_institution_id: int
    institutions: frozenset[int]
    title: str
    detail: str = ""
    status: str | None = None
    ref: str = ""
    link: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # the institutions whose staff the link opens for, when not every institution of the entry (the record page
    # shows the link to those only)
    link_institutions: frozenset[int] | None = None


SourceFn = Callable[[Session, int, int], list[Entry]]


@dataclass(frozen=True)
class Source:
    kind: str
    label: str  # Chinese label; translated in the page
    fn: SourceFn


SOURCES: dict[str, Source] = {}


def source(kind: str, label: str) -> Callable[[SourceFn], SourceFn]:
    def register(fn: SourceFn) -> SourceFn:
        SOURCES[kind] = Source(kind, label, fn)
        return fn
    return register


def ids_of(*values: int | None) -> frozenset[int]:
    return frozenset(v for v in values if v is not None)


# ------------------------------------------------------------------------------ built-in sources


@source("booking", "预约就诊")
def bookings(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows = scheduling_repo.bookings_of_patient(db, patient_id, limit)
    return [Entry("booking", starts_at, inst, ids_of(inst, bk.booked_by_institution_id), name,
                  detail=bk.number, status=bk.status, ref=f"booking:{bk.id}", link=f"/bookings/{bk.id}/slip")
            for bk, starts_at, name, inst in rows]


@source("referral", "转诊")
def referrals(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows = referral_repo.referrals_of_patient(db, patient_id, limit)
    out = []
    for r in rows:
        involved = ids_of(r.from_institution_id) if r.status == "draft" else ids_of(r.from_institution_id,
                                                                                 r.to_institution_id)
        out.append(Entry("referral", r.submitted_at or r.created_at, r.from_institution_id, involved,
                         ("上转" if r.direction == "up" else "下转") + "：" + (r.reason or "")[:80],
                         detail=str((r.summary or {}).get("diagnoses") or ""), status=r.status,
                         ref=f"referral:{r.id}", link=f"/referrals/{r.id}",
                         extra={"to_institution_id": r.to_institution_id}))
    return out


@source("transfer", "重症转运")
def transfers(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows = transfer_repo.transfers_of_patient(db, patient_id, limit)
    return [Entry("transfer", t.created_at, t.origin_institution_id,
                  ids_of(t.origin_institution_id, t.destination_institution_id), t.diagnosis[:80],
                  detail=t.case_no, status=t.status, ref=f"transfer:{t.id}", link=f"/transfers/{t.id}",
                  extra={"destination_institution_id": t.destination_institution_id}) for t in rows]


def order_institutions(order: dx.DiagnosticOrder) -> frozenset[int]:
    """The institutions a result or report of this order belongs to: the ordering site and the centre
    (the record shows it to them, and to every member with the shared record)."""
    return ids_of(order.ordering_institution_id, order.reading_centre_institution_id)


def _hr(db: Session, orders: list[dx.DiagnosticOrder]) -> dict[int, str]:
    """HR mark label per order id ("HR 京津冀", or "") — recognition decides it on the result's date."""
    from yilianti.recognition import service as recognition  # recognition builds on diagnostics

    return {oid: mark.label for oid, mark in recognition.hr_marks(db, orders).items()} if orders else {}


@source("diagnostic_order", "检查检验申请")
def diagnostic_orders(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows = diagnostics_repo.orders_of_patient(db, patient_id, limit)
    hr = _hr(db, rows)
    return [Entry("diagnostic_order", o.ordered_at or o.created_at, o.ordering_institution_id,
                  ids_of(o.ordering_institution_id, o.reading_centre_institution_id, o.performing_institution_id),
                  o.item_name, detail=o.accession_number, status=o.status, ref=f"diagnostic_order:{o.id}",
                  extra={"hr": hr.get(o.id, "")}) for o in rows]


@source("lab_result", "检验结果")
def lab_results(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows = diagnostics_repo.observations_of_patient(db, patient_id, limit)
    hr = _hr(db, list({order.id: order for _, order in rows}.values()))
    out = []
    for ob, order in rows:
        ordering, centre = order.ordering_institution_id, order.reading_centre_institution_id
        value = " ".join(x for x in (ob.value, ob.units) if x)
        flag = f" [{ob.abnormal_flags}]" if ob.abnormal_flags else ""
        out.append(Entry("lab_result", ob.observed_at or ob.created_at, centre or ordering, order_institutions(order),
                         f"{ob.name or ob.code}: {value}{flag}", detail=order.item_name,
                         status=ob.result_status, ref=f"lab_observation:{ob.id}",
                         extra={"reference_range": ob.reference_range, "hr": hr.get(order.id, ""),
                                "order_id": order.id, "code": ob.code}))
    return out


@source("report", "检查报告")
def reports(db: Session, patient_id: int, limit: int) -> list[Entry]:
    """Signed reports only: a trainee's preliminary report waits for its second signature first."""
    rows = diagnostics_repo.signed_reports_of_patient(db, patient_id, limit)
    hr = _hr(db, list({order.id: order for _, order in rows}.values()))
    out = []
    for rp, order in rows:
        ordering, centre = order.ordering_institution_id, order.reading_centre_institution_id
        out.append(Entry("report", rp.signed_at or rp.created_at, centre or ordering, order_institutions(order),
                         order.item_name, detail=(rp.conclusion or "")[:200], status=rp.status,
                         ref=f"diagnostic_report:{rp.id}",
                         extra={"critical": rp.critical, "hr": hr.get(order.id, ""), "order_id": order.id}))
    return out
