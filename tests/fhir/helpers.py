"""What the FHIR tests share: a live server with two alliances' worth of data, real clients, and validation of
every resource returned with fhir.resources' models plus the code values those models do not check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import fhirpy
import httpx
from fhir.resources.R4B import get_fhir_model_class
from fhirclient import client as fhirclient

from tests import builders as b
from tests.live import api_token, live_server
from yilianti.consultation import service as consultations
from yilianti.consultation.schemas import ConsultationIn, MessageIn
from yilianti.kit import clock
from yilianti.models.alliance import Membership
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.models.diagnostics import DiagnosticReport as DxReport
from yilianti.models.diagnostics import ImagingStudy as DxImagingStudy
from yilianti.referral import service as referrals
from yilianti.referral.schemas import ReferralIn
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling import schedules
from yilianti.scheduling.schemas import ScheduleIn, TemplateIn

GENDERS = {"male", "female", "other", "unknown"}
ISSUE_SEVERITIES = {"fatal", "error", "warning", "information"}
BUNDLE_TYPES = {"searchset", "transaction-response", "batch-response", "transaction", "collection", "history"}


def check_codes(resource: dict[str, Any]) -> None:
    """The required code values fhir.resources' models leave unchecked (ECOSYSTEM.md)."""
    kind = resource["resourceType"]
    if "gender" in resource:
        assert resource["gender"] in GENDERS, resource
    if kind == "OperationOutcome":
        assert all(i["severity"] in ISSUE_SEVERITIES for i in resource["issue"]), resource
    if kind == "Bundle":
        assert resource["type"] in BUNDLE_TYPES, resource
        for e in resource.get("entry", []):
            validate(e["resource"])
    if kind == "Location":
        assert resource.get("status", "active") in {"active", "suspended", "inactive"}
    if kind == "CapabilityStatement":
        assert resource["status"] in {"draft", "active", "retired", "unknown"}
        assert resource["kind"] == "instance" and resource["fhirVersion"] == "4.0.1"
        for res in resource["rest"][0]["resource"]:
            for p in res.get("searchParam", []):
                assert p["type"] in {"number", "date", "string", "token", "reference", "composite", "quantity",
                                     "uri", "special"}
    for ident in resource.get("identifier", []) if isinstance(resource.get("identifier"), list) else []:
        assert ident.get("system", "").startswith(("http", "urn:")) and ident.get("value"), ident
        assert ident.get("use", "usual") in {"usual", "official", "temp", "secondary", "old"}


def validate(resource: dict[str, Any]) -> Any:
    """The resource as fhir.resources' R4B model (raises when it is not valid FHIR) after the code checks."""
    check_codes(resource)
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@dataclass
class World:
    base: str
    lead_id: int
    township_id: int
    outsider_id: int
    alliance_id: int
    other_alliance_id: int
    practitioner_id: int
    site_id: int
    patients: dict[str, int]
    resident_ids: dict[str, str]
    token: str  # a doctor of the township
    outsider_token: str  # a doctor of an institution of another alliance
    factory: Any
    second_id: int = 0  # a secondary hospital of the alliance: not grassroots, so no reserved pool
    second_token: str = ""
    schedule_id: int = 0  # the lead's expert schedule: one session of 6 slots, 2 of them reserved
    expert_session_id: int = 0
    lead_token: str = ""  # a doctor of the lead hospital
    referral_id: int = 0  # 王小明 sent up from the township to the lead, submitted
    admin_token: str = ""  # the township's institution administrator (audits the township's events)
    report_id: int = 0  # 王小明's chest CT read by the lead: signed, with a study
    observation_id: int = 0  # 王小明's white cell count from the township's lab
    study_id: int = 0
    message_id: int = 0  # the township's message in its teleconsultation about 王小明 with the lead

    @property
    def fhir(self) -> str:
        return self.base + "/fhir"

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        return httpx.get(self.fhir + path, params=params, headers=self.headers(token))

    def fhirpy(self, token: str | None = None) -> fhirpy.SyncFHIRClient:
        return fhirpy.SyncFHIRClient(self.fhir, authorization=f"Bearer {token or self.token}")

    def fhirclient(self, token: str | None = None) -> fhirclient.FHIRClient:
        smart = fhirclient.FHIRClient(settings={"app_id": "yilianti-test", "api_base": self.fhir + "/"})
        smart.server.session.headers["Authorization"] = f"Bearer {token or self.token}"
        return smart


def build_world(test_db: Any) -> Iterator[World]:
    with live_server(test_db) as (base, factory):
        with factory() as db:
            from yilianti.models.workforce import PracticeSite

            lead = b.institution(db, "FHIR测试总医院", level=3)
            township = b.institution(db, "FHIR测试镇卫生院", kind="township", level=1)
            outsider = b.institution(db, "FHIR联盟外医院")
            alliance = b.alliance(db, (lead, "lead"), (township, "member"), name="FHIR测试医共体",
                                  model="county_community")
            other = b.alliance(db, (outsider, "lead"), name="FHIR另一医联体")
            doc = b.subject_for(db, b.user(db, township, "doctor"))
            out_doc = b.subject_for(db, b.user(db, outsider, "doctor"))
            expert = b.practitioner(db, lead, name="李专家")
            expert.licence_no, expert.sex, expert.specialty = "110000201000123", "男", "心内科"
            site = PracticeSite(practitioner_id=expert.id, institution_id=township.id, weekday=5, period="am")
            db.add(site)
            rids = {"wang": b.resident_id(date(2015, 3, 8), seq=11), "zhao": b.resident_id(date(1950, 6, 1), seq=12),
                    "qian": b.resident_id(date(1988, 1, 20), seq=13, male=False)}
            wang = b.patient(db, doc, name="王小明", birth=date(2015, 3, 8), resident_id=rids["wang"],
                             phone="13800138001", health_card_no="EHC0001", mrn="T-0001", sex="男")
            zhao = b.patient(db, doc, name="赵老汉", birth=date(1950, 6, 1), resident_id=rids["zhao"],
                             phone="13800138002", sex="男")
            qian = b.patient(db, out_doc, name="钱女士", birth=date(1988, 1, 20), resident_id=rids["qian"],
                             phone="13800138003", sex="女")
            zhou = b.patient(db, doc, name="周阿姨", birth=date(1960, 9, 9), resident_id=b.resident_id(
                date(1960, 9, 9), seq=15, male=False), phone="13800138005", sex="女")
            second = b.institution(db, "FHIR测试区医院", level=2)
            db.add(Membership(alliance_id=alliance.id, institution_id=second.id, role="member"))
            second_doc = b.subject_for(db, b.user(db, second, "doctor"))
            sun = b.patient(db, second_doc, name="孙先生", birth=date(1970, 2, 2),
                            resident_id=b.resident_id(date(1970, 2, 2), seq=14), phone="13800138004", sex="男")
            coordinator = b.subject_for(db, b.user(db, lead, "coordinator"))
            schedule = schedules.create_schedule(db, coordinator, ScheduleIn(
                institution_id=lead.id, kind="practitioner", name="李专家 心内科专家门诊", practitioner_id=expert.id,
                specialty="心内科", reserve_alliance_id=alliance.id))
            day = clock.today_local() + timedelta(days=3)
            schedules.add_template(db, coordinator, schedule.id, TemplateIn(
                weekday=day.isoweekday(), start_time=time(8, 0), end_time=time(11, 0), capacity=6))
            schedules.generate_sessions(db, coordinator, schedule.id, day, day)
            session = sched_repo.upcoming_sessions(db, schedule_id=schedule.id, start=day, days=1)[0][0]
            token, out_token = api_token(db, doc), api_token(db, out_doc)
            second_token = api_token(db, second_doc)
            lead_token = api_token(db, b.subject_for(db, b.user(db, lead, "doctor")))
            admin_token = api_token(db, b.subject_for(db, b.user(db, township, "institution_admin")))
            referral = referrals.draft_and_submit(db, doc, ReferralIn(
                patient_id=wang.id, to_institution_id=lead.id, reason="反复胸闷，需心内科评估", priority="urgent",
                target_service="门诊"))
            ct = DiagnosticOrder(accession_number="FHIR-CT-1", patient_id=wang.id, ordering_institution_id=township.id,
                                 reading_centre_institution_id=lead.id, kind="imaging", modality="CT",
                                 item_code="CT-CHEST", item_name="胸部CT平扫", status="reported",
                                 ordered_at=datetime(2026, 11, 2, 1, 0, tzinfo=UTC))
            lab = DiagnosticOrder(accession_number="FHIR-LAB-1", patient_id=wang.id,
                                  ordering_institution_id=township.id, kind="lab", item_code="CBC",
                                  item_name="血常规", status="reported", ordered_at=datetime(2026, 10, 1, 1, 0, tzinfo=UTC))
            db.add_all([ct, lab])
            db.flush()
            report = DxReport(order_id=ct.id, findings="两肺纹理增粗", conclusion="支气管炎可能", status="final",
                              signed_at=datetime(2026, 11, 2, 6, 0, tzinfo=UTC))
            wbc = LabObservation(order_id=lab.id, code="6690-2", code_system="LN", name="白细胞", value="12.5",
                                 value_type="NM", units="10^9/L", abnormal_flags="H", result_status="F",
                                 reference_range="3.5-9.5", observed_at=datetime(2026, 10, 1, 3, 0, tzinfo=UTC))
            study = DxImagingStudy(order_id=ct.id, study_instance_uid="1.2.826.0.1.3680043.8.498.21", modality="CT",
                                   accession_number="FHIR-CT-1", study_date=date(2026, 11, 2), instance_count=3)
            db.add_all([report, wbc, study])
            case = consultations.request(db, doc, ConsultationIn(
                patient_id=wang.id, consulted_institution_id=lead.id, question="胸部CT提示支气管炎可能，请会诊",
                consent_confirmed=True, expert_practitioner_ids=[expert.id]))
            message = consultations.post_message(db, doc, case.id, MessageIn(body="已补充血常规结果"))
            db.commit()
            world = World(base, lead.id, township.id, outsider.id, alliance.id, other.id, expert.id, site.id,
                          {"wang": wang.id, "zhao": zhao.id, "qian": qian.id, "sun": sun.id, "zhou": zhou.id}, rids, token, out_token,
                          factory, second.id, second_token, schedule.id, session.id, lead_token, referral.id, admin_token,
                          report.id, wbc.id, study.id, message.id)
        yield world


def client_token(world: World, scope: str = "system/*.read") -> str:
    """An access token of a new system client of the township (client credentials with its secret)."""
    from yilianti.auth import clients

    with world.factory() as db:
        done = clients.register(db, None, world.township_id, "县健康信息平台", scope, with_secret=True)
        db.commit()
    answer = httpx.post(world.base + "/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(done.client.client_id, done.secret or ""))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])
