"""Chronic disease management (慢病管理, issue 20): family-doctor teams, their contracts with residents,
the chronic-disease registry and the follow-ups it plans.

A follow-up row is first a task (due_on, status open) and becomes the visit when it is recorded (done_on,
values, classification); recording it plans the next one (`yilianti.chronic.service.record_follow_up`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class FamilyDoctorTeam(IdMixin, CreatedMixin, Base):
    """A family-doctor team (家庭医生团队) of a grassroots institution."""

    __tablename__ = "family_doctor_team"

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    village: Mapped[str | None] = mapped_column(String(100))  # the villages/communities it serves


class TeamMember(IdMixin, CreatedMixin, Base):
    __tablename__ = "family_doctor_team_member"
    __table_args__ = (Index("ix_team_member_team", "team_id", "user_id", unique=True),)

    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("family_doctor_team.id"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id"))
    role: Mapped[str] = mapped_column(String(24))  # gp | nurse | public_health | specialist
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)  # 团队长: one per team


class FamilyDoctorContract(IdMixin, CreatedMixin, Base):
    """A resident's signed contract (家庭医生签约) with a team for a period and a service package."""

    __tablename__ = "family_doctor_contract"
    __table_args__ = (Index("ix_contract_team", "team_id", "status"), Index("ix_contract_patient", "patient_id"))

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("family_doctor_team.id"))
    package: Mapped[str] = mapped_column(String(24))  # basic | personalised
    start_on: Mapped[date] = mapped_column(Date)
    end_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | terminated
    signed_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    renewal_of_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("family_doctor_contract.id"))
    terminated_on: Mapped[date | None] = mapped_column(Date)
    termination_reason: Mapped[str | None] = mapped_column(String(24))  # moved | deceased | request | other
    termination_note: Mapped[str | None] = mapped_column(String(300))


class ChronicRegistration(IdMixin, CreatedMixin, Base):
    """One patient enrolled in the registry of one condition (hypertension, type 2 diabetes)."""

    __tablename__ = "chronic_registration"
    __table_args__ = (Index("ix_chronic_registration_patient", "patient_id", "condition"),
                      Index("ix_chronic_registration_inst", "institution_id", "status"))

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    condition: Mapped[str] = mapped_column(String(24))  # hypertension | diabetes_t2
    icd10: Mapped[str] = mapped_column(String(16))
    enrolled_on: Mapped[date] = mapped_column(Date)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))  # the managing centre
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("family_doctor_team.id"))
    responsible_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    status: Mapped[str] = mapped_column(String(16), default="under_care")
    # under_care | lost (失访) | transferred | deceased; each change is a ChronicRegistrationEvent
    risk_level: Mapped[str | None] = mapped_column(String(16))  # HTN/T2DM: low…very_high; SMI: danger grade 0–5
    tb_phase: Mapped[str | None] = mapped_column(String(16))  # intensive | continuation | completed
    notified_on: Mapped[date | None] = mapped_column(Date)  # TB: the notification (first home visit ≤ 72 h)


class ChronicFollowUp(IdMixin, CreatedMixin, Base):
    """A planned follow-up (open, due_on) and, once recorded, the visit itself (done)."""

    __tablename__ = "chronic_follow_up"
    __table_args__ = (Index("ix_chronic_follow_up_team", "team_id", "status", "due_on"),
                      Index("ix_chronic_follow_up_inst", "institution_id", "status", "due_on"))

    registration_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_registration.id"), index=True)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("family_doctor_team.id"))
    due_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(24))  # first | routine | recheck | after_referral
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    done_on: Mapped[date | None] = mapped_column(Date)
    done_at: Mapped[datetime | None] = mapped_column()
    recorded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    sbp: Mapped[int | None] = mapped_column(Integer)
    dbp: Mapped[int | None] = mapped_column(Integer)
    fasting_glucose: Mapped[float | None] = mapped_column(Float)  # mmol/L
    classification: Mapped[str | None] = mapped_column(String(24))  # controlled | uncontrolled | refer | urgent
    note: Mapped[str | None] = mapped_column(Text)
    # the national visit record (高血压/2型糖尿病患者随访服务记录表); the rest of the form in `detail`
    visit_mode: Mapped[str | None] = mapped_column(String(16))  # clinic | home | phone
    heart_rate: Mapped[int | None] = mapped_column(Integer)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    height_cm: Mapped[float | None] = mapped_column(Float)
    bmi: Mapped[float | None] = mapped_column(Float)
    hba1c: Mapped[float | None] = mapped_column(Float)  # %
    adherence: Mapped[str | None] = mapped_column(String(16))  # regular | intermittent | none
    adverse: Mapped[str | None] = mapped_column(String(16))  # none | present | severe
    visit_class: Mapped[str | None] = mapped_column(String(16))  # 此次随访分类: controlled | uncontrolled | adverse | complication
    referral_reason: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # symptoms, danger signs, lifestyle, medications...


class ChronicAlarm(IdMixin, CreatedMixin, Base):
    """A value past the urgent thresholds (SBP ≥ 180, DBP ≥ 110, glucose ≥ 16.7 or ≤ 3.9 mmol/L) from a visit
    or a lab result: on the team's workbench until acknowledged, with a prefilled urgent up-referral."""

    __tablename__ = "chronic_alarm"
    __table_args__ = (Index("ix_chronic_alarm_source", "source_key", unique=True),
                      Index("ix_chronic_alarm_inst", "institution_id", "acknowledged_at"))

    source_key: Mapped[str] = mapped_column(String(64))  # visit-<follow-up id> | lab-<observation id>: raised once
    source: Mapped[str] = mapped_column(String(16))  # visit | lab
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"), index=True)
    registration_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_registration.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("family_doctor_team.id"))
    responsible_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    kind: Mapped[str] = mapped_column(String(24))  # bp_high | glucose_high | glucose_low | danger
    value_text: Mapped[str] = mapped_column(String(300))
    measured_at: Mapped[datetime] = mapped_column()
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    ack_note: Mapped[str | None] = mapped_column(String(300))
    escalated_at: Mapped[datetime | None] = mapped_column()
    escalated_to_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))  # the team head


class ChronicReminder(IdMixin, CreatedMixin, Base):
    """An SMS-style reminder of a follow-up coming due: one per (follow-up, due date, channel), queued in the
    same transaction that finds it due and delivered after commit (chronic/reminders.py)."""

    __tablename__ = "chronic_reminder"
    __table_args__ = (Index("ix_chronic_reminder_once", "follow_up_id", "due_on", "channel", unique=True),
                      Index("ix_chronic_reminder_inst", "institution_id", "status"))

    follow_up_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_follow_up.id"))
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    due_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))  # sms
    text: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))  # queued | sent | failed | no_phone
    sent_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(300))


class ChronicCall(IdMixin, CreatedMixin, Base):
    """A phone follow-up attempt (电话随访) on a follow-up, with its outcome."""

    __tablename__ = "chronic_call"

    follow_up_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_follow_up.id"), index=True)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id"))
    called_at: Mapped[datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(24))  # will_come | visited_elsewhere | refused | no_answer | wrong_number | moved | deceased
    note: Mapped[str | None] = mapped_column(String(300))


class ChronicReading(IdMixin, CreatedMixin, Base):
    """A measurement from a home device (BP monitor, glucose meter) uploaded for a patient under care: the same
    thresholds as a visit's raise an alarm (source `device`). One row per patient, kind and moment: a file
    uploaded twice adds nothing."""

    __tablename__ = "chronic_reading"
    __table_args__ = (Index("ix_chronic_reading_once", "patient_id", "kind", "measured_at", unique=True),)

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    registration_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_registration.id"), index=True)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    kind: Mapped[str] = mapped_column(String(16))  # bp | glucose
    sbp: Mapped[int | None] = mapped_column(Integer)
    dbp: Mapped[int | None] = mapped_column(Integer)
    glucose: Mapped[float | None] = mapped_column(Float)  # mmol/L
    measured_at: Mapped[datetime] = mapped_column()
    device: Mapped[str | None] = mapped_column(String(100))
    uploaded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
