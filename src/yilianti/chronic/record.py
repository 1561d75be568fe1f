"""Chronic care plans in the shared record (record/sources.py registry): each registry enrolment of the patient,
with its condition (ICD-10), status and next follow-up, is an entry of the managing institution.

Read rule (DOMAIN.md §4b, nothing new): the plan is the own data of the managing institution, of its team's
institution and of the institutions of the family-doctor teams the patient has a contract in force with
(`chronic.repository.plan_rows`); any other member reads it as the shared record (`policy.entry_visible`:
sharing consent with a care relationship or a grant including the shared record, or break-glass), audited with
the record's read. The record's fast path builds its entries with `plan_entry` from the same statement.
The entry's link opens the registry page, which only the managing institution's staff open
(`registry.require_registration`): a family-doctor team at another institution reads the entry without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy.orm import Session

from yilianti.chronic import repository
from yilianti.chronic.registry import STATUSES
from yilianti.chronic.service import CONDITIONS
from yilianti.kit import clock
from yilianti.record.sources import Entry, ids_of, source

KIND = "chronic_plan"


def plan_entry(reg_id: int, at: datetime, institution_id: int, team_institution_id: int | None, condition: str,
               icd10: str, status: str, next_due: date | str | None, family_doctors: Iterable[int]) -> Entry:
    """One registration as the record's entry (the reference source and the fast path both build it here)."""
    due = next_due.isoformat() if isinstance(next_due, date) else next_due
    return Entry(KIND, at, institution_id, ids_of(institution_id, team_institution_id, *family_doctors),
                 f"{CONDITIONS.get(condition, condition)}（{icd10}）", detail=f"下次随访 {due}" if due else "",
                 status=STATUSES.get(status, status), ref=f"chronic_registration:{reg_id}",
                 link=f"/chronic/registrations/{reg_id}",
                 link_institutions=frozenset({institution_id}))  # the registry page: registry.require_registration


@source(KIND, "慢病管理计划")
def chronic_plans(db: Session, patient_id: int, limit: int) -> list[Entry]:
    rows, family_doctors = repository.plans_of_patient(db, patient_id, clock.today_local(), limit)
    return [plan_entry(rid, at, inst, team_inst, condition, icd10, status, due, family_doctors)
            for rid, at, inst, team_inst, condition, icd10, status, due in rows]
