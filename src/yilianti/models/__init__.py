"""All ORM models, imported here so that Alembic and the app see one metadata."""

from yilianti.models.alliance import Alliance, Department, Institution, Membership
from yilianti.models.attachment import Attachment
from yilianti.models.audit import AuditEvent, AuditJournalMark, AuditSeal
from yilianti.models.auth import ApiToken, ClientAssertion, LoginSession, RoleAssignment, SystemClient, User
from yilianti.models.base import Base
from yilianti.models.bulk import BulkExport
from yilianti.models.chronic import (
    ChronicAlarm,
    ChronicCall,
    ChronicFollowUp,
    ChronicReading,
    ChronicRegistration,
    ChronicReminder,
    FamilyDoctorContract,
    FamilyDoctorTeam,
    TeamMember,
)
from yilianti.models.chronic_registry import ChronicRegistrationEvent, ScreeningRecord, ScreeningRound
from yilianti.models.cockpit import AssistanceRecord, Indicator, IndicatorFigure, IndicatorTarget
from yilianti.models.consultation import (
    Consultation,
    ConsultationHistory,
    ConsultationMessage,
    ConsultationOpinion,
    ConsultationOrder,
    ConsultationParticipant,
    JointWard,
    JointWardAdmission,
    JointWardMember,
    RoundRecord,
)
from yilianti.models.diagnostics import (
    CriticalValue,
    DiagnosticItem,
    DiagnosticOrder,
    DiagnosticOrderHistory,
    DiagnosticReport,
    ImagingInstance,
    ImagingStudy,
    InboundMessage,
    ItemPrice,
    LabObservation,
)
from yilianti.models.diagnostics_media import EcgRecording, OrthancForward
from yilianti.models.empi import DoNotMatch, MatchCandidate, MergeEvent, PatientRecord
from yilianti.models.encounter import Encounter, OutOfCountyVisit
from yilianti.models.outbox import Notification, NotificationContact, NotificationPreference, OutboxMessage
from yilianti.models.patient import (
    AccessGrant,
    CareRelationship,
    Consent,
    Patient,
    PatientIdentifier,
)
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionDecision,
    RecognitionItem,
    RecognitionItemCode,
    RecognitionRule,
    RecognitionScope,
    RecognitionScopeArea,
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
    "AccessGrant", "Alliance", "ApiToken", "AuditEvent", "BulkExport",
    "AuditJournalMark", "AuditSeal", "Base", "CareRelationship", "Consent",
    "Department", "Encounter", "Institution", "OutOfCountyVisit", "Membership", "Notification", "NotificationContact", "NotificationPreference",
    "OutboxMessage", "Patient",
    "ClientAssertion", "LoginSession", "PatientIdentifier", "PracticeSite", "Practitioner", "RoleAssignment",
    "SystemClient", "User",
    "BedReservation", "Booking", "BookingRequest", "ClinicSession", "Closure", "Schedule", "ScheduleTemplate",
    "Slot", "Ward",
    "FollowUpTask", "Referral", "ReferralHistory",
    "QualifiedInstitution", "RecognitionDecision", "RecognitionItem", "RecognitionItemCode", "RecognitionRule",
    "RecognitionScope", "RecognitionScopeArea",
    "CriticalTransfer", "TransferMilestone",
    "Attachment",
    "Consultation", "ConsultationHistory", "ConsultationMessage", "ConsultationOpinion", "ConsultationOrder",
    "ConsultationParticipant", "JointWard", "JointWardAdmission", "JointWardMember", "RoundRecord",
    "DiagnosticOrder", "ImagingInstance", "ImagingStudy", "InboundMessage", "LabObservation",
    "CriticalValue", "DiagnosticItem", "DiagnosticOrderHistory", "DiagnosticReport", "ItemPrice",
    "EcgRecording", "OrthancForward",
    "DoNotMatch", "MatchCandidate", "MergeEvent", "PatientRecord",
    "AssistanceRecord", "Indicator", "IndicatorFigure", "IndicatorTarget",
    "ChronicFollowUp", "ChronicRegistration", "FamilyDoctorContract", "FamilyDoctorTeam", "TeamMember",
    "ChronicAlarm", "ChronicCall", "ChronicReading", "ChronicReminder",
    "ChronicRegistrationEvent", "ScreeningRecord", "ScreeningRound",
]
