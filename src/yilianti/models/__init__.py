"""All ORM models, imported here so that Alembic and the app see one metadata."""

from yilianti.models.alliance import Alliance, Department, Institution, Membership
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import ApiToken, RoleAssignment, User
from yilianti.models.base import Base
from yilianti.models.diagnostics import (
    DiagnosticOrder,
    ImagingInstance,
    ImagingStudy,
    InboundMessage,
    LabObservation,
)
from yilianti.models.outbox import Notification, OutboxMessage
from yilianti.models.patient import (
    AccessGrant,
    CareRelationship,
    Consent,
    Patient,
    PatientIdentifier,
)
from yilianti.models.referral import FollowUpTask, Referral, ReferralHistory
from yilianti.models.scheduling import (
    BedReservation,
    Booking,
    BookingRequest,
    ClinicSession,
    Closure,
    Schedule,
    ScheduleTemplate,
    Slot,
    Ward,
)
from yilianti.models.transfer import CriticalTransfer, TransferMilestone
from yilianti.models.workforce import PracticeSite, Practitioner

__all__ = [
    "AccessGrant", "Alliance", "ApiToken", "AuditEvent", "Base", "CareRelationship", "Consent",
    "Department", "Institution", "Membership", "Notification", "OutboxMessage", "Patient",
    "PatientIdentifier", "PracticeSite", "Practitioner", "RoleAssignment", "User",
    "BedReservation", "Booking", "BookingRequest", "ClinicSession", "Closure", "Schedule", "ScheduleTemplate",
    "Slot", "Ward",
    "FollowUpTask", "Referral", "ReferralHistory",
    "CriticalTransfer", "TransferMilestone",
    "DiagnosticOrder", "ImagingInstance", "ImagingStudy", "InboundMessage", "LabObservation",
]
