"""API shapes of chronic care: teams and members, contracts, signing rates, registrations with their history,
screening rounds and records (the routes: chronic/care_api.py); follow-up visits, calls, alarms and device
readings (chronic/work_api.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from yilianti.chronic.visit import RANGES
from yilianti.kit.schemas import Day, Id

Role = Literal["gp", "nurse", "public_health", "specialist"]
Package = Literal["basic", "personalised"]
EndReason = Literal["moved", "deceased", "request", "changed_team", "other"]
Condition = Literal["hypertension", "diabetes_t2", "smi", "tb"]
Status = Literal["under_care", "lost", "transferred", "deceased"]
Risk = Literal["low", "medium", "high", "very_high", "0", "1", "2", "3", "4", "5"]
Phase = Literal["intensive", "continuation", "completed"]
ScreeningKind = Literal["bp35", "elderly65", "glucose"]
Decision = Literal["enrol", "refer", "dismiss"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MemberIn(BaseModel):
    user_id: Id
    role: Role
    lead: bool = Field(default=False, description="make this member the team lead (团队长)")


class MemberOut(_Out):
    id: int
    user_id: int
    role: str
    is_lead: bool
    name: str | None = None


class TeamOut(_Out):
    id: int
    institution_id: int
    name: str
    village: str | None
    members: list[MemberOut] = []


class ContractIn(BaseModel):
    patient_id: Id
    package: Package = "basic"
    start_on: Day | None = Field(default=None, description="default today (Asia/Shanghai)")


class RenewIn(BaseModel):
    package: Package | None = Field(default=None, description="default the old contract's package")


class TerminateIn(BaseModel):
    reason: EndReason
    note: str | None = Field(default=None, max_length=300, description="required when reason is other")
    terminated_on: Day | None = Field(default=None, description="default today; not in the future")


class ContractOut(_Out):
    id: int
    patient_id: int
    team_id: int
    package: str
    start_on: date
    end_on: date
    status: str
    state: str = Field(description="active | expiring | pending | expired | terminated, on today")
    renewal_of_id: int | None
    terminated_on: date | None
    termination_reason: str | None
    termination_note: str | None


class RateOut(BaseModel):
    population: str
    residents: int
    signed: int
    percent: float | None


class TeamRatesOut(BaseModel):
    team_id: int | None = Field(description="null: the whole institution")
    name: str
    village: str | None
    rates: list[RateOut]


class EnrolIn(BaseModel):
    patient_id: Id
    condition: Condition
    icd10: str = Field(default="", max_length=16, description="blank: the condition's default code")
    enrolled_on: Day | None = None
    team_id: Id | None = None
    risk_level: Risk | None = Field(default=None, description="HTN/T2DM low…very_high; SMI danger grade 0–5")
    notified_on: Day | None = Field(default=None, description="TB: the notification (first visit within 72 h)")


class ChangeIn(BaseModel):
    reason: str | None = Field(default=None, max_length=300)
    effective_on: Day | None = None


class StatusIn(ChangeIn):
    status: Status


class RiskIn(ChangeIn):
    risk_level: Risk


class PhaseIn(ChangeIn):
    tb_phase: Phase


class RegistrationOut(_Out):
    id: int
    patient_id: int
    condition: str
    icd10: str
    enrolled_on: date
    institution_id: int
    team_id: int | None
    responsible_user_id: int | None
    status: str
    risk_level: str | None
    tb_phase: str | None
    notified_on: date | None


class EventOut(_Out):
    kind: str
    from_value: str | None
    to_value: str | None
    effective_on: date
    reason: str | None
    user_id: int | None
    created_at: datetime


class NextFollowUpOut(_Out):
    id: int
    due_on: date
    reason: str


class TbClosingOut(_Out):
    """A TB treatment's closing assessment (结案评估): the stop and its outcome (cured | completed | failed | died |
    lost | mdr), the visits and doses due and made, regular treatment (规则服药: at least 90 % of the doses)."""
    stopped_on: date
    outcome: str
    visits_due: int | None
    visits_done: int | None
    doses_due: int | None
    doses_taken: int | None
    regular: bool
    note: str | None
    assessed_by_user_id: int | None
    assessed_by: str | None = Field(default=None, description="the assessing user's name")
    assessed_at: datetime


class RegistrationDetailOut(RegistrationOut):
    events: list[EventOut]
    next_follow_up: NextFollowUpOut | None
    tb_closing: TbClosingOut | None = Field(default=None, description="TB: the closing assessment, once made")


class RoundIn(BaseModel):
    kind: ScreeningKind
    held_on: Day
    team_id: Id | None = None
    village: str | None = Field(default=None, max_length=100)


class RoundOut(_Out):
    id: int
    institution_id: int
    team_id: int | None
    kind: str
    village: str | None
    held_on: date
    status: str


class ReadingIn(BaseModel):
    patient_id: Id
    sbp: int | None = Field(default=None, ge=50, le=300, description="mmHg")
    dbp: int | None = Field(default=None, ge=30, le=200, description="mmHg")
    fasting_glucose: float | None = Field(default=None, ge=1.0, le=40.0, description="mmol/L")
    measured_on: Day | None = Field(default=None, description="default the round's day")


class RecordOut(_Out):
    id: int
    round_id: int
    patient_id: int
    measured_on: date
    sbp: int | None
    dbp: int | None
    fasting_glucose: float | None
    finding: str = Field(description="normal | raised_bp | raised_glucose | raised_both | urgent")
    suggestion: str | None = Field(description="enrol_hypertension | enrol_diabetes | enrol_both | refer")
    outcome: str = Field(description="none | pending | enrolled | referred | dismissed")


class RoundDetailOut(RoundOut):
    records: list[RecordOut]


class DecisionIn(BaseModel):
    action: Decision
    note: str | None = Field(default=None, max_length=300, description="required to dismiss")


# ------------------------------------------------------- follow-ups, calls, alarms, readings (routes: work_api.py)

def _ranged(name: str, description: str = "") -> Any:
    """A visit value's field bounded by the form's own range (`visit.RANGES`, the one place it is said)."""
    lo, hi, unit = RANGES[name]
    return Field(default=None, ge=lo, le=hi, description=f"{description} {unit}".strip())


Code = Annotated[str, Field(max_length=24)]
Text = Annotated[str, Field(max_length=1000)]


class VisitBody(BaseModel):
    """A follow-up visit as the national form records it, with the form's codes (chronic/visit.py). Hypertension
    needs sbp/dbp, diabetes fasting_glucose, SMI danger_grade (0–5), TB missed_doses; a value out of range or an
    unknown code is a 422 naming the field."""
    done_on: Day
    visit_mode: Code | None = Field(default=None, description="clinic | home | phone")
    sbp: int | None = _ranged("sbp")
    dbp: int | None = _ranged("dbp")
    heart_rate: int | None = _ranged("heart_rate")
    weight_kg: float | None = _ranged("weight_kg")
    height_cm: float | None = _ranged("height_cm")
    fasting_glucose: float | None = _ranged("fasting_glucose")
    hba1c: float | None = _ranged("hba1c")
    smoking: int | None = _ranged("smoking")
    drinking: float | None = _ranged("drinking")
    exercise_times: int | None = _ranged("exercise_times")
    exercise_minutes: int | None = _ranged("exercise_minutes")
    staple_g: int | None = _ranged("staple_g")
    salt: Code | None = None
    mental: Code | None = None
    compliance: Code | None = None
    symptoms: list[Code] = Field(default=[], max_length=20)
    symptom_other: Text | None = None
    danger: list[Code] = Field(default=[], max_length=20, description="hypertension/diabetes danger signs")
    adherence: Code | None = Field(default=None, description="regular | intermittent | none")
    adverse: Code | None = Field(default=None, description="none | present | severe")
    adverse_text: Text | None = None
    hypoglycaemia: Code | None = None
    foot_pulse: Code | None = None
    complication: bool = False
    complication_text: Text | None = None
    medications: list[Annotated[str, Field(max_length=100)]] = Field(default=[], max_length=20)
    referral_reason: Text | None = None
    referral_to: Text | None = None
    note: Text | None = None
    danger_grade: int | None = _ranged("danger_grade", "SMI 危险性评估")
    insight: Code | None = Field(default=None, description="SMI: complete | partial | absent")
    social: dict[Code, Code] = Field(default={}, description="SMI: self_care/housework/work/learning/social → "
                                                                 "good | fair | poor")
    sleep: Code | None = None
    effect: Code | None = None
    treatment_month: int | None = _ranged("treatment_month", "TB")
    supervisor: Code | None = Field(default=None, description="TB: doctor | family | self | other")
    missed_doses: int | None = _ranged("missed_doses", "TB")


class FollowUpOut(_Out):
    id: int
    registration_id: int
    patient_id: int
    institution_id: int
    team_id: int | None
    due_on: date
    reason: str
    status: str = Field(description="open | done | cancelled")
    done_on: date | None
    sbp: int | None
    dbp: int | None
    fasting_glucose: float | None
    classification: str | None
    visit_class: str | None
    detail: dict[str, Any] | None


class OverdueOut(_Out):
    follow_up: FollowUpOut
    condition: str
    patient_name: str
    days_overdue: int


class CallIn(BaseModel):
    outcome: Literal["will_come", "visited_elsewhere", "refused", "no_answer", "wrong_number", "moved", "deceased"]
    note: str | None = Field(default=None, max_length=300)


class CallOut(_Out):
    id: int
    follow_up_id: int
    patient_id: int
    user_id: int
    called_at: datetime
    outcome: str
    note: str | None


class AckIn(BaseModel):
    note: str | None = Field(default=None, max_length=300)


class AlarmOut(_Out):
    id: int
    source: str
    patient_id: int
    registration_id: int
    team_id: int | None
    responsible_user_id: int | None
    kind: str
    value_text: str
    measured_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by_user_id: int | None
    escalated_at: datetime | None
    referral_url: str | None = Field(default=None, description="the prefilled urgent up-referral form")


class ReadingOut(_Out):
    id: int
    patient_id: int
    registration_id: int
    kind: str
    sbp: int | None
    dbp: int | None
    glucose: float | None
    measured_at: datetime
    device: str | None


class RowErrorOut(BaseModel):
    row: int
    field: str
    message: str


class UploadOut(BaseModel):
    imported: int
    repeats: int
    alarms: int
    errors: list[RowErrorOut]


class OutcomeMonthOut(BaseModel):
    """One month's figures as of its end (the Simple hypertension programme's rules, chronic/outcomes.py)."""
    month: str = Field(description="YYYY-MM")
    registered: int = Field(description="registrations counted: under care or marked lost as of the month's end")
    under_care: int = Field(description="registered within 12 months or seen (a recorded follow-up) within them")
    lost: int = Field(description="registered before the 12 months and not seen within them")
    cohort: int = Field(description="the 3-month cohort: under care and registered before the 3 months")
    controlled: int
    uncontrolled: int
    unmeasured: int = Field(description="visited in the 3 months without a measurement")
    missed: int = Field(description="no visit in the 3 months")
    control_rate: float | None = Field(description="controlled ÷ cohort (0–1); null for an empty cohort")
    due: int = Field(description="follow-ups due in the month, not cancelled")
    done: int = Field(description="of those, done by the month's end")
    completion: float | None = Field(description="done ÷ due (0–1); null when none was due")


class MonthlyGroupOut(BaseModel):
    key: str = Field(description="the group's key for `group`: team or doctor id, village name, institution id, "
                                 "\"none\" for the unassigned")
    name: str
    latest: OutcomeMonthOut | None = Field(description="the group's last month")


class MonthlyOut(BaseModel):
    condition: str
    by: str
    group: str = Field(description="the group shown; \"\" for the whole institution (or all members)")
    name: str
    start: str = Field(description="YYYY-MM")
    end: str = Field(description="YYYY-MM")
    built_at: datetime | None = Field(description="when the stored figures were built; null: computed now")
    months: list[OutcomeMonthOut]
    groups: list[MonthlyGroupOut]
