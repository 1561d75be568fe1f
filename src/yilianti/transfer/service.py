"""Critical transfer service: request → accept → dispatch → milestones → handed over (or cancelled).

Rules:
- the origin's clinical staff request, for a patient they may see, to a hospital sharing an
  alliance with them; the destination's staff accept (physician, bed); either side dispatches,
  records milestones and cancels; every other institution gets 404;
- milestones form one chain (MAIN_CHAIN), recorded in order, once each, never earlier than the
  previous one and never in the future; chest-pain/stroke networks add their own markers
  (first medical contact → first ECG; door → balloon / needle);
- accepting grants the destination access to the patient (source ("transfer", id)); cancelling
  ends it; each step notifies the other side and is audited in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.i18n import code_table
from yilianti.kit.listing import ListParams, export_rows
from yilianti.kit.repository import Page, page
from yilianti.kit.workflow import Workflow
from yilianti.models.alliance import Institution
from yilianti.models.patient import GrantKind
from yilianti.models.referral import Referral
from yilianti.models.scheduling import BedReservation, Ward
from yilianti.models.transfer import CriticalTransfer, TransferMilestone
from yilianti.models.workforce import Practitioner
from yilianti.notifications.service import notify
from yilianti.scheduling.rules import share_alliance
from yilianti.transfer import repository, states
from yilianti.transfer.schemas import AcceptIn, CancelIn, DispatchIn, MilestoneIn, Network, TransferIn
from yilianti.transfer.states import Side, Status

MAIN_CHAIN = ("requested", "team_departed", "arrived_at_origin", "assessed", "departed_with_patient", "arrived",
              "handed_over")
NETWORK_KINDS = ("first_medical_contact", "first_ecg", "door", "balloon", "needle")
# a network marker that needs another recorded before it (and not earlier than it)
NETWORK_AFTER = {"first_ecg": "first_medical_contact", "balloon": "door", "needle": "door"}
TIMED_NETWORKS = (Network.chest_pain, Network.stroke)

OPEN = tuple(s for s in Status if s in states.OPEN)
FINAL = tuple(s for s in Status if s in states.FINAL)
ACTING_ROLES = ("doctor", "nurse", "coordinator")

# Quality targets in minutes (DOMAIN.md §4); a settings field `transfer_target_<key>` overrides each.
TARGET_MINUTES: dict[str, int] = {"fmc_to_ecg": 10, "door_to_balloon": 90, "door_to_needle": 60}
INDICATORS = (("fmc_to_ecg", "first_medical_contact", "first_ecg"),
              ("door_to_balloon", "door", "balloon"),
              ("door_to_needle", "door", "needle"))


def targets() -> dict[str, int]:
    settings = get_settings()
    return {k: int(getattr(settings, f"transfer_target_{k}", v)) for k, v in TARGET_MINUTES.items()}


# ------------------------------------------------------------------------------------------ access


def _side(subject: Subject, t: CriticalTransfer) -> Side | None:
    inst = subject.acting_institution_id
    if inst == t.origin_institution_id:
        return Side.origin
    if inst == t.destination_institution_id:
        return Side.destination
    return None


def get(db: Session, subject: Subject, transfer_id: int, *, for_update: bool = False) -> CriticalTransfer:
    """The transfer, for staff of either side; 404 for everyone else (existence does not leak)."""
    t = repository.transfer(db, transfer_id, for_update=for_update)
    if t is None or not subject.is_clinical or _side(subject, t) is None:
        raise NotFound()
    return t


def _sides(db: Session, subject: Subject | None, t: CriticalTransfer) -> tuple[Side, ...]:
    side = _side(subject, t) if subject is not None else None
    return () if side is None else (side,)


# The status moves only through WORKFLOW (states.MOVES): the row locked, 404 for other institutions,
# the side and the clinical roles checked before the status (403, then 409 transfer_state_conflict).
# A transfer has no history table: its milestones and audit events (written below, after each move)
# are its history.
WORKFLOW: Workflow[CriticalTransfer] = Workflow(
    machine=states.MACHINE, model=CriticalTransfer, sides=_sides, wrong_side="只有接收医院的医护人员可以接收转运",
    roles=ACTING_ROLES, side_first=True)


def _other_side(subject: Subject, t: CriticalTransfer) -> int:
    return t.destination_institution_id if _side(subject, t) == Side.origin else t.origin_institution_id


def _notify(db: Session, t: CriticalTransfer, institution_id: int, title: str) -> None:
    notify(db, title=title, body=f"{t.case_no} · {t.diagnosis[:60]}", link=f"/transfers/{t.id}",
           institution_id=institution_id, kind="transfer", urgent=True)


# ---------------------------------------------------------------------------------------- request


def _next_case_no(db: Session) -> str:
    prefix = f"ZY{clock.today_local():%Y%m%d}-"
    last = repository.last_case_no(db, prefix)
    seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{seq:04d}"


def request(db: Session, subject: Subject, data: TransferIn) -> CriticalTransfer:
    if not subject.is_clinical or not subject.has(*ACTING_ROLES):
        raise Forbidden("此功能仅限临床人员（医生、护士、转诊协调员）")
    origin = subject.acting_institution_id
    assert origin is not None
    try:
        policy.require_patient(db, subject, data.patient_id, action="transfer_request")
    except NotFound:
        raise InvalidInput(fields={"patient_id": "未找到该患者，或本院无权查看"}) from None
    dest = kit.get(db, Institution, data.destination_institution_id)
    if dest is None or dest.id == origin or not share_alliance(db, origin, dest.id):
        raise InvalidInput(fields={"destination_institution_id": "请选择与本院同属一个医联体的接收医院"})
    if data.referral_id is not None:
        ref = kit.get(db, Referral, data.referral_id)
        if ref is None or ref.patient_id != data.patient_id or origin not in (ref.from_institution_id,
                                                                               ref.to_institution_id):
            raise InvalidInput(fields={"referral_id": "关联的转诊单不存在或不属于该患者"})
    now = clock.now()
    vitals = data.vitals.model_dump(exclude_none=True)
    for _attempt in range(5):
        t = CriticalTransfer(
            case_no=_next_case_no(db), patient_id=data.patient_id, origin_institution_id=origin,
            destination_institution_id=dest.id, referral_id=data.referral_id, network=data.network.value,
            diagnosis=data.diagnosis, vitals=vitals, requested_by_user_id=subject.user_id, status=Status.requested,
            created_at=now, updated_at=now)
        try:
            with db.begin_nested():
                db.add(t)
                db.flush()
            break
        except IntegrityError:  # two requests took the same number at once: take the next one
            continue
    else:  # pragma: no cover
        raise Conflict("病例号生成冲突，请重试")
    db.add(TransferMilestone(transfer_id=t.id, kind="requested", at=now, recorded_by_user_id=subject.user_id,
                             recorded_by_institution_id=origin))
    db.flush()
    audit.record(db, subject, "create", "critical_transfer", t.id, patient_id=t.patient_id,
                 detail={"case_no": t.case_no, "destination": dest.id, "network": t.network, "vitals": vitals})
    _notify(db, t, dest.id, "新的重症转运申请")
    return t


# ----------------------------------------------------------------------------------- accept / dispatch


def accept(db: Session, subject: Subject, transfer_id: int, data: AcceptIn) -> CriticalTransfer:
    t, side = WORKFLOW.lock(db, subject, transfer_id, Status.accepted)
    fields: dict[str, str] = {}
    physician = (data.accepting_physician or "").strip() or None
    prac_id = data.accepting_practitioner_id
    if prac_id is not None:
        prac = kit.get(db, Practitioner, prac_id)
        if prac is None or prac.home_institution_id != t.destination_institution_id:
            fields["accepting_practitioner_id"] = "请选择本院的医生"
        else:
            physician = physician or prac.name
    elif physician is None:  # the accepting user themself
        prac_id = subject.practitioner_id
        own = kit.get(db, Practitioner, prac_id) if prac_id is not None else None
        physician = own.name if own is not None else subject.display_name
    if data.ward_id is not None:
        ward = kit.get(db, Ward, data.ward_id)
        if ward is None or ward.institution_id != t.destination_institution_id:
            fields["ward_id"] = "请选择本院的病区"
    if data.bed_reservation_id is not None:
        res = kit.get(db, BedReservation, data.bed_reservation_id)
        ward_of = kit.get(db, Ward, res.ward_id) if res is not None else None
        if res is None or ward_of is None or ward_of.institution_id != t.destination_institution_id \
                or res.patient_id != t.patient_id or res.status != "held":
            fields["bed_reservation_id"] = "床位预留不存在、已失效或不属于该患者"
    if fields:
        raise InvalidInput(fields=fields)
    before = {"status": t.status}
    t.accepting_practitioner_id = prac_id
    t.accepting_physician = physician
    t.ward_id = data.ward_id
    t.bed_reservation_id = data.bed_reservation_id
    t.bed_note = (data.bed_note or "").strip() or None
    WORKFLOW.move(db, subject, t, Status.accepted, side)
    policy.grant_access(db, subject, patient_id=t.patient_id, institution_id=t.destination_institution_id,
                        kind=GrantKind.referral, reason=f"重症转运 {t.case_no}", source=("transfer", t.id))
    audit.record(db, subject, "accept", "critical_transfer", t.id, patient_id=t.patient_id,
                 detail=audit.diff(before, {"status": t.status, "accepting_physician": physician,
                                            "ward_id": t.ward_id, "bed_reservation_id": t.bed_reservation_id,
                                            "bed_note": t.bed_note}))
    _notify(db, t, t.origin_institution_id, "重症转运已被接收")
    return t


def dispatch(db: Session, subject: Subject, transfer_id: int, data: DispatchIn) -> CriticalTransfer:
    t, side = WORKFLOW.lock(db, subject, transfer_id, Status.dispatched)
    t.vehicle = data.vehicle.strip()
    t.team = data.team.strip()
    WORKFLOW.move(db, subject, t, Status.dispatched, side)
    audit.record(db, subject, "dispatch", "critical_transfer", t.id, patient_id=t.patient_id,
                 detail=audit.diff({"status": Status.accepted}, {"status": t.status, "vehicle": t.vehicle,
                                                            "team": t.team}))
    _notify(db, t, _other_side(subject, t), "重症转运已派车")
    return t


# -------------------------------------------------------------------------------------- milestones


def milestones(db: Session, transfer_id: int) -> list[TransferMilestone]:
    return repository.milestones(db, transfer_id, MAIN_CHAIN + NETWORK_KINDS)


def next_main(recorded: dict[str, TransferMilestone]) -> str | None:
    for kind in MAIN_CHAIN:
        if kind not in recorded:
            return kind
    return None


def allowed_kinds(t: CriticalTransfer, recorded: dict[str, TransferMilestone]) -> list[str]:
    """What the page offers next: the next step of the chain, plus the network's markers."""
    if t.status == Status.cancelled:
        return []
    kinds: list[str] = []
    nxt = next_main(recorded)
    if nxt is not None and t.status in states.MOVING:
        kinds.append(nxt)
    if t.network in TIMED_NETWORKS:
        kinds += [k for k in NETWORK_KINDS if k not in recorded and (k not in NETWORK_AFTER
                                                                     or NETWORK_AFTER[k] in recorded)]
    return kinds


def record_milestone(db: Session, subject: Subject, transfer_id: int, data: MilestoneIn) -> TransferMilestone:
    t = get(db, subject, transfer_id, for_update=True)
    if not subject.has(*ACTING_ROLES):
        raise Forbidden()
    now = clock.now()
    # a time without a zone is wall-clock time in China (what a nurse types in)
    at = now if data.at is None else clock.as_utc(
        data.at if data.at.tzinfo is not None else data.at.replace(tzinfo=clock.SHANGHAI))
    if at > now + timedelta(minutes=1):
        raise InvalidInput(fields={"at": "时间不能晚于当前时间"})
    if t.status == Status.cancelled:
        raise Conflict("转运已取消，不能再记录节点", code=states.STATE_CONFLICT)
    recorded = {m.kind: m for m in milestones(db, t.id)}
    kind = data.kind
    if kind in recorded:
        raise Conflict("该节点已记录，不能重复记录", code="milestone_recorded")
    previous: TransferMilestone | None = None
    if kind in MAIN_CHAIN:
        if t.status not in states.MOVING:
            raise Conflict("转运尚未派车，不能记录转运节点", code=states.STATE_CONFLICT)
        expected = next_main(recorded)
        if kind != expected:
            raise Conflict("节点顺序不对：下一个应记录的是「{expected}」", code="milestone_out_of_order",
                           expected=MILESTONE_LABELS[expected or "handed_over"])
        previous = recorded[MAIN_CHAIN[MAIN_CHAIN.index(kind) - 1]]
    else:
        if t.network not in TIMED_NETWORKS:
            raise InvalidInput(fields={"kind": "该节点仅适用于胸痛或卒中网络的转运"})
        before = NETWORK_AFTER.get(kind)
        if before is not None:
            if before not in recorded:
                raise Conflict("节点顺序不对：请先记录「{expected}」", code="milestone_out_of_order",
                               expected=MILESTONE_LABELS[before])
            previous = recorded[before]
    if previous is not None and at < previous.at:
        raise InvalidInput(fields={"at": "时间不能早于上一节点"})
    m = TransferMilestone(transfer_id=t.id, kind=kind, at=at, recorded_by_user_id=subject.user_id,
                          recorded_by_institution_id=subject.acting_institution_id,
                          note=(data.note or "").strip() or None)
    db.add(m)
    before_status = t.status
    if kind == "handed_over":
        WORKFLOW.move(db, subject, t, Status.handed_over, _side(subject, t))
    elif kind in MAIN_CHAIN and t.status == Status.dispatched:
        WORKFLOW.move(db, subject, t, Status.in_progress, _side(subject, t))
    else:
        t.updated_at = now
        db.flush()
    audit.record(db, subject, "milestone", "critical_transfer", t.id, patient_id=t.patient_id,
                 detail={"kind": kind, "at": at.isoformat(), "late_entry": data.at is not None,
                         **({"status": {"from": before_status, "to": t.status}} if t.status != before_status else {})})
    _notify(db, t, _other_side(subject, t), f"重症转运进展：{MILESTONE_LABELS[kind]}")
    return m


def cancel(db: Session, subject: Subject, transfer_id: int, data: CancelIn) -> CriticalTransfer:
    t, side = WORKFLOW.lock(db, subject, transfer_id, Status.cancelled)
    reason = data.reason.strip()
    if not reason:
        raise InvalidInput(fields={"reason": "必填"})
    before = t.status
    t.cancel_reason = reason
    WORKFLOW.move(db, subject, t, Status.cancelled, side)
    policy.end_grants(db, subject, "transfer", t.id)
    audit.record(db, subject, "cancel", "critical_transfer", t.id, patient_id=t.patient_id, reason=reason,
                 detail=audit.diff({"status": before}, {"status": t.status}))
    _notify(db, t, _other_side(subject, t), "重症转运已取消")
    return t


# -------------------------------------------------------------------------------------------- lists


def list_for(db: Session, subject: Subject, *, direction: str = "all", include_closed: bool = True,
             limit: int | None = None) -> list[CriticalTransfer]:
    """Transfers of the acting institution, both directions, open ones first, newest first."""
    if not subject.is_clinical:
        return []
    stmt = repository.transfers_statement(subject.acting_institution_id, direction=direction,
                                          open_statuses=None if include_closed else OPEN, final=FINAL)
    return repository.rows(db, stmt, limit)


def list_page(db: Session, subject: Subject, lp: ListParams, *, direction: str = "all",
              include_closed: bool = True) -> Page[CriticalTransfer]:
    """One page of the transfer list under the list's filters, with its total (an export: every row)."""
    if not subject.is_clinical:
        return Page([], 0, 1, lp.per_page)
    stmt = repository.transfers_statement(subject.acting_institution_id, direction=direction,
                                          open_statuses=None if include_closed else OPEN, final=FINAL,
                                          lp=lp.only(Status))
    if lp.export:
        rows = export_rows(db, stmt)
        return Page(rows, len(rows), 1, max(len(rows), 1))
    return page(db, stmt, lp.page, lp.per_page)


def destinations(db: Session, subject: Subject) -> list[Institution]:
    inst = subject.acting_institution_id
    if inst is None:
        return []
    return [i for i in repository.other_institutions(db, inst) if share_alliance(db, inst, i.id)]




# ------------------------------------------------------------------------------------------ metrics

MILESTONE_LABELS = code_table("transfer.milestone", {
    "requested": "发起申请", "team_departed": "转运团队出发", "arrived_at_origin": "到达申请医院",
    "assessed": "完成评估", "departed_with_patient": "携患者出发", "arrived": "到达接收医院",
    "handed_over": "完成交接", "first_medical_contact": "首次医疗接触", "first_ecg": "首份心电图",
    "door": "到达救治医院（进门）", "balloon": "球囊扩张/取栓器械", "needle": "溶栓给药",
})
INDICATOR_LABELS = {"fmc_to_ecg": "首次医疗接触至首份心电图", "door_to_balloon": "进门至球囊扩张（D2B）",
                    "door_to_needle": "进门至溶栓（DNT）"}


def minutes_between(a: datetime, b: datetime) -> int:
    return int((clock.as_utc(b) - clock.as_utc(a)).total_seconds() // 60)


@dataclass(frozen=True)
class Leg:
    kind: str
    at: datetime
    minutes_since_previous: int | None  # elapsed since the previous main milestone
    minutes_since_start: int


@dataclass(frozen=True)
class Indicator:
    key: str
    minutes: int | None  # None until both ends are recorded
    target: int
    met: bool | None


@dataclass(frozen=True)
class Metrics:
    total_minutes: int | None  # requested → handed_over
    legs: list[Leg]
    indicators: list[Indicator]


def metrics(t: CriticalTransfer, rows: list[TransferMilestone]) -> Metrics:
    recorded = {m.kind: m for m in rows}
    legs: list[Leg] = []
    start = recorded.get("requested")
    prev: TransferMilestone | None = None
    for kind in MAIN_CHAIN:
        m = recorded.get(kind)
        if m is None:
            continue
        legs.append(Leg(kind, m.at, minutes_between(prev.at, m.at) if prev else None,
                        minutes_between(start.at, m.at) if start else 0))
        prev = m
    total = (minutes_between(start.at, recorded["handed_over"].at)
             if start is not None and "handed_over" in recorded else None)
    indicators: list[Indicator] = []
    if t.network in TIMED_NETWORKS:
        goal = targets()
        for key, a, b in INDICATORS:
            ma = recorded.get(a) or (recorded.get("arrived") if a == "door" else None)
            mb = recorded.get(b)
            mins = minutes_between(ma.at, mb.at) if ma and mb else None
            indicators.append(Indicator(key, mins, goal[key], None if mins is None else mins <= goal[key]))
    return Metrics(total, legs, indicators)


def duration_parts(minutes: int | None) -> tuple[int, int] | None:
    return None if minutes is None else divmod(minutes, 60)


def view(db: Session, subject: Subject, transfer_id: int) -> dict[str, Any]:
    """Everything the detail page and the API show; the read is audited."""
    t = get(db, subject, transfer_id)
    audit.record(db, subject, "read", "critical_transfer", t.id, patient_id=t.patient_id)
    rows = milestones(db, t.id)
    recorded = {m.kind: m for m in rows}
    return {"transfer": t, "milestones": rows, "metrics": metrics(t, rows), "side": _side(subject, t),
            "allowed": allowed_kinds(t, recorded)}
