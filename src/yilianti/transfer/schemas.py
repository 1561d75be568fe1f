"""Input models for critical transfers; vitals are checked against plausible ranges."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from yilianti.kit.schemas import Id, Instant


class Network(StrEnum):
    general = "general"
    chest_pain = "chest_pain"  # 胸痛中心网络
    stroke = "stroke"  # 卒中中心网络
    neonatal = "neonatal"  # 新生儿转运网络


# name → (low, high, message): a value outside is a typing error or an impossible patient
VITAL_RANGES: dict[str, tuple[float, float, str]] = {
    "hr": (20, 300, "心率应在 20–300 次/分之间"),
    "bp_sys": (30, 300, "收缩压应在 30–300 mmHg 之间"),
    "bp_dia": (10, 200, "舒张压应在 10–200 mmHg 之间"),
    "spo2": (30, 100, "血氧饱和度应在 30–100% 之间"),
    "rr": (4, 120, "呼吸频率应在 4–120 次/分之间"),
    "temp": (25, 45, "体温应在 25–45 ℃ 之间"),
    "gcs": (3, 15, "GCS 评分应在 3–15 之间"),
    "weight_kg": (0.3, 300, "体重应在 0.3–300 kg 之间"),
}



def _vital(name: str, description: str) -> Any:
    """An optional vital sign; its plausible range (VITAL_RANGES) is published as the schema's bounds."""
    low, high, _message = VITAL_RANGES[name]
    return Field(default=None, description=description, json_schema_extra={"minimum": low, "maximum": high})


class VitalsIn(BaseModel):
    """Vital signs at the time of the request (all optional; weight matters for neonates)."""

    hr: int | None = _vital("hr", "heart rate, /min")
    bp_sys: int | None = _vital("bp_sys", "systolic blood pressure, mmHg")
    bp_dia: int | None = _vital("bp_dia", "diastolic blood pressure, mmHg")
    spo2: int | None = _vital("spo2", "oxygen saturation, %")
    rr: int | None = _vital("rr", "respiratory rate, /min")
    temp: float | None = _vital("temp", "temperature, °C")
    gcs: int | None = _vital("gcs", "Glasgow coma scale, 3–15")
    weight_kg: float | None = _vital("weight_kg", "weight, kg")

    @field_validator("hr", "bp_sys", "bp_dia", "spo2", "rr", "temp", "gcs", "weight_kg")
    @classmethod
    def _plausible(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        low, high, message = VITAL_RANGES[str(info.field_name)]
        if not low <= value <= high:
            raise ValueError(message)
        if info.field_name == "bp_dia" and info.data.get("bp_sys") is not None and value >= info.data["bp_sys"]:
            raise ValueError("舒张压应低于收缩压")
        return value


class TransferIn(BaseModel):
    patient_id: Id
    destination_institution_id: Id
    network: Network = Network.general
    diagnosis: str = Field(min_length=1, max_length=2000)
    vitals: VitalsIn = Field(default_factory=VitalsIn)
    referral_id: Id | None = None

    @field_validator("diagnosis")
    @classmethod
    def _diagnosis(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("必填")
        return value


class AcceptIn(BaseModel):
    accepting_practitioner_id: Id | None = None
    accepting_physician: str | None = Field(default=None, max_length=64, description="name, when not a practitioner")
    ward_id: Id | None = None
    bed_reservation_id: Id | None = None
    bed_note: str | None = Field(default=None, max_length=100, description="e.g. NICU 3 床")


class DispatchIn(BaseModel):
    vehicle: str = Field(min_length=1, max_length=64, description="plate or unit, e.g. 京A·12345 新生儿转运车")
    team: str = Field(min_length=1, max_length=2000, description="team members")


MilestoneKind = Literal["team_departed", "arrived_at_origin", "assessed", "departed_with_patient", "arrived",
                        "handed_over", "first_medical_contact", "first_ecg", "door", "balloon", "needle"]


class MilestoneIn(BaseModel):
    kind: MilestoneKind
    at: Instant | None = Field(default=None, description="defaults to now; late entry allowed, never in the future")
    note: str | None = Field(default=None, max_length=300)


class CancelIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class MilestoneOut(BaseModel):
    kind: str
    at: datetime
    minutes_since_previous: int | None = None
    recorded_by_user_id: int | None
    recorded_by_institution_id: int | None
    note: str | None


class IndicatorOut(BaseModel):
    key: str
    minutes: int | None
    target_minutes: int
    met: bool | None


class TransferOut(BaseModel):
    id: int
    case_no: str
    patient_id: int
    origin_institution_id: int
    destination_institution_id: int
    referral_id: int | None
    network: str
    diagnosis: str
    vitals: dict[str, Any]
    status: str
    accepting_practitioner_id: int | None
    accepting_physician: str | None
    ward_id: int | None
    bed_reservation_id: int | None
    bed_note: str | None
    vehicle: str | None
    team: str | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime


class TransferDetailOut(TransferOut):
    side: str | None
    milestones: list[MilestoneOut]
    next_milestones: list[str]
    total_minutes: int | None
    indicators: list[IndicatorOut]
