"""Queries of referrals and their follow-up tasks (access rules stay in authz.policy and the service)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.referral import FollowUpTask, Referral


def up_referrals_of_patient_at(db: Session, patient_id: int, institution_id: int | None) -> list[Referral]:
    """The patient's upward referrals sent or received by the institution, newest first (to link a
    downward referral to)."""
    return list(db.scalars(select(Referral).where(
        Referral.patient_id == patient_id, Referral.direction == "up",
        (Referral.from_institution_id == institution_id) | (Referral.to_institution_id == institution_id))
        .order_by(Referral.id.desc())))


def follow_up_tasks_of(db: Session, referral_id: int) -> list[FollowUpTask]:
    """Follow-up tasks of one referral, by due date."""
    return list(db.scalars(select(FollowUpTask).where(FollowUpTask.referral_id == referral_id)
                           .order_by(FollowUpTask.due_on, FollowUpTask.id)))
