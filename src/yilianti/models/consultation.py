"""Teleconsultation (远程会诊), cloud outpatient (云门诊) and joint wards (联合病房), DOMAIN.md §7.

A `Consultation` is asked by a member institution's doctor about one patient and answered
by one expert (e-consult) or several (MDT) of the consulted institution. Status changes
only through `yilianti.consultation.service.transition`, which writes an append-only
`ConsultationHistory` row per step. Consultants get temporary, audited access grants
(`AccessGrant` kind consultation, source ("consultation", id)) that end with the case.

A `JointWard` is a ward at a community or township centre co-managed by a lead-hospital
team: both teams see the shared admissions list and write rounds records.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class ConsultationKind(StrEnum):
    econsult = "econsult"  # single-specialist e-consult (单专家会诊)
    mdt = "mdt"  # multi-disciplinary session (多学科会诊) with a scheduled time
    cloud = "cloud"  # cloud outpatient (云门诊): patient present, lead-hospital exams ordered


class Urgency(StrEnum):
    routine = "routine"
    urgent = "urgent"
    emergency = "emergency"


class Outcome(StrEnum):
    advice = "advice"  # 给出诊疗建议
    more_info = "more_info"  # 需补充资料
    recommend_referral = "recommend_referral"  # 建议转诊


class Consultation(IdMixin, CreatedMixin, Base):
    __tablename__ = "consultation"
    __table_args__ = (
        Index("ix_consultation_requesting", "requesting_institution_id", "status"),
        Index("ix_consultation_consulted", "consulted_institution_id", "status"),
        Index("ix_consultation_due", "due_at"),
        Index("ix_consultation_patient", "patient_id"),
    )

    case_no: Mapped[str | None] = mapped_column(String(32), unique=True)  # HZ20261123-00001
    kind: Mapped[str] = mapped_column(String(16), default=ConsultationKind.econsult)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    requesting_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    requesting_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    requesting_practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    consulted_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))  # the pool
    specialty: Mapped[str | None] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    clinical_summary: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(16), default=Urgency.routine)
    consent_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_note: Mapped[str | None] = mapped_column(String(200))
    scheduled_at: Mapped[datetime | None] = mapped_column()  # MDT session time
    video_url: Mapped[str | None] = mapped_column(String(500))  # explicit link; else from the template setting
    status: Mapped[str] = mapped_column(String(24), default="requested")
    due_at: Mapped[datetime | None] = mapped_column()  # deadline of the current step
    answer_due_at: Mapped[datetime | None] = mapped_column()  # the answer deadline by urgency
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    first_answered_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(24))  # of the latest signed opinion
    referral_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("referral.id"))  # converted to
    # close-out by the requesting doctor (who keeps the decision)
    closed_at: Mapped[datetime | None] = mapped_column()
    closed_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    rating: Mapped[int | None] = mapped_column(SmallInteger)  # 1–5
    action_taken: Mapped[str | None] = mapped_column(Text)
    avoided_referral: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class ParticipantRole(StrEnum):
    expert = "expert"  # the answering expert of an e-consult
    lead = "lead"  # MDT lead expert
    member = "member"  # MDT member


class ConsultationParticipant(IdMixin, CreatedMixin, Base):
    __tablename__ = "consultation_participant"
    __table_args__ = (UniqueConstraint("consultation_id", "practitioner_id"),)

    consultation_id: Mapped[int] = mapped_column(BigId, ForeignKey("consultation.id"), index=True)
    practitioner_id: Mapped[int] = mapped_column(BigId, ForeignKey("practitioner.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    role: Mapped[str] = mapped_column(String(16), default=ParticipantRole.expert)
    assigned_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    removed_at: Mapped[datetime | None] = mapped_column()


class ConsultationMessage(IdMixin, Base):
    __tablename__ = "consultation_message"
    __table_args__ = (Index("ix_consultation_message_case", "consultation_id", "at"),)

    consultation_id: Mapped[int] = mapped_column(BigId, ForeignKey("consultation.id"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    body: Mapped[str] = mapped_column(Text)


class ConsultationOpinion(IdMixin, CreatedMixin, Base):
    """A signed expert opinion: never edited; a new one supersedes it (e.g. after more info)."""

    __tablename__ = "consultation_opinion"
    __table_args__ = (Index("ix_consultation_opinion_case", "consultation_id", "signed_at"),)

    consultation_id: Mapped[int] = mapped_column(BigId, ForeignKey("consultation.id"))
    practitioner_id: Mapped[int] = mapped_column(BigId, ForeignKey("practitioner.id"))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    outcome: Mapped[str] = mapped_column(String(24))
    text: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column()
    signature: Mapped[str] = mapped_column(String(128))  # SHA-256 over case, signer, time, outcome, text


class ConsultationHistory(IdMixin, Base):
    """One row per step: who, when, from, to, why. Append-only."""

    __tablename__ = "consultation_history"
    __table_args__ = (Index("ix_consultation_history_case", "consultation_id", "at"),)

    consultation_id: Mapped[int] = mapped_column(BigId, ForeignKey("consultation.id"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    acting_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)


class ConsultationOrder(IdMixin, CreatedMixin, Base):
    """A diagnostic order of the same patient linked to a case: an attached result / image / ECG,
    or an examination ordered at the consulted centre (cloud outpatient)."""

    __tablename__ = "consultation_order"
    __table_args__ = (UniqueConstraint("consultation_id", "order_id"),)

    consultation_id: Mapped[int] = mapped_column(BigId, ForeignKey("consultation.id"), index=True)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="attachment")  # attachment | ordered
    linked_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))


# ------------------------------------------------------------------------------------- joint wards


class JointWard(IdMixin, CreatedMixin, Base):
    __tablename__ = "joint_ward"

    name: Mapped[str] = mapped_column(String(100))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)  # the centre
    lead_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    specialty: Mapped[str | None] = mapped_column(String(64))
    beds: Mapped[int] = mapped_column(SmallInteger, default=0)
    started_on: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(String(300))


class Team(StrEnum):
    local = "local"  # the centre's own team
    lead = "lead"  # the lead-hospital team


class JointWardMember(IdMixin, CreatedMixin, Base):
    __tablename__ = "joint_ward_member"
    __table_args__ = (UniqueConstraint("joint_ward_id", "practitioner_id"),)

    joint_ward_id: Mapped[int] = mapped_column(BigId, ForeignKey("joint_ward.id"), index=True)
    practitioner_id: Mapped[int] = mapped_column(BigId, ForeignKey("practitioner.id"))
    team: Mapped[str] = mapped_column(String(8))
    role: Mapped[str | None] = mapped_column(String(32))  # 主诊医师 / 查房专家 / 护士 …
    joined_on: Mapped[date | None] = mapped_column(Date)
    left_on: Mapped[date | None] = mapped_column(Date)


class JointWardAdmission(IdMixin, CreatedMixin, Base):
    __tablename__ = "joint_ward_admission"
    __table_args__ = (Index("ix_joint_ward_admission_ward", "joint_ward_id", "discharged_at"),)

    joint_ward_id: Mapped[int] = mapped_column(BigId, ForeignKey("joint_ward.id"))
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"), index=True)
    bed_no: Mapped[str | None] = mapped_column(String(16))
    diagnosis: Mapped[str | None] = mapped_column(String(200))
    admitted_at: Mapped[datetime] = mapped_column()
    admitted_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    discharged_at: Mapped[datetime | None] = mapped_column()
    discharge_note: Mapped[str | None] = mapped_column(Text)


class RoundRecord(IdMixin, Base):
    """查房记录: who, which team, when, note."""

    __tablename__ = "joint_ward_round"
    __table_args__ = (Index("ix_joint_ward_round_adm", "admission_id", "at"),)

    admission_id: Mapped[int] = mapped_column(BigId, ForeignKey("joint_ward_admission.id"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    team: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(Text)
