"""Queries of the master patient index: the online matcher's blocked candidates and name counts, merge
history (do-not-match, merged persons), the review queue and merge events.

The rules are not here: scoring is empi/fs.py and empi/matching.py, deciding empi/online.py, the review
and merge empi/service.py. The statements here are built once per shape (`lru_cache`) where the online
matcher runs them per registration.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.orm import Session, aliased

from yilianti.kit import clock
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Membership
from yilianti.models.empi import CandidateStatus, DoNotMatch, MatchCandidate, MergeEvent, PatientRecord
from yilianti.models.patient import Authority, Patient, PatientIdentifier

# counting stops here (an index-only range scan, bounded): enough to weigh the commonest names as the
# batch does up to ~4 M persons (王伟 is ~0.5 %); above that the rules' common-name floor takes over
NAME_COUNT_CAP = 20_000

# ------------------------------------------------------------------------------ online matching


def advisory_locks(db: Session, lock_ids: list[int]) -> None:
    """PostgreSQL: take these transaction-level advisory locks in one round trip, in the order given (the
    select list is evaluated left to right: callers sort them, so two registrations cannot deadlock)."""
    if lock_ids:
        calls = ", ".join(f"pg_advisory_xact_lock(:k{i})" for i in range(len(lock_ids)))
        db.execute(text(f"SELECT {calls}"), {f"k{i}": k for i, k in enumerate(lock_ids)})


def record_rid(db: Session, record_id: int) -> str | None:
    """A source record's resident ID in clear (decrypted): rare, when its blind index is missing."""
    return db.scalar(select(PatientRecord.rid).where(PatientRecord.id == record_id))


# what scoring reads of a candidate record: no ciphertext is decrypted (phone and ID by blind index)
CANDIDATE_COLUMNS = (PatientRecord.id, PatientRecord.patient_id, PatientRecord.name, PatientRecord.sex,
                     PatientRecord.address, PatientRecord.birth_key, PatientRecord.name_key,
                     PatientRecord.surname_key, PatientRecord.given_key, PatientRecord.phone_key,
                     PatientRecord.rid_key, PatientRecord.rid.is_not(None))


@lru_cache(maxsize=64)
def _candidates_statement(by_name: bool, by_phone: bool, by_surname: bool, by_given: bool, count_name: bool,
                          max_block: int, count_name_year: bool = False) -> Select[Any]:
    """The candidates statement for the blocking keys a registration has (built once per combination)."""
    conds: list[tuple[ColumnElement[bool], ...]] = []
    if by_name:
        conds.append((PatientRecord.name_key == bindparam("name_key"), PatientRecord.birth_year == bindparam("birth_year")))
    if by_phone:
        conds.append((PatientRecord.phone_key == bindparam("phone_key"),))
    if by_surname:
        conds.append((PatientRecord.birth_key == bindparam("birth_key"), PatientRecord.surname_key == bindparam("surname_key")))
    if by_given:
        conds.append((PatientRecord.given_key == bindparam("given_key"), PatientRecord.birth_key == bindparam("birth_key")))
    # each block newest first and bounded by max_block (an oversized block, e.g. a clinic's shared
    # phone, cannot blow up the cost), each an index range scan
    blocks = [select(PatientRecord.id).where(*cond).order_by(PatientRecord.id.desc()).limit(max_block)
              .subquery().select() for cond in conds]
    ids = union(*blocks) if len(blocks) > 1 else blocks[0]
    count: ColumnElement[int] = literal(0)
    if count_name:
        inner = (select(PatientRecord.id).where(PatientRecord.name_key == bindparam("count_key"))
                 .limit(NAME_COUNT_CAP).subquery())
        count = select(func.count()).select_from(inner).scalar_subquery()
    count_year: ColumnElement[int] = literal(0)
    if count_name_year:  # v5: the name's frequency among those born in the same year (the same index)
        inner = (select(PatientRecord.id).where(PatientRecord.name_key == bindparam("count_key"),
                                                PatientRecord.birth_year == bindparam("count_year"))
                 .limit(NAME_COUNT_CAP).subquery())
        count_year = select(func.count()).select_from(inner).scalar_subquery()
    population = select(func.max(PatientRecord.id)).scalar_subquery()
    return select(*CANDIDATE_COLUMNS, count, count_year, population).where(  # type: ignore[return-value]
        PatientRecord.id.in_(ids))


def blocked_candidates(db: Session, blocks: tuple[bool, bool, bool, bool], count_name: bool, max_block: int,
                       count_name_year: bool, params: dict[str, Any]) -> list[Any]:
    """Rows of `CANDIDATE_COLUMNS` plus (name count, name-and-year count, max id) of the records in the
    blocks asked for (by name and birth year, phone, surname and birth date, given name and birth date)."""
    return list(db.execute(_candidates_statement(*blocks, count_name, max_block, count_name_year), params))


def every_candidate_row(db: Session) -> list[Any]:
    """`CANDIDATE_COLUMNS` of every source record (training reads the whole index)."""
    return list(db.execute(select(*CANDIDATE_COLUMNS)))


def name_count(db: Session, name_key: str) -> tuple[int, int]:
    """(records with this name key, capped at NAME_COUNT_CAP; the largest record id) in one statement."""
    inner = select(PatientRecord.id).where(PatientRecord.name_key == name_key).limit(NAME_COUNT_CAP).subquery()
    row = db.execute(select(select(func.count()).select_from(inner).scalar_subquery(),
                            select(func.max(PatientRecord.id)).scalar_subquery())).one()
    return row[0] or 0, row[1] or 0


def merged_into(db: Session, patient_ids: Iterable[int]) -> set[int]:
    """The given persons plus every person merged into them (merges not undone), transitively."""
    found = set(patient_ids)
    frontier = set(found)
    while frontier:
        more = set(db.scalars(select(MergeEvent.merged_id).where(
            MergeEvent.kind == "merge", MergeEvent.undone_at.is_(None), MergeEvent.survivor_id.in_(frontier))))
        frontier = more - found
        found |= more
    return found


@lru_cache(maxsize=1)
def _do_not_match_statement() -> Select[Any]:
    """One statement: each side's person plus everyone merged into them (merges not undone,
    transitively: a recursive CTE, as `merged_into` walks it), then a do-not-match row between the sides."""
    def merged(name: str, start: str) -> Any:
        cte = select(bindparam(start, type_=BigInteger).label("id")).cte(name, recursive=True)
        return cte.union(select(MergeEvent.merged_id).where(
            MergeEvent.kind == "merge", MergeEvent.undone_at.is_(None), MergeEvent.survivor_id == cte.c.id))

    sa, sb = merged("side_a", "a"), merged("side_b", "b")
    ids_a, ids_b = select(sa.c.id), select(sb.c.id)
    return select(DoNotMatch.id).where(or_(
        DoNotMatch.patient_a_id.in_(ids_a) & DoNotMatch.patient_b_id.in_(ids_b),
        DoNotMatch.patient_a_id.in_(ids_b) & DoNotMatch.patient_b_id.in_(ids_a))).limit(1)


def do_not_match(db: Session, a: int, b: int) -> bool:
    """Whether persons a and b (or anyone merged into them) were declared different."""
    return db.scalar(_do_not_match_statement(), {"a": a, "b": b}) is not None


# ------------------------------------------------------------------------------ source records


def record_at(db: Session, institution_id: int, patient_id: int) -> PatientRecord | None:
    """The member's source record of the person (one per institution and person)."""
    return db.scalar(select(PatientRecord).where(PatientRecord.institution_id == institution_id,
                                                 PatientRecord.patient_id == patient_id).limit(1))


def first_record_of(db: Session, patient_id: int) -> PatientRecord | None:
    """One source record of a person (the oldest): the other side of a review pair raised by an identifier."""
    return db.scalar(select(PatientRecord).where(PatientRecord.patient_id == patient_id)
                     .order_by(PatientRecord.id).limit(1))


def candidate_between(db: Session, record_id: int, other_record_id: int) -> int | None:
    """The id of a review candidate pairing the two records (either way round), if there is one."""
    return db.scalar(select(MatchCandidate.id).where(
        or_(and_(MatchCandidate.record_id == record_id, MatchCandidate.other_record_id == other_record_id),
            and_(MatchCandidate.record_id == other_record_id, MatchCandidate.other_record_id == record_id))))


def records_with_ids(db: Session, ids: set[int]) -> dict[int, PatientRecord]:
    return {r.id: r for r in db.scalars(select(PatientRecord).where(PatientRecord.id.in_(ids)))} if ids else {}


def members_of_alliances(db: Session, alliance_ids: Iterable[int]) -> set[int]:
    """Institution ids of every membership (any period) of these alliances."""
    return set(db.scalars(select(Membership.institution_id).where(Membership.alliance_id.in_(list(alliance_ids)))))


# ------------------------------------------------------------------------------ the review queue


def in_scope(insts: set[int] | None) -> Any:
    """A candidate one of whose records was registered at one of these institutions (None: any)."""
    if insts is None:
        return and_(True)
    a, b = aliased(PatientRecord), aliased(PatientRecord)
    return or_(exists().where(a.id == MatchCandidate.record_id, a.institution_id.in_(insts)),
               exists().where(b.id == MatchCandidate.other_record_id, b.institution_id.in_(insts)))


def queue_statement(insts: set[int] | None, status: str, institution_id: int | None = None,
                    low: float | None = None, high: float | None = None, lp: ListParams | None = None) -> Select[Any]:
    """The review queue in the order an identity team works it: the likeliest match first (then oldest);
    `low` ≤ score < `high` when given; `lp` adds a part of a name on either record and the days found."""
    stmt = select(MatchCandidate).where(in_scope(insts))
    if lp is not None and lp.q:
        rec = aliased(PatientRecord)
        stmt = stmt.where(exists().where(rec.id.in_((MatchCandidate.record_id, MatchCandidate.other_record_id)),
                                         rec.name.contains(lp.q, autoescape=True)))
    if lp is not None:
        stmt = lp.apply(stmt, day=MatchCandidate.created_at)
    if status != "all":
        stmt = stmt.where(MatchCandidate.status == status)
    if institution_id is not None:
        stmt = stmt.where(in_scope({institution_id}))
    if low is not None:
        stmt = stmt.where(MatchCandidate.score >= low)
    if high is not None:
        stmt = stmt.where(MatchCandidate.score < high)
    return stmt.order_by(MatchCandidate.score.desc(), MatchCandidate.id)


def queue_rows(db: Session, stmt: Select[Any], limit: int, offset: int = 0) -> list[MatchCandidate]:
    return list(db.scalars(stmt.limit(limit).offset(offset)))


def open_after(db: Session, stmt: Select[Any], after: MatchCandidate) -> MatchCandidate | None:
    """The first candidate of the queue `stmt` after `after` in its order, else its first (never `after`)."""
    stmt = stmt.where(MatchCandidate.id != after.id)
    later = db.scalar(stmt.where(or_(MatchCandidate.score < after.score, and_(
        MatchCandidate.score == after.score, MatchCandidate.id > after.id))).limit(1))
    return later if later is not None else db.scalar(stmt.limit(1))


def open_by_member(db: Session, insts: set[int] | None) -> dict[int, int]:
    """Open pairs per member institution (of these, or all): a pair counts for both its records' members,
    once for a pair within one member."""
    rec = aliased(PatientRecord)
    stmt = (select(rec.institution_id, func.count(distinct(MatchCandidate.id)))
            .join(rec, or_(rec.id == MatchCandidate.record_id, rec.id == MatchCandidate.other_record_id))
            .where(MatchCandidate.status == CandidateStatus.open, in_scope(insts))
            .group_by(rec.institution_id))
    if insts is not None:
        stmt = stmt.where(rec.institution_id.in_(insts))
    return {i: int(n) for i, n in db.execute(stmt)}


def candidate_in_scope(db: Session, candidate_id: int, insts: set[int] | None) -> MatchCandidate | None:
    return db.scalar(select(MatchCandidate).where(MatchCandidate.id == candidate_id, in_scope(insts)))


def lock_candidate(db: Session, candidate_id: int) -> MatchCandidate | None:
    return db.scalar(select(MatchCandidate).where(MatchCandidate.id == candidate_id).with_for_update())


def count_open(db: Session, insts: set[int] | None) -> int:
    return db.scalar(select(func.count()).select_from(MatchCandidate).where(
        MatchCandidate.status == CandidateStatus.open, in_scope(insts))) or 0


def do_not_match_pair(db: Session, a: int, b: int) -> DoNotMatch | None:
    """The do-not-match row of persons a < b."""
    return db.scalar(select(DoNotMatch).where(DoNotMatch.patient_a_id == a, DoNotMatch.patient_b_id == b))


def supersede_same_person(db: Session) -> None:
    """Open candidates whose two records now belong to one person need no decision."""
    a, b = aliased(PatientRecord), aliased(PatientRecord)
    same = select(MatchCandidate.id).join(a, a.id == MatchCandidate.record_id).join(
        b, b.id == MatchCandidate.other_record_id).where(
        MatchCandidate.status == CandidateStatus.open, a.patient_id == b.patient_id)
    ids = list(db.scalars(same))
    if ids:
        db.execute(update(MatchCandidate).where(MatchCandidate.id.in_(ids))
                   .values(status=CandidateStatus.superseded, decided_at=clock.now()))


# ------------------------------------------------------------------------------ merge and unmerge


def resident_ids(db: Session, patient_id: int) -> set[str]:
    return set(db.scalars(select(PatientIdentifier.value).where(
        PatientIdentifier.patient_id == patient_id, PatientIdentifier.authority == Authority.resident_id)))


def lock_patients(db: Session, ids: Iterable[int]) -> dict[int, Patient]:
    """Lock the persons in id order (PostgreSQL), so two merges of the same pair cannot interleave."""
    return {p.id: p for p in db.scalars(select(Patient).where(Patient.id.in_(sorted(ids)))
                                        .order_by(Patient.id).with_for_update())}


def move_references(db: Session, table: Table, col: Column[Any], pk: Column[Any], from_id: int, to_id: int,
                    among: list[Any] | None = None) -> list[Any]:
    """Point the rows of `table` whose `col` is `from_id` (of the keys `among`, when given) at `to_id`;
    their primary keys."""
    q = select(pk).where(col == from_id)
    if among is not None:
        q = q.where(pk.in_(among))
    ids = list(db.scalars(q))
    if ids:
        db.execute(update(table).where(pk.in_(ids)).values({col.name: to_id}))
    return ids


def lock_merge_event(db: Session, event_id: int) -> MergeEvent | None:
    return db.scalar(select(MergeEvent).where(MergeEvent.id == event_id).with_for_update())


def later_merge_of(db: Session, event: MergeEvent) -> int | None:
    """A merge after `event`, not undone, that merged its survivor into someone else."""
    return db.scalar(select(MergeEvent.id).where(
        MergeEvent.kind == "merge", MergeEvent.undone_at.is_(None), MergeEvent.id > event.id,
        MergeEvent.merged_id == event.survivor_id).limit(1))


def touches_institutions(db: Session, patient_ids: Iterable[int], insts: set[int]) -> bool:
    """Whether one of the persons has a source record at one of the institutions."""
    return db.scalar(select(PatientRecord.id).where(
        PatientRecord.patient_id.in_(tuple(patient_ids)), PatientRecord.institution_id.in_(insts)).limit(1)) is not None


def merge_events(db: Session, insts: set[int] | None, limit: int = 50) -> list[tuple[MergeEvent, str, str]]:
    """Merge events newest first (those touching a record at these institutions, or all) with the survivor's
    and the merged person's names."""
    stmt = select(MergeEvent, Patient.name).join(Patient, Patient.id == MergeEvent.survivor_id)
    if insts is not None:
        stmt = stmt.where(exists().where(
            PatientRecord.patient_id.in_((MergeEvent.survivor_id, MergeEvent.merged_id)),
            PatientRecord.institution_id.in_(insts)))
    rows = [(e, n) for e, n in db.execute(stmt.order_by(MergeEvent.id.desc()).limit(limit))]
    merged_names: dict[int, str] = {i: n for i, n in db.execute(select(Patient.id, Patient.name).where(
        Patient.id.in_({e.merged_id for e, _ in rows})))} if rows else {}
    return [(e, n, merged_names.get(e.merged_id, "")) for e, n in rows]
