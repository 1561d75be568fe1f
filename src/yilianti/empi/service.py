"""EMPI service: source records, the review queue, do-not-match, merge and unmerge (DOMAIN.md §5b).

- `save_record` / `queue_candidates` are called by the registration path (patients/service.py).
- Stewards (system, alliance and institution administrators) see the candidates that involve
  a record registered at an institution they administer; confirming merges the two persons,
  rejecting adds a do-not-match pair that later registrations and merges respect.
- Merge moves every row that points at the merged person — found from the metadata, every
  foreign key to `patient.id` — to the survivor, and records which rows moved (per
  table.column) in the `MergeEvent`; unmerge moves exactly those rows back and reactivates
  the merged person. Rows created on the survivor after the merge stay with the survivor.
  Both are audited for both persons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Select, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.empi import online
from yilianti.empi import repository as repo
from yilianti.empi.matching import Rules
from yilianti.empi.normalise import name as norm_name
from yilianti.empi.normalise import name_pinyin
from yilianti.exceptions import AppError, Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock, listing
from yilianti.kit import repository as kit
from yilianti.kit.crypto import Encrypted, blind_index
from yilianti.kit.listing import ListParams
from yilianti.models.base import Base
from yilianti.models.empi import CandidateStatus, DoNotMatch, MatchCandidate, MergeEvent, PatientRecord
from yilianti.models.patient import Patient

STEWARD_ROLES = ("system_admin", "alliance_admin", "institution_admin")
# bookkeeping that must not follow a merge: the do-not-match list is resolved through merge events
NOT_MOVED = frozenset({"do_not_match"})


# ------------------------------------------------------------------------------ registration


def demographics_of(data: Any) -> online.Demographics:
    """A RegistrationIn (or anything with the same fields) → the values the matcher compares."""
    return online.Demographics(
        name=data.name, sex=data.sex if data.sex in ("男", "女") else None, birth_date=data.birth_date,
        phone=data.phone or data.guardian_phone, address=data.address, rid=data.resident_id)


def same_name(a: str, b: str) -> bool:
    """With the same resident ID, a typo or homophone is the same person; a clearly different name is not."""
    na, nb = norm_name(a), norm_name(b)
    if na == nb:
        return True
    (sa, ga), (sb, gb) = name_pinyin(na), name_pinyin(nb)
    return sa == sb or (ga == gb and bool(ga))


def save_record(db: Session, patient_id: int, institution_id: int, demo: online.Demographics, method: str,
                score: float | None, rules: Rules | None = None) -> PatientRecord:
    """This member's registration of the person; one per (institution, person), refreshed on re-registration."""
    rules = rules or online.RULES  # the rules that decided (online.decide's default)
    k = online.keys(demo.normalised())
    rec = None
    if method != "new":  # a brand-new person has no record anywhere yet
        rec = repo.record_at(db, institution_id, patient_id)
    if rec is None:
        rec = PatientRecord(patient_id=patient_id, institution_id=institution_id, link_method=method,
                            link_score=score, rules_version=rules.version)
        db.add(rec)
    rec.name, rec.sex, rec.birth_date = demo.name, demo.sex, demo.birth_date
    rec.phone, rec.address, rec.rid = demo.phone, demo.address, k.rid
    rec.name_key, rec.surname_key, rec.given_key = k.name_key, k.surname_key, k.given_key
    rec.birth_key, rec.birth_year, rec.phone_key = k.birth_key, k.birth_year, k.phone_key
    rec.rid_key = blind_index("id", k.rid) if k.rid else None
    rec.updated_at = clock.now()
    db.flush()
    return rec


def queue_candidates(db: Session, rec: PatientRecord, scored: list[online.Scored]) -> int:
    queued = 0
    for c in scored:
        if c.patient_id == rec.patient_id or repo.do_not_match(db, rec.patient_id, c.patient_id):
            continue
        if repo.candidate_between(db, rec.id, c.record_id) is not None:
            continue
        db.add(MatchCandidate(record_id=rec.id, other_record_id=c.record_id, score=round(c.score, 2),
                              explanation=c.explanation, rules_version=rec.rules_version,
                              status=CandidateStatus.open))
        queued += 1
    if queued:
        db.flush()
    return queued


# ------------------------------------------------------------------------------ steward scope


def require_steward(subject: Subject) -> None:
    if not subject.has(*STEWARD_ROLES):
        raise Forbidden("只有机构或医联体管理员可以处理患者身份核对")


def steward_institutions(db: Session, subject: Subject) -> set[int] | None:
    """Institutions whose records the subject may review; None = all (system administrator)."""
    require_steward(subject)
    if subject.is_system_admin:
        return None
    out: set[int] = set()
    if subject.has("institution_admin") and subject.acting_institution_id is not None:
        out.add(subject.acting_institution_id)
    if subject.alliance_admin_of:
        out |= repo.members_of_alliances(db, subject.alliance_admin_of)
    return out


@dataclass
class CandidateView:
    candidate: MatchCandidate
    record: PatientRecord
    other: PatientRecord
    institution: str
    other_institution: str


def _views(db: Session, rows: list[MatchCandidate]) -> list[CandidateView]:
    ids = {r.record_id for r in rows} | {r.other_record_id for r in rows}
    recs = repo.records_with_ids(db, ids)
    names = institution_names(db, {r.institution_id for r in recs.values()})
    return [CandidateView(c, recs[c.record_id], recs[c.other_record_id], names.get(recs[c.record_id].institution_id, ""),
                          names.get(recs[c.other_record_id].institution_id, "")) for c in rows]


# probability bands of the review queue's filter: key → [low, high) as match probabilities (rules v5: the
# score is the pair's match weight, log2 odds, so a band is a range of scores)
BANDS: dict[str, tuple[float | None, float | None]] = {
    "95": (0.95, None), "80": (0.80, 0.95), "50": (0.50, 0.80), "low": (None, 0.50)}


def _odds(p: float) -> float:
    return math.log2(p / (1 - p))


def _queue_stmt(insts: set[int] | None, status: str, institution_id: int | None = None,
                band: str | None = None, lp: ListParams | None = None) -> Select[Any]:
    """The review queue in the order an identity team works it: the likeliest match first (then oldest)."""
    low, high = BANDS.get(band or "", (None, None))
    return repo.queue_statement(insts, status, institution_id, None if low is None else _odds(low),
                                None if high is None else _odds(high), lp=lp)


def candidates(db: Session, subject: Subject, status: str = "open", limit: int = 50,
               offset: int = 0) -> list[CandidateView]:
    insts = steward_institutions(db, subject)
    rows = repo.queue_rows(db, _queue_stmt(insts, status), limit, offset)
    views = _views(db, rows)
    audit.record(db, subject, "search", "match_candidate", None,
                 detail={"status": status, "results": [v.candidate.id for v in views]})
    return views


def queue(db: Session, subject: Subject, status: str = "open", *, institution_id: int | None = None,
          band: str | None = None, page: int = 1, per_page: int = 25,
          lp: ListParams | None = None) -> kit.Page[CandidateView]:
    """One page of the review queue (likeliest first), filtered by member institution and probability band;
    with `lp`, also by a name on either record and the days the pair was found, paged (or exported) by it."""
    stmt = _queue_stmt(steward_institutions(db, subject), status, institution_id, band, lp)
    result = listing.page_or_export(db, stmt, lp) if lp is not None else kit.page(db, stmt, page, per_page)
    views = _views(db, result.items)
    audit.record(db, subject, "export" if lp is not None and lp.export else "search", "match_candidate", None,
                 detail={"status": status, "results": [v.candidate.id for v in views]})
    return kit.Page(views, result.total, result.page, result.per_page, result.more)


def queue_count(db: Session, subject: Subject, status: str = "open") -> int:
    """How many pairs the review queue holds for the subject (its list's total; not audited: no rows read)."""
    return kit.count(db, _queue_stmt(steward_institutions(db, subject), status))


def next_open(db: Session, subject: Subject, after: MatchCandidate, *, institution_id: int | None = None,
              band: str | None = None) -> int | None:
    """The open pair after `after` in the queue's order (wrapping round to the first), None when none is left."""
    hit = repo.open_after(db, _queue_stmt(steward_institutions(db, subject), "open", institution_id, band), after)
    return hit.id if hit is not None else None


def waiting_by_member(db: Session, subject: Subject) -> list[tuple[int, str, int]]:
    """(institution id, name, open pairs) per member the subject stewards: a pair counts for both its records'
    members (once for a pair within one member), most waiting first."""
    counts = repo.open_by_member(db, steward_institutions(db, subject))
    names = institution_names(db, counts)
    return sorted(((i, names.get(i, ""), n) for i, n in counts.items()), key=lambda t: (-t[2], t[1]))


def get_candidate(db: Session, subject: Subject, candidate_id: int, *, audit_read: bool = True) -> CandidateView:
    insts = steward_institutions(db, subject)
    cand = repo.candidate_in_scope(db, candidate_id, insts)
    if cand is None:
        raise NotFound()
    view = _views(db, [cand])[0]
    if audit_read:
        for rec in (view.record, view.other):
            audit.record(db, subject, "read", "match_candidate", cand.id, patient_id=rec.patient_id,
                         basis="steward")
    return view


# ------------------------------------------------------------------------------ decisions


def _decide(db: Session, subject: Subject, candidate_id: int, note: str | None) -> CandidateView:
    view = get_candidate(db, subject, candidate_id, audit_read=False)
    cand = repo.lock_candidate(db, candidate_id)
    assert cand is not None
    if cand.status != CandidateStatus.open:
        raise Conflict("该候选已处理")
    cand.decided_by_user_id, cand.decided_at = subject.user_id, clock.now()
    cand.decision_note = (note or "").strip() or None
    return view


def reject(db: Session, subject: Subject, candidate_id: int, note: str | None = None) -> DoNotMatch | None:
    """Different persons: the candidate closes and the two persons become a do-not-match pair."""
    view = _decide(db, subject, candidate_id, note)
    view.candidate.status = CandidateStatus.rejected
    a, b = sorted((view.record.patient_id, view.other.patient_id))
    dnm = None
    if a != b:
        dnm = repo.do_not_match_pair(db, a, b)
        if dnm is None:
            dnm = DoNotMatch(patient_a_id=a, patient_b_id=b, candidate_id=candidate_id, reason=note,
                             created_by_user_id=subject.user_id)
            db.add(dnm)
    db.flush()
    for pid in {a, b}:
        audit.record(db, subject, "empi_reject", "match_candidate", candidate_id, patient_id=pid,
                     basis="steward", reason=note, detail={"persons": [a, b], "score": view.candidate.score})
    return dnm


def confirm(db: Session, subject: Subject, candidate_id: int, note: str | None = None) -> MergeEvent | None:
    """Same person: the newer record's person is merged into the existing one (None if already one)."""
    view = _decide(db, subject, candidate_id, note)
    view.candidate.status = CandidateStatus.confirmed
    survivor, merged = view.other.patient_id, view.record.patient_id
    if survivor == merged:
        db.flush()
        return None
    event = merge(db, subject, survivor, merged, reason=note or "review queue", candidate_id=candidate_id)
    view.candidate.merge_event_id = event.id
    return event


def decide_many(db: Session, subject: Subject, candidate_ids: list[int], action: str,
                note: str | None = None) -> dict[int, str | None]:
    """Bulk decisions for the obvious: each pair through `confirm` / `reject` (each audited as a single
    decision), all-or-nothing per pair in a savepoint of its own; {candidate id: None, or why it failed}."""
    require_steward(subject)
    if action not in ("confirmed", "rejected"):
        raise InvalidInput(fields={"action": "未知的操作"})
    decide = confirm if action == "confirmed" else reject
    out: dict[int, str | None] = {}
    for cid in dict.fromkeys(candidate_ids):
        try:
            with db.begin_nested():
                decide(db, subject, cid, note)
            out[cid] = None
        except AppError as exc:
            out[cid] = "未找到该候选或无权处理" if isinstance(exc, NotFound) else next(iter(exc.fields.values()),
                                                                                   exc.message)
    return out


# ------------------------------------------------------------------------------ merge / unmerge


def patient_references() -> list[tuple[Table, Column[Any], Column[Any]]]:
    """(table, column, primary key) of every foreign key to patient.id in the metadata."""
    out = []
    patient_id = Patient.__table__.c.id
    for table in Base.metadata.sorted_tables:
        if table.name in NOT_MOVED:
            continue
        for fk in table.foreign_keys:
            if fk.column is patient_id:
                pk = list(table.primary_key.columns)
                if len(pk) != 1:
                    raise RuntimeError(f"{table.name}: a patient reference needs a one-column primary key")
                out.append((table, fk.parent, pk[0]))
    return sorted(out, key=lambda t: (t[0].name, t[1].name))


def _snapshot(p: Patient) -> dict[str, Any]:
    """The merged person's row, without the encrypted fields (never copied out in clear)."""
    return {c.key: audit.plain(getattr(p, c.key)) for c in Patient.__table__.columns
            if not isinstance(c.type, Encrypted) and not c.key.endswith("_bidx")}


def merge(db: Session, subject: Subject, survivor_id: int, merged_id: int, *, reason: str,
          candidate_id: int | None = None) -> MergeEvent:
    require_steward(subject)
    if survivor_id == merged_id:
        raise InvalidInput(fields={"merged_id": "不能与自身合并"})
    people = repo.lock_patients(db, (survivor_id, merged_id))
    survivor, merged = people.get(survivor_id), people.get(merged_id)
    if survivor is None or merged is None:
        raise NotFound()
    if not survivor.active or not merged.active:
        raise Conflict("其中一位患者已被合并")
    if repo.do_not_match(db, survivor_id, merged_id):
        raise Conflict("两位患者已被标记为不同的人，不能合并")
    ra, rb = repo.resident_ids(db, survivor_id), repo.resident_ids(db, merged_id)
    if ra and rb and ra != rb:
        raise Conflict("两位患者的身份证号不同，不能合并")
    snapshot = _snapshot(merged)
    moved: dict[str, list[Any]] = {}
    try:
        with db.begin_nested():
            for table, col, pk in patient_references():
                ids = repo.move_references(db, table, col, pk, merged_id, survivor_id)
                if ids:
                    moved[f"{table.name}.{col.name}"] = ids
    except IntegrityError as exc:
        raise Conflict("两位患者有冲突的记录（例如同一门诊的两个预约），请先处理") from exc
    db.expire_all()
    merged = kit.get(db, Patient, merged_id)
    assert merged is not None
    merged.active = False
    event = MergeEvent(kind="merge", survivor_id=survivor_id, merged_id=merged_id, moved=moved,
                       snapshot=snapshot, reason=reason, by_user_id=subject.user_id, candidate_id=candidate_id,
                       at=clock.now())
    db.add(event)
    db.flush()
    repo.supersede_same_person(db)
    counts = {k: len(v) for k, v in moved.items()}
    for pid in (survivor_id, merged_id):
        audit.record(db, subject, "empi_merge", "patient", pid, patient_id=pid, basis="steward", reason=reason,
                     detail={"merge_event_id": event.id, "survivor_id": survivor_id, "merged_id": merged_id,
                             "moved": counts})
    return event


def unmerge(db: Session, subject: Subject, event_id: int, reason: str) -> MergeEvent:
    """Move back exactly the rows the merge moved; the merged person is active again."""
    require_steward(subject)
    if not reason or len(reason.strip()) < 2:
        raise InvalidInput(fields={"reason": "请写明撤销合并的理由"})
    event = repo.lock_merge_event(db, event_id)
    if event is None or event.kind != "merge":
        raise NotFound()
    _require_event_scope(db, subject, event)
    if event.undone_at is not None:
        raise Conflict("该合并已撤销")
    if repo.later_merge_of(db, event) is not None:
        raise Conflict("存活患者之后又被合并，请先撤销后来的合并")
    tables = {f"{t.name}.{c.name}": (t, c, pk) for t, c, pk in patient_references()}
    back: dict[str, list[Any]] = {}
    try:
        with db.begin_nested():
            for key, ids in event.moved.items():
                if key not in tables:
                    continue
                table, col, pk = tables[key]
                still = repo.move_references(db, table, col, pk, event.survivor_id, event.merged_id, among=ids)
                if still:
                    back[key] = still
    except IntegrityError as exc:
        raise Conflict("撤销合并时记录冲突，请联系管理员") from exc
    db.expire_all()
    merged = kit.get(db, Patient, event.merged_id)
    assert merged is not None
    merged.active = bool(event.snapshot.get("active", True))
    event = kit.get(db, MergeEvent, event_id)  # type: ignore[assignment]
    assert event is not None
    now = clock.now()
    event.undone_at = now
    undo = MergeEvent(kind="unmerge", survivor_id=event.survivor_id, merged_id=event.merged_id,
                      reverses_id=event.id, moved=back, snapshot={}, reason=reason.strip(),
                      by_user_id=subject.user_id, at=now)
    db.add(undo)
    db.flush()
    for pid in (event.survivor_id, event.merged_id):
        audit.record(db, subject, "empi_unmerge", "patient", pid, patient_id=pid, basis="steward",
                     reason=reason.strip(), detail={"merge_event_id": event.id, "unmerge_event_id": undo.id,
                                                    "moved_back": {k: len(v) for k, v in back.items()}})
    return undo


def _require_event_scope(db: Session, subject: Subject, event: MergeEvent) -> None:
    insts = steward_institutions(db, subject)
    if insts is None:
        return
    if not repo.touches_institutions(db, (event.survivor_id, event.merged_id), insts):
        raise NotFound()


def merges(db: Session, subject: Subject, limit: int = 50) -> list[tuple[MergeEvent, str, str]]:
    return repo.merge_events(db, steward_institutions(db, subject), limit)


def count_open(db: Session, subject: Subject) -> int:
    return repo.count_open(db, steward_institutions(db, subject))
