"""Chronic care's part of the demo (behind its own marker): 沙县区总医院高桥分院, a township branch of 沙县区总医院's
county alliance, whose management centres follow hypertension, type 2 diabetes, severe mental disorders and
tuberculosis, and whose township doctor phones the patient who forgot the monthly check.

- Four accounts (loader.CHRONIC_ACCOUNTS): the branch's general practitioner, nurse and public-health worker, and
  沙县区总医院's endocrinologist — together the family-doctor team 高桥家庭医生一队 (高桥村、上坪村、新桥村), the
  general practitioner its lead.
- 60 adult residents of 高桥镇's villages registered at the branch; about seven in ten signed with the team over
  the last two years (renewed when a year ran out; two terminated: one moved away, one at their request).
- The registries: hypertension and type 2 diabetes with risk levels, two severe mental disorder patients (danger
  grades 1 and 3), one tuberculosis patient in the continuation phase; one patient lost to follow-up, one
  transferred, one deceased (their contract ended with them).
- A year of follow-ups, recorded through the services under a frozen clock (the national intervals: a controlled
  patient every 90 days, a re-check within two weeks), with the odd visit missed — those are overdue today.
- 王辉煌 (上坪村, born 1961): his diabetes found on a glucose screening round 13 months ago (fasting glucose
  11.2 mmol/L), enrolled and signed that day (renewed a year later), seen every quarter since — and his last
  follow-up, due three weeks ago, missed: he is on the overdue list.
- A BP screening round in 新桥村 last month: raised readings awaiting the doctor's decision, one urgent referral.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.chronic import registry, screening, service, teams
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Department, Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.chronic import ChronicRegistration
from yilianti.models.workforce import Practitioner
from yilianti.patients import service as patient_service

__all__ = ["GAOQIAO", "MARKER_ACTION", "PATIENTS", "TEAM", "WANG", "is_loaded", "load"]

MARKER_ACTION = "demo_load_chronic"
SEED = loader.SEED + 20
GAOQIAO, SHAXIAN, ALLIANCE = "沙县区总医院高桥分院", "沙县区总医院", "shaxian-county"
TEAM, VILLAGES = "高桥家庭医生一队", "高桥村、上坪村、新桥村"
RESIDENTS = 60
PATIENTS = RESIDENTS + 1  # and 王辉煌
WANG = {"name": "王辉煌", "sex": "男", "birth_date": "1961-03-15", "phone": "13859712608",
        "address": "福建省三明市沙县区高桥镇上坪村37号", "resident_id": loader.resident_id_for("350427", date(1961, 3, 15), 213)}
WANG_ENROLLED_DAYS_AGO = 395  # first follow-up 14 days later, then every 90: the fifth was due 21 days ago


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


@contextmanager
def _on(day: date, hour: int = 9) -> Iterator[None]:
    with clock.frozen(datetime.combine(day, time(hour), clock.SHANGHAI)):
        yield


def _accounts(db: Session, inst: dict[str, Institution]) -> dict[str, User]:
    users: dict[str, User] = {}
    for spec in loader.CHRONIC_ACCOUNTS:
        found = db.scalar(select(User).where(User.username == spec.username))
        if found is None:
            assert spec.institution is not None
            dept = db.scalar(select(Department).where(Department.institution_id == inst[spec.institution].id,
                                                      Department.name == spec.staff))
            nurse = spec.role == "nurse"
            prac = None
            if dept is not None:
                staff = list(db.scalars(select(Practitioner).where(Practitioner.department_id == dept.id)
                                        .order_by(Practitioner.is_department_head.desc(), Practitioner.id)))
                fits = [p for p in staff if ("护" in p.title) == nurse] or staff
                prac = fits[0] if fits else None
            found = auth_service.create_user(db, None, spec.username, loader.DEMO_PASSWORD,
                                             spec.display_name or (prac.name if prac else spec.username),
                                             [(str(spec.role), inst[spec.institution].id, None)],
                                             practitioner_id=prac.id if prac else None)
        users[spec.username] = found
    db.flush()
    return users


class _Demo:
    def __init__(self, db: Session) -> None:
        self.db = db
        self.r = random.Random(SEED)
        self.today = clock.today_local()
        self.inst = {i.name: i for i in db.scalars(select(Institution).where(Institution.name.in_((GAOQIAO, SHAXIAN))))}
        self.alliance = db.scalar(select(Alliance).where(Alliance.key == ALLIANCE))
        self.users = _accounts(db, self.inst)
        self.doctor: Subject = auth_service.build_subject(db, self.users["gaoqiao-doctor"], self.inst[GAOQIAO].id)
        self.counts: dict[str, int] = {"contracts": 0, "renewals": 0, "registrations": 0, "follow_ups": 0}

    def ago(self, days: int) -> date:
        return self.today - timedelta(days=days)

    def register(self, person: dict[str, Any], n: int) -> int:
        payload = {**person, "mrn": f"MZ2026{880000 + n:06d}", "consent_scope": "alliance",
                   "consent_alliance_id": self.alliance.id if self.alliance else None}
        if self.r.random() < 0.15:  # as in the base data set, some give no sharing consent
            payload.update(consent_scope="none", consent_alliance_id=None)
        with _on(self.ago(760)):
            return patient_service.register(self.db, self.doctor,
                                            patient_service.RegistrationIn.model_validate(payload)).patient.id

    def team(self) -> int:
        with _on(self.ago(740)):
            team = service.create_team(self.db, self.doctor, TEAM, VILLAGES,
                                       [(self.users["gaoqiao-doctor"].id, "gp")])
            lead = service.repository.members_of(self.db, team.id)[0][0]
            teams.set_lead(self.db, self.doctor, team.id, lead.id)
            teams.add_member(self.db, self.doctor, team.id, self.users["gaoqiao-nurse"].id, "nurse")
            teams.add_member(self.db, self.doctor, team.id, self.users["gaoqiao-phw"].id, "public_health")
            teams.add_member(self.db, self.doctor, team.id, self.users["shaxian-doctor"].id, "specialist")
        return team.id

    def sign(self, team_id: int, patient_id: int, day: date) -> None:
        with _on(day):
            c = service.sign_contract(self.db, self.doctor, team_id, patient_id, self.r.choice(["basic"] * 3 + ["personalised"]),
                                      day)
        self.counts["contracts"] += 1
        while c.end_on < self.today + timedelta(days=20) and self.r.random() < 0.9:
            with _on(max(c.end_on - timedelta(days=self.r.randint(3, 25)), c.start_on)):
                c = teams.renew(self.db, self.doctor, c.id)
            self.counts["renewals"] += 1

    def enrol(self, patient_id: int, condition: str, day: date, team_id: int, **kw: Any) -> ChronicRegistration:
        with _on(day):
            reg = registry.enrol(self.db, self.doctor, registry.EnrolIn(patient_id, condition, enrolled_on=day,
                                                                        team_id=team_id, **kw))
        self.counts["registrations"] += 1
        return reg

    def follow(self, reg: ChronicRegistration, controlled: float, *, delay: int = 6, miss: float = 0.06,
               until: date | None = None) -> None:
        """Visits on (or a few days after) each due day until today; now and then one is missed for good."""
        task = service.repository.open_follow_up(self.db, reg.id)
        while task is not None and task.due_on < (until or self.today):
            if self.r.random() < miss and (self.today - task.due_on).days < 60:
                return  # missed: overdue from now on
            day = task.due_on + timedelta(days=self.r.randint(0, delay))
            if day >= self.today:
                return
            ok = self.r.random() < controlled
            sbp = dbp = None
            glucose = None
            if reg.condition in ("hypertension", "smi", "tb") or self.r.random() < 0.7:
                sbp = round(self.r.gauss(128 if ok or reg.condition != "hypertension" else 152, 7))
                dbp = round(self.r.gauss(80 if ok or reg.condition != "hypertension" else 94, 5))
                sbp, dbp = min(sbp, 178), min(dbp, 108)
                if reg.condition == "hypertension" and ok:
                    sbp, dbp = min(sbp, 139), min(dbp, 89)
            if reg.condition == "diabetes_t2":
                glucose = round(self.r.gauss(6.3 if ok else 8.6, 0.35 if ok else 0.9), 1)
                glucose = min(max(glucose, 4.2), 6.9) if ok else min(max(glucose, 7.1), 15.5)
            extra: dict[str, Any] = {}
            if reg.condition == "smi":  # under treatment since enrolment: grade 1 at most at the visits
                grade = min(int(reg.risk_level or 0), 1)
                extra = {"danger_grade": grade, "insight": "complete" if grade == 0 else "partial",
                         "social": {"self_care": "good", "social": "fair"}, "sleep": "fair", "effect": "improved"}
            elif reg.condition == "tb":  # supervised by the village doctor, now and then a dose missed
                extra = {"supervisor": "doctor", "missed_doses": self.r.choice([0, 0, 0, 1])}
            with _on(day, 10):
                task = service.record_follow_up(self.db, self.doctor, task.id, service.VisitIn(
                    done_on=day, sbp=sbp, dbp=dbp, fasting_glucose=glucose,
                    visit_mode=self.r.choice(["clinic", "clinic", "home"]),
                    adherence="regular" if ok else self.r.choice(["regular", "intermittent"]),
                    note=None if ok else self.r.choice(["调整用药，嘱低盐饮食", "加用药物，两周后复查", "嘱规律服药、适量运动"]),
                    **extra))
            self.counts["follow_ups"] += 1


def load(db: Session) -> dict[str, Any]:
    d = _Demo(db)
    r = d.r
    people = loader._People(r)
    plan = loader._Plan(GAOQIAO, RESIDENTS, 0.0, ("350427-v",), ALLIANCE)
    residents = []
    for n in range(1, RESIDENTS + 1):
        person = people.person(plan)
        residents.append((d.register(person, n), date.fromisoformat(person["birth_date"]), person["address"]))
    wang = d.register(WANG, RESIDENTS + 1)
    team_id = d.team()

    # 王辉煌: found on the glucose round in 上坪村, enrolled and signed the same day
    found_on = d.ago(WANG_ENROLLED_DAYS_AGO)
    with _on(found_on, 8):
        glucose_round = screening.create_round(db, d.doctor, "glucose", found_on, team_id, "上坪村")
        rec = screening.record(db, d.doctor, glucose_round.id, screening.ReadingIn(wang, 136, 84, 11.2))
        for pid, _, address in residents:
            if "上坪村" in address and r.random() < 0.6:
                screening.record(db, d.doctor, glucose_round.id, screening.ReadingIn(
                    pid, r.randint(112, 138), r.randint(70, 88), round(r.uniform(4.6, 6.6), 1)))
    with _on(found_on, 15):
        screening.decide(db, d.doctor, rec.id, "enrol")
        contract = service.sign_contract(db, d.doctor, team_id, wang, "personalised", found_on)
    with _on(contract.end_on - timedelta(days=14)):  # renewed at his visit two weeks before the year ran out
        teams.renew(db, d.doctor, contract.id)
    d.counts["contracts"] += 1
    d.counts["renewals"] += 1
    wang_reg = db.scalar(select(ChronicRegistration).where(ChronicRegistration.patient_id == wang))
    assert wang_reg is not None
    with _on(found_on, 15):
        registry.set_risk(db, d.doctor, wang_reg.id, "medium", "空腹血糖11.2 mmol/L，无并发症")
    d.counts["registrations"] += 1
    d.follow(wang_reg, 1.0, delay=0, miss=0.0, until=d.ago(30))
    wang_task = service.repository.open_follow_up(db, wang_reg.id)
    assert wang_task is not None and wang_task.due_on < d.today, "王辉煌's last follow-up should be overdue"

    # contracts: about seven in ten residents, signed over the last two years
    for pid, birth, _ in residents:
        if r.random() < (0.85 if birth.year < 1961 else 0.6):
            d.sign(team_id, pid, d.ago(r.randint(40, 700)))

    # the registries: the older residents first
    elderly = sorted(residents, key=lambda x: x[1])
    htn = elderly[:24]
    dm = [x for i, x in enumerate(elderly[:30]) if i % 3 == 0] + elderly[30:33]
    regs: list[ChronicRegistration] = []
    for pid, _, _ in htn:
        reg = d.enrol(pid, "hypertension", d.ago(r.randint(200, 700)), team_id,
                      risk_level=r.choice(["low", "medium", "medium", "high", "high", "very_high"]))
        d.follow(reg, r.choice([0.9, 0.8, 0.7, 0.5]))
        regs.append(reg)
    for pid, _, _ in dm:
        reg = d.enrol(pid, "diabetes_t2", d.ago(r.randint(200, 600)), team_id,
                      risk_level=r.choice(["low", "medium", "high"]))
        d.follow(reg, r.choice([0.85, 0.7, 0.55]))
        regs.append(reg)
    for (pid, _, _), grade, icd in ((elderly[40], "1", "F20.0"), (elderly[45], "3", "F31.2")):
        reg = d.enrol(pid, "smi", d.ago(r.randint(300, 500)), team_id, icd10=icd, risk_level=grade)
        d.follow(reg, 1.0)
    tb_pid = elderly[50][0]
    notified = d.ago(100)
    tb = d.enrol(tb_pid, "tb", notified, team_id, icd10="A15.0", notified_on=notified)
    d.follow(tb, 1.0, delay=1, miss=0.0, until=notified + timedelta(days=61))  # every 10 days, intensive phase
    with _on(notified + timedelta(days=61)):
        registry.set_phase(db, d.doctor, tb.id, "continuation", "强化期2个月结束，痰涂片阴转")
    d.follow(tb, 1.0)  # monthly from here

    # status changes: lost to follow-up, transferred, deceased (their contract ends with them)
    with _on(d.ago(45)):
        registry.change_status(db, d.doctor, regs[5].id, "lost", "连续三次电话未接通，邻居称外出务工")
    with _on(d.ago(30)):
        registry.change_status(db, d.doctor, regs[9].id, "transferred", "随子女迁往三明市区，转列东社区卫生服务中心管理")
    with _on(d.ago(12)):
        registry.change_status(db, d.doctor, regs[0].id, "deceased", "脑出血，于沙县区总医院抢救无效去世")

    # two contracts terminated early
    ended = 0
    for pid, _, _ in residents[::-1]:
        c = service.repository.patient_contracts_at(db, pid, d.inst[GAOQIAO].id)
        live = [x for x in c if x.start_on <= d.today <= x.end_on and x.status == "active"]
        if live and ended < 2:
            with _on(d.ago(20 + ended * 40)):
                teams.terminate(db, d.doctor, live[0].id, ("moved", "request")[ended],
                                ("全家迁往福州", "改由子女所在社区签约")[ended])
            ended += 1

    # the BP round in 新桥村 last month: what it found awaits the doctor
    held = d.ago(25)
    with _on(held, 8):
        bp_round = screening.create_round(db, d.doctor, "bp35", held, team_id, "新桥村")
        urgent = None
        for pid, birth, address in residents:
            if "新桥村" not in address or birth.year > held.year - 35:
                continue
            high = r.random() < 0.3
            rec = screening.record(db, d.doctor, bp_round.id, screening.ReadingIn(
                pid, r.randint(142, 166) if high else r.randint(108, 136), r.randint(90, 99) if high else r.randint(66, 86)))
            if urgent is None and rec.suggestion == "enrol_hypertension":
                urgent = rec
        if urgent is not None:  # re-measured at 186/112 on the spot: referred at once
            urgent.sbp, urgent.dbp, urgent.finding, urgent.suggestion = 186, 112, "urgent", "refer"
            screening.decide(db, d.doctor, urgent.id, "refer")

    detail = {"patients": PATIENTS, **d.counts}
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "chronic", channel="cli", detail=detail)
    db.flush()
    return detail
